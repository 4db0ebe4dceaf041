//! `baton-election-lease`: primary election by a lease of versioned
//! records (`core/src/lease.rs`), with the fenced log (`core/src/fence.rs`)
//! as the resource primaries act on.
//!
//! The lease is a sequence of versions; writing the next version is a
//! compare-and-swap (`link` fails if it exists). A challenger takes over
//! after seeing one version unchanged for `L` ticks on its own clock, or
//! at once when the lease is free. The holder acts only while its last
//! successful renewal *started* less than `D` ago, and renews by writing
//! the next version with its epoch. Every action is a fenced append: under
//! the log's lock, read the newest epoch and append only if ours is not
//! older.
//!
//! Time is explicit: a global tick ages every process's timers together
//! (monotonic clocks drift by parts per million, far inside the `(L-D)/L`
//! margin, and are not modelled). Version numbers are abstracted to one
//! bit per process, "nothing was published since I last read", which is
//! all a compare-and-swap on `seq + 1` depends on; epochs are bounded.
//!
//! Within the lease's assumption (a process acts within [`PAUSE_BOUND`]
//! ticks of finding its lease valid), at most one process acts at a time.
//! With one unbounded pause (`baton-election-lease-paused`) two can act
//! at once; the model shows that happening, and the fence keeping the log
//! in epoch order. Without the fence (a variant in the tests) the deposed
//! primary's append lands after its successor's.

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};
use crate::pause::Pauses;
use crate::progress::Progress;
use crate::symmetry::Permutation;

/// Lease duration, renew deadline, and the pause a holder may take
/// between finding its lease valid and acting (`L - D - R` with a retry
/// period of one tick), in ticks.
pub const LEASE: u8 = 4;
pub const DEADLINE: u8 = 2;
pub const PAUSE_BOUND: u8 = LEASE - DEADLINE - 1;
/// Terms the model runs (epochs 1..=EPOCHS).
pub const EPOCHS: u8 = 3;
/// Fenced appends per term.
pub const EVENTS: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pc {
    /// Read the newest lease version.
    Attempt,
    /// `link` the next version, holding `epoch`.
    Link {
        epoch: u8,
    },
    /// Holding: check the lease is still valid before the next action.
    Check {
        epoch: u8,
        done: u8,
    },
    /// Found valid: append to the fenced log.
    Act {
        epoch: u8,
        done: u8,
    },
    /// Acted: renew (write the next version with the same epoch).
    Renew {
        epoch: u8,
        done: u8,
    },
    /// Release (write a free version), then stop.
    Release {
        epoch: u8,
    },
    Done,
}

/// The newest lease version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub epoch: u8,
    /// `None`: free (released).
    pub holder: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proc {
    pub pc: Pc,
    pub alive: bool,
    /// No version was published since this process last read or wrote one.
    pub fresh: bool,
    /// Ticks since it first saw the current version (challenger), capped
    /// at `LEASE`.
    pub seen: Option<u8>,
    /// Ticks since its last attempt started, capped at `DEADLINE`.
    pub since_attempt: u8,
    /// Ticks since its last successful renewal started, capped at
    /// `DEADLINE`.
    pub since_renewal: u8,
    /// Ticks spent in `Act`, capped.
    pub acting_for: u8,
}

