//! `baton-lock-kernel`, `baton-lock-file`, `baton-lock-shared` and
//! `baton-lock-handle`: baton's sidecar locks (shared: kernel mode, readers
//! beside writers; handle: kernel mode through sidecars kept open beside
//! one-shot acquirers),
//! production code unchanged, protecting the counter under every fault the
//! simulator has (crashes, machine crashes, pauses, clock skew and jumps,
//! pid reuse, injected I/O errors).

use std::path::Path;
use std::time::Duration;

use baton_core::env::Clock;
use baton_core::lock::{self, Handle, LockError, LockEvent, LockOptions, Mode, Release, Wait};

use super::counter;
use crate::env::{Probe, SimEnv};
use crate::fault::FaultKinds;
use crate::run::{Role, Scenario};

/// Attempts per round before a process gives up (a liveness failure).
const ATTEMPTS: u32 = 100;

fn body(mode: Mode, readers: bool, env: &SimEnv, probe: &Probe, role: Role) {
    let mut opts = LockOptions::new(mode, Wait::For(Duration::from_secs(120)));
    opts.stale = Duration::from_secs(10);
    opts.instance = format!("p{}", role.index);
    // Odd slots read under a shared lock; even ones write.
    let reader = readers && role.index % 2 == 1;
    opts.shared = reader;
    let target = Path::new(counter::COUNTER);
    'round: for _ in 0..role.iters {
        for _ in 0..ATTEMPTS {
            let reaped = std::cell::Cell::new(false);
            let mut mark = |e: LockEvent| match e {
                LockEvent::Reaped { why, .. } => {
                    reaped.set(true);
                    probe.mark(&format!("reaped-{}", why.code()));
                }
                LockEvent::Waiting { .. } => probe.mark("waited"),
                LockEvent::CannotReap { .. } => probe.mark("cannot-reap"),
            };
            let before = probe.injected();
            match lock::acquire(env, target, &opts, &mut mark) {
                Ok(Some(guard)) => {
                    probe.acquired(counter::COUNTER);
                    // Exclusive-file mode's holder_died is "this acquire
                    // reaped a dead holder's lock", which it also announced.
                    if mode == Mode::File && guard.holder_died() != reaped.get() {
                        probe.misreported(&format!(
                            "acquire reaped: {}, but holder_died says {}",
                            reaped.get(),
                            guard.holder_died()
                        ));
                    }
                    if reader {
                        counter::read_shared(env, probe);
                    } else {
                        counter::increment(env, probe);
                    }
                    // Exclusive-file mode says when another tool took the
                    // lock file away meanwhile; kernel mode cannot know.
                    let before = probe.injected();
                    let lost = match guard.release() {
                        Ok(how) => (mode == Mode::File).then_some(how == Release::Lost),
                        Err(e) => {
                            probe.error_seen(before, "release", &e);
                            None
                        }
                    };
                    probe.released(counter::COUNTER, lost);
                    continue 'round;
                }
                Ok(None) => {}
                // An injected I/O error: back off and try again.
                Err(e) => {
                    probe.error_seen(before, "acquire", &e);
                    // Another tool's file at the lock's name stays until a
                    // person removes it: look again in a while.
                    let foreign = matches!(e, LockError::NotOurs { .. });
                    env.sleep(Duration::from_millis(if foreign { 1_000 } else { 100 }));
                }
            }
        }
        probe.gave_up(ATTEMPTS);
    }
}

pub fn scenario(mode: Mode) -> Scenario {
    scenario_with(mode, false)
}

