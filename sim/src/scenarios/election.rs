//! Elections: the field's three protocols from seeds 001 and 000, written
//! faithfully against the environment traits, and baton's.
//!
//! Every instance reports to the oracle when it starts and stops acting as
//! primary; single primary breaks the moment a second one starts while the
//! first still acts. Each acting round also appends one event to a log,
//! so the end-to-end property the field cares about ("every log line
//! written once, not 4x") is checked too: under baton's election each
//! round's event is in the fenced log once, under one epoch.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use baton_core::catalogue::Invariant;
use baton_core::election::{self, Election, ElectionError};
use baton_core::env::{Clock, Fs, OpenFile, Random};
use baton_core::fence;
use baton_core::lease::{self, LeaseTiming};
use baton_core::lock::Wait;

use crate::clock::epoch;
use crate::env::{Probe, SimEnv};
use crate::fault::FaultKinds;
use crate::fs::SimFs;
use crate::oracle::Oracle;
use crate::run::{Role, Scenario};

const ELECTION: &str = "plugin";
const ROUND: Duration = Duration::from_secs(1);
const LOG: &str = "/w/realtime.log";

fn setup(fs: &mut SimFs) {
    fs.create_dir(Path::new("/w"), epoch()).expect("fresh fs");
}

/// The id a plugin instance gives itself: random, as INSTANCE_ID is (or
/// its slot, pinned, so ids sort in slot order).
fn instance_id(env: &SimEnv, role: Role) -> String {
    let id = env.random_u64() >> 32;
    if role.pinned_ids {
        format!("inst-{:08x}", role.index)
    } else {
        format!("inst-{id:08x}")
    }
}

/// Overwrites a file in place (open, truncate, write): what the field's
/// `fs.writeFileSync` does.
fn overwrite(env: &SimEnv, path: &Path, bytes: &[u8]) {
    if let Ok(f) = env.open(path, true) {
        let _ = f.set_len(0).and_then(|()| f.write_all_at(bytes, 0));
    }
}

/// Plain append of a log line (no fencing): the field's `appendFileSync`.
fn log_unfenced(env: &SimEnv, line: &str) {
    if let Ok(f) = env.open(Path::new(LOG), true)
        && let Ok(m) = f.metadata()
    {
        let _ = f.write_all_at(format!("{line}\n").as_bytes(), m.len);
    }
}

/// Acts for one round if `primary`, else stands by.
fn round(env: &SimEnv, probe: &Probe, role: Role, primary: bool, r: u32) {
    if primary {
        probe.acting_primary(ELECTION, 0);
        log_unfenced(env, &format!("round {r} by p{}", role.index));
    } else {
        probe.stepped_down(ELECTION);
    }
    env.sleep(ROUND);
}

/// Instances start within a few milliseconds of each other, as the four
/// instances a plugin host creates at once.
fn start_together(env: &SimEnv) {
    env.sleep(Duration::from_micros(env.random_u64() % 5_000));
}

// ----- registry-rmw (seed 001, original) ----------------------------------

/// Read the lock file; if nobody is recorded (or it is me), write my id:
/// I am primary.
fn registry_rmw(env: &SimEnv, probe: &Probe, role: Role) {
    let me = instance_id(env, role);
    let path = Path::new("/w/plugin.lock");
    start_together(env);
    let holder = env.read(path, u64::MAX).ok().filter(|b| !b.is_empty());
    let primary = match holder {
        None => {
            overwrite(env, path, me.as_bytes());
            true
        }
        Some(id) => id == me.as_bytes(),
    };
    for r in 0..role.iters {
        round(env, probe, role, primary, r);
    }
}

// ----- registry-150ms (seed 001, first fix) --------------------------------

fn read_list(env: &SimEnv, path: &Path) -> Vec<String> {
    env.read(path, u64::MAX)
        .ok()
        .and_then(|b| serde_json_lite(&b))
        .unwrap_or_default()
}

