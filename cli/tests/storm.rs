//! The storm: processes loop `baton lock` (both modes), `baton state
//! update` (locked and compare-and-swap), `baton claim -- CMD` and `baton
//! elect` while a killer sends SIGKILL, SIGTERM and SIGSTOP/SIGCONT to
//! random baton processes and their commands, and a reader samples the
//! counters.
//! Checked at the end, by oracles, not by reading logs:
//!
//! - mutual exclusion / single primary: each critical section looks for a
//!   live process already inside (marker files named by pid and start
//!   time, since pids are reused within a long storm) and records a
//!   violation if it finds one;
//! - no lost update: each counter is at least its acknowledged increments
//!   (and at most those started);
//! - no torn state: the reader never finds a counter empty or unparsable;
//! - epochs only grow, in the order primaries acted;
//! - no lock blocks anyone beyond the bound: no `-w 30` ever times out
//!   (kernel locks of dead holders are released at once; stopped holders
//!   are continued within 250 ms);
//! - no leaked temp files once everyone is gone and each resource has been
//!   used once more (a writer killed between naming its temp and renaming
//!   it leaves the temp for the next holder to remove).
//!
//! Bounded here (`STORM_SECS`, default 4; `STORM_WORKERS`, default 8);
//! `scripts/storm.sh` runs it long. It prints one line of figures.
#![allow(clippy::disallowed_methods)] // a real-process test

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BATON, walk};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A critical section in sh: complain if another live process is inside,
/// mark ourselves inside, read-increment-write the counter atomically,
/// leave. `$1` is the counter, `$2` the marker prefix.
const SECTION: &str = r#"
# Markers are named PID.STARTTIME: a killed holder's marker stays behind,
# and its pid is soon reused. A zombie (killed, not yet reaped: PID 1 in a
# container may never reap it) is not alive either.
alive() {
  set -- $(cut -d' ' -f3,22 "/proc/${1%.*}/stat" 2>/dev/null)
  [ -n "$1" ] && [ "$1" != Z ] && [ "$2" = "$want" ]
}
me="$$.$(cut -d' ' -f22 /proc/$$/stat)"
for m in "$2".*; do
  p=${m#"$2".}
  want=${p#*.}
  [ "$m" != "$2.*" ] && [ "$p" != "$me" ] && alive "$p" && echo "$2: $p inside with $me" >> violations
done
: > "$2.$me"
n=$(cat "$1")
echo $((n + 1)) > "$1.next.$$"
mv "$1.next.$$" "$1"
rm -f "$2.$me"
"#;

/// A primary's term: complain if another live primary is inside, log the
/// epoch, leave.
const TERM: &str = r#"
alive() {
  set -- $(cut -d' ' -f3,22 "/proc/${1%.*}/stat" 2>/dev/null)
  [ -n "$1" ] && [ "$1" != Z ] && [ "$2" = "$want" ]
}
me="$$.$(cut -d' ' -f22 /proc/$$/stat)"
for m in primary.*; do
  p=${m#primary.}
  want=${p#*.}
  [ "$m" != "primary.*" ] && [ "$p" != "$me" ] && alive "$p" && echo "primary $p with $me" >> violations
done
: > "primary.$me"
echo "$BATON_EPOCH" >> epochs
sleep 0.01
rm -f "primary.$me"
"#;

/// What each worker loops, by `w % 4`: with 8 workers, two of each.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    Lock,
    State,
    Claim,
    Elect,
}

fn work(w: usize) -> Work {
    match w % 4 {
        0 => Work::Lock,
        1 => Work::State,
        2 => Work::Claim,
        _ => Work::Elect,
    }
}

/// The counters: kernel-mode lock, file-mode lock, state updates, claims.
const COUNTERS: [&str; 4] = [
    "counter-kernel",
    "counter-file",
    "counter-state",
    "counter-claim",
];

#[derive(Default)]
struct Figures {
    started: [AtomicU64; 4],
    acked: [AtomicU64; 4],
    terms: AtomicU64,
    timeouts: AtomicU64,
    kills: AtomicU64,
    stops: AtomicU64,
    torn_reads: AtomicU64,
    longest_ms: AtomicU64,
}

#[test]
fn storm_of_kills_and_stops_breaks_no_invariant() {
    let bad = storm(
        env_or("STORM_SECS", 4),
        env_or("STORM_WORKERS", 8) as usize,
        true,
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The oracles can fail: the same storm with the critical section run
/// without `baton lock` is caught (overlaps, lost updates).
#[test]
fn storm_oracles_catch_writers_without_the_lock() {
    let bad = storm(2, 8, false);
    assert!(
        bad.iter()
            .any(|b| b.contains("inside with") || b.contains("acked")),
        "{bad:#?}"
    );
}

/// Runs a storm; returns what broke.
fn storm(secs: u64, workers: usize, locked: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for c in COUNTERS {
        std::fs::write(root.join(c), "0\n").unwrap();
    }
    let figures = Arc::new(Figures::default());
    let live: Arc<Mutex<BTreeSet<i32>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);

    std::thread::scope(|s| {
        for w in 0..workers {
            let (figures, live, stop) = (&figures, &live, &stop);
            s.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let started = Instant::now();
                    let (mut cmd, which) = if !locked {
                        let m = (w + i as usize) % 2;
                        let mode = ["kernel", "file"][m];
                        let counter = format!("counter-{mode}");
                        let mut c = Command::new("sh");
                        c.args(["-c", SECTION, "sh", &counter])
                            .arg(format!("inside-{mode}"));
                        figures.started[m].fetch_add(1, Ordering::Relaxed);
                        (c, Some(m))
                    } else if work(w) == Work::State {
                        let mut c = Command::new(BATON);
                        c.args(["state", "update", "-w", "30"]);
                        if i.is_multiple_of(2) {
                            c.args(["--cas", "--attempts", "1000"]);
                        }
                        c.args(["counter-state", "--", "sh", "-c", "read n; echo $((n + 1))"]);
                        figures.started[2].fetch_add(1, Ordering::Relaxed);
                        (c, Some(2))
                    } else if work(w) == Work::Claim {
                        let mut c = Command::new(BATON);
                        c.args(["claim", "--id", &format!("w{w}"), "-w", "30", "claimed"])
                            .args([
                                "--",
                                "sh",
                                "-c",
                                SECTION,
                                "sh",
                                "counter-claim",
                                "inside-claim",
                            ]);
                        figures.started[3].fetch_add(1, Ordering::Relaxed);
                        (c, Some(3))
                    } else if work(w) == Work::Elect {
                        let mut c = Command::new(BATON);
                        c.args(["elect", "--dir", "election", "--id", &format!("w{w}")])
                            .args(["--", "sh", "-c", TERM]);
                        (c, None)
                    } else {
                        let m = (w + i as usize) % 2;
                        let mode = ["kernel", "file"][m];
                        let counter = format!("counter-{mode}");
                        let mut c = Command::new(BATON);
                        c.args(["lock", "--mode", mode, "-w", "30", &counter])
                            .args(["--", "sh", "-c", SECTION, "sh", &counter])
                            .arg(format!("inside-{mode}"));
                        figures.started[m].fetch_add(1, Ordering::Relaxed);
                        (c, Some(m))
                    };
                    let mut child = cmd
                        .current_dir(root)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .process_group(0)
                        .spawn()
                        .unwrap();
                    let pid = child.id() as i32;
                    live.lock().unwrap().insert(pid);
                    let status = child.wait().unwrap();
                    live.lock().unwrap().remove(&pid);
                    let took = started.elapsed().as_millis() as u64;
                    figures.longest_ms.fetch_max(took, Ordering::Relaxed);
                    match (status.code(), which) {
                        (Some(0), Some(m)) => {
                            figures.acked[m].fetch_add(1, Ordering::Relaxed);
                        }
                        (Some(0), None) => {
                            figures.terms.fetch_add(1, Ordering::Relaxed);
                        }
                        (Some(75), _) => {
                            figures.timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {} // killed, or its command was
                    }
                }
            });
        }
        // The reader: a counter is always a number.
        {
            let (figures, stop) = (&figures, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for c in COUNTERS {
                        let text = std::fs::read_to_string(root.join(c)).unwrap_or_default();
                        if text.trim().parse::<u64>().is_err() {
                            figures.torn_reads.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        // The killer.
        {
            let (figures, live, stop) = (&figures, &live, &stop);
            s.spawn(move || {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
                let mut rand = move |n: u64| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % n
                };
                while Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5 + rand(20)));
                    let victims: Vec<i32> = live.lock().unwrap().iter().copied().collect();
                    if victims.is_empty() {
                        continue;
                    }
                    let pid = victims[rand(victims.len() as u64) as usize];
                    // Half the time the whole group: baton and its command.
                    let target = if rand(2) == 0 { -pid } else { pid };
                    match rand(3) {
                        0 => {
                            signal(target, "KILL");
                            figures.kills.fetch_add(1, Ordering::Relaxed);
                        }
                        1 => {
                            signal(target, "TERM");
                            figures.kills.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            signal(-pid, "STOP");
                            figures.stops.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(50 + rand(200)));
                            signal(-pid, "CONT");
                        }
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
        }
    });

    // A writer killed between naming its temp file and renaming it leaves
    // the temp; the next holder after a death removes it. Use each such
    // resource once more, as life would, before looking for leftovers.
    if locked {
        let settle = |args: &[&str]| {
            let ok = Command::new(BATON)
                .current_dir(root)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "{args:?}");
        };
        settle(&[
            "state",
            "update",
            "-w",
            "30",
            "counter-state",
            "--",
            "sh",
            "-c",
            "read n; echo $n",
        ]);
        settle(&["elect", "--dir", "election", "--id", "settle", "--", "true"]);
    }
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    let violations = read("violations");
    let epochs: Vec<u64> = read("epochs")
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let ordered = epochs.windows(2).all(|w| w[0] < w[1]);
    let leaked: Vec<String> = walk(root)
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    let f = &figures;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut bad = Vec::new();
    for (m, counter) in COUNTERS.iter().enumerate() {
        let value: u64 = read(counter).trim().parse().unwrap();
        let (acked, started) = (load(&f.acked[m]), load(&f.started[m]));
        if value < acked || value > started {
            bad.push(format!(
                "{counter} {value}: acked {acked}, started {started}"
            ));
        }
    }
    if !violations.is_empty() {
        bad.push(violations.clone());
    }
    if !ordered {
        bad.push(format!("epochs out of order: {epochs:?}"));
    }
    for (n, what) in [
        (load(&f.timeouts), "timed out"),
        (load(&f.torn_reads), "torn reads"),
    ] {
        if n > 0 {
            bad.push(format!("{n} {what}"));
        }
    }
    if !leaked.is_empty() {
        bad.push(format!("leaked temp files: {leaked:?}"));
    }
    let ops = f.started.iter().map(load).sum::<u64>() + load(&f.terms);
    eprintln!(
        "storm{}: {secs} s, {workers} workers, {ops} operations (acked: {} kernel-lock, {} file-lock, {} state, {} claim increments; {} terms), {} kills, {} stops, {} violations, longest call {} ms",
        if locked { "" } else { " without the lock" },
        load(&f.acked[0]),
        load(&f.acked[1]),
        load(&f.acked[2]),
        load(&f.acked[3]),
        load(&f.terms),
        load(&f.kills),
        load(&f.stops),
        bad.len(),
        load(&f.longest_ms)
    );
    let vacuous = load(&f.acked[0]) == 0
        || load(&f.acked[1]) == 0
        || (locked && (epochs.is_empty() || load(&f.acked[2]) == 0 || load(&f.acked[3]) == 0));
    assert!(!vacuous, "vacuous storm");
    bad
}

fn signal(target: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &target.to_string()])
        .stderr(Stdio::null())
        .status();
}
