//! Sidecar locks on the real filesystem, several open descriptions in one
//! process (they contend like separate processes do).
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

use std::path::PathBuf;
use std::time::Duration;

use baton_core::env::real::RealEnv;
use baton_core::env::{Fs, OpenFile, Processes};
use baton_core::lock::{self, LockError, LockEvent, LockOptions, Mode, Release, Wait};
use baton_core::record::{OwnerRecord, Token};
use baton_core::stale::Why;

fn env() -> RealEnv {
    RealEnv::new().unwrap()
}

fn opts(mode: Mode, wait: Wait) -> LockOptions {
    let mut o = LockOptions::new(mode, wait);
    o.instance = "test".into();
    o
}

fn target(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("tasks.json")
}

fn no_events(e: LockEvent) {
    panic!("unexpected event {e:?}");
}

/// Waiting is all that may happen (for a lock briefly held elsewhere).
fn only_waiting(e: LockEvent) {
    assert!(
        matches!(e, LockEvent::Waiting { .. }),
        "unexpected event {e:?}"
    );
}

/// A record of a process that has exited: a child we spawned and reaped.
fn dead_record(env: &RealEnv) -> OwnerRecord {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let mut r = OwnerRecord::new(env.identity(), "crashed", env.wall_now(), Token(1));
    r.pid = pid;
    r
}

trait WallNow {
    fn wall_now(&self) -> std::time::SystemTime;
}
impl WallNow for RealEnv {
    fn wall_now(&self) -> std::time::SystemTime {
        baton_core::env::Clock::wall(self)
    }
}

#[test]
fn second_holder_is_refused_in_both_modes() {
    for mode in [Mode::Kernel, Mode::File] {
        let dir = tempfile::tempdir().unwrap();
        let env = env();
        let file = target(&dir);
        let first = lock::acquire(&env, &file, &opts(mode, Wait::No), &mut no_events)
            .unwrap()
            .expect("free lock is acquired");
        let second = lock::acquire(&env, &file, &opts(mode, Wait::No), &mut no_events).unwrap();
        assert!(second.is_none(), "{mode}: second holder got the lock");
        assert_eq!(first.release().unwrap(), Release::Released);
        let third = lock::acquire(&env, &file, &opts(mode, Wait::No), &mut no_events).unwrap();
        assert!(third.is_some(), "{mode}: lock not free after release");
    }
}

#[test]
fn kernel_sidecar_is_never_removed_and_holds_the_record_only_while_held() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let sidecar = lock::sidecar_path(&file);
    let guard = lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
        .unwrap()
        .unwrap();
    let record = OwnerRecord::parse(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(record.pid, std::process::id());
    assert_eq!(record.token, guard.token().to_string());
    guard.release().unwrap();
    assert!(sidecar.exists(), "kernel sidecar must persist");
    assert_eq!(
        OwnerRecord::parse(&std::fs::read(&sidecar).unwrap()),
        Err(baton_core::record::RecordError::FreeSidecar)
    );
}

#[test]
fn file_lock_is_visible_with_its_full_record_and_gone_after_release() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let sidecar = lock::sidecar_path(&file);
    let guard = lock::acquire(&env, &file, &opts(Mode::File, Wait::No), &mut no_events)
        .unwrap()
        .unwrap();
    let record = OwnerRecord::parse(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(record.token, guard.token().to_string());
    // Only the lock file: the temp name was removed after linking.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "{names:?}");
    guard.release().unwrap();
    assert!(!sidecar.exists());
}

#[test]
fn timed_wait_gives_up_after_the_timeout() {
    for mode in [Mode::Kernel, Mode::File] {
        let dir = tempfile::tempdir().unwrap();
        let env = env();
        let file = target(&dir);
        let _held = lock::acquire(&env, &file, &opts(mode, Wait::No), &mut no_events)
            .unwrap()
            .unwrap();
        let mut waited_event = 0;
        let start = std::time::Instant::now();
        let got = lock::acquire(
            &env,
            &file,
            &opts(mode, Wait::For(Duration::from_millis(200))),
            &mut |e| match e {
                LockEvent::Waiting { holder, .. } => {
                    assert_eq!(holder.unwrap().pid, std::process::id());
                    waited_event += 1;
                }
                other => panic!("unexpected {other:?}"),
            },
        )
        .unwrap();
        assert!(got.is_none());
        assert_eq!(waited_event, 1, "{mode}: waiting is announced once");
        // Not a timing assertion on speed: only that it did wait.
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}

#[test]
fn kernel_waiter_is_woken_by_release() {
    let dir = tempfile::tempdir().unwrap();
    let file = target(&dir);
    let env = env();
    let held = lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
        .unwrap()
        .unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let env = RealEnv::new().unwrap();
            lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::Forever), &mut |_| {})
                .unwrap()
                .map(|g| g.token())
        });
        std::thread::sleep(Duration::from_millis(50));
        held.release().unwrap();
        assert!(waiter.join().unwrap().is_some());
    });
}

