//! State files (seed 002): processes add 1 to a JSON number in
//! `/w/state.json`, and read it between updates.
//!
//! - `baton-state`, `baton-state-cas`: `baton_core::state::update`,
//!   production code unchanged, locked and compare-and-swap, under every
//!   fault the simulator has. Must hold no-lost-update and no-torn-state.
//! - `state-rmw-unlocked`: seed 002 before the fix: read, add, write
//!   (atomically) with no lock. Two writers read the same number: an
//!   acknowledged update is lost.
//! - `state-write-in-place`: under a lock, but writing in place (truncate,
//!   write, no temp file, no rename, no fsync): a reader between the
//!   truncate and the write, or a machine crash, finds the file empty.

use std::path::Path;
use std::time::Duration;

use baton_core::atomic::write_atomic;
use baton_core::catalogue::Invariant;
use baton_core::env::{Clock, Fs, OpenFile};
use baton_core::lock::{LockEvent, Mode, Wait};
use baton_core::state::{self, Outcome, Strategy, UpdateOptions};

use crate::clock::epoch;
use crate::env::{Probe, SimEnv};
use crate::fault::FaultKinds;
use crate::fs::SimFs;
use crate::oracle::Oracle;
use crate::run::{Role, Scenario};

const DIR: &str = "/w";
const STATE: &str = "/w/state.json";

fn setup(fs: &mut SimFs) {
    fs.create_dir(Path::new(DIR), epoch()).expect("fresh fs");
    fs.put(Path::new(STATE), b"0\n", epoch()).expect("fresh fs");
}

/// The document as a number (all these documents are one JSON number);
/// `None` when torn, empty or anything else.
fn number(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// A reader's look: the file must always hold a whole document.
fn look(env: &SimEnv, probe: &Probe) {
    if let Ok(bytes) = env.read(Path::new(STATE), state::STATE_LIMIT)
        && number(&bytes).is_none()
    {
        probe.violated(
            Invariant::NoTornState,
            &format!("{STATE} read as {:?}", String::from_utf8_lossy(&bytes)),
        );
    }
}

/// The final document holds every acknowledged update.
fn end(fs: &SimFs, oracle: &Oracle) -> Result<(), (Invariant, String)> {
    let bytes = fs
        .read(Path::new(STATE), u64::MAX)
        .map_err(|e| (Invariant::NoTornState, format!("{STATE}: {e}")))?;
    let value = number(&bytes).ok_or_else(|| {
        (
            Invariant::NoTornState,
            format!("{STATE} ends as {:?}", String::from_utf8_lossy(&bytes)),
        )
    })?;
    let acked = oracle.acked(STATE);
    if value < acked {
        return Err((
            Invariant::NoLostUpdate,
            format!("{STATE} is {value} after {acked} acknowledged updates"),
        ));
    }
    Ok(())
}

/// Updates before a process gives up on a round (a liveness failure).
const ATTEMPTS: u32 = 100;

fn baton_body(strategy: Strategy, env: &SimEnv, probe: &Probe, role: Role) {
    let opts = UpdateOptions::new(strategy, Mode::Kernel, Wait::For(Duration::from_secs(120)));
    let path = Path::new(STATE);
    'round: for _ in 0..role.iters {
        look(env, probe);
        for _ in 0..ATTEMPTS {
            let before = probe.injected();
            let mut mark = |e: LockEvent| {
                if let LockEvent::Waiting { .. } = e {
                    probe.mark("waited");
                }
            };
            let outcome = state::update(env, path, &opts, &mut mark, |old| {
                // The computation takes a while, as a command would.
                env.sleep(Duration::from_millis(5));
                match number(old) {
                    Some(n) => Ok(format!("{}\n", n + 1).into_bytes()),
                    None => Err(()),
                }
            });
            match outcome {
                Ok(Outcome::Updated { attempts }) => {
                    if attempts > 1 {
                        probe.mark("cas-retried");
                    }
                    probe.ack(STATE);
                    continue 'round;
                }
                Ok(Outcome::Busy { .. }) => probe.mark("busy"),
                Ok(Outcome::Aborted(())) => {
                    probe.violated(Invariant::NoTornState, "update was given a torn document");
                    return;
                }
                // An injected I/O error: back off and try again.
                Err(e) => {
                    probe.error_seen(before, "update", &e);
                    env.sleep(Duration::from_millis(100));
                }
            }
        }
        probe.gave_up(ATTEMPTS);
    }
}

fn rmw_unlocked(env: &SimEnv, probe: &Probe, role: Role) {
    let path = Path::new(STATE);
    for _ in 0..role.iters {
        let Ok(bytes) = env.read(path, state::STATE_LIMIT) else {
            continue;
        };
        let Some(n) = number(&bytes) else {
            continue;
        };
        env.sleep(Duration::from_millis(5));
        if write_atomic(env, path, format!("{}\n", n + 1).as_bytes()).is_ok() {
            probe.ack(STATE);
        }
    }
}

fn write_in_place(env: &SimEnv, probe: &Probe, role: Role) {
    let opts = baton_core::lock::LockOptions::new(Mode::Kernel, Wait::Forever);
    let path = Path::new(STATE);
    for _ in 0..role.iters {
        look(env, probe);
        let Ok(Some(guard)) = baton_core::lock::acquire(env, path, &opts, &mut |_| {}) else {
            env.sleep(Duration::from_millis(100));
            continue;
        };
        if let Ok(file) = env.open(path, false)
            && let Ok(bytes) = file.read_all(state::STATE_LIMIT)
            && let Some(n) = number(&bytes)
        {
            env.sleep(Duration::from_millis(5));
            let new = format!("{}\n", n + 1);
            if file
                .set_len(0)
                .and_then(|()| file.write_all_at(new.as_bytes(), 0))
                .is_ok()
            {
                probe.ack(STATE);
            }
        }
        let _ = guard.release();
    }
}

fn scenario_with(
    name: &str,
    body: impl Fn(&SimEnv, &Probe, Role) + Send + Sync + 'static,
) -> Scenario {
    let mut s = Scenario::new(name, 3, body);
    s.iters = 3;
    s.faults = FaultKinds::ALL;
    s.setup = Box::new(setup);
    s.end = Box::new(end);
    s
}

pub fn baton_state() -> Scenario {
    scenario_with("baton-state", |env, probe, role| {
        baton_body(Strategy::Locked, env, probe, role)
    })
}

pub fn baton_state_cas() -> Scenario {
    scenario_with("baton-state-cas", |env, probe, role| {
        baton_body(Strategy::Cas { max_attempts: 20 }, env, probe, role)
    })
}

pub fn state_rmw_unlocked() -> Scenario {
    let mut s = scenario_with("state-rmw-unlocked", rmw_unlocked);
    // The field's bug needs no fault at all.
    s.faults = FaultKinds::NONE;
    s
}

pub fn state_write_in_place() -> Scenario {
    let mut s = scenario_with("state-write-in-place", write_in_place);
    s.faults = FaultKinds {
        io_errors: false,
        ..FaultKinds::ALL
    };
    s
}
