//! The processor's clock, for the benchmarks' cycles-per-line figures (shared by `bench.rs` and
//! `stages.rs`).

use std::time::Instant;

/// The processor's clock now, in GHz: a chain of dependent 64-bit multiplications, each taking
/// three cycles on every x86-64 processor of the last fifteen years (and on current Arm cores).
pub fn clock_ghz() -> f64 {
    let n: u64 = std::hint::black_box(100_000_000);
    let mut x = std::hint::black_box(3u64);
    let t = Instant::now();
    for _ in 0..n {
        x = x.wrapping_mul(std::hint::black_box(0x9E37_79B9_7F4A_7C15));
    }
    std::hint::black_box(x);
    3.0 * n as f64 / t.elapsed().as_secs_f64() / 1e9
}
