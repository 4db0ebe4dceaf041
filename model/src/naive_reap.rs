//! `naive-reap`: create the lock file exclusively; if it exists and looks
//! old, unlink it and try again. The unlink removes whatever the name
//! points at *now*, which may be someone else's fresh lock.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Verdict, exhaust, may_crash};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    Try,
    /// Saw the lock file exist: stat it next.
    Stat,
    /// Judged it stale: unlink next.
    Unlink,
    Holding,
    Done,
}

/// The lock file: which inode, whose, and whether it looks old.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LockFile {
    pub ino: u8,
    pub owner: u8,
    pub old: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub lock: Option<LockFile>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
    pub next_ino: u8,
    pub reaped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `open(O_CREAT|O_EXCL)` of the lock file.
    CreateExclusive(u8),
    /// `stat` of the lock file, judged by age.
    Stat(u8),
    /// `unlink` of the lock file.
    Unlink(u8),
    /// Leave the critical section: `unlink` of the lock file.
    Release(u8),
    /// Time passes: the lock's mtime is older than the stale threshold by
    /// some process's clock (its holder crashed or paused, or clocks differ).
    Age,
    Crash(u8),
}

pub struct NaiveReap {
    pub procs: usize,
    pub crashes: usize,
}

fn holders(s: &State) -> usize {
    (0..s.pcs.len())
        .filter(|&i| s.alive[i] && s.pcs[i] == Pc::Holding)
        .count()
}

impl Model for NaiveReap {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            lock: None,
            pcs: vec![Pc::Try; self.procs],
            alive: vec![true; self.procs],
            next_ino: 1,
            reaped: false,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for i in 0..self.procs {
            if !s.alive[i] {
                continue;
            }
            let p = i as u8;
            match s.pcs[i] {
                Pc::Try => actions.push(Action::CreateExclusive(p)),
                Pc::Stat => actions.push(Action::Stat(p)),
                Pc::Unlink => actions.push(Action::Unlink(p)),
                Pc::Holding => actions.push(Action::Release(p)),
                Pc::Done => {}
            }
            if s.pcs[i] != Pc::Done && may_crash(&s.alive, self.crashes) {
                actions.push(Action::Crash(p));
            }
        }
        if s.lock.is_some_and(|l| !l.old) {
            actions.push(Action::Age);
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::CreateExclusive(p) => {
                if s.lock.is_some() {
                    n.pcs[p as usize] = Pc::Stat;
                } else {
                    n.lock = Some(LockFile {
                        ino: s.next_ino,
                        owner: p,
                        old: false,
                    });
                    n.next_ino += 1;
                    n.pcs[p as usize] = Pc::Holding;
                }
            }
            Action::Stat(p) => {
                n.pcs[p as usize] = match s.lock {
                    Some(l) if l.old => Pc::Unlink,
                    _ => Pc::Try,
                };
            }
            Action::Unlink(p) => {
                n.reaped |= s.lock.is_some();
                n.lock = None;
                n.pcs[p as usize] = Pc::Try;
            }
            Action::Release(p) => {
                n.lock = None;
                n.pcs[p as usize] = Pc::Done;
            }
            Action::Age => {
                if let Some(l) = &mut n.lock {
                    l.old = true;
                }
            }
            Action::Crash(p) => n.alive[p as usize] = false,
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::MutualExclusion.name(), |_, s: &State| {
                holders(s) <= 1
            }),
            Property::sometimes("lock taken", |_, s: &State| holders(s) == 1),
            Property::sometimes("stale lock reaped", |_, s: &State| s.reaped),
        ]
    }
}

pub fn check(procs: usize) -> Verdict {
    exhaust(
        "naive-reap",
        procs,
        NaiveReap { procs, crashes: 1 },
        &[Invariant::MutualExclusion],
        &["lock taken", "stale lock reaped"],
    )
}