/// The list file holds ids one per line (the field used a JSON array; the
/// format does not matter to the race).
fn serde_json_lite(bytes: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// Register in the list (read-modify-write), wait 150 ms, smallest id
/// among the list and myself wins. Concurrent registrations overwrite each
/// other (last writer wins), so instances see different lists.
fn registry_150ms(env: &SimEnv, probe: &Probe, role: Role) {
    let me = instance_id(env, role);
    let path = Path::new("/w/plugin-instances.json");
    start_together(env);
    let mut ids = read_list(env, path);
    ids.push(me.clone());
    overwrite(env, path, ids.join("\n").as_bytes());
    env.sleep(Duration::from_millis(150));
    // An instance counts itself whether or not its entry survived: seed 001
    // reports that "each sees only 1-2 instances and thinks it's primary".
    let mut ids = read_list(env, path);
    ids.push(me.clone());
    let primary = ids.iter().min() == Some(&me);
    for r in 0..role.iters {
        round(env, probe, role, primary, r);
    }
}

// ----- dir-election (seed 000, second fix) ---------------------------------

const INSTANCES: &str = "/w/.plugin-instances";
const STALE: Duration = Duration::from_secs(10);

/// One file per instance, created atomically; after 150 ms the smallest id
/// is primary; each round, touch my file, delete files older than the
/// stale threshold by my clock, and re-elect.
fn dir_election(env: &SimEnv, probe: &Probe, role: Role) {
    let me = instance_id(env, role);
    let dir = Path::new(INSTANCES);
    // Late joiners: instances start over the first few seconds.
    env.sleep(Duration::from_millis(env.random_u64() % 3_000));
    let _ = env.create_dir(dir);
    let mine = dir.join(format!("{me}.lock"));
    if let Ok(f) = env.create_new(&mine) {
        let _ = f.write_all_at(me.as_bytes(), 0);
    }
    env.sleep(Duration::from_millis(150));
    for r in 0..role.iters {
        let _ = env.set_modified(&mine, env.wall());
        let mut ids = Vec::new();
        for name in env.read_dir(dir).unwrap_or_default() {
            let path = dir.join(&name);
            let Ok(m) = env.metadata(&path) else { continue };
            let age = env.wall().duration_since(m.modified).unwrap_or_default();
            if age > STALE {
                let _ = env.remove_file(&path);
                continue;
            }
            if let Some(id) = name.to_string_lossy().strip_suffix(".lock") {
                ids.push(id.to_owned());
            }
        }
        let primary = ids.iter().min() == Some(&me);
        round(env, probe, role, primary, r);
    }
    let _ = env.remove_file(&mine);
}

// ----- baton-election ------------------------------------------------------

const ELECTION_DIR: &str = "/w/.baton/election";
const FENCED_LOG: &str = "/w/.baton/events.log";

/// Join, campaign; while primary, log two events under the epoch through
/// the fenced sink, then step down so others get terms too.
fn baton_election(env: &SimEnv, probe: &Probe, role: Role) {
    baton_election_member(env, probe, role, false);
}

/// A live member's own file is never removed (a reaper took it for dead)
/// and `status` never reports it dead.
fn check_membership(env: &SimEnv, probe: &Probe, e: &Election, id: &str) {
    let file = e.member_file(id);
    if let Err(err) = env.symlink_metadata(&file) {
        if err.kind() == std::io::ErrorKind::NotFound {
            probe.violated(
                Invariant::SinglePrimary,
                &format!("{id}'s member file was removed while {id} is a member: its id is free for another"),
            );
        }
        return;
    }
    if let Ok(st) = election::status(env, e)
        && st.members.iter().any(|m| m.id == id && !m.alive)
    {
        probe.violated(
            Invariant::SinglePrimary,
            &format!("status reports member {id} dead while it lives"),
        );
    }
}

fn baton_election_member(env: &SimEnv, probe: &Probe, role: Role, check: bool) {
    let e = Election::new(ELECTION_DIR);
    let id = format!("p{}", role.index);
    let member = loop {
        let before = probe.injected();
        match election::join(env, &e, &id) {
            Ok(m) => break m,
            // Our previous incarnation's member file not yet released (its
            // reaper has not judged it dead yet): try again shortly.
            Err(ElectionError::IdInUse { .. }) => env.sleep(Duration::from_millis(100)),
            // An injected I/O error: the same.
            Err(err) => {
                probe.error_seen(before, "join", &err);
                env.sleep(Duration::from_millis(100));
            }
        }
    };
    if check {
        check_membership(env, probe, &e, &id);
    }
    let mut terms = 0;
    while terms < role.iters {
        let before = probe.injected();
        let leadership = match election::campaign(
            env,
            &e,
            &member,
            Wait::For(Duration::from_secs(60)),
            &mut |_| {},
        ) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(err) => {
                probe.error_seen(before, "campaign", &err);
                env.sleep(Duration::from_millis(100));
                continue;
            }
        };
        let epoch = leadership.epoch();
        probe.acting_primary(ELECTION, epoch);
        for k in 0..2 {
            let entry = format!("term {epoch} event {k} by {id}");
            let before = probe.injected();
            match fence::append(env, Path::new(FENCED_LOG), epoch, &entry) {
                Ok(()) => probe.ack(&format!("{epoch}/{k}")),
                Err(fence::FenceError::Fenced { newest, .. }) => probe.violated(
                    Invariant::SinglePrimary,
                    &format!("primary of epoch {epoch} fenced off by epoch {newest}"),
                ),
                Err(fence::FenceError::Busy { .. }) => probe.busy_seen("fenced append"),
                // An injected I/O error: this event is not acknowledged.
                Err(err) => probe.error_seen(before, "fenced append", &err),
            }
            env.sleep(Duration::from_millis(200));
        }
        probe.stepped_down(ELECTION);
        let _ = leadership.step_down();
        terms += 1;
        if check {
            check_membership(env, probe, &e, &id);
        }
        env.sleep(Duration::from_millis(env.random_u64() % 500));
    }
    drop(member);
}

