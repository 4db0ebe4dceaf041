//! Claims (seed 004): three instances each claim an overlapping set of
//! paths, edit, and let go, over and over.
//!
//! - `baton-claims`: `baton_core::claims`, production code unchanged,
//!   attached claims (held by kernel locks), under every fault. Must hold
//!   `claims` (no file covered by two live instances' claims) and
//!   liveness (a dead claimant's claims are freed).
//! - `claims-shared-json` (seed 004's Option A as written): one
//!   `ACTIVE-TASKS` file that every instance reads, checks for overlap,
//!   appends itself to and writes back (atomically, but with no lock), with
//!   entries older than five minutes cleaned up as stale. Two instances
//!   that read the file before either writes both find no conflict.
//!
//! The oracle is told which files a claim covers (a claim on `src` covers
//! `src/x` and `src/y`), so overlapping claims on a directory and a file
//! in it are caught as two holders of one file.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use baton_core::atomic::write_atomic;
use baton_core::claims::{ClaimError, Claimant, Claimed, Claims, overlaps};
use baton_core::env::{Clock, Fs};
use baton_core::lock::Wait;

use crate::clock::epoch;
use crate::env::{Probe, SimEnv};
use crate::fault::FaultKinds;
use crate::fs::SimFs;
use crate::run::{Role, Scenario};

const ROOT: &str = "/w";
const DIR: &str = "/w/.baton/claims";
const ACTIVE: &str = "/w/ACTIVE-TASKS";

/// Every file there is to edit.
const FILES: [&str; 3] = ["src/x", "src/y", "docs/a"];

/// What each instance claims: a directory against files in it, and sets
/// that overlap in opposite orders.
fn wanted(index: usize) -> Vec<String> {
    let sets: [&[&str]; 3] = [&["src"], &["src/x", "docs"], &["docs/a", "src/y"]];
    sets[index % sets.len()]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The files a set of claimed paths covers.
fn covered(paths: &[String]) -> Vec<&'static str> {
    FILES
        .into_iter()
        .filter(|f| paths.iter().any(|p| overlaps(p, f)))
        .collect()
}

fn setup(fs: &mut SimFs) {
    fs.create_dir(Path::new(ROOT), epoch()).expect("fresh fs");
}

/// Edits the covered files for a while, as a claimant would.
fn edit(env: &SimEnv, probe: &Probe, files: &[&str]) {
    for f in files {
        probe.claimed(f);
    }
    env.sleep(Duration::from_millis(5));
    for f in files {
        probe.unclaimed(f);
    }
}

/// Attempts per round before a process gives up (a liveness failure).
const ATTEMPTS: u32 = 100;

fn baton_body(env: &SimEnv, probe: &Probe, role: Role) {
    let claims = Claims::new(DIR, ROOT);
    let paths = wanted(role.index);
    let who = Claimant {
        id: format!("p{}", role.index),
        task: String::new(),
        ttl: None,
    };
    'round: for _ in 0..role.iters {
        for _ in 0..ATTEMPTS {
            let before = probe.injected();
            match claims.claim(env, &paths, &who, Wait::For(Duration::from_secs(120))) {
                Ok(Claimed::All(held)) => {
                    edit(env, probe, &covered(&held.paths));
                    drop(held);
                    continue 'round;
                }
                Ok(Claimed::Conflict { .. }) => probe.mark("conflict-timeout"),
                Err(ClaimError::Busy { .. }) => {
                    probe.busy_seen("claim");
                    env.sleep(Duration::from_millis(100));
                }
                // An injected I/O error: back off and try again.
                Err(e) => {
                    probe.error_seen(before, "claim", &e);
                    env.sleep(Duration::from_millis(100));
                }
            }
        }
        probe.gave_up(ATTEMPTS);
    }
}

/// Seed 004's stale rule: entries older than this are dropped.
const STALE: Duration = Duration::from_secs(300);

fn wall_ms(env: &SimEnv) -> u64 {
    env.wall()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// `ACTIVE-TASKS` lines: `id path started_ms`.
fn entries(env: &SimEnv) -> Vec<(String, String, u64)> {
    let Ok(bytes) = env.read(Path::new(ACTIVE), u64::MAX) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((
                f.next()?.to_owned(),
                f.next()?.to_owned(),
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

fn write_entries(env: &SimEnv, list: &[(String, String, u64)]) -> bool {
    let text: String = list
        .iter()
        .map(|(id, p, t)| format!("{id} {p} {t}\n"))
        .collect();
    write_atomic(env, Path::new(ACTIVE), text.as_bytes()).is_ok()
}

fn shared_json_body(env: &SimEnv, probe: &Probe, role: Role) {
    let me = format!("p{}", role.index);
    let paths = wanted(role.index);
    for _ in 0..role.iters {
        loop {
            let now = wall_ms(env);
            let mut list: Vec<_> = entries(env)
                .into_iter()
                .filter(|(id, _, t)| *id != me && now.saturating_sub(*t) < STALE.as_millis() as u64)
                .collect();
            let busy = list
                .iter()
                .any(|(_, p, _)| paths.iter().any(|w| overlaps(w, p)));
            if busy {
                env.sleep(Duration::from_millis(50));
                continue;
            }
            list.extend(paths.iter().map(|p| (me.clone(), p.clone(), now)));
            if write_entries(env, &list) {
                break;
            }
        }
        edit(env, probe, &covered(&paths));
        let list: Vec<_> = entries(env)
            .into_iter()
            .filter(|(id, _, _)| *id != me)
            .collect();
        write_entries(env, &list);
    }
}

pub fn baton_claims() -> Scenario {
    let mut s = Scenario::new("baton-claims", 3, baton_body);
    s.iters = 2;
    s.faults = FaultKinds::ALL;
    s.setup = Box::new(setup);
    s
}

pub fn claims_shared_json() -> Scenario {
    let mut s = Scenario::new("claims-shared-json", 3, shared_json_body);
    s.iters = 2;
    // The field's bug needs no fault at all.
    s.faults = FaultKinds::NONE;
    s.setup = Box::new(setup);
    s
}
