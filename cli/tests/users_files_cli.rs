//! The user's files are sacred: baton never writes to, truncates or removes
//! a file it did not create, never follows a symlink it did not make, and
//! never lets a name escape the directory it was given (issue 9's defects,
//! each pinned by the test named after it).
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{assert_one_line_error, baton, run, stderr};

const MODES: [&str; 2] = ["kernel", "file"];

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn locking_gemfile_never_touches_gemfile_lock() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Gemfile"), "gem 'rails'\n").unwrap();
        std::fs::write(dir.path().join("Gemfile.lock"), "GEM\n").unwrap();
        let o = run(baton(dir.path()).args(["lock", "--mode", mode, "Gemfile", "--", "true"]));
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert_eq!(read(&dir.path().join("Gemfile.lock")), b"GEM\n", "{mode}");
    }
}

#[test]
fn users_file_under_batons_sidecar_name_is_refused_and_kept() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let sidecar = dir.path().join("f.baton.lock");
        std::fs::write(&sidecar, "mine, not baton's\n").unwrap();
        // A stale threshold far below the test's length: file mode must not
        // wait the file out and reap it either.
        let o = run(baton(dir.path()).args([
            "lock", "--mode", mode, "--stale", "0.05", "-w", "1", "f", "--", "true",
        ]));
        assert_one_line_error(&o, 1, &["f.baton.lock", "not baton's lock file"]);
        assert_eq!(read(&sidecar), b"mine, not baton's\n", "{mode}");
    }
}

#[test]
fn symlinked_sidecar_is_never_followed() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        symlink(&target, dir.path().join("s.baton.lock")).unwrap();
        let o = run(baton(dir.path()).args([
            "lock", "--mode", mode, "--stale", "0.05", "-w", "1", "s", "--", "true",
        ]));
        assert_one_line_error(&o, 1, &["s.baton.lock", "symbolic link"]);
        assert_eq!(read(&target), b"keep me\n", "{mode}");
        assert!(
            std::fs::symlink_metadata(dir.path().join("s.baton.lock"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{mode}: the link itself is left alone"
        );
        // A dangling link is refused too, and nothing is created through it.
        std::fs::remove_file(&target).unwrap();
        let o = run(baton(dir.path()).args(["lock", "--mode", mode, "-n", "s", "--", "true"]));
        assert_one_line_error(&o, 1, &["symbolic link"]);
        assert!(!target.exists(), "{mode}: created through a dangling link");
    }
}

#[test]
fn fifo_or_directory_at_the_sidecar_is_refused_without_blocking() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let made = Command::new("mkfifo")
            .arg(dir.path().join("p.baton.lock"))
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::create_dir(dir.path().join("d.baton.lock")).unwrap();
        for name in ["p", "d"] {
            let o = run(baton(dir.path()).args(["lock", "--mode", mode, "-n", name, "--", "true"]));
            assert_one_line_error(&o, 1, &[&format!("{name}.baton.lock"), "not baton's"]);
        }
    }
}

#[test]
fn huge_sparse_sidecar_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let sidecar = dir.path().join("f.baton.lock");
    let f = std::fs::File::create(&sidecar).unwrap();
    f.set_len(1 << 30).unwrap();
    for mode in MODES {
        let o = run(baton(dir.path()).args(["lock", "--mode", mode, "-n", "f", "--", "true"]));
        assert_one_line_error(&o, 1, &["f.baton.lock", "larger than any record"]);
    }
    assert_eq!(std::fs::metadata(&sidecar).unwrap().len(), 1 << 30);
}

#[test]
fn sub_and_sub_slash_lock_one_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    // Hold `sub/` and ask for `sub` (and `sub/.`) without waiting.
    let mut holder = baton(dir.path())
        .args(["lock", "sub/", "--", "sh", "-c", "touch held; sleep 30"])
        .spawn()
        .unwrap();
    while !dir.path().join("held").exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for spelling in ["sub", "sub/.", "./sub//"] {
        let o = run(baton(dir.path()).args(["lock", "-n", spelling, "--", "true"]));
        assert_eq!(o.status.code(), Some(75), "{spelling}: {}", stderr(&o));
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(dir.path().join("sub.baton.lock").exists());
    assert!(!dir.path().join("sub").join(".baton.lock").exists());
    for nameless in [".", "..", "/"] {
        let o = run(baton(dir.path()).args(["lock", "-n", nameless, "--", "true"]));
        assert_one_line_error(&o, 1, &["names no file to lock"]);
    }
}

#[test]
fn elect_never_follows_a_symlinked_leader_lock() {
    let dir = tempfile::tempdir().unwrap();
    let election = dir.path().join("election");
    std::fs::create_dir(&election).unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    symlink(&target, election.join("leader.baton.lock")).unwrap();
    let o = run(baton(dir.path()).args(["elect", "--dir", "election", "--id", "a", "--", "true"]));
    // `joined` is said first; the error is the last line.
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("baton: ") && last.contains("leader.baton.lock"),
        "{err}"
    );
    assert!(last.contains("symbolic link"), "{err}");
    assert_eq!(read(&target), b"keep me\n");
}
