//! `baton-lock-file`: the lock file is published already `flock`ed (temp
//! file, flock, link); a waiter that finds it opens it and tries its
//! `flock`: held means a live holder; taken means the holder is gone, and
//! while holding it the waiter checks the name still points at that inode
//! and that the owner is stale, then unlinks. Release, too, unlinks only
//! under the holder's own `flock` after the same check.
//!
//! The owner's liveness is judged by identity (pid and start time), so a
//! crashed owner whose pid was reused by another process is still dead.
//! Two variants show what each half of the protocol is for: judging by pid
//! alone (as `kill(pid, 0)` does) leaves a reused pid's lock in place for
//! ever (the bounded progress check fails), and unlinking without the
//! name re-check lets the slower of two reapers unlink the faster one's
//! fresh lock (mutual exclusion fails). The tests check both.
//!
//! [`Hosts`] puts process 0 on another host sharing the filesystem. Its
//! liveness cannot be checked from this host (nor ours from there), so its
//! lock is judged by observation: the holder refreshes the lock file's
//! mtime every tick while it runs, and a waiter reaps only after seeing
//! no refresh for [`STALE`] ticks. (A refresh restarts every watcher's
//! count at once, a little earlier than the real watcher notices it, so the
//! model may reap sooner than the code, never later: what holds here holds
//! there.) Where `flock` is carried between hosts (NFS's default,
//! `local_lock=none`) the protocol holds even with a holder paused for
//! ever. Where it is host-local (`local_lock=flock` or `all`), reaping by
//! observation would let two reapers on different hosts both unlink, and
//! would reap a paused holder: the variant `observe_host_local` shows both,
//! so baton never reaps another host's lock there (it reports
//! `CannotReap`): safe, at the price of a crashed remote holder's lock
//! staying until removed by hand, which the progress check reports.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::pause::Pauses;
use crate::progress::Progress;
use crate::symmetry::Permutation;

/// Ticks without a refresh after which an unverifiable owner's lock is
/// stale (the holder refreshes every tick: a third of it, as the code).
pub const STALE: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Publish,
    /// `open` the lock file's name.
    Open,
    /// `try_lock` the inode opened.
    TryLock {
        ino: u8,
    },
    /// Holding that inode's flock: check the name, judge the owner.
    Judge {
        ino: u8,
    },
    /// `unlink` the name (still ours to remove).
    Reap {
        ino: u8,
    },
    Holding {
        ino: u8,
    },
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The inode `FILE.lock` names.
    pub name: Option<u8>,
    /// Per inode: its owner.
    pub owner: Vec<u8>,
    /// Per inode and host: who holds its flock (one slot per inode where
    /// locks are shared between hosts).
    pub flock: Vec<Option<u8>>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
    /// Per process: its pid now belongs to another, unrelated process.
    pub pid_reused: Vec<bool>,
    /// Per process: the inode it watches for staleness, and for how many
    /// ticks it has seen no refresh.
    pub watch: Vec<Option<(u8, u8)>>,
    /// Per holder: ticks since its last refresh.
    pub since_refresh: Vec<u8>,
    pub pause: Pauses,
    pub reaped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `create_new` temp, `flock` it, write the record, `link` to the name.
    PublishLocked(u8),
    Open(u8),
    TryLock(u8),
    /// `fstat` + `stat` (same inode?) and the owner's staleness.
    Judge(u8),
    Unlink(u8),
    /// Holder: `futimens` on its descriptor.
    Refresh(u8),
    /// Holder: check the name is its inode, `unlink`, close.
    Release(u8),
    Tick,
    Pause(u8),
    Crash(u8),
    /// A dead process's pid is given to a new, unrelated process.
    ReusePid(u8),
}

/// How a reaper decides the owner is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// baton: the pid's process must have the recorded start time.
    Identity,
    /// `kill(pid, 0)`: any process with the pid counts as the owner.
    PidOnly,
}

/// Where the processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hosts {
    /// All on one host.
    One,
    /// Process 0 on another host; `shared_flock`: kernel locks are carried
    /// between the hosts.
    Two { shared_flock: bool },
}