/// Members that check their own membership beside a process that reaps
/// dead members and reads `status` while they join (the last slot).
fn baton_election_reaped(env: &SimEnv, probe: &Probe, role: Role) {
    if role.index + 1 < role.procs {
        return baton_election_member(env, probe, role, true);
    }
    let e = Election::new(ELECTION_DIR);
    for _ in 0..40 {
        let _ = election::reap(env, &e, false);
        let _ = election::status(env, &e);
        env.sleep(Duration::from_millis(env.random_u64() % 50));
    }
}

/// The lease duration of the lease-mode scenarios (client-go's default).
const LEASE: Duration = Duration::from_secs(15);

/// Lease mode: take the lease, act (log) only while it is valid, renew
/// between actions, release after two events. With `report_acting`, tell
/// the oracle when acting starts and stops (single primary is checked);
/// without, only the fenced log is (the pauses break the assumption).
fn baton_election_lease(env: &SimEnv, probe: &Probe, role: Role, report_acting: bool) {
    let e = Election::new(ELECTION_DIR);
    let id = format!("p{}", role.index);
    let timing = LeaseTiming::from_lease(LEASE);
    let mut terms = 0;
    let mut attempts = 0;
    while terms < role.iters && attempts < 100 {
        attempts += 1;
        let wait = Wait::For(Duration::from_secs(120));
        let before = probe.injected();
        // The holder's contract, checked from outside it: `valid()` is
        // false once the renew deadline has passed since the last
        // successful renewal *started*. That start is not seen here, but
        // it lies between `asked` and `granted`, which bound it.
        let asked = env.monotonic();
        let mut holder = match lease::campaign(env, &e, &id, timing, wait) {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(err) => {
                probe.error_seen(before, "lease campaign", &err);
                env.sleep(Duration::from_millis(100));
                continue;
            }
        };
        // Bounds on when the last successful renewal (or the takeover)
        // started: no earlier than `lower`, no later than `granted`.
        let mut lower = asked;
        let mut granted = env.monotonic();
        let epoch = holder.epoch();
        if report_acting {
            probe.acting_primary(ELECTION, epoch);
        }
        for k in 0..2 {
            let now = env.monotonic();
            let valid = holder.valid();
            if valid && now.saturating_since(granted) >= timing.renew_deadline {
                probe.violated(
                    Invariant::SinglePrimary,
                    &format!("epoch {epoch}: valid() past the renew deadline of its last renewal"),
                );
            }
            if !valid {
                break;
            }
            let entry = format!("term {epoch} event {k} by {id}");
            let before = probe.injected();
            match fence::append(env, Path::new(FENCED_LOG), epoch, &entry) {
                Ok(()) => probe.ack(&format!("{epoch}/{k}")),
                Err(fence::FenceError::Fenced { newest, .. }) => {
                    // A stale primary's write, rejected: the fence at work.
                    probe.mark("fenced-stale-primary");
                    if report_acting {
                        probe.violated(
                            Invariant::SinglePrimary,
                            &format!(
                                "lease of epoch {epoch} still valid after epoch {newest} wrote"
                            ),
                        );
                    }
                    break;
                }
                Err(fence::FenceError::Busy { .. }) => probe.busy_seen("fenced append"),
                Err(err) => probe.error_seen(before, "fenced append", &err),
            }
            env.sleep(timing.retry);
            let renew_asked = env.monotonic();
            let seq = holder.record.seq;
            let renewed = holder.renew();
            let renew_done = env.monotonic();
            if report_acting {
                let certainly_valid = renew_done.saturating_since(lower) < timing.renew_deadline;
                check_renewal(env, probe, &e, &id, &renewed, seq, &holder, certainly_valid);
            }
            match renewed {
                Ok(true) => (lower, granted) = (renew_asked, renew_done),
                _ => break,
            }
        }
        if report_acting {
            probe.stepped_down(ELECTION);
        }
        let _ = holder.release();
        terms += 1;
        env.sleep(Duration::from_millis(env.random_u64() % 500));
    }
}