#[test]
fn file_lock_of_a_dead_owner_is_reaped_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let sidecar = lock::sidecar_path(&file);
    let dead = dead_record(&env);
    std::fs::write(&sidecar, dead.to_bytes()).unwrap();
    let mut reaped = Vec::new();
    let guard = lock::acquire(&env, &file, &opts(Mode::File, Wait::No), &mut |e| {
        reaped.push(e)
    })
    .unwrap()
    .expect("a dead owner's lock is reaped without waiting");
    assert_eq!(
        reaped,
        vec![LockEvent::Reaped {
            lock: sidecar.clone(),
            owner: Ok(dead.clone()),
            why: Why::OwnerDead { pid: dead.pid },
        }]
    );
    guard.release().unwrap();
}

#[test]
fn file_lock_of_a_reused_pid_is_reaped_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    // Our own pid, but an earlier start time: the pid was reused by us.
    let mut r = OwnerRecord::new(env.identity(), "old", env.wall_now(), Token(2));
    r.start_time -= 1;
    std::fs::write(lock::sidecar_path(&file), r.to_bytes()).unwrap();
    let mut whys = Vec::new();
    let guard = lock::acquire(&env, &file, &opts(Mode::File, Wait::No), &mut |e| {
        if let LockEvent::Reaped { why, .. } = e {
            whys.push(why)
        }
    })
    .unwrap();
    assert!(guard.is_some());
    assert!(matches!(whys[..], [Why::PidReused { .. }]), "{whys:?}");
}

#[test]
fn unverifiable_lock_is_reaped_only_after_the_stale_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let mut r = OwnerRecord::new(env.identity(), "remote", env.wall_now(), Token(3));
    r.host = "another-host".into();
    std::fs::write(lock::sidecar_path(&file), r.to_bytes()).unwrap();
    let mut o = opts(Mode::File, Wait::No);
    o.stale = Duration::from_millis(150);
    // Without waiting, an unverifiable owner is never reaped.
    assert!(
        lock::acquire(&env, &file, &o, &mut |_| {})
            .unwrap()
            .is_none()
    );
    o.wait = Wait::For(Duration::from_secs(10));
    let mut whys = Vec::new();
    let guard = lock::acquire(&env, &file, &o, &mut |e| {
        if let LockEvent::Reaped { why, .. } = e {
            whys.push(why)
        }
    })
    .unwrap();
    assert!(guard.is_some());
    match &whys[..] {
        [Why::Unchanged { for_ms, .. }] => assert!(*for_ms >= 150),
        other => panic!("{other:?}"),
    }
}

#[test]
fn live_file_holder_is_never_reaped_however_stale() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let held = lock::acquire(&env, &file, &opts(Mode::File, Wait::No), &mut no_events)
        .unwrap()
        .unwrap();
    let mut o = opts(Mode::File, Wait::For(Duration::from_millis(300)));
    o.stale = Duration::from_millis(1); // no heartbeat will ever beat this
    let got = lock::acquire(&env, &file, &o, &mut |e| {
        assert!(matches!(e, LockEvent::Waiting { .. }), "{e:?}")
    })
    .unwrap();
    assert!(got.is_none(), "a live holder's lock was taken");
    assert_eq!(held.release().unwrap(), Release::Released);
}

#[test]
fn release_never_removes_a_lock_that_is_no_longer_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let sidecar = lock::sidecar_path(&file);
    let held = lock::acquire(&env, &file, &opts(Mode::File, Wait::No), &mut no_events)
        .unwrap()
        .unwrap();
    // Someone outside the protocol replaces the lock file.
    std::fs::remove_file(&sidecar).unwrap();
    std::fs::write(&sidecar, b"someone else").unwrap();
    assert_eq!(held.release().unwrap(), Release::Lost);
    assert_eq!(std::fs::read(&sidecar).unwrap(), b"someone else");
}

#[test]
fn kernel_lock_on_a_replaced_sidecar_is_retaken_on_the_new_inode() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let sidecar = lock::sidecar_path(&file);
    let held = lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
        .unwrap()
        .unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let env = RealEnv::new().unwrap();
            let g = lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::Forever), &mut |_| {})
                .unwrap()
                .unwrap();
            let id = env.metadata(g.path()).unwrap().id;
            (id, g.file().metadata().unwrap().id)
        });
        std::thread::sleep(Duration::from_millis(50));
        // rm by hand while a waiter blocks on the old inode.
        std::fs::remove_file(&sidecar).unwrap();
        held.release().unwrap();
        let (path_id, locked_id) = waiter.join().unwrap();
        assert_eq!(path_id, locked_id, "waiter holds an orphaned inode");
    });
}

