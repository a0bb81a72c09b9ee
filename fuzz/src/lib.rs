//! The fuzz targets' bodies, and a small stable-toolchain harness for machines without libFuzzer.
//!
//! Each body runs every public entry point that could see the input; the only failure is a panic
//! (or, under libFuzzer, a timeout or an allocation over its RSS limit).

use std::io::Cursor;
use std::time::{Duration, Instant};

use hearth_printfile::Options;

fn all_entry_points(data: &[u8]) {
    let o = Options {
        max_diagnostics: 10,
        ..Options::default()
    };
    let _ = hearth_printfile::analyze(Cursor::new(data), &o);
    let _ = hearth_printfile::inspect_metadata(Cursor::new(data), &o);
    let _ = hearth_printfile::analyze_stream(data, &o);
}

/// A reader that hands out one byte per call: the analysis then sees every line only through
/// its carry-over buffer and its byte-by-byte parser, never the in-place fast path for moves.
struct OneByte<'a>(&'a [u8]);
impl std::io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(out)) => {
                *out = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Plain G-code (any bytes are plain G-code unless they start like bgcode or ZIP). Also a
/// differential check: the analysis must not depend on how the input arrives, which compares
/// the fast move parser against the byte-by-byte one on whatever the fuzzer finds.
pub fn gcode(data: &[u8]) {
    all_entry_points(data);
    if hearth_printfile::detect_format(data) != hearth_printfile::Format::Gcode {
        return; // not plain G-code (and a one-byte head could not tell)
    }
    let o = Options::default();
    if let (Ok(whole), Ok(bytes)) = (
        hearth_printfile::analyze_stream(data, &o),
        hearth_printfile::analyze_stream(OneByte(data), &o),
    ) {
        assert_eq!(
            format!("{:?}", whole.analysis),
            format!("{:?}", bytes.analysis),
            "the analysis depends on how the input was read"
        );
    }
}

/// Binary G-code: the input is given a valid file header so the fuzzer spends its time on blocks.
pub fn bgcode(data: &[u8]) {
    let mut d = b"GCDE\x01\x00\x00\x00\x01\x00".to_vec();
    d.extend_from_slice(data.get(10..).unwrap_or_default());
    all_entry_points(&d);
    let _ = hearth_printfile::bgcode_to_gcode(Cursor::new(&d), std::io::sink());
}

/// 3MF projects (ZIP).
pub fn threemf(data: &[u8]) {
    all_entry_points(data);
}

/// xorshift64*: deterministic per seed so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(8) {
        let len = d.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next() as u8;
            }
            2 if len > 0 => d.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                let n = rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(i..i, bytes);
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a);
                d.drain(a..b);
            }
            5 if !other.is_empty() => {
                // Splice a piece of another corpus entry.
                let a = rng.below(other.len());
                let b = a + rng.below((other.len() - a).min(4096));
                let i = rng.below(len + 1);
                d.splice(i..i, other[a..b].iter().copied());
            }
            _ => {
                let interesting: [&[u8]; 6] = [b"\n", b"G1 X", b"E-", b"T", b"; thumbnail begin 9x9 9\n", b"\xff\xff"];
                let i = rng.below(len + 1);
                let s = interesting[rng.below(interesting.len())];
                d.splice(i..i, s.iter().copied());
            }
        }
    }
    d
}

/// Runs `target` over every file of the corpus directories given on the command line, then over
/// random mutations of them until `FUZZ_SECONDS` (default 10) have passed. A panicking input is
/// written to `artifacts/<name>/` and the process exits with status 1.
pub fn stable_main(name: &str, target: fn(&[u8])) {
    let secs: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    for dir in std::env::args().skip(1) {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            if let Ok(d) = std::fs::read(e.path()) {
                corpus.push(d);
            }
        }
    }
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    std::panic::set_hook(Box::new(|_| {}));
    let run = |input: &[u8]| {
        if std::panic::catch_unwind(|| target(input)).is_err() {
            let dir = format!("artifacts/{name}");
            let _ = std::fs::create_dir_all(&dir);
            let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            let path = format!("{dir}/crash-{h:016x}");
            let _ = std::fs::write(&path, input);
            eprintln!("{name}: panic on input saved as {path}");
            std::process::exit(1);
        }
    };
    for c in &corpus {
        run(c);
    }
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < deadline {
        let a = &corpus[rng.below(corpus.len())];
        let b = &corpus[rng.below(corpus.len())];
        // Big samples make slow iterations; mutate a window of them.
        let start = rng.below(a.len().saturating_sub(65536) + 1);
        let window = if rng.below(4) == 0 { &a[..a.len().min(65536)] } else { &a[start..a.len().min(start + 65536)] };
        run(&mutate(&mut rng, window, b));
        n += 1;
    }
    eprintln!("{name}: {n} mutated inputs in {secs} s, no panic (stable harness, seed {seed})");
}
