//! State files on the real filesystem, as a library user meets them: what
//! reads as what, both update strategies with their outcomes, what a
//! replacement keeps of the user's file, and what is refused.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use baton_core::env::Processes;
use baton_core::env::real::RealEnv;
use baton_core::lock::{self, LockOptions, Mode, Wait};
use baton_core::record::{OwnerRecord, Token};
use baton_core::state::{self, Outcome, StateError, Strategy, UpdateOptions};

fn setup() -> (tempfile::TempDir, RealEnv, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let path = dir.path().join("state.json");
    (dir, env, path)
}

fn opts(strategy: Strategy) -> UpdateOptions {
    UpdateOptions::new(strategy, Mode::Kernel, Wait::No)
}

/// Appends `n` to the JSON array in `old` (`null` reads as empty).
fn push(old: &[u8], n: u64) -> Vec<u8> {
    let mut v: Vec<u64> = if old == b"null" {
        Vec::new()
    } else {
        serde_json::from_slice(old).unwrap()
    };
    v.push(n);
    serde_json::to_vec(&v).unwrap()
}

fn update(
    env: &RealEnv,
    path: &Path,
    strategy: Strategy,
    f: impl FnMut(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Outcome<String>, StateError> {
    state::update(env, path, &opts(strategy), &mut |_| {}, f)
}

#[test]
fn a_missing_file_reads_as_null_and_a_document_as_itself() {
    let (_dir, env, path) = setup();
    assert_eq!(state::get(&env, &path).unwrap(), b"null");
    fs::write(&path, b"{\"a\": 1}\n").unwrap();
    assert_eq!(state::get(&env, &path).unwrap(), b"{\"a\": 1}\n");
    fs::write(&path, b"{\"a\": \n").unwrap();
    match state::get(&env, &path) {
        Err(StateError::NotJson { line, why, .. }) => {
            assert_eq!(line, 2);
            assert!(!why.contains(" at line "), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn what_is_not_a_regular_file_is_named_and_never_replaced() {
    let (dir, env, path) = setup();
    let target = dir.path().join("real.json");
    fs::write(&target, b"[1]").unwrap();
    symlink(&target, &path).unwrap();
    match state::get(&env, &path) {
        Err(StateError::Symlink { target: t, .. }) => {
            assert_eq!(t, fs::canonicalize(&target).unwrap())
        }
        other => panic!("{other:?}"),
    }
    assert!(update(&env, &path, Strategy::Locked, |o| Ok(push(o, 2))).is_err());
    assert_eq!(fs::read(&target).unwrap(), b"[1]");
    assert!(
        fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    fs::remove_file(&path).unwrap();
    symlink(dir.path().join("nowhere"), &path).unwrap();
    match state::get(&env, &path) {
        Err(StateError::NotAFile { what, .. }) => assert!(what.contains("dangling"), "{what}"),
        other => panic!("{other:?}"),
    }
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    match state::get(&env, &path) {
        Err(StateError::NotAFile { what, .. }) => assert_eq!(what, "a directory"),
        other => panic!("{other:?}"),
    }
    fs::remove_dir(&path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    match state::get(&env, &path) {
        Err(StateError::NotAFile { what, .. }) => assert!(what.contains("FIFO"), "{what}"),
        other => panic!("{other:?}"),
    }
    fs::remove_file(&path).unwrap();
    // Larger than any state file: refused, not read whole.
    let big = fs::File::create(&path).unwrap();
    big.set_len(state::STATE_LIMIT + 1).unwrap();
    assert!(matches!(
        state::get(&env, &path),
        Err(StateError::TooLarge { .. })
    ));
    // A stat that fails for another reason than absence is an error.
    let below = dir.path().join("real.json").join("x");
    assert!(matches!(state::get(&env, &below), Err(StateError::Io(_))));
}

#[test]
fn locked_updates_replace_the_document_or_leave_it_untouched() {
    let (_dir, env, path) = setup();
    for n in 1..=3 {
        let out = update(&env, &path, Strategy::Locked, |o| Ok(push(o, n))).unwrap();
        assert_eq!(out, Outcome::Updated { attempts: 1 });
    }
    assert_eq!(fs::read(&path).unwrap(), b"[1,2,3]");
    // The function refuses: its error, the file as it was.
    let out = update(&env, &path, Strategy::Locked, |_| Err("no".to_owned())).unwrap();
    assert_eq!(out, Outcome::Aborted("no".to_owned()));
    assert_eq!(fs::read(&path).unwrap(), b"[1,2,3]");
    // Not JSON: refused, the file as it was.
    match update(&env, &path, Strategy::Locked, |_| Ok(b"{oops".to_vec())) {
        Err(StateError::BadDocument { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), b"[1,2,3]");
    // Someone holds the lock: busy, nothing computed.
    let holder = lock::acquire(
        &env,
        &path,
        &LockOptions::new(Mode::Kernel, Wait::No),
        &mut |_| {},
    )
    .unwrap()
    .unwrap();
    let mut computed = false;
    let out = update(&env, &path, Strategy::Locked, |o| {
        computed = true;
        Ok(o.to_vec())
    })
    .unwrap();
    assert_eq!(out, Outcome::Busy { attempts: 0 });
    assert!(!computed);
    holder.release().unwrap();
}

#[test]
fn compare_and_swap_computes_again_when_the_file_changed_meanwhile() {
    let (_dir, env, path) = setup();
    fs::write(&path, b"[0]").unwrap();
    let mut calls = 0;
    let out = update(&env, &path, Strategy::Cas { max_attempts: 5 }, |old| {
        calls += 1;
        if calls == 1 {
            // Another writer replaces it between our read and our swap.
            fs::write(&path, b"[0,100]").unwrap();
        }
        Ok(push(old, 1))
    })
    .unwrap();
    assert_eq!(out, Outcome::Updated { attempts: 2 });
    assert_eq!(calls, 2);
    assert_eq!(fs::read(&path).unwrap(), b"[0,100,1]");
    // Changed under every attempt: busy after exactly that many.
    let mut calls = 0;
    let out = update(&env, &path, Strategy::Cas { max_attempts: 3 }, |old| {
        calls += 1;
        fs::write(&path, format!("[{calls}]")).unwrap();
        Ok(push(old, 9))
    })
    .unwrap();
    assert_eq!(out, Outcome::Busy { attempts: 3 });
    assert_eq!(calls, 3);
    assert_eq!(fs::read(&path).unwrap(), b"[3]");
    // A document that is not JSON is refused before the lock is taken.
    assert!(matches!(
        update(&env, &path, Strategy::Cas { max_attempts: 2 }, |_| Ok(
            b"nope".to_vec()
        )),
        Err(StateError::BadDocument { .. })
    ));
    let out = update(&env, &path, Strategy::Cas { max_attempts: 2 }, |_| {
        Err("refused".to_owned())
    })
    .unwrap();
    assert_eq!(out, Outcome::Aborted("refused".to_owned()));
    assert_eq!(fs::read(&path).unwrap(), b"[3]");
    // The lock held throughout: busy at the first attempt.
    let holder = lock::acquire(
        &env,
        &path,
        &LockOptions::new(Mode::Kernel, Wait::No),
        &mut |_| {},
    )
    .unwrap()
    .unwrap();
    let out = update(&env, &path, Strategy::Cas { max_attempts: 4 }, |o| {
        Ok(o.to_vec())
    })
    .unwrap();
    assert_eq!(out, Outcome::Busy { attempts: 1 });
    holder.release().unwrap();
}

#[test]
fn a_replacement_keeps_the_users_mode_and_owner() {
    let (_dir, env, path) = setup();
    fs::write(&path, b"[]").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let me = fs::metadata(&path).unwrap();
    if me.uid() == 0 {
        // Root may give the new version back to the file's owner.
        std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
    }
    let before = fs::metadata(&path).unwrap();
    update(&env, &path, Strategy::Locked, |o| Ok(push(o, 1))).unwrap();
    let after = fs::metadata(&path).unwrap();
    assert_ne!(before.ino(), after.ino(), "replaced, not written in place");
    assert_eq!(after.permissions().mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(fs::read(&path).unwrap(), b"[1]");
}

#[test]
fn the_next_writer_after_a_death_sweeps_the_dead_writers_temp() {
    let (dir, env, path) = setup();
    fs::write(&path, b"[]").unwrap();
    let temp = dir
        .path()
        .join(".state.json.0123456789abcdef0123456789abcdef.tmp");
    fs::write(&temp, b"[half").unwrap();
    // The dead writer's lock, as exclusive-file mode leaves it.
    let mut who = env.identity().clone();
    who.pid = 4_194_999;
    let record = OwnerRecord::new(
        &who,
        "dead",
        std::time::SystemTime::now(),
        Token::random(&env),
    );
    fs::write(lock::sidecar_path(&path), record.to_bytes()).unwrap();
    let o = UpdateOptions::new(Strategy::Locked, Mode::File, Wait::No);
    let out = state::update(&env, &path, &o, &mut |_| {}, |old| {
        Ok::<_, String>(push(old, 1))
    })
    .unwrap();
    assert_eq!(out, Outcome::Updated { attempts: 1 });
    assert!(!temp.exists(), "the dead writer's temp was left");
    assert_eq!(fs::read(&path).unwrap(), b"[1]");
    // With no death before it, nothing is swept (a live writer's temp is
    // not ours to judge).
    fs::write(&temp, b"[half").unwrap();
    state::update(&env, &path, &o, &mut |_| {}, |old| {
        Ok::<_, String>(push(old, 2))
    })
    .unwrap();
    assert!(temp.exists());
}

#[test]
fn documents_up_to_the_limit_are_kept_and_one_byte_more_is_refused() {
    let (_dir, env, path) = setup();
    // Ten megabytes: far more than a coordination document, well within.
    let big = format!("[{}0]", "0,".repeat(5 * 1024 * 1024));
    fs::write(&path, &big).unwrap();
    assert_eq!(state::get(&env, &path).unwrap().len(), big.len());
    // A new document of exactly the limit is written; one byte more is not.
    let limit = usize::try_from(state::STATE_LIMIT).unwrap();
    let mut exact = vec![b' '; limit];
    exact[0] = b'0';
    let out = update(&env, &path, Strategy::Locked, |_| Ok(exact.clone())).unwrap();
    assert_eq!(out, Outcome::Updated { attempts: 1 });
    assert_eq!(fs::metadata(&path).unwrap().len(), state::STATE_LIMIT);
    let mut over = exact.clone();
    over.push(b' ');
    match update(&env, &path, Strategy::Locked, |_| Ok(over.clone())) {
        Err(StateError::TooLarge { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::metadata(&path).unwrap().len(), state::STATE_LIMIT);
}

#[test]
fn a_state_file_swapped_for_a_symlink_mid_read_is_named_a_symlink_not_an_io_error() {
    // Another process swaps the name between a file and a symlink as fast
    // as it can (each swap one atomic rename); reads in between see the
    // file, the link, or the swap between their stat and their read, and
    // must say which, never fail with a bare I/O error.
    let (dir, env, path) = setup();
    let target = dir.path().join("target.json");
    fs::write(&target, b"[0]").unwrap();
    fs::write(&path, b"[1]").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (dir, path, target, stop) = (
            dir.path().to_owned(),
            path.clone(),
            target.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let staged = dir.join("staged");
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::remove_file(&staged);
                if n.is_multiple_of(2) {
                    symlink(&target, &staged).unwrap();
                } else {
                    fs::write(&staged, b"[1]").unwrap();
                }
                fs::rename(&staged, &path).unwrap();
                n += 1;
            }
        })
    };
    let mut mid_swap = 0;
    for _ in 0..20_000 {
        match state::get(&env, &path) {
            Ok(doc) => assert_eq!(doc, b"[1]"),
            Err(StateError::Symlink { .. }) => {}
            Err(StateError::NotAFile { what, .. }) => {
                assert_eq!(what, "a symbolic link");
                mid_swap += 1;
            }
            Err(e) => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("{e}");
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    // How often the swap landed between the stat and the read varies with
    // the machine; it is reported, not required.
    eprintln!("swapped mid-read {mid_swap} times in 20,000");
}
