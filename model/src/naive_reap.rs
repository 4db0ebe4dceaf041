//! `naive-reap`: create the lock file exclusively; if it exists and its
//! mtime is older than the stale threshold by *my* clock, unlink it and
//! try again. The unlink removes whatever the name points at *now*, which
//! may be someone else's fresh lock; release, too, unlinks by name.
//!
//! Time is explicit. A global tick advances every process's wall clock;
//! each process's clock is offset by a skew fixed at the start (every
//! combination within the bound is an initial state), and the lock's mtime
//! is stamped by its creator's clock. A holder leaves the critical section
//! within [`HOLD`] ticks unless it is paused (a fault), so with no skew and
//! no pause a lock is only ever judged stale after its holder crashed.
//! The three faults each break mutual exclusion on their own, and the
//! model finds each (`model/tests/models.rs`): a clock ahead by more than
//! the margin, a paused holder, and (with three processes) two reapers of
//! one crashed holder's lock.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::pause::Pauses;

/// The stale threshold, in ticks: a lock whose mtime is more than this
/// behind the reader's clock is judged abandoned.
pub const STALE: u8 = 2;
/// Ticks a holder that is not paused may spend holding the lock.
pub const HOLD: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    Try,
    /// Saw the lock file exist: stat it next.
    Stat,
    /// Judged it stale: unlink next.
    Unlink,
    Holding,
    Done,
}

/// The lock file: whose, and its mtime by its creator's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LockFile {
    pub owner: u8,
    pub mtime: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub lock: Option<LockFile>,
    /// Global time, in ticks.
    pub now: u8,
    /// Per process: its clock reads `now + skew` (skews stored shifted by
    /// the bound so they are unsigned).
    pub skew: Vec<u8>,
    pub pcs: Vec<Pc>,
    pub alive: Vec<bool>,
    /// Per process: ticks spent holding the lock.
    pub held: Vec<u8>,
    pub pause: Pauses,
    pub reaped: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `open(O_CREAT|O_EXCL)` of the lock file; its mtime is the creator's
    /// clock.
    CreateExclusive(u8),
    /// `stat` of the lock file, judged by age on the reader's clock.
    Stat(u8),
    /// `unlink` of the lock file.
    Unlink(u8),
    /// Leave the critical section: `unlink` of the lock file.
    Release(u8),
    /// Time passes.
    Tick,
    /// The process stops running (SIGSTOP, a laptop lid) until its next
    /// step, however many ticks pass.
    Pause(u8),
    Crash(u8),
}

/// Which faults the model may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    pub crashes: usize,
    pub pauses: u8,
    /// Clocks differ by up to this many ticks either way.
    pub skew: u8,
}

#[derive(Debug)]
pub struct NaiveReap {
    pub procs: usize,
    pub faults: Faults,
}

fn holders(s: &State) -> usize {
    (0..s.pcs.len())
        .filter(|&i| s.alive[i] && s.pcs[i] == Pc::Holding)
        .count()
}

impl NaiveReap {
    /// Enough time for a lock to be created, go stale by the slowest
    /// clock, and be reaped and re-created once more.
    fn horizon(&self) -> u8 {
        STALE + HOLD + 2 * self.faults.skew + 2
    }

    fn clock(&self, s: &State, p: u8) -> u8 {
        s.now + s.skew[p as usize]
    }
}

impl Model for NaiveReap {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        // Every assignment of skews in 0..=2*bound (offsets -bound..=bound).
        let width = 2 * self.faults.skew as usize + 1;
        (0..width.pow(self.procs as u32))
            .map(|mut code| {
                let skew = (0..self.procs)
                    .map(|_| {
                        let k = code % width;
                        code /= width;
                        k as u8
                    })
                    .collect();
                State {
                    lock: None,
                    now: 0,
                    skew,
                    pcs: vec![Pc::Try; self.procs],
                    alive: vec![true; self.procs],
                    held: vec![0; self.procs],
                    pause: Pauses::default(),
                    reaped: false,
                }
            })
            .collect()
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
                Pc::Done => continue,
            }
            if may_crash(&s.alive, self.faults.crashes) {
                actions.push(Action::Crash(p));
            }
            if s.pause.available(self.faults.pauses) {
                actions.push(Action::Pause(p));
            }
        }
        // A holder that is running leaves within HOLD ticks.
        let overdue = (0..self.procs).any(|i| {
            s.alive[i]
                && s.pcs[i] == Pc::Holding
                && s.held[i] >= HOLD
                && !s.pause.is_paused(i as u8)
        });
        if s.now < self.horizon() && !overdue {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::CreateExclusive(p) => {
                n.pause.resume(p);
                if s.lock.is_some() {
                    n.pcs[p as usize] = Pc::Stat;
                } else {
                    n.lock = Some(LockFile {
                        owner: p,
                        mtime: self.clock(s, p),
                    });
                    n.pcs[p as usize] = Pc::Holding;
                    n.held[p as usize] = 0;
                }
            }
            Action::Stat(p) => {
                n.pause.resume(p);
                // Both clocks carry the same shift, so it cancels.
                let age = |l: LockFile| self.clock(s, p) as i16 - l.mtime as i16;
                n.pcs[p as usize] = match s.lock {
                    Some(l) if age(l) > STALE as i16 => Pc::Unlink,
                    Some(_) => Pc::Try, // fresh: poll again
                    None => Pc::Try,    // gone: create
                };
            }
            Action::Unlink(p) => {
                n.pause.resume(p);
                n.reaped |= s.lock.is_some();
                n.lock = None;
                n.pcs[p as usize] = Pc::Try;
            }
            Action::Release(p) => {
                n.pause.resume(p);
                n.lock = None;
                n.pcs[p as usize] = Pc::Done;
            }
            Action::Tick => {
                n.now += 1;
                for i in 0..self.procs {
                    if n.pcs[i] == Pc::Holding {
                        n.held[i] = (n.held[i] + 1).min(HOLD + 1);
                    }
                }
            }
            Action::Pause(p) => n.pause.pause(p),
            Action::Crash(p) => {
                n.alive[p as usize] = false;
                n.pause.resume(p);
            }
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

/// The catalogue's fault set: one crash, one pause, clocks one tick apart.
pub const ALL_FAULTS: Faults = Faults {
    crashes: 1,
    pauses: 1,
    skew: 1,
};

pub fn check(procs: usize) -> Verdict {
    check_with(procs, ALL_FAULTS)
}

/// Checks naive-reap under a chosen set of faults.
pub fn check_with(procs: usize, faults: Faults) -> Verdict {
    exhaust(
        "naive-reap",
        procs,
        NaiveReap { procs, faults },
        Checks {
            safety: &[Invariant::MutualExclusion],
            examples: &["lock taken", "stale lock reaped"],
            symmetry: None,
            progress: None,
        },
    )
}
