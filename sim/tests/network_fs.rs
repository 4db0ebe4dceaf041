//! Kernel mode on a network filesystem: refused with a clear error, while
//! `mode_for` picks exclusive-file mode there. Checked through the seam on
//! a simulated NFS mount, which no test machine here has.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::lock::{self, LockError, LockOptions, Mode, Wait};
use baton_sim::{Scenario, StrategyKind, run};

#[test]
fn kernel_mode_is_refused_on_nfs_and_auto_picks_file_mode() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let mut s = Scenario::new("nfs", 1, move |env, _, _| {
        let target = Path::new("/mnt/tasks.json");
        let kernel = lock::acquire(
            env,
            target,
            &LockOptions::new(Mode::Kernel, Wait::No),
            &mut |_| {},
        );
        let refused = match kernel {
            Err(e @ LockError::KernelLocksUnreliable { .. }) => e.to_string(),
            other => format!("not refused: {other:?}"),
        };
        let auto = lock::mode_for(env, target).unwrap();
        let file = lock::acquire(env, target, &LockOptions::new(auto, Wait::No), &mut |_| {})
            .unwrap()
            .map(|g| g.release().unwrap());
        sink.lock().unwrap().push((refused, auto, file.is_some()));
    });
    s.setup = Box::new(|fs| {
        fs.create_dir(Path::new("/mnt"), std::time::UNIX_EPOCH)
            .unwrap();
        fs.network = Some("nfs");
    });
    let report = run(&s, &s.config(StrategyKind::Random, 0), false);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let seen = seen.lock().unwrap();
    let (refused, auto, locked) = &seen[0];
    assert!(refused.contains("/mnt/tasks.json.baton.lock"), "{refused}");
    assert!(refused.contains("unreliable on nfs"), "{refused}");
    assert!(refused.contains("--mode file"), "{refused}");
    assert_eq!(*auto, Mode::File);
    assert!(locked, "exclusive-file mode works there");
}

/// A lock file left by a holder on another host. Where the filesystem
/// keeps kernel locks on each host (NFS `local_lock=flock`), it is never
/// reaped by observation, however long it stays silent: a reaper on the
/// other host would not be serialised with ours, and a paused holder there
/// would lose its lock (`model/src/lock_file.rs` shows both); the waiter
/// says so and times out. Where kernel locks reach every host (NFS's
/// default), it is reaped once silent for the stale threshold.
#[test]
fn another_hosts_lock_is_reaped_by_observation_only_where_kernel_locks_cross_hosts() {
    use baton_core::env::ProcessIdentity;
    use baton_core::lock::LockEvent;
    use baton_core::record::{OwnerRecord, Token};

    for host_local_locks in [true, false] {
        let seen = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&seen);
        let mut s = Scenario::new("nfs-remote-holder", 1, move |env, _, _| {
            let mut opts = LockOptions::new(Mode::File, Wait::For(Duration::from_secs(20)));
            opts.stale = Duration::from_secs(2);
            let mut events = Vec::new();
            let got = lock::acquire(env, Path::new("/mnt/tasks.json"), &opts, &mut |e| {
                events.push(e)
            })
            .unwrap();
            let acquired = got.map(|g| g.release().unwrap()).is_some();
            *sink.lock().unwrap() = Some((acquired, events));
        });
        s.setup = Box::new(move |fs| {
            fs.create_dir(Path::new("/mnt"), std::time::UNIX_EPOCH)
                .unwrap();
            fs.network = Some("nfs");
            fs.host_local_locks = host_local_locks;
            let elsewhere = ProcessIdentity {
                pid: 4242,
                start_time: 7,
                boot_id: "other-boot".into(),
                pid_ns: 1,
                host: "elsewhere".into(),
            };
            let record = OwnerRecord::new(&elsewhere, "remote", std::time::UNIX_EPOCH, Token(9));
            fs.put(
                Path::new("/mnt/tasks.json.baton.lock"),
                &record.to_bytes(),
                std::time::UNIX_EPOCH,
            )
            .unwrap();
        });
        let report = run(&s, &s.config(StrategyKind::Random, 0), false);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        let (acquired, events) = seen.lock().unwrap().take().expect("the body ran");
        let reaped = events.iter().any(|e| matches!(e, LockEvent::Reaped { .. }));
        let refused: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                LockEvent::CannotReap { why, .. } => Some(why),
                _ => None,
            })
            .collect();
        if host_local_locks {
            assert!(!acquired && !reaped, "{events:#?}");
            assert!(!refused.is_empty(), "{events:#?}");
            assert!(
                refused[0].contains("owner is on host elsewhere"),
                "{}",
                refused[0]
            );
            assert!(refused[0].contains("local_lock"), "{}", refused[0]);
        } else {
            assert!(acquired && reaped && refused.is_empty(), "{events:#?}");
        }
    }
}
