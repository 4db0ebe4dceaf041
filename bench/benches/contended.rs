//! Contended locking with real processes: N workers each run C cycles of
//! lock, read-modify-write a shared counter file, unlock, as fast as they
//! can. Per lock kind and N: throughput (cycles/s), handoff latency
//! (release to another worker's acquire, CLOCK_MONOTONIC across
//! processes: p50, p99), fairness (max/min cycles per worker in the first
//! half of the run, ∞ when one starved) and the counter checked exact.
//!
//! `cargo bench -p baton-bench --bench contended [-- PROCS... ]`; prints a
//! table and, with `BENCH_JSON=FILE`, writes the figures as JSON lines for
//! `scripts/bench.sh`. Not criterion: one run is many processes, and what
//! is measured is their aggregate. Each kind is run in turn, interleaved
//! round by round, so a noisy neighbour affects them alike.
#![allow(clippy::disallowed_methods, clippy::print_stdout)] // a harness of real processes, printing its table

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use baton_core::env::real::RealEnv;
use baton_core::lock::{self, LockOptions, Mode, Wait};

const KINDS: [&str; 4] = ["raw-flock", "fs2", "baton-kernel", "baton-file"];

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The shared work: read the counter, add one, write it back in place.
fn bump(counter: &File) {
    let mut buf = [0u8; 32];
    let n = counter.read_at(&mut buf, 0).unwrap();
    let v: u64 = std::str::from_utf8(&buf[..n])
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(0);
    let text = format!("{:<31}\n", v + 1);
    counter.write_all_at(text.as_bytes(), 0).unwrap();
}

fn worker(kind: &str, dir: &Path, cycles: u64, out: &Path) {
    let counter = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("counter"))
        .unwrap();
    let target = dir.join("counter.json");
    let env = RealEnv::new().unwrap();
    let raw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("raw.lock"))
        .unwrap();
    let mut times = Vec::with_capacity(cycles as usize * 2);
    for _ in 0..cycles {
        match kind {
            "raw-flock" => {
                raw.lock().unwrap();
                times.push(now_ns());
                bump(&counter);
                times.push(now_ns());
                raw.unlock().unwrap();
            }
            "fs2" => {
                fs2::FileExt::lock_exclusive(&raw).unwrap();
                times.push(now_ns());
                bump(&counter);
                times.push(now_ns());
                fs2::FileExt::unlock(&raw).unwrap();
            }
            _ => {
                let mode = if kind == "baton-file" {
                    Mode::File
                } else {
                    Mode::Kernel
                };
                let opts = LockOptions::new(mode, Wait::Forever);
                let guard = lock::acquire(&env, &target, &opts, &mut |_| {})
                    .unwrap()
                    .expect("waits for ever");
                times.push(now_ns());
                bump(&counter);
                times.push(now_ns());
                guard.release().unwrap();
            }
        }
    }
    let mut f = File::create(out).unwrap();
    for t in times {
        writeln!(f, "{t}").unwrap();
    }
}

struct Figures {
    kind: String,
    procs: usize,
    cycles_per_s: f64,
    handoff_p50_us: f64,
    handoff_p99_us: f64,
    fairness: f64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(kind: &str, procs: usize, cycles: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("counter"), format!("{:<31}\n", 0)).unwrap();
    let me = std::env::current_exe().unwrap();
    let outs: Vec<PathBuf> = (0..procs)
        .map(|i| dir.path().join(format!("w{i}")))
        .collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            Command::new(&me)
                .env("BENCH_WORKER", format!("{kind} {cycles}"))
                .env("BENCH_DIR", dir.path())
                .env("BENCH_OUT", out)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "{kind} worker failed");
    }
    let count: u64 = std::fs::read_to_string(dir.path().join("counter"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        count,
        procs as u64 * cycles,
        "{kind}: the lock let updates be lost"
    );
    // (acquired, released, worker) for every critical section.
    let mut sections = Vec::new();
    for (w, out) in outs.iter().enumerate() {
        let ts: Vec<u64> = std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        sections.extend(ts.chunks(2).map(|c| (c[0], c[1], w)));
    }
    sections.sort();
    for pair in sections.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "{kind}: two holders at once");
    }
    // A handoff is from one worker to another (a worker taking the lock
    // again straight after releasing it hands nothing over).
    let mut handoffs: Vec<u64> = sections
        .windows(2)
        .filter(|p| p[0].2 != p[1].2)
        .map(|p| p[1].0 - p[0].1)
        .collect();
    handoffs.sort_unstable();
    if handoffs.is_empty() {
        handoffs.push(0);
    }
    let first = sections[0].0;
    let half = first + (sections.last().unwrap().1 - first) / 2;
    let mut per = vec![0u64; procs];
    for s in sections.iter().filter(|s| s.0 < half) {
        per[s.2] += 1;
    }
    let (max, min) = (*per.iter().max().unwrap(), *per.iter().min().unwrap());
    Figures {
        kind: kind.to_owned(),
        procs,
        // Over the contended span, not the workers' start-up.
        cycles_per_s: count as f64 / ((sections.last().unwrap().1 - first) as f64 / 1e9),
        handoff_p50_us: percentile(&handoffs, 0.5) as f64 / 1e3,
        handoff_p99_us: percentile(&handoffs, 0.99) as f64 / 1e3,
        fairness: if min == 0 {
            f64::INFINITY
        } else {
            max as f64 / min as f64
        },
    }
}

fn main() {
    if let Ok(spec) = std::env::var("BENCH_WORKER") {
        let (kind, cycles) = spec.split_once(' ').unwrap();
        let dir = PathBuf::from(std::env::var_os("BENCH_DIR").unwrap());
        let out = PathBuf::from(std::env::var_os("BENCH_OUT").unwrap());
        worker(kind, &dir, cycles.parse().unwrap(), &out);
        return;
    }
    // `cargo bench` passes `--bench`; anything numeric is a process count.
    let mut procs: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    if procs.is_empty() {
        procs = vec![2, 4, 16];
    }
    let cycles: u64 = std::env::var("BENCH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3);
    let mut json = std::env::var_os("BENCH_JSON").map(|p| File::create(p).unwrap());
    println!(
        "{:<14} {:>5} {:>12} {:>14} {:>14} {:>9}",
        "kind", "procs", "cycles/s", "handoff p50", "handoff p99", "fairness"
    );
    for &n in &procs {
        // Medians over rounds, kinds interleaved within each round.
        let mut all: Vec<Vec<Figures>> = KINDS.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (i, kind) in KINDS.iter().enumerate() {
                all[i].push(run(kind, n, cycles));
            }
        }
        for runs in &mut all {
            runs.sort_by(|a, b| a.cycles_per_s.total_cmp(&b.cycles_per_s));
            let m = &runs[runs.len() / 2];
            println!(
                "{:<14} {:>5} {:>12.0} {:>11.1} µs {:>11.1} µs {:>9.2}",
                m.kind, m.procs, m.cycles_per_s, m.handoff_p50_us, m.handoff_p99_us, m.fairness
            );
            if let Some(f) = json.as_mut() {
                let fair = if m.fairness.is_finite() {
                    format!("{:.3}", m.fairness)
                } else {
                    "null".into()
                };
                writeln!(
                    f,
                    r#"{{"kind":"{}","procs":{},"cycles_per_s":{:.1},"handoff_p50_us":{:.2},"handoff_p99_us":{:.2},"fairness":{fair},"rounds":{rounds},"cycles":{cycles}}}"#,
                    m.kind, m.procs, m.cycles_per_s, m.handoff_p50_us, m.handoff_p99_us
                )
                .unwrap();
            }
        }
    }
}
