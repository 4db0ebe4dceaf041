//! Atomic writes and temp sweeping on the real filesystem.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

use baton_core::atomic::{publish_new, sweep_temps, temp_sibling};
use baton_core::env::real::RealEnv;
use baton_core::record::Token;

#[test]
fn a_publish_that_fails_for_another_reason_than_a_taken_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Longer than any filesystem allows a name: the link fails, and the
    // caller must not be told someone else holds the name.
    let path = dir.path().join("x".repeat(300));
    let err = publish_new(&RealEnv::new().unwrap(), &path, b"data").unwrap_err();
    assert!(err.to_string().contains("File name too long"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left"
    );
}

#[test]
fn sweeping_removes_exactly_the_temps_baton_names_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("tasks.json");
    std::fs::write(&target, b"[]").unwrap();
    let env = RealEnv::new().unwrap();
    let dead = [
        temp_sibling(&target, Token::random(&env)),
        temp_sibling(&target, Token::random(&env)),
    ];
    for t in &dead {
        std::fs::write(t, b"half").unwrap();
    }
    // Not baton's: another file's temp, a short token, a user's file, and
    // a symlink with baton's name pattern (never followed or removed).
    let keep = [
        dir.path()
            .join(".other.json.0123456789abcdef0123456789abcdef.tmp"),
        dir.path().join(".tasks.json.0123.tmp"),
        dir.path().join("tasks.json.tmp"),
    ];
    for k in &keep {
        std::fs::write(k, b"mine").unwrap();
    }
    let link = dir
        .path()
        .join(".tasks.json.fedcba9876543210fedcba9876543210.tmp");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(sweep_temps(&env, &target).unwrap(), 2);
    for t in &dead {
        assert!(!t.exists(), "{} left", t.display());
    }
    for k in &keep {
        assert_eq!(std::fs::read(k).unwrap(), b"mine");
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"[]");
    assert_eq!(
        sweep_temps(&env, &target).unwrap(),
        0,
        "nothing left to sweep"
    );
}
