//! The commit protocols of seed 003: two tasks edit files in one working
//! tree and each commits its own work. A commit must contain only its own
//! task's edits (no cross-commit).
//!
//! Files are `own file of task i` and one shared file (TODO.md) that both
//! tasks edit (different lines, as in the field). A file's content is the
//! set of tasks whose edits it holds; staging copies that set into an
//! index; committing records what the index holds.
//!
//! - `commit-shared-index`: `git add <my files>` then `git commit`, on the
//!   repository's one index: a commit takes whatever anyone staged.
//! - `commit-lock-staging`: the same under a global lock around add and
//!   commit only; edits happen outside it, so staging a shared file stages
//!   the other task's edit too.
//! - `baton-txn`: the task's scope lock (its paths, shared file included)
//!   is held from before its first edit until after its commit, and it
//!   stages into a private index (`GIT_INDEX_FILE`), so nobody else's edit
//!   can be in a file when it stages it, nor in its index.

use std::collections::BTreeSet;

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust};

/// Which protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    SharedIndex,
    LockStaging,
    Txn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    /// Waiting for the lock (the scope lock, or the staging lock).
    Lock,
    EditOwn,
    EditShared,
    /// `git add` of the task's files (own, shared).
    Stage,
    Commit,
    Unlock,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Per task's own file, then the shared file: whose edits it holds.
    pub files: Vec<BTreeSet<u8>>,
    /// The shared index, or each task's private one: staged (file, task)
    /// edits.
    pub index: Vec<BTreeSet<(u8, u8)>>,
    /// Edits in the branch's history.
    pub head: BTreeSet<(u8, u8)>,
    pub lock: Option<u8>,
    pub pcs: Vec<Pc>,
    /// Commits made: (task, whose edits its diff holds).
    pub commits: Vec<(u8, BTreeSet<u8>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Lock(u8),
    /// Write the task's own file.
    EditOwn(u8),
    /// Write the task's line of the shared file (TODO.md).
    EditShared(u8),
    /// `git add <own file> TODO.md`.
    Add(u8),
    /// `git commit`.
    Commit(u8),
    Unlock(u8),
}

pub struct Commits {
    pub variant: Variant,
    pub tasks: usize,
}

impl Commits {
    fn shared(&self) -> usize {
        self.tasks
    }

    fn index_of(&self, task: u8) -> usize {
        match self.variant {
            Variant::Txn => task as usize,
            _ => 0,
        }
    }

    /// The steps of a task, in order, for this variant.
    fn next_pc(&self, pc: Pc) -> Pc {
        match (self.variant, pc) {
            // Lock around everything.
            (Variant::Txn, Pc::Lock) => Pc::EditOwn,
            (Variant::Txn, Pc::Commit) => Pc::Unlock,
            // Lock around staging and committing only.
            (Variant::LockStaging, Pc::EditShared) => Pc::Lock,
            (Variant::LockStaging, Pc::Lock) => Pc::Stage,
            (Variant::LockStaging, Pc::Commit) => Pc::Unlock,
            // No lock.
            (_, Pc::EditOwn) => Pc::EditShared,
            (_, Pc::EditShared) => Pc::Stage,
            (_, Pc::Stage) => Pc::Commit,
            (_, Pc::Commit) | (_, Pc::Unlock) => Pc::Done,
            (_, Pc::Lock) | (_, Pc::Done) => unreachable!("no such step"),
        }
    }

    fn first_pc(&self) -> Pc {
        match self.variant {
            Variant::Txn => Pc::Lock,
            _ => Pc::EditOwn,
        }
    }
}

fn cross_commit(s: &State) -> bool {
    s.commits
        .iter()
        .any(|(task, edits)| edits.iter().any(|e| e != task))
}

impl Model for Commits {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let indexes = if self.variant == Variant::Txn {
            self.tasks
        } else {
            1
        };
        vec![State {
            files: vec![BTreeSet::new(); self.tasks + 1],
            index: vec![BTreeSet::new(); indexes],
            head: BTreeSet::new(),
            lock: None,
            pcs: vec![self.first_pc(); self.tasks],
            commits: Vec::new(),
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, pc) in s.pcs.iter().enumerate() {
            let t = i as u8;
            match pc {
                Pc::Lock if s.lock.is_none() => actions.push(Action::Lock(t)),
                Pc::EditOwn => actions.push(Action::EditOwn(t)),
                Pc::EditShared => actions.push(Action::EditShared(t)),
                Pc::Stage => actions.push(Action::Add(t)),
                Pc::Commit => actions.push(Action::Commit(t)),
                Pc::Unlock => actions.push(Action::Unlock(t)),
                _ => {}
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        let mut n = s.clone();
        let (t, pc) = match action {
            Action::Lock(t) => {
                n.lock = Some(t);
                (t, Pc::Lock)
            }
            Action::EditOwn(t) => {
                n.files[t as usize].insert(t);
                (t, Pc::EditOwn)
            }
            Action::EditShared(t) => {
                n.files[self.shared()].insert(t);
                (t, Pc::EditShared)
            }
            Action::Add(t) => {
                // Staging a file stages all of its content, whoever wrote it.
                let i = self.index_of(t);
                for f in [t as usize, self.shared()] {
                    for e in &s.files[f] {
                        n.index[i].insert((f as u8, *e));
                    }
                }
                (t, Pc::Stage)
            }
            Action::Commit(t) => {
                // The commit's diff: what the index holds beyond history.
                let i = self.index_of(t);
                let diff: BTreeSet<(u8, u8)> = n.index[i].difference(&s.head).copied().collect();
                n.head.extend(diff.iter().copied());
                n.index[i].clear();
                n.commits.push((t, diff.iter().map(|(_, e)| *e).collect()));
                (t, Pc::Commit)
            }
            Action::Unlock(t) => {
                n.lock = None;
                (t, Pc::Unlock)
            }
        };
        n.pcs[t as usize] = self.next_pc(pc);
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::NoCrossCommit.name(), |_, s: &State| {
                !cross_commit(s)
            }),
            Property::sometimes("every task committed", |_, s: &State| {
                s.pcs.iter().all(|p| *p == Pc::Done) && !s.commits.is_empty()
            }),
        ]
    }
}

pub fn check(variant: Variant, tasks: usize) -> Verdict {
    let name = match variant {
        Variant::SharedIndex => "commit-shared-index",
        Variant::LockStaging => "commit-lock-staging",
        Variant::Txn => "baton-txn",
    };
    exhaust(
        name,
        tasks,
        Commits { variant, tasks },
        Checks {
            safety: &[Invariant::NoCrossCommit],
            examples: &["every task committed"],
            symmetry: None,
            progress: None,
        },
    )
}
