//! The work every lock scenario protects: increment a counter file, with
//! baton's atomic write, inside the critical section.

use std::path::Path;
use std::time::Duration;

use baton_core::atomic::write_atomic;
use baton_core::catalogue::Invariant;
use baton_core::env::{Clock, Fs};

use crate::clock::epoch;
use crate::env::{Probe, SimEnv};
use crate::fs::SimFs;
use crate::oracle::Oracle;

pub const DIR: &str = "/w";
pub const COUNTER: &str = "/w/counter";

pub fn setup(fs: &mut SimFs) {
    fs.create_dir(Path::new(DIR), epoch()).expect("fresh fs");
    fs.put(Path::new(COUNTER), b"0\n", epoch())
        .expect("fresh fs");
}

/// Parses a counter file: `None` if torn or empty.
fn parse(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// The critical section: read, think, write n+1 atomically, acknowledge.
pub fn increment(env: &SimEnv, probe: &Probe) {
    probe.enter(COUNTER);
    let counter = Path::new(COUNTER);
    if let Ok(bytes) = env.read(counter, u64::MAX) {
        match parse(&bytes) {
            None => probe.violated(
                Invariant::NoTornState,
                &format!("{COUNTER} read as {:?}", String::from_utf8_lossy(&bytes)),
            ),
            Some(n) => {
                env.sleep(Duration::from_millis(5));
                if write_atomic(env, counter, format!("{}\n", n + 1).as_bytes()).is_ok() {
                    probe.ack(COUNTER);
                }
            }
        }
    }
    probe.exit(COUNTER);
}

/// A reader's critical section: the counter read twice, a while apart,
/// must not change in between (a writer inside beside a reader would).
pub fn read_shared(env: &SimEnv, probe: &Probe) {
    probe.enter_shared(COUNTER);
    let counter = Path::new(COUNTER);
    if let Ok(first) = env.read(counter, u64::MAX) {
        env.sleep(Duration::from_millis(5));
        if let Ok(second) = env.read(counter, u64::MAX)
            && first != second
        {
            probe.violated(
                Invariant::MutualExclusion,
                &format!(
                    "{COUNTER} changed under a reader: {:?} then {:?}",
                    String::from_utf8_lossy(&first),
                    String::from_utf8_lossy(&second)
                ),
            );
        }
    }
    probe.exit_shared(COUNTER);
}

/// No lost update, no torn state: the final counter holds every
/// acknowledged increment.
pub fn end(fs: &SimFs, oracle: &Oracle) -> Result<(), (Invariant, String)> {
    let bytes = fs
        .read(Path::new(COUNTER), u64::MAX)
        .map_err(|e| (Invariant::NoTornState, format!("{COUNTER}: {e}")))?;
    let value = parse(&bytes).ok_or_else(|| {
        (
            Invariant::NoTornState,
            format!("{COUNTER} ends as {:?}", String::from_utf8_lossy(&bytes)),
        )
    })?;
    let acked = oracle.acked(COUNTER);
    if value < acked {
        return Err((
            Invariant::NoLostUpdate,
            format!("{COUNTER} is {value} after {acked} acknowledged increments"),
        ));
    }
    Ok(())
}
