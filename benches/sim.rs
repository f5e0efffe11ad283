//! Deterministic simulation of the deploy (issue 23, demonstration 4):
//! seeds per second and simulated-to-real time of the deploy simulation
//! (root, wasm_store and nine roles staged, bootstrapped and installed, as
//! tests/deploy/pipeline.rs drives them) inside `ww sim`'s Rust API, side
//! by side in one run: no faults, the strict messaging mix, and the mix
//! with node crashes (a state directory, cuts as decisions, N1).
//!
//! Arguments: `cargo bench --bench sim -- [seeds]` (default 10 per mode).
//! Prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/deploy/pipeline.rs"]
mod pipeline;

use std::time::Instant;

use ww::sim::FaultKind;

fn main() {
    let seeds: u64 = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(10);
    let engine = ww::sim::canister_engine().expect("a canister engine");
    // Warm the engine's compile cache (each replica installs from it).
    let _ = pipeline::deploy_seed(&engine, 0, &[]);
    let modes: [(&str, &[FaultKind]); 3] = [
        ("no faults", &[]),
        ("M1 M3 M4 M6", &pipeline::FAULTS[..4]),
        ("M1 M3 M4 M6 + N1 (state directory)", &pipeline::FAULTS),
    ];
    println!("| faults | seeds | seeds/s | s/seed | steps/seed | simulated : real | crashes | failed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, faults) in modes {
        let started = Instant::now();
        let (mut steps, mut simulated, mut crashes, mut failed) = (0usize, 0u64, 0u32, 0u32);
        for seed in 0..seeds {
            let (sim, result) = pipeline::deploy_seed(&engine, seed, faults);
            if let Err(e) = result {
                eprintln!("{name}, seed {seed}: {e}");
                failed += 1;
            }
            steps += sim.steps();
            simulated += sim.simulated_ns();
            crashes += sim.faults_fired().get(&FaultKind::Crash).copied().unwrap_or(0);
        }
        let real = started.elapsed().as_secs_f64();
        println!(
            "| {name} | {seeds} | {:.2} | {:.2} | {} | {:.2}× | {crashes} | {failed} |",
            seeds as f64 / real,
            real / seeds as f64,
            steps / seeds as usize,
            simulated as f64 / 1e9 / real,
        );
    }
}
