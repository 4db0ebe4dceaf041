//! Exclusive-file mode against two adversities the catalogue's faults do
//! not make: a lock file churned in perfect time (gone each time a waiter
//! opens it, back each time it tries to publish), and a lock file nobody
//! may read. A waiter must keep its bounds through the first and report
//! the second, not wait it out.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::env::{Clock, Fs, Random};
use baton_core::lock::{self, LockError, LockOptions, Mode, Wait, sidecar_path};
use baton_core::record::{FREE_SIDECAR, padded};
use baton_sim::fs::{EACCES, EIO, ENOENT, ENOLCK, ENOSPC, Failing};
use baton_sim::{StrategyKind, run};

const FILE: &str = "/w/resource";

/// What one waiter's bounded acquire returned, and how long it took on
/// virtual time, with opens of the lock file failing as `fails` says.
fn acquire_against(errno: i32, times: u32, wait: Duration) -> (Result<bool, String>, Duration) {
    let seen = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&seen);
    let mut s = baton_sim::Scenario::new("lock-adversity", 1, move |env, _, _| {
        let opts = LockOptions::new(Mode::File, Wait::For(wait));
        let started = env.monotonic();
        let got = match lock::acquire(env, Path::new(FILE), &opts, &mut |_| {}) {
            Ok(Some(guard)) => {
                let _ = guard.release();
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        let took = env.monotonic().saturating_since(started);
        *sink.lock().unwrap() = Some((got.map_err(|e: LockError| e.to_string()), took));
    });
    s.setup = Box::new(move |fs| {
        let t = std::time::UNIX_EPOCH;
        fs.create_dir(Path::new("/w"), t).unwrap();
        let lock = sidecar_path(Path::new(FILE));
        // Someone's lock file is there (publishing finds the name taken)...
        fs.put(&lock, b"", t).unwrap();
        // ...and opening it fails.
        fs.open_fails = Some((lock, Failing::next(errno, times)));
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    seen.lock().unwrap().take().expect("the waiter finished")
}

#[test]
fn a_waiter_keeps_its_deadline_while_the_lock_file_churns() {
    // Churned for far longer than the wait: 200,000 opens that find it gone.
    let wait = Duration::from_millis(50);
    let (got, took) = acquire_against(ENOENT, 200_000, wait);
    assert_eq!(got, Ok(false), "a churned lock is not free");
    // It may poll a bounded number of times between looks at its deadline
    // (1,000, a few calls each, 20 us a call on virtual time): well under
    // a second, where polling on without a look lasts the whole churn.
    assert!(took >= wait);
    assert!(took < Duration::from_secs(1), "overran its wait: {took:?}");
}

#[test]
fn a_lock_file_nobody_may_read_is_reported_not_waited_out() {
    let (got, took) = acquire_against(EACCES, u32::MAX, Duration::from_secs(30));
    match got {
        Err(e) => assert!(e.contains("resource") && e.contains("denied"), "{e}"),
        Ok(v) => panic!("{v}: a lock file that cannot be read must be an error"),
    }
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn a_release_after_a_person_removed_the_lock_file_says_lost_not_failed() {
    let lock_path = sidecar_path(Path::new(FILE));
    let mut vanished_at_release = 0;
    for seed in 0..400 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let target = lock_path.clone();
        let mut s = baton_sim::Scenario::new("lock-rm", 2, move |env, _, role| {
            if role.index == 1 {
                // A person's `rm` of the lock file, a few steps in.
                for _ in 0..env.random_u64() % 24 {
                    env.monotonic();
                }
                let _ = env.remove_file(&target);
                return;
            }
            let opts = LockOptions::new(Mode::File, Wait::For(Duration::from_secs(5)));
            let guard = lock::acquire(env, Path::new(FILE), &opts, &mut |_| {})
                .unwrap()
                .expect("nobody else locks");
            *sink.lock().unwrap() = Some(guard.release().map_err(|e| e.to_string()));
        });
        s.setup = Box::new(|fs| {
            fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
                .unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, seed), true);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let released = outcome.lock().unwrap().take().expect("released");
        assert!(released.is_ok(), "seed {seed}: {released:?}");
        vanished_at_release += u32::from(report.trace.iter().any(|l| {
            l.contains(" p0 ")
                && l.contains("rename(/w/resource.baton.lock")
                && l.ends_with("ENOENT")
        }));
    }
    assert!(vanished_at_release > 5, "{vanished_at_release}");
}

#[test]
fn a_lock_that_could_not_be_flocked_is_not_published() {
    // ENOLCK when locking the new lock file: peers' flocks may well work,
    // and one holding our unlocked file's kernel lock would judge us by
    // observation alone. The attempt fails; nothing is left at the name.
    let outcome = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&outcome);
    let mut s = baton_sim::Scenario::new("lock-enolck", 1, move |env, _, _| {
        let opts = LockOptions::new(Mode::File, Wait::No);
        let got = lock::acquire(env, Path::new(FILE), &opts, &mut |_| {})
            .map(|g| g.is_some())
            .map_err(|e| e.to_string());
        let left = env.metadata(&sidecar_path(Path::new(FILE))).is_ok();
        *sink.lock().unwrap() = Some((got, left));
    });
    s.setup = Box::new(|fs| {
        fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
            .unwrap();
        fs.try_lock_fails = Some(Failing::next(ENOLCK, 1));
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let (got, left) = outcome.lock().unwrap().take().unwrap();
    match got {
        Err(e) => assert!(e.contains("lock new lock file"), "{e}"),
        Ok(held) => panic!("acquired ({held}) a lock it could not flock"),
    }
    assert!(!left, "a lock file was left at the name");
}

#[test]
fn kernel_mode_holds_through_a_full_disk_but_not_through_a_failed_record_write() {
    // The sidecar exists (free); the only write is the owner record.
    for (errno, acquired) in [(ENOSPC, true), (EIO, false)] {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("lock-record-write", 1, move |env, _, _| {
            let opts = LockOptions::new(Mode::Kernel, Wait::No);
            let got = match lock::acquire(env, Path::new(FILE), &opts, &mut |_| {}) {
                Ok(Some(guard)) => {
                    let _ = guard.release();
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e.to_string()),
            };
            *sink.lock().unwrap() = Some(got);
        });
        s.setup = Box::new(move |fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.put(&sidecar_path(Path::new(FILE)), &padded(FREE_SIDECAR), t)
                .unwrap();
            fs.write_fails = Some(Failing::next(errno, 1));
        });
        let report = run(&s, &s.config(StrategyKind::Random, 0), false);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let got = outcome.lock().unwrap().take().unwrap();
        if acquired {
            // The record only tells `status` who holds the lock; a full
            // disk must not stop a lock that needs no space.
            assert_eq!(got, Ok(true), "errno {errno}");
        } else {
            match got {
                Err(e) => assert!(e.contains("write owner record"), "{e}"),
                Ok(v) => {
                    panic!("errno {errno}: {v}: an I/O error writing the record was swallowed")
                }
            }
        }
    }
}

#[test]
fn a_waiter_whose_flock_of_the_holders_file_fails_waits_on_enolck_and_fails_on_eio() {
    // ENOLCK: peers' locks may work; this waiter cannot serialise with
    // other reapers, so it reaps nothing and waits. Any other error is
    // reported.
    for (errno, waits) in [(ENOLCK, true), (EIO, false)] {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("lock-waiter-flock", 2, move |env, probe, role| {
            let opts = LockOptions::new(Mode::File, Wait::For(Duration::from_secs(1)));
            if role.index == 0 {
                let g = lock::acquire(env, Path::new(FILE), &opts, &mut |_| {})
                    .unwrap()
                    .unwrap();
                // The waiter's own new file locks as usual; its flock of
                // ours fails.
                probe.arrange(|fs| {
                    fs.try_lock_fails = Some(Failing {
                        errno,
                        skip: 1,
                        times: 1,
                    })
                });
                env.sleep(Duration::from_secs(5));
                let _ = g.release();
                return;
            }
            env.sleep(Duration::from_millis(100));
            let got = lock::acquire(env, Path::new(FILE), &opts, &mut |_| {})
                .map(|g| g.is_some())
                .map_err(|e| e.to_string());
            *sink.lock().unwrap() = Some(got);
        });
        s.setup = Box::new(|fs| {
            fs.create_dir(Path::new("/w"), std::time::UNIX_EPOCH)
                .unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, 0), false);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let got = outcome.lock().unwrap().take().unwrap();
        if waits {
            assert_eq!(got, Ok(false), "ENOLCK: waited its second out");
        } else {
            assert!(got.is_err(), "EIO: {got:?}");
        }
    }
}
