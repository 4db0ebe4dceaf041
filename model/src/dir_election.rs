//! `dir-election` (seed 000): each instance creates its own file in a
//! directory (atomically); every round it refreshes its file's mtime,
//! lists the directory, stats each file, deletes those older than the
//! stale threshold by its own clock, and is primary if its id is the
//! smallest left. It acts as primary until its next round's decision.
//!
//! Time is explicit, as in `naive-reap`: a global tick, per-process clock
//! skew fixed at the start, mtimes stamped by the writer's clock. A
//! running instance does a round every tick; a paused one does not. Ids
//! are compared, so there is no symmetry to reduce.
//!
//! The protocol survives crashes (a dead instance's file goes stale and is
//! deleted), but breaks single primary three ways, each found on its own
//! (`model/tests/models.rs`): a late joiner with a smaller id, a paused
//! primary whose file is deleted as stale, and a clock far enough ahead
//! to judge a live primary's file stale.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::pause::Pauses;

/// Stale threshold, in ticks.
pub const STALE: u8 = 2;
/// Rounds each instance runs before it leaves.
pub const ROUNDS: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    /// Create my file.
    Join,
    /// Start a round: refresh my file's mtime.
    Touch,
    ReadDir,
    /// Stat listed file `k`; `min` is the smallest live id seen so far.
    Stat {
        k: u8,
        min: Option<u8>,
    },
    /// Delete file `k` (judged stale), then go on.
    Remove {
        k: u8,
        min: Option<u8>,
    },
    /// Delete my file and stop.
    Leave,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Proc {
    pub pc: Pc,
    pub alive: bool,
    pub primary: bool,
    pub rounds: u8,
    /// Files listed by this round's `read_dir`, one bit per id.
    pub listed: u8,
    /// Ticks since its last refresh (joined, running instances refresh
    /// every tick).
    pub since_touch: u8,
    /// Its clock reads `now + skew` (skew shifted to be unsigned).
    pub skew: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Per id: its file's mtime, if it exists.
    pub files: Vec<Option<u8>>,
    pub now: u8,
    pub procs: Vec<Proc>,
    pub pause: Pauses,
    pub removed_stale: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `open(O_CREAT|O_EXCL)` of `DIR/ID.lock`.
    Create(u8),
    /// `utimes` of my file (fails if it was deleted).
    Touch(u8),
    ReadDir(u8),
    /// `stat` of the next listed file: stale, fresh, or gone.
    Stat(u8),
    /// `unlink` of a file judged stale.
    Remove(u8),
    /// `unlink` of my own file on the way out.
    Leave(u8),
    Tick,
    Pause(u8),
    Crash(u8),
}

/// Which faults the model may inject, and whether instances may start
/// after others have already decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    pub late_joiners: bool,
    pub crashes: usize,
    pub pauses: u8,
    pub skew: u8,
}

#[derive(Debug)]
pub struct DirElection {
    pub procs: usize,
    pub faults: Faults,
}

fn primaries(s: &State) -> usize {
    s.procs
        .iter()
        .filter(|q| q.alive && q.primary && q.pc != Pc::Done)
        .count()
}

impl DirElection {
    fn horizon(&self) -> u8 {
        STALE + 2 * self.faults.skew + 3
    }

    /// The step after looking at listed file `from - 1`: the next listed
    /// file's stat, or (none left) the decision.
    fn next_listed(&self, q: &mut Proc, me: u8, from: u8, min: Option<u8>) {
        match (from..self.procs as u8).find(|k| q.listed & (1 << k) != 0) {
            Some(k) => q.pc = Pc::Stat { k, min },
            None => {
                q.primary = min == Some(me);
                q.rounds += 1;
                q.listed = 0;
                q.pc = if q.rounds < ROUNDS {
                    Pc::Touch
                } else {
                    Pc::Leave
                };
            }
        }
    }
}

