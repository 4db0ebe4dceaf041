//! What a held lock tells its holder and leaves behind: how long it waited
//! and has held, heartbeats, what a dropped or shared guard leaves in the
//! lock file, the modes' names, and a socket where the lock file goes.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_core::env::Processes;
use baton_core::env::real::RealEnv;
use baton_core::lock::{self, LockError, LockOptions, Mode, Wait, sidecar_path};
use baton_core::record::{OwnerRecord, Token, padded};

fn setup() -> (tempfile::TempDir, RealEnv, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let file = dir.path().join("resource");
    (dir, env, file)
}

fn take<'e>(
    env: &'e RealEnv,
    file: &Path,
    mode: Mode,
    wait: Wait,
) -> Option<lock::LockGuard<'e, RealEnv>> {
    lock::acquire(env, file, &LockOptions::new(mode, wait), &mut |_| {}).unwrap()
}

#[test]
fn the_modes_have_the_names_the_cli_and_records_use() {
    assert_eq!(Mode::Kernel.name(), "kernel");
    assert_eq!(Mode::File.name(), "file");
    assert_eq!(Mode::Kernel.to_string(), "kernel");
    assert_eq!(Mode::File.to_string(), "file");
}

#[test]
fn a_guard_knows_how_long_it_waited_and_has_held() {
    let (_dir, env, file) = setup();
    let first = take(&env, &file, Mode::Kernel, Wait::No).unwrap();
    let f2 = file.clone();
    let (waiting, is_waiting) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let env = RealEnv::new().unwrap();
        let opts = LockOptions::new(Mode::Kernel, Wait::For(Duration::from_secs(30)));
        let g = lock::acquire(&env, &f2, &opts, &mut |_| {
            let _ = waiting.send(());
        })
        .unwrap()
        .unwrap();
        g.waited()
    });
    // Counted from when it is certainly waiting.
    is_waiting.recv().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert!(first.held() >= Duration::from_millis(150));
    first.release().unwrap();
    // Lower bounds only: what the protocol guarantees on any machine.
    assert!(waiter.join().unwrap() >= Duration::from_millis(150));
}

fn set_mtime(path: &Path, t: SystemTime) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn a_heartbeat_refreshes_an_exclusive_file_lock_and_leaves_kernel_mode_alone() {
    let (_dir, env, file) = setup();
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let g = take(&env, &file, Mode::File, Wait::No).unwrap();
    let lock = sidecar_path(&file);
    set_mtime(&lock, old);
    g.heartbeat().unwrap();
    let refreshed = fs::metadata(&lock).unwrap().modified().unwrap();
    assert!(refreshed > SystemTime::now() - Duration::from_secs(60));
    g.release().unwrap();

    let (_dir, env, file) = setup();
    let g = take(&env, &file, Mode::Kernel, Wait::No).unwrap();
    let lock = sidecar_path(&file);
    set_mtime(&lock, old);
    g.heartbeat().unwrap();
    assert_eq!(fs::metadata(&lock).unwrap().modified().unwrap(), old);
    g.release().unwrap();
}

#[test]
fn a_dropped_guard_releases_as_a_release_does() {
    for mode in [Mode::Kernel, Mode::File] {
        let (_dir, env, file) = setup();
        drop(take(&env, &file, mode, Wait::No).unwrap());
        // Free at once, and nobody died holding it.
        let again = take(&env, &file, mode, Wait::No).expect("free after a drop");
        assert!(!again.holder_died(), "{mode}");
        again.release().unwrap();
        if mode == Mode::File {
            assert!(!sidecar_path(&file).exists());
        }
    }
}

#[test]
fn readers_leave_the_sidecar_as_they_found_it() {
    let (_dir, env, file) = setup();
    // A writer that died holding the lock: its record in the sidecar.
    drop(take(&env, &file, Mode::Kernel, Wait::No).unwrap());
    let mut dead = env.identity().clone();
    dead.pid = 4_194_999;
    let record = OwnerRecord::new(&dead, "dead", SystemTime::now(), Token::random(&env));
    let sidecar = sidecar_path(&file);
    fs::write(&sidecar, padded(&record.to_bytes())).unwrap();
    let before = fs::read(&sidecar).unwrap();
    let mut opts = LockOptions::new(Mode::Kernel, Wait::No);
    opts.shared = true;
    let reader = lock::acquire(&env, &file, &opts, &mut |_| {})
        .unwrap()
        .unwrap();
    reader.release().unwrap();
    assert_eq!(fs::read(&sidecar).unwrap(), before);
    // The next writer still learns that its predecessor died.
    let writer = take(&env, &file, Mode::Kernel, Wait::No).unwrap();
    assert!(writer.holder_died());
    writer.release().unwrap();
    assert_eq!(fs::metadata(&sidecar).unwrap().nlink(), 1);
}

#[test]
fn a_socket_where_the_lock_file_goes_is_not_baton_s() {
    let (_dir, env, file) = setup();
    let _socket = std::os::unix::net::UnixListener::bind(sidecar_path(&file)).unwrap();
    for mode in [Mode::Kernel, Mode::File] {
        match lock::acquire(&env, &file, &LockOptions::new(mode, Wait::No), &mut |_| {}) {
            Err(LockError::NotOurs { why, .. }) => {
                assert!(why.contains("not a regular file"), "{mode}: {why}")
            }
            other => panic!("{mode}: {other:?}"),
        }
    }
}
