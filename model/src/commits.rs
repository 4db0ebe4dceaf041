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
//! - `baton-txn`: the task claims its scope (its paths, the shared file
//!   included when it edits it; all or nothing) before its first edit and
//!   releases it after its commit. It stages into a private index
//!   (`GIT_INDEX_FILE`) seeded from HEAD, writes the commit on that HEAD,
//!   and moves HEAD with a compare-and-swap (`update-ref HEAD new old`);
//!   if HEAD moved meanwhile it stages again on the new HEAD. Nobody
//!   else's edit can be in a file it stages, nor in its index, and no
//!   concurrent commit is lost. Here the shared file is edited by the
//!   even-numbered tasks, so odd ones commit concurrently with them and the
//!   compare-and-swap is exercised; a variant that moves HEAD without it
//!   (`Variant::TxnNoCas`) loses commits, which the tests check.
//!
//! A task may crash at any step (its kernel-held lock and claims are
//! released, its edits stay in the working tree). A transaction that then
//! claims a scope holding a dead one's uncommitted edit would commit that
//! edit as its own: so `baton-txn` checks, once its scope is claimed, that
//! every file in it matches HEAD apart from its own edits, and refuses
//! otherwise (`Variant::TxnNoCleanCheck` leaves the check out and crosses).

use std::collections::BTreeSet;

use baton_core::catalogue::Invariant;
use stateright::{Model, Property};

use crate::check::{Checks, Verdict, exhaust, may_crash};

/// Which protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    SharedIndex,
    LockStaging,
    Txn,
    /// `baton-txn` with a plain ref write instead of the compare-and-swap.
    TxnNoCas,
    /// `baton-txn` without checking, once its scope is claimed, that the
    /// scope holds no uncommitted edits of a transaction that died.
    TxnNoCleanCheck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pc {
    /// Waiting for the lock (the staging lock), or to claim the scope.
    Lock,
    EditOwn,
    EditShared,
    /// `git add` of the task's files (own, shared).
    Stage,
    Commit,
    Unlock,
    Done,
}

/// (file, task) edits: a file's, an index's or a commit's content.
pub type Edits = BTreeSet<(u8, u8)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Per task's own file, then the shared file: whose edits it holds.
    pub files: Vec<BTreeSet<u8>>,
    /// The shared index, or each task's private one: staged (file, task)
    /// edits.
    pub index: Vec<BTreeSet<(u8, u8)>>,
    /// Edits in the branch's history.
    pub head: BTreeSet<(u8, u8)>,
    /// Bumped by every move of HEAD (the commit id `update-ref` compares).
    pub head_id: u8,
    /// Per task: the HEAD its private index was seeded from.
    pub base: Vec<Option<(u8, Edits)>>,
    /// The staging lock, or per path (own files, then the shared file)
    /// the task that claims it.
    pub lock: Option<u8>,
    pub claims: Vec<Option<u8>>,
    /// A ref update found HEAD moved and staged again.
    pub retried: bool,
    pub alive: Vec<bool>,
    /// A transaction found a dead one's edits in its scope and refused.
    pub refused: bool,
    pub pcs: Vec<Pc>,
    /// Commits made: (task, the (file, task) edits its diff holds).
    pub commits: Vec<(u8, BTreeSet<(u8, u8)>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Lock(u8),
    /// Write the task's own file.
    EditOwn(u8),
    /// Write the task's line of the shared file (TODO.md).
    EditShared(u8),
    /// `git add <own file> TODO.md`; in a transaction, `read-tree HEAD`
    /// into the private index first.
    Add(u8),
    /// `git commit`; in a transaction, `write-tree`, `commit-tree` on the
    /// HEAD read, `update-ref HEAD new old`.
    Commit(u8),
    Unlock(u8),
    /// The task's process dies: its kernel-held locks and claims are
    /// released; its edits stay in the working tree.
    Crash(u8),
}

#[derive(Debug)]
pub struct Commits {
    pub variant: Variant,
    pub tasks: usize,
    pub crashes: usize,
}

impl Commits {
    fn shared(&self) -> usize {
        self.tasks
    }

    fn txn(&self) -> bool {
        matches!(
            self.variant,
            Variant::Txn | Variant::TxnNoCas | Variant::TxnNoCleanCheck
        )
    }

    fn index_of(&self, task: u8) -> usize {
        if self.txn() { task as usize } else { 0 }
    }

    /// Whether `task` edits the shared file: all do in the field's
    /// protocols; in a transaction the even-numbered ones.
    fn edits_shared(&self, task: u8) -> bool {
        !self.txn() || task.is_multiple_of(2)
    }

    /// The paths a task edits: its own file, and perhaps the shared one.
    fn scope(&self, task: u8) -> Vec<usize> {
        let mut paths = vec![task as usize];
        if self.edits_shared(task) {
            paths.push(self.shared());
        }
        paths
    }

