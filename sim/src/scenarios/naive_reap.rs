//! `naive-reap`: the stale-lock cleanup of seed 002 as lock libraries
//! commonly write it. Take the lock by creating `FILE.lock` exclusively; if
//! it exists and its mtime is older than the stale threshold by *my* clock,
//! delete it and try again. Two waiters that both judge one lock stale can
//! end with one deleting the other's fresh lock (npm/lockfile#4,
//! proper-lockfile#121), and a clock that runs ahead judges a fresh lock
//! stale outright (borgbackup#10077).

use std::io;
use std::path::Path;
use std::time::Duration;

use baton_core::env::{Clock, Fs, OpenFile, Processes};

use super::counter;
use crate::env::{Probe, SimEnv};
use crate::fault::FaultKinds;
use crate::run::{Role, Scenario};

const LOCK: &str = "/w/counter.lock";
const STALE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

fn body(env: &SimEnv, probe: &Probe, role: Role) {
    let lock = Path::new(LOCK);
    for _ in 0..role.iters {
        loop {
            match env.create_new(lock) {
                Ok(f) => {
                    let _ = f.write_all_at(env.identity().pid.to_string().as_bytes(), 0);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if let Ok(m) = env.metadata(lock) {
                        let age = env.wall().duration_since(m.modified).unwrap_or_default();
                        if age > STALE {
                            let _ = env.remove_file(lock);
                            continue;
                        }
                    }
                    env.sleep(POLL);
                }
                Err(_) => env.sleep(POLL),
            }
        }
        counter::increment(env, probe);
        let _ = env.remove_file(lock);
    }
}

pub fn scenario() -> Scenario {
    let mut s = Scenario::new("naive-reap", 3, body);
    s.iters = 3;
    s.faults = FaultKinds {
        io_errors: false,
        machine_crash: false,
        ..FaultKinds::ALL
    };
    s.setup = Box::new(counter::setup);
    s.end = Box::new(counter::end);
    s
}