#[derive(Debug)]
pub struct FileLock {
    pub procs: usize,
    pub crashes: usize,
    pub pauses: u8,
    pub hosts: Hosts,
    pub liveness: Liveness,
    /// Re-check, holding the inode's flock, that the name still points at
    /// it before unlinking.
    pub recheck_name: bool,
    /// Reap another host's lock by observation even where kernel locks are
    /// host-local (baton does not: it reports `CannotReap`).
    pub observe_host_local: bool,
}

fn holders(s: &State) -> usize {
    (0..s.pcs.len())
        .filter(|&i| s.alive[i] && matches!(s.pcs[i], Pc::Holding { .. }))
        .count()
}

impl FileLock {
    fn host(&self, p: u8) -> usize {
        usize::from(self.hosts != Hosts::One && p == 0)
    }

    /// The flock slot of `ino` as process `p` sees it.
    fn slot(&self, ino: u8, p: u8) -> usize {
        match self.hosts {
            Hosts::Two {
                shared_flock: false,
            } => 2 * ino as usize + self.host(p),
            _ => 2 * ino as usize,
        }
    }

    /// Whether time matters: only observers of another host's locks read it.
    fn timed(&self) -> bool {
        self.hosts != Hosts::One
    }

    fn unlock(&self, n: &mut State, p: u8, ino: u8) {
        let slot = self.slot(ino, p);
        if n.flock[slot] == Some(p) {
            n.flock[slot] = None;
        }
    }

    /// Whether `p`, holding `ino`'s flock, may unlink its name now.
    fn stale(&self, s: &State, p: u8, ino: u8) -> bool {
        let owner = s.owner[ino as usize];
        if self.host(owner) == self.host(p) {
            let o = owner as usize;
            return match self.liveness {
                Liveness::Identity => !s.alive[o],
                Liveness::PidOnly => !s.alive[o] && !s.pid_reused[o],
            };
        }
        let host_local = self.hosts
            == Hosts::Two {
                shared_flock: false,
            };
        if host_local && !self.observe_host_local {
            return false;
        }
        matches!(s.watch[p as usize], Some((w, age)) if w == ino && age >= STALE)
    }
}

