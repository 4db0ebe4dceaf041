//! Atomic writes on a filesystem without `O_TMPFILE`, where baton stages
//! the new contents under a hidden temp name: whatever happens, the temp
//! name is gone afterwards and the target holds the old contents or the
//! new ones.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::atomic::{publish_new, sweep_temps, write_atomic, write_atomic_with};
use baton_core::env::{Clock, Fs, Random};
use baton_core::error::IoFailure;
use baton_sim::{FaultKinds, StrategyKind, run};

/// Runs `body` as the one process of a scenario on a filesystem without
/// `O_TMPFILE` (with `/w/state.json` holding `old`) and returns what it
/// saw of `/w` afterwards: the names in it and the state file's contents.
fn without_tmpfile(
    body: impl Fn(&baton_sim::SimEnv<'_>) + Send + Sync + 'static,
) -> (Vec<String>, Vec<u8>) {
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = Arc::clone(&seen);
    let mut s = baton_sim::Scenario::new("atomic-temps", 1, move |env, _, _| {
        body(env);
        let names = env.read_dir(Path::new("/w")).unwrap();
        let names = names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let data = env
            .read(Path::new("/w/state.json"), 1 << 20)
            .unwrap_or_default();
        *sink.lock().unwrap() = (names, data);
    });
    s.setup = Box::new(|fs| {
        fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
            .unwrap();
        fs.put(Path::new("/w/state.json"), b"old", std::time::UNIX_EPOCH)
            .unwrap();
        fs.no_tmpfile = true;
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let mut out = seen.lock().unwrap().clone();
    out.0.sort();
    out
}

#[test]
fn a_replacement_leaves_only_the_target() {
    let (names, data) = without_tmpfile(|env| {
        write_atomic(env, Path::new("/w/state.json"), b"new").unwrap();
    });
    assert_eq!(names, ["state.json"]);
    assert_eq!(data, b"new");
}

#[test]
fn a_replacement_given_up_removes_its_temp_name() {
    let (names, data) = without_tmpfile(|env| {
        let refused = write_atomic_with(env, Path::new("/w/state.json"), b"new", |_| {
            Err(IoFailure::at("prepare", Path::new("/w/state.json"))(
                std::io::Error::from_raw_os_error(28),
            ))
        });
        assert!(refused.is_err());
    });
    assert_eq!(names, ["state.json"], "the temp name was left behind");
    assert_eq!(data, b"old");
}

#[test]
fn a_publish_that_loses_the_name_removes_its_temp_name() {
    let (names, data) = without_tmpfile(|env| {
        let won = publish_new(env, Path::new("/w/state.json"), b"new").unwrap();
        assert!(!won, "the name exists: publish_new must not replace it");
    });
    assert_eq!(names, ["state.json"]);
    assert_eq!(data, b"old");
}

#[test]
fn a_failed_write_or_sync_names_the_temp_file_it_was_writing() {
    // Injected I/O errors, seed after seed: one that strikes the write or
    // the sync of the staged file must name that file.
    let messages = Arc::new(Mutex::new(Vec::new()));
    for seed in 0..300 {
        let sink = Arc::clone(&messages);
        let mut s = baton_sim::Scenario::new("atomic-errors", 1, move |env, _, _| {
            if let Err(e) = write_atomic(env, Path::new("/w/state.json"), b"new") {
                sink.lock().unwrap().push(e.to_string());
            }
        });
        s.setup = Box::new(|fs| {
            fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
                .unwrap();
            fs.no_tmpfile = true;
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        let _ = run(&s, &s.config(StrategyKind::Random, seed), false);
    }
    let messages = messages.lock().unwrap();
    let staged: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("write: ") || m.starts_with("sync: "))
        .collect();
    assert!(
        !staged.is_empty(),
        "no write or sync failed in 300 seeds: {messages:?}"
    );
    for m in staged {
        assert!(m.contains(" /w/.state.json."), "{m}");
    }
}

#[test]
fn a_sweep_that_cannot_remove_a_temp_says_so_and_one_that_succeeds_left_none() {
    // Two leftover temps of dead writers; injected I/O errors, seed after
    // seed. A sweep that could not remove a temp fails naming it, never
    // skips it in silence; one that says Ok(n) removed n.
    const TEMPS: [&str; 2] = [
        "/w/.state.json.0123456789abcdef0123456789abcdef.tmp",
        "/w/.state.json.fedcba9876543210fedcba9876543210.tmp",
    ];
    let mut refused = 0;
    for seed in 0..300 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("sweep-errors", 1, move |env, _, _| {
            let swept = sweep_temps(env, Path::new("/w/state.json")).map_err(|e| e.to_string());
            let left = TEMPS
                .iter()
                .filter(|t| env.metadata(Path::new(t)).is_ok())
                .count();
            *sink.lock().unwrap() = Some((swept, left));
        });
        s.setup = Box::new(|fs| {
            fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
                .unwrap();
            fs.put(Path::new("/w/state.json"), b"{}", std::time::UNIX_EPOCH)
                .unwrap();
            for t in TEMPS {
                fs.put(Path::new(t), b"half", std::time::UNIX_EPOCH)
                    .unwrap();
            }
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        let Some((swept, left)) = outcome.lock().unwrap().take() else {
            continue; // an injected error ended the body before it reported
        };
        // An unlink of a temp the trace shows failing.
        let unlink_failed = report
            .trace
            .iter()
            .any(|l| l.contains("remove_file(/w/.state.json.") && !l.ends_with("-> ok"));
        match swept {
            // A temp whose lstat failed is left alone, uncounted (never
            // judged, never removed); every other one is gone and counted.
            Ok(n) => {
                assert!(
                    !unlink_failed,
                    "seed {seed}: an unlink failed, and the sweep said Ok({n})"
                );
                assert_eq!(
                    n + left,
                    TEMPS.len(),
                    "seed {seed}: Ok({n}) with {left} left"
                );
            }
            Err(m) if m.starts_with("remove leftover temp file: /w/.state.json.") => refused += 1,
            Err(m) => assert!(m.starts_with("read directory: /w"), "seed {seed}: {m}"),
        }
    }
    assert!(
        refused > 0,
        "no unlink failed in 300 seeds: the test saw nothing"
    );
}

#[test]
fn a_temp_a_person_removes_mid_sweep_is_not_an_error() {
    // A person's `rm` of one leftover temp at a random moment while the
    // sweep runs, no injected errors: the sweep must succeed whenever the
    // temp vanished between its listing and its unlink.
    const TEMP: &str = "/w/.state.json.0123456789abcdef0123456789abcdef.tmp";
    let mut vanished_mid_sweep = 0;
    for seed in 0..300 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("sweep-rm", 2, move |env, _, role| {
            if role.index == 1 {
                // A few steps of its own first (a sleep would wake too late
                // for a sweep of three calls).
                for _ in 0..env.random_u64() % 4 {
                    env.monotonic();
                }
                let _ = env.remove_file(Path::new(TEMP));
                return;
            }
            let swept = sweep_temps(env, Path::new("/w/state.json")).map_err(|e| e.to_string());
            *sink.lock().unwrap() = Some(swept);
        });
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.put(Path::new("/w/state.json"), b"{}", t).unwrap();
            fs.put(Path::new(TEMP), b"half", t).unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        let swept = outcome.lock().unwrap().take().expect("the sweep finished");
        assert!(matches!(swept, Ok(0 | 1)), "seed {seed}: {swept:?}");
        vanished_mid_sweep += u32::from(report.trace.iter().any(|l| {
            l.contains(" p0 ") && l.contains("(/w/.state.json.") && l.ends_with("ENOENT")
        }));
    }
    assert!(vanished_mid_sweep > 10, "{vanished_mid_sweep}");
}