#[test]
fn file_mode_refuses_a_kernel_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
        .unwrap()
        .unwrap()
        .release()
        .unwrap();
    let err = lock::acquire(&env, &file, &opts(Mode::File, Wait::No), &mut no_events)
        .expect_err("mode mismatch is an error");
    assert!(matches!(err, LockError::ModeMismatch { .. }), "{err}");
}

#[test]
fn missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = dir.path().join("missing").join("tasks.json");
    for mode in [Mode::Kernel, Mode::File] {
        let err = lock::acquire(&env, &file, &opts(mode, Wait::No), &mut no_events)
            .expect_err("no directory, no lock");
        let msg = err.to_string();
        assert!(msg.contains("missing"), "{mode}: {msg}");
        assert!(msg.contains("No such file"), "{mode}: {msg}");
    }
}

#[test]
fn baton_directory_hides_itself_from_git_even_if_its_creator_died_before_saying_so() {
    use baton_core::election::{Election, ElectionMode};
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    // A `.baton` left without its .gitignore (creator killed in between).
    std::fs::create_dir(dir.path().join(".baton")).unwrap();
    Election::new(dir.path().join(".baton").join("election"))
        .prepare(&env, ElectionMode::Kernel)
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join(".baton").join(".gitignore")).unwrap(),
        b"*\n"
    );
}

#[test]
fn shared_locks_coexist_exclude_a_writer_and_leave_the_sidecar_alone() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let file = target(&dir);
    let mut shared = opts(Mode::Kernel, Wait::No);
    shared.shared = true;
    let exclusive = opts(Mode::Kernel, Wait::No);
    let a = lock::acquire(&env, &file, &shared, &mut no_events)
        .unwrap()
        .expect("first reader");
    let b = lock::acquire(&env, &file, &shared, &mut no_events)
        .unwrap()
        .expect("second reader");
    let sidecar = lock::sidecar_path(&file);
    let content = std::fs::read(&sidecar).unwrap();
    assert!(
        OwnerRecord::parse(&content).is_err(),
        "readers write no owner record: {}",
        String::from_utf8_lossy(&content)
    );
    let writer = lock::acquire(&env, &file, &exclusive, &mut no_events).unwrap();
    assert!(writer.is_none(), "a writer is kept out by the readers");
    assert_eq!(a.release().unwrap(), Release::Released);
    assert!(
        lock::acquire(&env, &file, &exclusive, &mut |_| {})
            .unwrap()
            .is_none()
    );
    drop(b);
    let w = lock::acquire(&env, &file, &exclusive, &mut no_events)
        .unwrap()
        .expect("free now");
    assert!(
        lock::acquire(&env, &file, &shared, &mut |_| {})
            .unwrap()
            .is_none(),
        "a reader waits for the writer"
    );
    drop(w);
    let mut file_mode = shared.clone();
    file_mode.mode = Mode::File;
    assert!(matches!(
        lock::acquire(&env, &file, &file_mode, &mut no_events),
        Err(LockError::SharedNeedsKernel { .. })
    ));
}

#[test]
fn a_kept_open_handle_locks_again_and_again_and_excludes_everyone_else() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let file = target(&dir);
    let mut h = lock::Handle::open(&env, &file, "handle").unwrap();
    let mut other = lock::Handle::open(&env, &file, "other").unwrap();
    for _ in 0..3 {
        // The other handle's last timed-out wait left a helper blocked in
        // flock: it takes the lock when `g` lets go and gives it straight
        // back (`Handoff`), so "free" may take a moment to be true.
        let g = h
            .acquire(Wait::For(Duration::from_secs(5)), &mut only_waiting)
            .unwrap()
            .expect("free");
        assert!(!g.holder_died());
        let record = OwnerRecord::parse(&std::fs::read(h_path(&file)).unwrap()).unwrap();
        assert_eq!(
            (record.instance.as_str(), record.token),
            ("handle", g.token().to_string())
        );
        // A one-shot acquirer and another handle both wait.
        assert!(
            lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
                .unwrap()
                .is_none()
        );
        let timed = other
            .acquire(Wait::For(Duration::from_millis(20)), &mut |_| {})
            .unwrap();
        assert!(timed.is_none());
        assert_eq!(g.release().unwrap(), Release::Released);
    }
    // The other handle's timed-out description was dropped; it reopens.
    let g = other
        .acquire(Wait::For(Duration::from_secs(5)), &mut only_waiting)
        .unwrap()
        .expect("free again");
    drop(g);
    // A sidecar removed by hand: the handle notices and locks the new one,
    // which one-shot acquirers share.
    std::fs::remove_file(h_path(&file)).unwrap();
    let g = h
        .acquire(Wait::No, &mut no_events)
        .unwrap()
        .expect("reopened");
    assert!(h_path(&file).exists());
    assert!(
        lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
            .unwrap()
            .is_none()
    );
    drop(g);
}

