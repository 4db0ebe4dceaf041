//! Atomic writes on a filesystem without `O_TMPFILE`, where baton stages
//! the new contents under a hidden temp name: whatever happens, the temp
//! name is gone afterwards and the target holds the old contents or the
//! new ones.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::atomic::{publish_new, write_atomic, write_atomic_with};
use baton_core::env::Fs;
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
        .filter(|m| m.starts_with("write ") || m.starts_with("sync: "))
        .collect();
    assert!(
        !staged.is_empty(),
        "no write or sync failed in 300 seeds: {messages:?}"
    );
    for m in staged {
        assert!(m.contains(" /w/.state.json."), "{m}");
    }
}
