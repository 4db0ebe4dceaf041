//! `baton-lock-file`: the lock file is published already `flock`ed (temp
//! file, flock, link); a waiter that finds it opens it and tries its
//! `flock`: held means a live holder; taken means the holder is gone, and
//! while holding it the waiter checks the name still points at that inode
//! and that the owner is dead, then unlinks. Release, too, unlinks only
//! under the holder's own `flock` after the same check.
//!
//! The owner's liveness is judged by identity (pid and start time), so a
//! crashed owner whose pid was reused by another process is still dead.
//! Two variants show what each half of the protocol is for: judging by pid
//! alone (as `kill(pid, 0)` does) leaves a reused pid's lock in place for
//! ever (the bounded progress check fails), and unlinking without the
//! name re-check lets the slower of two reapers unlink the faster one's
//! fresh lock (mutual exclusion fails). The tests check both.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::progress::Progress;
use crate::symmetry::Permutation;

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
    /// Per inode: its owner and who holds its flock.
    pub owner: Vec<u8>,
    pub flock: Vec<Option<u8>>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
    /// Per process: its pid now belongs to another, unrelated process.
    pub pid_reused: Vec<bool>,
    pub reaped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `create_new` temp, `flock` it, write the record, `link` to the name.
    PublishLocked(u8),
    Open(u8),
    TryLock(u8),
    /// `fstat` + `stat` (same inode?) and the owner's liveness.
    Judge(u8),
    Unlink(u8),
    /// Holder: check the name is its inode, `unlink`, close.
    Release(u8),
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

#[derive(Debug)]
pub struct FileLock {
    pub procs: usize,
    pub crashes: usize,
    pub liveness: Liveness,
    /// Re-check, holding the inode's flock, that the name still points at
    /// it before unlinking.
    pub recheck_name: bool,
}

fn holders(s: &State) -> usize {
    (0..s.pcs.len())
        .filter(|&i| s.alive[i] && matches!(s.pcs[i], Pc::Holding { .. }))
        .count()
}

impl FileLock {
    fn unlock(n: &mut State, p: u8, ino: u8) {
        if n.flock[ino as usize] == Some(p) {
            n.flock[ino as usize] = None;
        }
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
            if may_crash(&s.alive, self.crashes) {
                actions.push(Action::Crash(p));
            }
        }
        for i in 0..self.procs {
            if !s.alive[i] && !s.pid_reused[i] {
                actions.push(Action::ReusePid(i as u8));
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::PublishLocked(p) => {
                if s.name.is_some() {
                    // link: EEXIST (the temp inode is discarded).
                    n.pcs[p as usize] = Pc::Open;
                } else {
                    let ino = s.owner.len() as u8;
                    n.owner.push(p);
                    n.flock.push(Some(p));
                    n.name = Some(ino);
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
                if s.flock[ino as usize].is_some() {
                    n.pcs[p as usize] = Pc::Publish; // held: a live holder; back off
                } else {
                    n.flock[ino as usize] = Some(p);
                    n.pcs[p as usize] = Pc::Judge { ino };
                }
            }
            Action::Judge(p) => {
                let Pc::Judge { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                let owner = s.owner[ino as usize] as usize;
                let owner_dead = match self.liveness {
                    Liveness::Identity => !s.alive[owner],
                    Liveness::PidOnly => !s.alive[owner] && !s.pid_reused[owner],
                };
                let named = s.name == Some(ino) || !self.recheck_name;
                if named && owner_dead {
                    n.pcs[p as usize] = Pc::Reap { ino };
                } else {
                    Self::unlock(&mut n, p, ino);
                    n.pcs[p as usize] = Pc::Publish;
                }
            }
            Action::Unlink(p) => {
                let Pc::Reap { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                // With the re-check, the name is still ours: nobody else
                // unlinks without this inode's flock, which we hold.
                n.name = None;
                n.reaped = true;
                Self::unlock(&mut n, p, ino);
                n.pcs[p as usize] = Pc::Publish;
            }
            Action::Release(p) => {
                let Pc::Holding { ino } = s.pcs[p as usize] else {
                    unreachable!()
                };
                if s.name == Some(ino) {
                    n.name = None;
                }
                Self::unlock(&mut n, p, ino);
                n.pcs[p as usize] = Pc::Done;
            }
            Action::ReusePid(p) => n.pid_reused[p as usize] = true,
            Action::Crash(p) => {
                n.alive[p as usize] = false;
                for holder in n.flock.iter_mut() {
                    if *holder == Some(p) {
                        *holder = None;
                    }
                }
            }
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
    let perm = Permutation::sorting(s.pcs.len(), |i| (s.pcs[i], s.alive[i], s.pid_reused[i]));
    State {
        owner: s.owner.iter().map(|&p| perm.id(p)).collect(),
        flock: s.flock.iter().map(|h| h.map(|p| perm.id(p))).collect(),
        pcs: perm.apply(&s.pcs),
        alive: perm.apply(&s.alive),
        pid_reused: perm.apply(&s.pid_reused),
        ..s.clone()
    }
}

/// Progress: a live process holds the lock, or every live one is done.
pub(crate) fn progress(bound: usize) -> Progress<FileLock> {
    Progress {
        what: "a live process holds the lock, or all are done",
        goal: |s| holders(s) == 1 || (0..s.pcs.len()).all(|i| !s.alive[i] || s.pcs[i] == Pc::Done),
        fault: |a| matches!(a, Action::Crash(_) | Action::ReusePid(_)),
        bound,
    }
}

/// Fault-free steps one waiter needs from anywhere: finish what it is
/// doing (back off, or unlink), open, try the flock, judge, unlink a dead
/// owner's lock, publish its own.
pub const PROGRESS_BOUND: usize = 8;

pub fn check(procs: usize) -> Verdict {
    check_variant(procs, Liveness::Identity, true)
}

/// Checks a variant of the protocol (baton's is `Identity` with the name
/// re-check).
pub fn check_variant(procs: usize, liveness: Liveness, recheck_name: bool) -> Verdict {
    // The mutual-exclusion counterexample is shown short (breadth
    // first, no reduction); the rest are reduced.
    let symmetric = recheck_name;
    exhaust(
        "baton-lock-file",
        procs,
        FileLock {
            procs,
            crashes: procs - 1,
            liveness,
            recheck_name,
        },
        Checks {
            safety: &[Invariant::MutualExclusion],
            examples: &["dead holder's lock reaped", "lock taken after a reap"],
            symmetry: symmetric.then_some(representative as fn(&State) -> State),
            progress: Some(progress(PROGRESS_BOUND)),
        },
    )
}