/// What a renewal said against the lease it left (no pauses in this
/// scenario, so nothing moves between the renewal and this look, but for
/// a challenger that saw the lease unchanged for its whole duration).
/// A renewal that said yes must have published the next version, naming
/// this holder; one that said no while the lease was certainly still valid
/// and nobody else wrote the next version refused a renewal it owed.
#[allow(clippy::too_many_arguments)]
fn check_renewal(
    env: &SimEnv,
    probe: &Probe,
    e: &Election,
    id: &str,
    renewed: &Result<bool, baton_core::election::ElectionError>,
    seq_before: u64,
    holder: &lease::LeaseHolder<'_, SimEnv>,
    certainly_valid: bool,
) {
    let Ok(Some(current)) = lease::current(env, e) else {
        return;
    };
    match renewed {
        Ok(true) if current.seq == holder.record.seq && current.holder != id => probe.violated(
            Invariant::SinglePrimary,
            &format!("renewed version {} names {}, not {id}", current.seq, current.holder),
        ),
        Ok(true) if current.seq < holder.record.seq || holder.record.seq != seq_before + 1 => {
            probe.violated(
                Invariant::SinglePrimary,
                &format!(
                    "renewal said yes, but the lease is at version {} and the holder at {} (was {seq_before})",
                    current.seq, holder.record.seq
                ),
            )
        }
        Ok(false) if certainly_valid && current.seq == seq_before && current.holder == id => {
            probe.violated(
                Invariant::SinglePrimary,
                &format!("renewal refused at version {seq_before} while the lease was valid and still {id}'s"),
            )
        }
        _ => {}
    }
}