    /// The steps of a task, in order, for this variant.
    fn next_pc(&self, task: u8, pc: Pc) -> Pc {
        match (self.variant, pc) {
            // The scope claimed around everything.
            (_, Pc::Lock) if self.txn() => Pc::EditOwn,
            (_, Pc::EditOwn) if self.txn() && !self.edits_shared(task) => Pc::Stage,
            (_, Pc::Commit) if self.txn() => Pc::Unlock,
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
        if self.txn() { Pc::Lock } else { Pc::EditOwn }
    }

    fn may_claim(&self, s: &State, task: u8) -> bool {
        self.scope(task).iter().all(|&f| s.claims[f].is_none())
    }
}

/// Some commit's edit is no longer in HEAD's history.
fn lost_commit(s: &State) -> bool {
    s.commits
        .iter()
        .any(|(_, edits)| edits.iter().any(|e| !s.head.contains(e)))
}

fn cross_commit(s: &State) -> bool {
    s.commits
        .iter()
        .any(|(task, edits)| edits.iter().any(|(_, e)| e != task))
}

impl Model for Commits {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let indexes = if self.txn() { self.tasks } else { 1 };
        vec![State {
            files: vec![BTreeSet::new(); self.tasks + 1],
            index: vec![BTreeSet::new(); indexes],
            head: BTreeSet::new(),
            head_id: 0,
            base: vec![None; self.tasks],
            lock: None,
            claims: vec![None; self.tasks + 1],
            retried: false,
            alive: vec![true; self.tasks],
            refused: false,
            pcs: vec![self.first_pc(); self.tasks],
            commits: Vec::new(),
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (i, pc) in s.pcs.iter().enumerate() {
            let t = i as u8;
            if !s.alive[i] {
                continue;
            }
            if *pc != Pc::Done && may_crash(&s.alive, self.crashes) {
                actions.push(Action::Crash(t));
            }
            match pc {
                Pc::Lock if self.txn() && self.may_claim(s, t) => actions.push(Action::Lock(t)),
                Pc::Lock if !self.txn() && s.lock.is_none() => actions.push(Action::Lock(t)),
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
            Action::Lock(t) if self.txn() => {
                let dirty = self
                    .scope(t)
                    .iter()
                    .any(|&f| s.files[f].iter().any(|&e| !s.head.contains(&(f as u8, e))));
                if dirty && self.variant != Variant::TxnNoCleanCheck {
                    // Refuse: the user must commit or discard the dead
                    // transaction's edits first.
                    n.refused = true;
                    n.pcs[t as usize] = Pc::Done;
                    return Some(n);
                }
                for f in self.scope(t) {
                    n.claims[f] = Some(t);
                }
                (t, Pc::Lock)
            }
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
                if self.txn() {
                    // read-tree HEAD into the private index.
                    n.index[i] = s.head.clone();
                    n.base[t as usize] = Some((s.head_id, s.head.clone()));
                }
                let paths = if self.txn() {
                    self.scope(t)
                } else {
                    vec![t as usize, self.shared()]
                };
                for f in paths {
                    for e in &s.files[f] {
                        n.index[i].insert((f as u8, *e));
                    }
                }
                (t, Pc::Stage)
            }
            Action::Commit(t) if self.txn() => {
                let i = self.index_of(t);
                let (base_id, base) = s.base[t as usize].clone().expect("staged first");
                if self.variant != Variant::TxnNoCas && base_id != s.head_id {
                    // update-ref: HEAD is not the commit's parent any more.
                    n.retried = true;
                    n.pcs[t as usize] = Pc::Stage;
                    return Some(n);
                }
                // The commit's tree is the private index; its diff is
                // against its parent, the HEAD it was seeded from.
                let diff: BTreeSet<(u8, u8)> = s.index[i].difference(&base).copied().collect();
                n.head = s.index[i].clone();
                n.head_id = s.head_id + 1;
                n.index[i].clear();
                n.base[t as usize] = None;
                n.commits.push((t, diff));
                (t, Pc::Commit)
            }
            Action::Commit(t) => {
                // The commit's diff: what the index holds beyond history.
                let i = self.index_of(t);
                let diff: BTreeSet<(u8, u8)> = n.index[i].difference(&s.head).copied().collect();
                n.head.extend(diff.iter().copied());
                n.index[i].clear();
                n.commits.push((t, diff));
                (t, Pc::Commit)
            }
            Action::Unlock(t) => {
                n.lock = None;
                for c in n.claims.iter_mut().filter(|c| **c == Some(t)) {
                    *c = None;
                }
                (t, Pc::Unlock)
            }
            Action::Crash(t) => {
                n.alive[t as usize] = false;
                if n.lock == Some(t) {
                    n.lock = None;
                }
                for c in n.claims.iter_mut().filter(|c| **c == Some(t)) {
                    *c = None;
                }
                return Some(n);
            }
        };
        n.pcs[t as usize] = self.next_pc(t, pc);
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(Invariant::NoCrossCommit.name(), |_, s: &State| {
                !cross_commit(s)
            }),
            Property::always(Invariant::NoLostUpdate.name(), |_, s: &State| {
                !lost_commit(s)
            }),
            Property::sometimes("every task committed", |_, s: &State| {
                s.pcs.iter().all(|p| *p == Pc::Done)
                    && (0..s.pcs.len()).all(|t| s.commits.iter().any(|(c, _)| *c as usize == t))
            }),
            Property::sometimes("a ref update retried", |_, s: &State| s.retried),
            Property::sometimes("a dead transaction's edits refused", |_, s: &State| {
                s.refused
            }),
        ]
    }
}

pub fn check(variant: Variant, tasks: usize) -> Verdict {
    let name = match variant {
        Variant::SharedIndex => "commit-shared-index",
        Variant::LockStaging => "commit-lock-staging",
        Variant::Txn | Variant::TxnNoCas | Variant::TxnNoCleanCheck => "baton-txn",
    };
    // With two tasks only one edits the shared file, so no scope can hold
    // another task's leftovers.
    let examples: &'static [&'static str] = match variant {
        Variant::Txn if tasks >= 3 => &[
            "every task committed",
            "a ref update retried",
            "a dead transaction's edits refused",
        ],
        Variant::Txn => &["every task committed", "a ref update retried"],
        _ => &["every task committed"],
    };
    exhaust(
        name,
        tasks,
        Commits {
            variant,
            tasks,
            crashes: 1,
        },
        Checks {
            safety: &[Invariant::NoCrossCommit, Invariant::NoLostUpdate],
            examples,
            symmetry: None,
            progress: None,
        },
    )
}