impl Model for DirElection {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let width = 2 * self.faults.skew as usize + 1;
        (0..width.pow(self.procs as u32))
            .map(|mut code| State {
                files: vec![None; self.procs],
                now: 0,
                procs: (0..self.procs)
                    .map(|_| {
                        let skew = (code % width) as u8;
                        code /= width;
                        Proc {
                            pc: Pc::Join,
                            alive: true,
                            primary: false,
                            rounds: 0,
                            listed: 0,
                            since_touch: 0,
                            skew,
                        }
                    })
                    .collect(),
                pause: Pauses::default(),
                removed_stale: false,
            })
            .collect()
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let alive: Vec<bool> = s.procs.iter().map(|q| q.alive).collect();
        // Without late joiners, instances start together: nobody begins a
        // round before everyone has created its file.
        let all_joined = s.procs.iter().all(|q| !q.alive || q.pc != Pc::Join);
        for (i, q) in s.procs.iter().enumerate() {
            if !q.alive {
                continue;
            }
            let p = i as u8;
            actions.push(match q.pc {
                Pc::Join => Action::Create(p),
                Pc::Touch if q.rounds == 0 && !self.faults.late_joiners && !all_joined => continue,
                Pc::Touch => Action::Touch(p),
                Pc::ReadDir => Action::ReadDir(p),
                Pc::Stat { .. } => Action::Stat(p),
                Pc::Remove { .. } => Action::Remove(p),
                Pc::Leave => Action::Leave(p),
                Pc::Done => continue,
            });
            if may_crash(&alive, self.faults.crashes) {
                actions.push(Action::Crash(p));
            }
            if s.pause.available(self.faults.pauses) {
                actions.push(Action::Pause(p));
            }
        }
        let overdue = s.procs.iter().enumerate().any(|(i, q)| {
            q.alive
                && !matches!(q.pc, Pc::Join | Pc::Done)
                && q.since_touch >= 1
                && !s.pause.is_paused(i as u8)
        });
        if s.now < self.horizon() && !overdue {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        if let Action::Create(p)
        | Action::Touch(p)
        | Action::ReadDir(p)
        | Action::Stat(p)
        | Action::Remove(p)
        | Action::Leave(p) = action
        {
            n.pause.resume(p);
        }
        let clock = |p: u8| s.now + s.procs[p as usize].skew;
        match action {
            Action::Create(p) => {
                n.files[p as usize] = Some(clock(p));
                let q = &mut n.procs[p as usize];
                q.since_touch = 0;
                q.pc = Pc::Touch;
            }
            Action::Touch(p) => {
                if n.files[p as usize].is_some() {
                    n.files[p as usize] = Some(clock(p));
                }
                let q = &mut n.procs[p as usize];
                q.since_touch = 0;
                q.pc = Pc::ReadDir;
            }
            Action::ReadDir(p) => {
                let listed = (0..self.procs)
                    .filter(|&k| s.files[k].is_some())
                    .fold(0u8, |bits, k| bits | 1 << k);
                let q = &mut n.procs[p as usize];
                q.listed = listed;
                self.next_listed(q, p, 0, None);
            }
            Action::Stat(p) => {
                let Pc::Stat { k, min } = s.procs[p as usize].pc else {
                    unreachable!()
                };
                let q = &mut n.procs[p as usize];
                match s.files[k as usize] {
                    None => self.next_listed(q, p, k + 1, min), // gone meanwhile
                    // Both clocks carry the same shift, so it cancels.
                    Some(mtime) if clock(p) as i16 - mtime as i16 > STALE as i16 => {
                        q.pc = Pc::Remove { k, min }
                    }
                    Some(_) => {
                        let min = Some(min.map_or(k, |m| m.min(k)));
                        self.next_listed(q, p, k + 1, min);
                    }
                }
            }
            Action::Remove(p) => {
                let Pc::Remove { k, min } = s.procs[p as usize].pc else {
                    unreachable!()
                };
                n.removed_stale |= s.files[k as usize].is_some();
                n.files[k as usize] = None;
                self.next_listed(&mut n.procs[p as usize], p, k + 1, min);
            }
            Action::Leave(p) => {
                n.files[p as usize] = None;
                let q = &mut n.procs[p as usize];
                q.primary = false;
                q.pc = Pc::Done;
            }
            Action::Tick => {
                n.now += 1;
                for q in n.procs.iter_mut() {
                    q.since_touch = (q.since_touch + 1).min(1);
                }
            }
            Action::Pause(p) => n.pause.pause(p),
            Action::Crash(p) => {
                n.procs[p as usize].alive = false;
                n.pause.resume(p);
            }
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::SinglePrimary.name(), |_, s: &State| {
                primaries(s) <= 1
            }),
            Property::sometimes("a primary is elected", |_, s: &State| primaries(s) == 1),
            Property::sometimes("a stale file is deleted", |_, s: &State| s.removed_stale),
        ]
    }
}

/// The catalogue's fault set: late joiners, one crash, one pause, clocks
/// one tick apart.
pub const ALL_FAULTS: Faults = Faults {
    late_joiners: true,
    crashes: 1,
    pauses: 1,
    skew: 1,
};

pub fn check(procs: usize) -> Verdict {
    check_with(procs, ALL_FAULTS)
}

/// Checks dir-election under a chosen set of faults.
pub fn check_with(procs: usize, faults: Faults) -> Verdict {
    exhaust(
        "dir-election",
        procs,
        DirElection { procs, faults },
        Checks {
            safety: &[Invariant::SinglePrimary],
            examples: &["a primary is elected", "a stale file is deleted"],
            symmetry: None,
            progress: None,
        },
    )
}
