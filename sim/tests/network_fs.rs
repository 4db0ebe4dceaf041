//! Kernel mode on a network filesystem: refused with a clear error, while
//! `mode_for` picks exclusive-file mode there. Checked through the seam on
//! a simulated NFS mount, which no test machine here has.

use std::path::Path;
use std::sync::{Arc, Mutex};

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
    assert!(refused.contains("/mnt/tasks.json.lock"), "{refused}");
    assert!(refused.contains("unreliable on nfs"), "{refused}");
    assert!(refused.contains("--mode file"), "{refused}");
    assert_eq!(*auto, Mode::File);
    assert!(locked, "exclusive-file mode works there");
}
