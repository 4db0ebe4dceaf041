//! Election with real processes: 4 members start at once; first primary is
//! the time from starting them to the first `elected`; failover is the time
//! from SIGKILL of the primary to the next `elected`. baton (`baton elect`,
//! events on stdout) against the shell's idiom, a `flock -o` leader
//! (`flock -o LEADER sh -c 'echo elected; ...'`: the flock process holds the
//! lock, its command announces leadership).
//!
//! `cargo bench -p baton-bench --bench election` (needs the release
//! `baton` built: `cargo build --release -p baton`, or BATON=path); prints
//! medians over BENCH_ROUNDS (default 10) and, with BENCH_JSON=FILE, JSON.
#![allow(clippy::disallowed_methods, clippy::print_stdout)] // a harness of real processes, printing its table

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn baton() -> PathBuf {
    std::env::var_os("BATON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/baton"),
        PathBuf::from,
    )
}

/// A member: its process and who it is.
struct Member {
    child: Child,
    index: usize,
}

/// Starts member `index`; its `elected` lines arrive on `tx` as (time, index).
fn start(kind: &str, dir: &Path, index: usize, tx: &mpsc::Sender<(u64, usize)>) -> Member {
    let mut cmd = match kind {
        "baton" => {
            let mut c = Command::new(baton());
            c.args(["elect", "--dir"])
                .arg(dir.join("election"))
                .args(["--id", &format!("m{index}")]);
            c
        }
        _ => {
            let mut c = Command::new("flock");
            c.arg("-o").arg(dir.join("leader.lock")).args([
                "sh",
                "-c",
                "echo elected; exec sleep 1000",
            ]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if line.contains("elected") {
                let _ = tx.send((now_ns(), index));
            }
        }
    });
    Member { child, index }
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

/// One round: (first primary, failover) in µs.
fn round(kind: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    let started = now_ns();
    let mut members: Vec<Member> = (0..4).map(|i| start(kind, dir.path(), i, &tx)).collect();
    let (t1, first) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a first primary");
    let primary = members.iter().position(|m| m.index == first).unwrap();
    let pid = members[primary].child.id();
    // Only the lock holder dies: baton itself, or the flock process (its
    // command, started with -o, holds no lock and is left running).
    let killed = now_ns();
    kill(pid);
    let (t2, _) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a failover");
    for m in &mut members {
        drop(m.child.stdin.take());
        kill_group(m.child.id());
        let _ = m.child.wait();
    }
    ((t1 - started) as f64 / 1e3, (t2 - killed) as f64 / 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    assert!(
        baton().exists(),
        "build the release baton first: cargo build --release -p baton"
    );
    let mut firsts = [Vec::new(), Vec::new()];
    let mut failovers = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (k, kind) in ["baton", "flock-o"].iter().enumerate() {
            let (a, b) = round(kind);
            firsts[k].push(a);
            failovers[k].push(b);
        }
    }
    let mut json = std::env::var_os("BENCH_JSON").map(|p| std::fs::File::create(p).unwrap());
    println!("{:<10} {:>16} {:>12}", "kind", "first primary", "failover");
    for (k, kind) in ["baton", "flock-o"].iter().enumerate() {
        let (f, o) = (median(firsts[k].clone()), median(failovers[k].clone()));
        println!("{kind:<10} {:>13.0} µs {:>9.0} µs", f, o);
        if let Some(j) = json.as_mut() {
            writeln!(j, r#"{{"kind":"{kind}","first_primary_us":{f:.0},"failover_us":{o:.0},"rounds":{rounds}}}"#).unwrap();
        }
    }
}
