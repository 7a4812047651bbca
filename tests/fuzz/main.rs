//! Mutation fuzzing on stable Rust of every parser a device reaches: the
//! controller protocol (envelope and each request body), client ids and
//! topics, the three auth modes' usernames and passwords, the mock RTC's
//! join body, and the ACL file. No coverage feedback (that needs a nightly
//! compiler): inputs are mutated from seeds (the protocol's documented
//! examples and one valid input per form), and an input with an outcome not
//! seen before joins the corpus.
//!
//! Each input must return (no panic) within `--max-ms` and allocate at
//! most `--max-mib` at its peak. A failing input is saved under
//! `target/tmp/fuzz-failures/` and printed; `--repro FILE` runs it again.
//!
//!   cargo test --test fuzz                       # CI: 40 s in all
//!   cargo test --release --test fuzz -- --secs 3600 --target protocol

use std::alloc::System;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peakmem_alloc::{PeakMemAlloc, PeakMemAllocTrait, INSTRUMENTED_SYSTEM};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod mutate;
mod targets;

#[global_allocator]
static GLOBAL: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The input being run, for the watchdog: an input that never returns is
/// reported (and the run ends) instead of hanging the test.
static RUNNING: Mutex<Option<(Instant, &'static str, Vec<u8>)>> = Mutex::new(None);

fn watchdog(limit: Duration) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        let guard = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((since, target, input)) = guard.as_ref() {
            if since.elapsed() > limit {
                println!(
                    "FAILED {target}: still running after {limit:?}\n  input {:?}",
                    String::from_utf8_lossy(&input[..input.len().min(300)])
                );
                std::process::exit(1);
            }
        }
    });
}

const HELP: &str = "fuzz [FILTER] [--secs N] [--target NAME] [--seed N] [--repro FILE] \
[--max-ms N] [--max-mib N]\n  targets: protocol client_id topic auth rtc_join acl_file\n  \
--secs is the whole run's budget, shared by the targets (default 40, or MQRTC_FUZZ_SECS)";

struct Opts {
    secs: f64,
    target: Option<String>,
    seed: u64,
    repro: Option<PathBuf>,
    max_ms: u64,
    max_mib: usize,
}

fn opts() -> Result<Opts, String> {
    let mut o = Opts {
        secs: std::env::var("MQRTC_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40.0),
        target: None,
        seed: rand::rng().random(),
        repro: None,
        max_ms: 1000,
        max_mib: 64,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("bad number {v}"));
        match a.as_str() {
            "--help" | "-h" => return Err(HELP.into()),
            "--secs" => o.secs = num(value()?)? as f64,
            "--target" => o.target = Some(value()?),
            "--seed" => o.seed = num(value()?)?,
            "--repro" => o.repro = Some(value()?.into()),
            "--max-ms" => o.max_ms = num(value()?)?,
            "--max-mib" => o.max_mib = num(value()?)? as usize,
            // What `cargo test` passes to every test binary (`--nocapture`, ...).
            flag if flag.starts_with('-') => {}
            // A `cargo test FILTER` that names no target of ours runs none.
            filter => o.target = Some(filter.to_string()),
        }
    }
    Ok(o)
}

/// Why an input failed.
struct Failure {
    target: &'static str,
    why: String,
    input: Vec<u8>,
}

fn main() {
    let o = match opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // A panic is a finding: keep its message instead of printing it.
    let panic_msg: Arc<Mutex<String>> = Arc::default();
    let keep = panic_msg.clone();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = keep.lock() {
            *m = info.to_string();
        }
    }));
    let mut all = targets::all();
    all.retain(|t| o.target.as_deref().is_none_or(|f| t.name.contains(f)));
    if all.is_empty() {
        println!("fuzz: no target matches {:?}; 0 run", o.target);
        return;
    }
    if let Some(file) = &o.repro {
        let input = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for t in &mut all {
            println!("{}: {}", t.name, (t.run)(&input));
        }
        return;
    }
    println!(
        "fuzz: seed {} (rerun with --seed {0}), {} s",
        o.seed, o.secs
    );
    watchdog(Duration::from_millis(o.max_ms * 10));
    let share = Duration::from_secs_f64(o.secs / all.len() as f64);
    let mut failures = Vec::new();
    for t in &mut all {
        let mut rng = StdRng::seed_from_u64(o.seed ^ fnv(t.name.as_bytes()));
        failures.extend(fuzz(t, &mut rng, share, &o, &panic_msg));
    }
    if failures.is_empty() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    for f in &failures {
        let file = dir.join(format!("{}-{:016x}", f.target, fnv(&f.input)));
        let _ = std::fs::write(&file, &f.input);
        println!(
            "FAILED {}: {}\n  input {:?}\n  saved {} (--target {} --repro FILE)",
            f.target,
            f.why,
            String::from_utf8_lossy(&f.input[..f.input.len().min(300)]),
            file.display(),
            f.target
        );
    }
    std::process::exit(1);
}

/// Runs `t` for `budget`; returns its failing inputs.
fn fuzz(
    t: &mut targets::Target,
    rng: &mut StdRng,
    budget: Duration,
    o: &Opts,
    panic_msg: &Mutex<String>,
) -> Vec<Failure> {
    let mut corpus = t.seeds.clone();
    let mut labels = std::collections::HashSet::new();
    let (mut runs, mut slowest, mut peak) = (0u64, Duration::ZERO, 0usize);
    let mut failures = Vec::new();
    let end = Instant::now() + budget;
    let mut next_seed = 0;
    while Instant::now() < end && failures.len() < 5 {
        // Every seed as it is first, then mutations of the corpus.
        let input = if next_seed < t.seeds.len() {
            next_seed += 1;
            t.seeds[next_seed - 1].clone()
        } else {
            let a = &corpus[rng.random_range(0..corpus.len())];
            let b = &corpus[rng.random_range(0..corpus.len())];
            mutate::mutate(rng, a, b)
        };
        *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), t.name, input.clone()));
        GLOBAL.reset_peak_memory();
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| (t.run)(&input)));
        let took = started.elapsed();
        let bytes = GLOBAL.get_peak_memory();
        *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = None;
        runs += 1;
        slowest = slowest.max(took);
        peak = peak.max(bytes);
        let why = match &outcome {
            Err(_) => Some(format!(
                "panicked: {}",
                panic_msg.lock().map(|m| m.clone()).unwrap_or_default()
            )),
            Ok(_) if took > Duration::from_millis(o.max_ms) => Some(format!("took {took:?}")),
            Ok(_) if bytes > o.max_mib << 20 => {
                Some(format!("allocated {bytes} bytes at its peak"))
            }
            Ok(_) => None,
        };
        if let Some(why) = why {
            failures.push(Failure {
                target: t.name,
                why,
                input,
            });
        } else if let Ok(label) = outcome {
            if labels.insert(label) && corpus.len() < 4096 {
                corpus.push(input);
            }
        }
    }
    println!(
        "fuzz {:9} {runs:7} inputs, {:3} outcomes, corpus {:4}, slowest {:.2} ms, peak {:.1} KiB{}",
        t.name,
        labels.len(),
        corpus.len(),
        slowest.as_secs_f64() * 1e3,
        peak as f64 / 1024.0,
        if failures.is_empty() {
            String::new()
        } else {
            format!(", {} FAILED", failures.len())
        },
    );
    failures
}

/// FNV-1a, for file names and per-target seeds.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}