#[test]
fn a_handle_learns_that_the_last_holder_died_holding_the_lock() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let file = target(&dir);
    let mut h = lock::Handle::open(&env, &file, "handle").unwrap();
    // A holder killed mid-section leaves its record in the slot.
    let dead = dead_record(&env);
    std::fs::write(h_path(&file), baton_core::record::padded(&dead.to_bytes())).unwrap();
    let g = h
        .acquire(Wait::No, &mut no_events)
        .unwrap()
        .expect("the kernel freed it");
    assert!(g.holder_died());
    drop(g);
    let g = h.acquire(Wait::No, &mut no_events).unwrap().expect("free");
    assert!(!g.holder_died(), "a clean release leaves the free marker");
}

fn h_path(file: &std::path::Path) -> PathBuf {
    lock::sidecar_path(file)
}

#[test]
fn an_old_mtime_never_makes_an_unverifiable_lock_stale_only_the_waiters_watch_does() {
    // Another host's clock, a restored backup, `touch -d`: a lock file's
    // mtime says nothing the waiter can trust. Seen for less than the
    // threshold on the waiter's own monotonic clock, it is not stale,
    // however old its mtime (a rule taking the wall clock's age too would
    // reap it at once).
    let dir = tempfile::tempdir().unwrap();
    let env = env();
    let file = target(&dir);
    let mut r = OwnerRecord::new(env.identity(), "remote", env.wall_now(), Token(4));
    r.host = "another-host".into();
    let sidecar = lock::sidecar_path(&file);
    std::fs::write(&sidecar, r.to_bytes()).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&sidecar)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let mut o = opts(Mode::File, Wait::For(Duration::from_millis(300)));
    o.stale = Duration::from_secs(5);
    let got = lock::acquire(&env, &file, &o, &mut |e| {
        assert!(!matches!(e, LockEvent::Reaped { .. }), "reaped: {e:?}")
    })
    .unwrap();
    assert!(got.is_none(), "not stale on the waiter's clock yet");
    assert_eq!(
        std::fs::read(&sidecar).unwrap(),
        r.to_bytes(),
        "left as it was"
    );
}

#[test]
fn a_timed_out_wait_gives_back_a_lock_that_arrives_after_it() {
    // flock(2) has no timeout: a helper thread waits in it, and when the
    // lock arrives after the waiter gave up, the helper must unlock it, or
    // the abandoned description holds the lock for ever.
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let holder = env.open(&path, true).unwrap();
    assert!(holder.try_lock().unwrap());
    let waiter = env.open(&path, false).unwrap();
    assert!(
        !waiter.lock(Some(Duration::from_millis(50))).unwrap(),
        "timed out"
    );
    holder.unlock().unwrap();
    // Let the helper, blocked in flock, take the freed lock first (else a
    // newcomer could win the race and hide a helper that never gives back).
    std::thread::sleep(Duration::from_millis(200));
    let third = env.open(&path, false).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // The helper may take the freed lock for a moment before giving it back.
    while !third.try_lock().unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned wait kept the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(waiter);
}

#[test]
fn a_planted_kernel_sidecar_symlink_is_refused_not_retried() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let file = target(&dir);
    let bait = dir.path().join("bait");
    std::fs::write(&bait, "a user's file\n").unwrap();
    std::os::unix::fs::symlink(&bait, lock::sidecar_path(&file)).unwrap();
    let got = lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events);
    assert!(matches!(got, Err(LockError::NotOurs { .. })), "{got:?}");
    assert_eq!(std::fs::read_to_string(&bait).unwrap(), "a user's file\n");
}

#[test]
fn an_older_longer_sidecar_is_trimmed_to_one_slot_when_taken() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let file = target(&dir);
    let sidecar = lock::sidecar_path(&file);
    // A free marker as an older baton padded it: longer than a slot.
    let mut old = baton_core::record::padded(baton_core::record::FREE_SIDECAR);
    old.truncate(old.len() - 1);
    old.extend_from_slice(&[b' '; 300]);
    old.push(b'\n');
    std::fs::write(&sidecar, &old).unwrap();
    let g = lock::acquire(&env, &file, &opts(Mode::Kernel, Wait::No), &mut no_events)
        .unwrap()
        .expect("free");
    let held = std::fs::read(&sidecar).unwrap();
    assert_eq!(
        held.len(),
        baton_core::record::SLOT_LEN,
        "one slot, nothing past it"
    );
    assert!(OwnerRecord::parse(&held).is_ok());
    drop(g);
    assert_eq!(
        std::fs::read(&sidecar).unwrap().len(),
        baton_core::record::SLOT_LEN
    );
}