impl Model for FileLock {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            name: None,
            owner: Vec::new(),
            flock: Vec::new(),
            pcs: vec![Pc::Publish; self.procs],
            alive: vec![true; self.procs],
            pid_reused: vec![false; self.procs],
            watch: vec![None; self.procs],
            since_refresh: vec![0; self.procs],
            pause: Pauses::default(),
            reaped: false,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..self.procs {
            if !s.alive[i] {
                continue;
            }
            let p = i as u8;
            actions.push(match s.pcs[i] {
                Pc::Publish => Action::PublishLocked(p),
                Pc::Open => Action::Open(p),
                Pc::TryLock { .. } => Action::TryLock(p),
                Pc::Judge { .. } => Action::Judge(p),
                Pc::Reap { .. } => Action::Unlink(p),
                Pc::Holding { .. } => Action::Release(p),
                Pc::Done => continue,
            });
            if self.timed() && matches!(s.pcs[i], Pc::Holding { .. }) && s.since_refresh[i] > 0 {
                actions.push(Action::Refresh(p));
            }
            if may_crash(&s.alive, self.crashes) {
                actions.push(Action::Crash(p));
            }
            if s.pause.available(self.pauses) {
                actions.push(Action::Pause(p));
            }
        }
        for i in 0..self.procs {
            if !s.alive[i] && !s.pid_reused[i] {
                actions.push(Action::ReusePid(i as u8));
            }
        }
        // A running holder refreshes its lock every tick.
        let overdue = (0..self.procs).any(|i| {
            s.alive[i]
                && matches!(s.pcs[i], Pc::Holding { .. })
                && s.since_refresh[i] >= 1
                && !s.pause.is_paused(i as u8)
        });
        if self.timed() && !overdue {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        if let Action::PublishLocked(p)
        | Action::Open(p)
        | Action::TryLock(p)
        | Action::Judge(p)
        | Action::Unlink(p)
        | Action::Refresh(p)
        | Action::Release(p) = action
        {
            n.pause.resume(p);
        }
        match action {
            Action::PublishLocked(p) => {
                if s.name.is_some() {
                    // link: EEXIST (the temp inode is discarded).
                    n.pcs[p as usize] = Pc::Open;
                } else {
                    let ino = s.owner.len() as u8;
                    n.owner.push(p);
                    n.flock.extend([None, None]);
                    let slot = self.slot(ino, p);
                    n.flock[slot] = Some(p);
                    n.name = Some(ino);
                    n.since_refresh[p as usize] = 0;
                    n.pcs[p as usize] = Pc::Holding { ino };
                }
            }
            Action::Open(p) => {
                n.pcs[p as usize] = match s.name {
                    Some(ino) => Pc::TryLock { ino },
                    None => Pc::Publish,
                };
            }
            Action::TryLock(p) => {
                let Pc::TryLock { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                let slot = self.slot(ino, p);
                if s.flock[slot].is_some() {
                    n.pcs[p as usize] = Pc::Publish; // held: a live holder; back off
                } else {
                    n.flock[slot] = Some(p);
                    n.pcs[p as usize] = Pc::Judge { ino };
                }
            }
            Action::Judge(p) => {
                let Pc::Judge { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                let named = s.name == Some(ino) || !self.recheck_name;
                if named && self.stale(s, p, ino) {
                    n.pcs[p as usize] = Pc::Reap { ino };
                } else {
                    // Another host's lock: start watching it, unless
                    // already watching it.
                    let foreign = self.host(s.owner[ino as usize]) != self.host(p);
                    if foreign && n.watch[p as usize].is_none_or(|(w, _)| w != ino) {
                        n.watch[p as usize] = Some((ino, 0));
                    }
                    self.unlock(&mut n, p, ino);
                    n.pcs[p as usize] = Pc::Publish;
                }
            }
            Action::Unlink(p) => {
                let Pc::Reap { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                // With the re-check, the name is still ours: nobody else
                // unlinks without this inode's flock, which we hold (when
                // flocks reach every remover).
                n.name = None;
                n.reaped = true;
                n.watch[p as usize] = None;
                self.unlock(&mut n, p, ino);
                n.pcs[p as usize] = Pc::Publish;
            }
            Action::Refresh(p) => {
                let Pc::Holding { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                n.since_refresh[p as usize] = 0;
                for w in n.watch.iter_mut().flatten() {
                    if w.0 == ino {
                        w.1 = 0;
                    }
                }
            }
            Action::Release(p) => {
                let Pc::Holding { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                if s.name == Some(ino) {
                    n.name = None;
                }
                self.unlock(&mut n, p, ino);
                n.pcs[p as usize] = Pc::Done;
            }
            Action::Tick => {
                for w in n.watch.iter_mut().flatten() {
                    w.1 = (w.1 + 1).min(STALE);
                }
                for i in 0..self.procs {
                    if matches!(n.pcs[i], Pc::Holding { .. }) {
                        n.since_refresh[i] = (n.since_refresh[i] + 1).min(1);
                    }
                }
            }
            Action::Pause(p) => n.pause.pause(p),
            Action::ReusePid(p) => n.pid_reused[p as usize] = true,
            Action::Crash(p) => {
                n.alive[p as usize] = false;
                n.watch[p as usize] = None;
                n.since_refresh[p as usize] = 0;
                n.pause.resume(p);
                for holder in n.flock.iter_mut() {
                    if *holder == Some(p) {
                        *holder = None;
                    }
                }
            }
        }
        if n == *s {
            return None; // a tick that changes nothing
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::MutualExclusion.name(), |_, s: &State| {
                holders(s) <= 1
            }),
            Property::sometimes("dead holder's lock reaped", |_, s: &State| s.reaped),
            Property::sometimes("lock taken after a reap", |_, s: &State| {
                s.reaped && holders(s) == 1
            }),
        ]
    }
}

/// Processes renumbered in a canonical order: the protocol never
/// compares process ids, only inodes and owners.
pub fn representative(s: &State) -> State {
    renumbered(s, false)
}

/// The same, keeping process 0 in place (it is the one on another host).
pub fn representative_but_0(s: &State) -> State {
    renumbered(s, true)
}

fn renumbered(s: &State, keep_0: bool) -> State {
    let perm = Permutation::sorting(s.pcs.len(), |i| {
        (
            keep_0 && i != 0,
            s.pcs[i],
            s.alive[i],
            s.pid_reused[i],
            s.watch[i],
            s.since_refresh[i],
        )
    });
    let mut flock = vec![None; s.flock.len()];
    for (slot, holder) in s.flock.iter().enumerate() {
        flock[slot] = holder.map(|p| perm.id(p));
    }
    State {
        owner: s.owner.iter().map(|&p| perm.id(p)).collect(),
        flock,
        pcs: perm.apply(&s.pcs),
        alive: perm.apply(&s.alive),
        pid_reused: perm.apply(&s.pid_reused),
        watch: perm.apply(&s.watch),
        since_refresh: perm.apply(&s.since_refresh),
        pause: s.pause.renumbered(|p| perm.id(p)),
        ..s.clone()
    }
}

/// Progress: a live process holds the lock, or every live one is done.
pub(crate) fn progress(bound: usize) -> Progress<FileLock> {
    Progress {
        what: "a live process holds the lock, or all are done",
        goal: |s| holders(s) == 1 || (0..s.pcs.len()).all(|i| !s.alive[i] || s.pcs[i] == Pc::Done),
        fault: |a| matches!(a, Action::Crash(_) | Action::ReusePid(_) | Action::Pause(_)),
        bound,
    }
}

/// Fault-free steps one waiter needs from anywhere on one host: finish
/// what it is doing (back off, or unlink), open, try the flock, judge,
/// unlink a dead owner's lock, publish its own.
pub const PROGRESS_BOUND: usize = 8;
/// Across hosts the waiter first watches the silent lock for `STALE`
/// ticks, then goes round once more.
pub const PROGRESS_BOUND_HOSTS: usize = PROGRESS_BOUND + STALE as usize + 4;

/// The catalogue's configuration: baton's protocol with process 0 on
/// another host, kernel locks carried between hosts, any number of crashes
/// but one, a pause, pid reuse.
pub fn catalogue(procs: usize) -> FileLock {
    FileLock {
        procs,
        crashes: procs - 1,
        pauses: 1,
        hosts: Hosts::Two { shared_flock: true },
        liveness: Liveness::Identity,
        recheck_name: true,
        observe_host_local: false,
    }
}

pub fn check(procs: usize) -> Verdict {
    check_config(catalogue(procs))
}

/// Checks a variant of the protocol on one host (baton's is `Identity`
/// with the name re-check).
pub fn check_variant(procs: usize, liveness: Liveness, recheck_name: bool) -> Verdict {
    check_config(FileLock {
        procs,
        crashes: procs - 1,
        pauses: 0,
        hosts: Hosts::One,
        liveness,
        recheck_name,
        observe_host_local: false,
    })
}

/// Checks baton's protocol with process 0 on another host, one crash and
/// `pauses` pauses; `observe_host_local` is the variant that reaps by
/// observation where kernel locks are host-local.
pub fn check_hosts(
    procs: usize,
    shared_flock: bool,
    pauses: u8,
    observe_host_local: bool,
) -> Verdict {
    check_config(FileLock {
        procs,
        crashes: 1,
        pauses,
        hosts: Hosts::Two { shared_flock },
        liveness: Liveness::Identity,
        recheck_name: true,
        observe_host_local,
    })
}

fn check_config(model: FileLock) -> Verdict {
    // Counterexamples are shown short (breadth first, no reduction); the
    // protocol that holds is reduced.
    let symmetry: Option<fn(&State) -> State> = match model.hosts {
        _ if !model.recheck_name || model.observe_host_local => None,
        Hosts::One => Some(representative),
        Hosts::Two { .. } => Some(representative_but_0),
    };
    let bound = match model.hosts {
        Hosts::One => PROGRESS_BOUND,
        Hosts::Two { .. } => PROGRESS_BOUND_HOSTS,
    };
    exhaust(
        "baton-lock-file",
        model.procs,
        model,
        Checks {
            safety: &[Invariant::MutualExclusion],
            examples: &["dead holder's lock reaped", "lock taken after a reap"],
            symmetry,
            progress: Some(progress(bound)),
        },
    )
}
