//! `baton-lock-file`: the lock file is published already `flock`ed (temp
//! file, flock, link); a waiter that finds it opens it and tries its
//! `flock`: held means a live holder; taken means the holder is gone, and
//! while holding it the waiter checks the name still points at that inode
//! and that the owner is dead, then unlinks. Release, too, unlinks only
//! under the holder's own `flock` after the same check.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Verdict, exhaust, may_crash};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

pub struct FileLock {
    pub procs: usize,
    pub crashes: usize,
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
                let owner_dead = !s.alive[s.owner[ino as usize] as usize];
                if s.name == Some(ino) && owner_dead {
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
                n.name = None; // the checked name, unchanged under our flock
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

pub fn check(procs: usize) -> Verdict {
    exhaust(
        "baton-lock-file",
        procs,
        FileLock { procs, crashes: 1 },
        &[Invariant::MutualExclusion],
        &["dead holder's lock reaped", "lock taken after a reap"],
    )
}
