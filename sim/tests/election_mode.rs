//! An election directory from before modes were recorded keeps the mode
//! its files show, under injected I/O errors too: a failed look at those
//! files is an error, never "no files", which would record the other mode
//! and let a second primary in.

use std::path::Path;
use std::sync::{Arc, Mutex};

use baton_core::election::{Election, ElectionError, ElectionMode};
use baton_sim::{FaultKinds, StrategyKind, run};

#[test]
fn an_old_kernel_mode_directory_is_never_given_lease_mode() {
    let mut errors = 0;
    for seed in 0..400 {
        let outcome = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&outcome);
        let mut s = baton_sim::Scenario::new("election-mode", 1, move |env, _, _| {
            let e = Election::new("/w/el");
            *sink.lock().unwrap() = Some(e.prepare(env, ElectionMode::Lease));
        });
        s.faults = FaultKinds {
            io_errors: true,
            ..FaultKinds::NONE
        };
        s.setup = Box::new(|fs| {
            let t = std::time::UNIX_EPOCH;
            fs.create_dir(Path::new("/w"), t).unwrap();
            fs.create_dir(Path::new("/w/el"), t).unwrap();
            fs.create_dir(Path::new("/w/el/members"), t).unwrap();
            // A term was held by kernel lock here; no mode record yet.
            fs.put(
                Path::new("/w/el/leader.json"),
                b"{\"epoch\":3,\"id\":\"a\",\"pid\":1,\"host\":\"h\",\"elected_at_ms\":0}\n",
                t,
            )
            .unwrap();
        });
        run(&s, &s.config(StrategyKind::Random, seed), false);
        match outcome.lock().unwrap().take() {
            Some(Ok(())) => panic!("seed {seed}: a kernel-mode directory took lease mode"),
            Some(Err(ElectionError::ModeMismatch { .. })) | None => {}
            Some(Err(_)) => errors += 1,
        }
    }
    assert!(errors > 10, "{errors}");
}
