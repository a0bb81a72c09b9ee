//! Fuzz target: bgcode. Under libFuzzer (feature `libfuzzer`) a coverage-guided target; otherwise a
//! program that mutates the corpus directories given as arguments for `FUZZ_SECONDS`.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hearth_printfile_fuzz::bgcode(data));

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    hearth_printfile_fuzz::stable_main("bgcode", hearth_printfile_fuzz::bgcode);
}
