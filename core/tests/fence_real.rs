//! The fenced log on the real filesystem: what it accepts, what it fences
//! off, and the torn line a crash leaves.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

use baton_core::env::real::RealEnv;
use baton_core::fence::{FenceError, append, entries};

#[test]
fn one_term_appends_many_entries_and_an_older_term_is_fenced_off() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("primary.log");
    let env = RealEnv::new().unwrap();
    assert!(
        entries(&env, &log).unwrap().is_empty(),
        "no log yet: no entries"
    );
    append(&env, &log, 1, "first").unwrap();
    append(&env, &log, 1, "second of the same term").unwrap();
    append(&env, &log, 3, "a newer term").unwrap();
    let err = append(&env, &log, 2, "a stale primary").unwrap_err();
    match &err {
        FenceError::Fenced { epoch, newest, .. } => assert_eq!((*epoch, *newest), (2, 3)),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("epoch 2 is fenced off: the log has seen epoch 3"),
        "{err}"
    );
    append(&env, &log, 3, "the newer term goes on").unwrap();
    assert_eq!(
        entries(&env, &log).unwrap(),
        vec![
            (1, "first".to_owned()),
            (1, "second of the same term".to_owned()),
            (3, "a newer term".to_owned()),
            (3, "the newer term goes on".to_owned()),
        ]
    );
}

#[test]
fn a_torn_last_line_is_overwritten_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("primary.log");
    // A machine crash tore the last append: never acknowledged.
    std::fs::write(&log, b"1\tone\n9\ttor").unwrap();
    let env = RealEnv::new().unwrap();
    assert_eq!(entries(&env, &log).unwrap(), vec![(1, "one".to_owned())]);
    // The torn line's epoch does not count: epoch 2 still appends.
    append(&env, &log, 2, "two").unwrap();
    assert_eq!(std::fs::read(&log).unwrap(), b"1\tone\n2\ttwo\n");
}

#[test]
fn a_log_that_cannot_be_read_is_an_error_not_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("primary.log");
    std::fs::create_dir(&log).unwrap();
    let err = entries(&RealEnv::new().unwrap(), &log).unwrap_err();
    assert!(err.to_string().contains("primary.log"), "{err}");
}