impl Proc {
    /// Zeroes the timers the process's next steps do not read, so states
    /// that differ only there are one state.
    fn forget_what_does_not_matter(&mut self) {
        let holding = matches!(
            self.pc,
            Pc::Check { .. } | Pc::Act { .. } | Pc::Renew { .. } | Pc::Release { .. }
        );
        if !self.alive {
            self.fresh = false;
        }
        if !self.alive || self.pc != Pc::Attempt {
            self.seen = None;
        }
        if !self.alive || !matches!(self.pc, Pc::Link { .. }) {
            self.since_attempt = 0;
        }
        if !self.alive || !holding {
            self.since_renewal = 0;
        }
        if !self.alive || !matches!(self.pc, Pc::Act { .. }) {
            self.acting_for = 0;
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub lease: Option<Lease>,
    pub procs: Vec<Proc>,
    /// Newest epoch in the fenced log (0: empty).
    pub log_newest: u8,
    /// An entry landed with an epoch older than one already there.
    pub log_went_back: bool,
    /// A deposed primary's append was refused.
    pub fenced_off: bool,
    pub pause: Pauses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `readdir` + `read` of the newest version, and the decision.
    Read(u8),
    /// `link(temp, SEQ+1)`.
    Link(u8),
    /// `valid()`: the last renewal started less than `D` ago.
    Check(u8),
    /// Under the log's lock: read the newest epoch, append if not older.
    Append(u8),
    Renew(u8),
    Release(u8),
    Tick,
    Pause(u8),
    Crash(u8),
}

#[derive(Debug)]
pub struct LeaseElection {
    pub procs: usize,
    pub crashes: usize,
    pub pauses: u8,
    /// Append checks the epoch (baton's fenced log) or not.
    pub fenced: bool,
}

fn acting(s: &State) -> usize {
    s.procs
        .iter()
        .filter(|p| p.alive && matches!(p.pc, Pc::Act { .. }))
        .count()
}

impl LeaseElection {
    /// `p` published the next version, holding `epoch`: its renewal
    /// started `since_renewal` ticks ago (at its read, for a takeover).
    fn hold(n: &mut State, p: u8, epoch: u8, since_renewal: u8, done: u8) {
        let holder = Some(p);
        Self::publish(n, p as usize, Lease { epoch, holder });
        let q = &mut n.procs[p as usize];
        q.since_renewal = since_renewal;
        q.seen = None;
        q.pc = Pc::Check { epoch, done };
    }

    /// A successful compare-and-swap: the new newest version, which makes
    /// every other process's reading stale.
    fn publish(n: &mut State, p: usize, lease: Lease) {
        n.lease = Some(lease);
        for (i, q) in n.procs.iter_mut().enumerate() {
            q.fresh = i == p;
            if i != p {
                q.seen = None;
            }
        }
    }
}

impl Model for LeaseElection {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let idle = Proc {
            pc: Pc::Attempt,
            alive: true,
            fresh: false,
            seen: None,
            since_attempt: 0,
            since_renewal: 0,
            acting_for: 0,
        };
        vec![State {
            lease: None,
            procs: vec![idle; self.procs],
            log_newest: 0,
            log_went_back: false,
            fenced_off: false,
            pause: Pauses::default(),
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let alive: Vec<bool> = s.procs.iter().map(|p| p.alive).collect();
        for (i, q) in s.procs.iter().enumerate() {
            if !q.alive {
                continue;
            }
            let p = i as u8;
            actions.push(match q.pc {
                Pc::Attempt => Action::Read(p),
                Pc::Link { .. } => Action::Link(p),
                Pc::Check { .. } => Action::Check(p),
                Pc::Act { .. } => Action::Append(p),
                Pc::Renew { .. } => Action::Renew(p),
                Pc::Release { .. } => Action::Release(p),
                Pc::Done => continue,
            });
            if may_crash(&alive, self.crashes) {
                actions.push(Action::Crash(p));
            }
            if s.pause.available(self.pauses) {
                actions.push(Action::Pause(p));
            }
        }
        // The lease's assumption: whoever found its lease valid acts within
        // the pause bound, unless it is paused (the fault).
        let overdue = s.procs.iter().enumerate().any(|(i, q)| {
            q.alive
                && matches!(q.pc, Pc::Act { .. })
                && q.acting_for >= PAUSE_BOUND
                && !s.pause.is_paused(i as u8)
        });
        if !overdue {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::Read(p) => {
                n.pause.resume(p);
                let q = &mut n.procs[p as usize];
                q.since_attempt = 0;
                let take = match s.lease {
                    None => Some(1),
                    Some(l) if l.holder.is_none() => Some(l.epoch + 1),
                    Some(l) => match q.seen {
                        Some(age) if q.fresh && age >= LEASE => Some(l.epoch + 1),
                        Some(_) if q.fresh => None,
                        _ => {
                            q.seen = Some(0);
                            q.fresh = true;
                            None
                        }
                    },
                };
                match take {
                    Some(epoch) if epoch <= EPOCHS => {
                        q.fresh = true;
                        q.pc = Pc::Link { epoch };
                    }
                    Some(_) => q.pc = Pc::Done, // the model's terms are used up
                    None => {}
                }
            }
            Action::Link(p) => {
                n.pause.resume(p);
                let Pc::Link { epoch } = s.procs[p as usize].pc else {
                    unreachable!()
                };
                if s.procs[p as usize].fresh {
                    let since_attempt = s.procs[p as usize].since_attempt;
                    Self::hold(&mut n, p, epoch, since_attempt, 0);
                } else {
                    n.procs[p as usize].pc = Pc::Attempt; // EEXIST: someone else won
                }
            }
            Action::Check(p) => {
                n.pause.resume(p);
                let q = &mut n.procs[p as usize];
                let Pc::Check { epoch, done } = q.pc else {
                    unreachable!()
                };
                q.pc = if q.since_renewal < DEADLINE {
                    q.acting_for = 0;
                    Pc::Act { epoch, done }
                } else {
                    Pc::Attempt // lost: stop acting, campaign again
                };
            }
            Action::Append(p) => {
                n.pause.resume(p);
                let Pc::Act { epoch, done } = s.procs[p as usize].pc else {
                    unreachable!()
                };
                let q = &mut n.procs[p as usize];
                if self.fenced && epoch < s.log_newest {
                    n.fenced_off = true;
                    q.pc = Pc::Attempt; // fenced off: a newer primary exists
                } else {
                    n.log_went_back |= epoch < s.log_newest;
                    n.log_newest = n.log_newest.max(epoch);
                    q.pc = if done + 1 < EVENTS {
                        Pc::Renew {
                            epoch,
                            done: done + 1,
                        }
                    } else {
                        Pc::Release { epoch }
                    };
                }
            }
            Action::Renew(p) => {
                n.pause.resume(p);
                let q = s.procs[p as usize];
                let Pc::Renew { epoch, done } = q.pc else {
                    unreachable!()
                };
                if q.since_renewal < DEADLINE && q.fresh {
                    Self::hold(&mut n, p, epoch, 0, done);
                } else {
                    n.procs[p as usize].pc = Pc::Attempt;
                }
            }
            Action::Release(p) => {
                n.pause.resume(p);
                let q = s.procs[p as usize];
                let Pc::Release { epoch } = q.pc else {
                    unreachable!()
                };
                if q.since_renewal < DEADLINE && q.fresh {
                    Self::publish(
                        &mut n,
                        p as usize,
                        Lease {
                            epoch,
                            holder: None,
                        },
                    );
                }
                n.procs[p as usize].pc = Pc::Done;
            }
            Action::Tick => {
                for q in n.procs.iter_mut() {
                    q.seen = q.seen.map(|a| (a + 1).min(LEASE));
                    q.since_attempt = (q.since_attempt + 1).min(DEADLINE);
                    q.since_renewal = (q.since_renewal + 1).min(DEADLINE);
                    q.acting_for = (q.acting_for + 1).min(PAUSE_BOUND + 1);
                }
            }
            Action::Pause(p) => n.pause.pause(p),
            Action::Crash(p) => {
                n.procs[p as usize].alive = false;
                n.pause.resume(p);
            }
        }
        for q in n.procs.iter_mut() {
            q.forget_what_does_not_matter();
        }
        if n == *s {
            return None; // a tick that changes nothing, a repeated read
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut props = vec![
            Property::sometimes("a failover after a crash", |_, s: &State| {
                s.procs.iter().any(|p| !p.alive)
                    && s.procs
                        .iter()
                        .any(|p| p.alive && matches!(p.pc, Pc::Act { epoch, .. } if epoch >= 2))
            }),
            Property::sometimes("a released lease is taken", |_, s: &State| {
                s.procs
                    .iter()
                    .any(|p| matches!(p.pc, Pc::Check { epoch, .. } if epoch >= 2))
                    && s.procs.iter().all(|p| p.alive)
            }),
        ];
        if self.pauses == 0 {
            props.push(Property::always(
                Invariant::SinglePrimary.name(),
                |_, s: &State| acting(s) <= 1 && !s.log_went_back,
            ));
        } else {
            // Past the pause bound, two may believe they lead; what the
            // resource sees must still be one primary at a time.
            props.push(Property::always(
                Invariant::SinglePrimary.name(),
                |_, s: &State| !s.log_went_back,
            ));
            props.push(Property::sometimes("two act at once", |_, s: &State| {
                acting(s) >= 2
            }));
        }
        if self.pauses > 0 && self.fenced {
            props.push(Property::sometimes(
                "a deposed primary's append is fenced off",
                |_, s: &State| s.fenced_off,
            ));
        }
        props
    }
}

/// Processes renumbered in a canonical order: lease mode never compares
/// ids, only whether a version is someone's or free.
pub fn representative(s: &State) -> State {
    let perm = Permutation::sorting(s.procs.len(), |i| s.procs[i]);
    State {
        lease: s.lease.map(|l| Lease {
            holder: l.holder.map(|p| perm.id(p)),
            ..l
        }),
        procs: perm.apply(&s.procs),
        pause: s.pause.renumbered(|p| perm.id(p)),
        ..s.clone()
    }
}

/// Fault-free steps from anywhere to a primary acting. The worst case is
/// a taker whose `link` landed more than `D` after its read: it holds a
/// lease it may not use (its check fails), so everyone, itself included,
/// waits the lease out: link, check, read, `L` ticks, read, link, check.
pub const PROGRESS_BOUND: usize = LEASE as usize + 6;

/// Checks lease mode: `paused` allows one pause past the bound.
pub fn check(procs: usize, paused: bool, fenced: bool) -> Verdict {
    let name = if paused {
        "baton-election-lease-paused"
    } else {
        "baton-election-lease"
    };
    let examples: &'static [&'static str] = match (paused, fenced) {
        (false, _) => &["a failover after a crash", "a released lease is taken"],
        (true, true) => &[
            "a failover after a crash",
            "two act at once",
            "a deposed primary's append is fenced off",
        ],
        (true, false) => &["two act at once"],
    };
    exhaust(
        name,
        procs,
        LeaseElection {
            procs,
            crashes: procs - 1,
            pauses: u8::from(paused),
            fenced,
        },
        Checks {
            safety: &[Invariant::SinglePrimary],
            examples,
            // The unfenced variant is a counterexample to show: breadth
            // first, so it is short.
            symmetry: fenced.then_some(representative as fn(&State) -> State),
            progress: Some(Progress {
                what: "a live primary acts, or the model's terms are used up",
                goal: |s| {
                    acting(s) >= 1
                        || s.lease.is_some_and(|l| l.epoch == EPOCHS)
                        || s.procs.iter().all(|p| !p.alive || p.pc == Pc::Done)
                },
                fault: |a| matches!(a, Action::Crash(_) | Action::Pause(_)),
                bound: PROGRESS_BOUND,
            }),
        },
    )
}