/// Every acknowledged event is in the log exactly once, under its epoch,
/// and epochs never go down.
fn fenced_log_end(fs: &SimFs, oracle: &Oracle) -> Result<(), (Invariant, String)> {
    let bytes = fs.read(Path::new(FENCED_LOG), u64::MAX).unwrap_or_default();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut last = 0;
    for line in String::from_utf8_lossy(&bytes).lines() {
        let Some((epoch, entry)) = line.split_once('\t') else {
            continue; // a torn last line after a machine crash
        };
        let epoch: u64 = epoch.parse().unwrap_or(0);
        if epoch < last {
            return Err((
                Invariant::SinglePrimary,
                format!("log goes back from epoch {last} to {epoch}: {entry}"),
            ));
        }
        last = epoch;
        *seen.entry(entry.to_owned()).or_default() += 1;
    }
    if let Some((entry, n)) = seen.iter().find(|(_, n)| **n > 1) {
        return Err((
            Invariant::SinglePrimary,
            format!("{entry:?} logged {n} times"),
        ));
    }
    // And every acknowledged event is there (one cut short by a crash
    // before its acknowledgement may or may not be).
    let logged: Vec<String> = seen.keys().filter_map(|e| event_key(e)).collect();
    if let Some(lost) = oracle.acked_keys().find(|k| !logged.contains(k)) {
        return Err((
            Invariant::NoLostUpdate,
            format!("acknowledged event {lost} is not in the log"),
        ));
    }
    Ok(())
}

/// `term E event K by ID` -> `E/K`, the key the event was acknowledged by.
fn event_key(entry: &str) -> Option<String> {
    let rest = entry.strip_prefix("term ")?;
    let (epoch, rest) = rest.split_once(" event ")?;
    let (k, _) = rest.split_once(" by ")?;
    Some(format!("{epoch}/{k}"))
}

fn field(name: &str, procs: usize, body: fn(&SimEnv, &Probe, Role)) -> Scenario {
    let mut s = Scenario::new(name, procs, body);
    s.iters = 5;
    s.faults = FaultKinds {
        io_errors: false,
        machine_crash: false,
        ..FaultKinds::ALL
    };
    s.setup = Box::new(setup);
    s
}

pub fn registry_rmw_scenario() -> Scenario {
    field("registry-rmw", 4, registry_rmw)
}

pub fn registry_150ms_scenario() -> Scenario {
    field("registry-150ms", 4, registry_150ms)
}

pub fn dir_election_scenario() -> Scenario {
    field("dir-election", 4, dir_election)
}

/// Lease mode within its assumptions: pauses of at most 1 s in all per
/// process (the lease leaves `L - D - R` = 3 s), drift of parts per million.
pub fn baton_election_lease_scenario() -> Scenario {
    let mut s = Scenario::new("baton-election-lease", 4, |env, probe, role| {
        baton_election_lease(env, probe, role, true)
    });
    s.iters = 2;
    s.faults = FaultKinds::ALL;
    s.max_pause = Duration::from_secs(1);
    s.pause_total = Some(Duration::from_secs(1));
    s.liveness_bound = Duration::from_secs(600);
    s.setup = Box::new(setup);
    s.end = Box::new(fenced_log_end);
    s
}

/// Lease mode outside its assumptions: pauses up to 120 s let a paused
/// primary resume believing it leads. Single primary is not claimed here;
/// the fenced log must still hold every acknowledged event exactly once.
pub fn baton_election_lease_paused_scenario() -> Scenario {
    let mut s = Scenario::new("baton-election-lease-paused", 4, |env, probe, role| {
        baton_election_lease(env, probe, role, false)
    });
    s.iters = 2;
    s.faults = FaultKinds::ALL;
    s.liveness_bound = Duration::from_secs(600);
    s.setup = Box::new(setup);
    s.end = Box::new(fenced_log_end);
    s
}

/// `baton-election-reaped`: baton's election with a reaper and a status
/// reader running while members join and campaign.
pub fn baton_election_reaped_scenario() -> Scenario {
    let mut s = Scenario::new("baton-election-reaped", 4, baton_election_reaped);
    s.iters = 2;
    s.faults = FaultKinds::ALL;
    s.setup = Box::new(setup);
    s.end = Box::new(fenced_log_end);
    s
}

pub fn baton_election_scenario() -> Scenario {
    let mut s = Scenario::new("baton-election", 4, baton_election);
    s.iters = 2;
    s.faults = FaultKinds::ALL;
    s.setup = Box::new(setup);
    s.end = Box::new(fenced_log_end);
    s
}