/// Even slots lock through a [`Handle`] opened once; odd ones one-shot.
fn handle_body(env: &SimEnv, probe: &Probe, role: Role) {
    if role.index % 2 == 1 {
        return body(Mode::Kernel, false, env, probe, role);
    }
    let target = Path::new(counter::COUNTER);
    let mut handle = None;
    'round: for _ in 0..role.iters {
        for _ in 0..ATTEMPTS {
            let before = probe.injected();
            let h = match &mut handle {
                Some(h) => h,
                None => match Handle::open(env, target, &format!("p{}", role.index)) {
                    Ok(h) => handle.insert(h),
                    Err(e) => {
                        probe.error_seen(before, "open a handle", &e);
                        env.sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            let mut mark = |_: LockEvent| probe.mark("waited");
            match h.acquire(Wait::For(Duration::from_secs(120)), &mut mark) {
                Ok(Some(guard)) => {
                    counter::increment(env, probe);
                    let _ = guard.release();
                    continue 'round;
                }
                Ok(None) => {}
                // An injected I/O error: back off and try again.
                Err(e) => {
                    probe.error_seen(before, "acquire through a handle", &e);
                    env.sleep(Duration::from_millis(100));
                }
            }
        }
        probe.gave_up(ATTEMPTS);
    }
}

/// Kernel mode, two processes through kept-open handles.
pub fn handle_scenario() -> Scenario {
    let mut s = Scenario::new("baton-lock-handle", 4, handle_body);
    s.iters = 3;
    s.faults = FaultKinds::ALL;
    s.setup = Box::new(counter::setup);
    s.end = Box::new(counter::end);
    s
}

/// Another tool removes, replaces or truncates the lock file now and then
/// (`rm`, `git clean -x`, an editor), on top of every other fault. No lock
/// keeps exclusion then, and the counter may lose an increment; what must
/// hold: others enter beside a holder only once its file was taken away,
/// exclusive-file mode's release then says `Lost`, baton never writes,
/// renames or removes the other tool's file, and every process finishes
/// once the tool is gone (a person removes its file at healing).
pub fn foreign_scenario(mode: Mode) -> Scenario {
    let mut s = Scenario::new("baton-lock-foreign", 3, move |env, probe, role| {
        body(mode, false, env, probe, role)
    });
    s.name = match mode {
        Mode::Kernel => "baton-lock-kernel-foreign",
        Mode::File => "baton-lock-file-foreign",
    }
    .into();
    s.iters = 3;
    s.faults = FaultKinds {
        foreign: true,
        ..FaultKinds::ALL
    };
    s.foreign_targets = vec![(
        Path::new("/w/counter.baton.lock").to_owned(),
        counter::COUNTER.to_owned(),
    )];
    s.setup = Box::new(counter::setup);
    s
}

/// Exclusive-file mode on a filesystem that rejects `flock` (EOPNOTSUPP):
/// `link` still excludes, but reapers cannot be serialised, so nothing is
/// reaped and every holder must release its own lock. A lock left behind
/// (its holder crashed, or its release failed on an I/O error) stays until
/// a person removes it, as baton says (`CannotReap`), so this scenario has
/// pauses, clock skew and pid reuse but not those faults; what must hold
/// is mutual exclusion, liveness, and that no call fails for want of
/// `flock`.
pub fn noflock_scenario() -> Scenario {
    unreapable("baton-lock-file-noflock", |fs| fs.flock_unsupported = true)
}

/// Exclusive-file mode on a filesystem set up by `kind`, where baton reaps
/// nothing: no crash, machine crash or I/O error may leave a lock for a
/// person to remove.
fn unreapable(name: &'static str, kind: fn(&mut crate::fs::SimFs)) -> Scenario {
    let mut s = Scenario::new(name, 3, |env, probe, role| {
        body(Mode::File, false, env, probe, role)
    });
    s.iters = 3;
    s.faults = FaultKinds {
        crash: false,
        machine_crash: false,
        io_errors: false,
        ..FaultKinds::ALL
    };
    s.crash_free = true;
    s.setup = Box::new(move |fs| {
        counter::setup(fs);
        kind(fs);
    });
    s.end = Box::new(counter::end);
    s
}

/// Exclusive-file mode on a userspace filesystem whose `flock` grants
/// every lock and excludes nothing. baton's `auto` mode picks file mode on
/// every FUSE or network filesystem, so this is what it meets there when
/// the filesystem lies: `link` still excludes, but a live holder's lock is
/// no evidence and reapers are not serialised. baton tells (a second open
/// of a lock it holds is granted the lock too) and reaps nothing, as
/// without `flock`; so, as in `noflock_scenario`, no crash leaves a lock
/// behind for a person to remove.
pub fn noop_flock_scenario() -> Scenario {
    unreapable("baton-lock-file-noopflock", |fs| {
        fs.network = Some("fuse");
        fs.flock_noop = true;
    })
}

/// Exclusive-file mode on NFS with slot 1 on a second host whose clock
/// runs 40 s ahead: its pid cannot be looked up here, so a lock it leaves
/// is judged by being seen unchanged for the stale threshold (10 s) on the
/// judge's own monotonic clock, and a live holder, however long paused,
/// by its kernel lock. With `host_local` the mount keeps kernel locks per
/// host (`local_lock=flock`): the other host's holder and reapers are
/// invisible, so baton reaps nothing by observation there (a paused
/// holder could not be told from a dead one) and, as in `unreapable`, no
/// crash may leave a lock behind; pauses of any length stay.
pub fn two_hosts_scenario(host_local: bool) -> Scenario {
    let name = if host_local {
        "baton-lock-file-two-hosts-local"
    } else {
        "baton-lock-file-two-hosts"
    };
    let mut s = if host_local {
        unreapable(name, |_| {})
    } else {
        let mut s = Scenario::new(name, 3, |env, probe, role| {
            body(Mode::File, false, env, probe, role)
        });
        s.iters = 3;
        s.faults = FaultKinds::ALL;
        s.end = Box::new(counter::end);
        s
    };
    s.setup = Box::new(move |fs| {
        counter::setup(fs);
        fs.network = Some("nfs");
        fs.host_local_locks = host_local;
        fs.remote = Some(crate::fs::Remote {
            slots: vec![1],
            clock_offset_ns: 40_000_000_000,
        });
    });
    s
}

/// Kernel mode with two readers (shared locks) beside two writers.
pub fn shared_scenario() -> Scenario {
    scenario_with(Mode::Kernel, true)
}

fn scenario_with(mode: Mode, readers: bool) -> Scenario {
    let mut s = Scenario::new("baton-lock", 4, move |env, probe, role| {
        body(mode, readers, env, probe, role)
    });
    s.iters = 3;
    s.faults = FaultKinds::ALL;
    s.setup = Box::new(counter::setup);
    s.end = Box::new(counter::end);
    s
}
