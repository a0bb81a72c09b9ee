//! What each stage of the full analysis costs alone, per line of a G-code file, beside the whole
//! line loop on the same bytes (in memory, so no reading is counted):
//!   cargo run --release -p hearth-printfile --features internals --example stages -- FILE [ROUNDS]
//! `parse`: the words of every move line; `model`: motion and planning of every move from words
//! read beforehand; `plan`: the planning alone, from the moves `model` plans; `whole`: the line
//! loop. Figures are cycles per line, from the clock measured
//! around the rounds (as `bench.rs` does), best of the rounds.
use hearth_printfile::internals::Stages;
use std::time::Instant;

#[path = "support/clock.rs"]
mod clock;
use clock::clock_ghz;

fn best<T>(rounds: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let r = std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("at least one round"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: stages FILE [ROUNDS]")?;
    let rounds: usize = args
        .next()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    let s = Stages::new(std::fs::read(path)?);
    let ghz = (clock_ghz() + clock_ghz()) / 2.0;
    let per_line = |t: f64| t * ghz * 1e9 / s.lines() as f64;
    let (parse, read) = best(rounds, || s.parse());
    let (model, _) = best(rounds, || s.model());
    let (plan, _) = best(rounds, || s.plan());
    let (whole, estimate) = best(rounds, || s.whole());
    println!(
        "lines={} move_lines={} window_read={read}",
        s.lines(),
        s.moves()
    );
    println!("clock_ghz={ghz:.2}");
    println!("parse_cycles_per_line={:.0}", per_line(parse));
    println!("model_cycles_per_line={:.0}", per_line(model));
    println!("plan_cycles_per_line={:.0}", per_line(plan));
    println!("whole_cycles_per_line={:.0}", per_line(whole));
    println!("whole_estimate_s={estimate:.0}");
    Ok(())
}
