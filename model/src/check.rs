//! Running a model to exhaustion and reading its verdict.

use std::fmt::Debug;
use std::hash::Hash;

use baton_core::catalogue::{self, Expect, Invariant};
use stateright::{Checker, Model};

use crate::progress::{self, Progress, ProgressVerdict};

/// The models, by catalogue name.
pub const MODELS: &[&str] = &[
    "naive-reap",
    "registry-rmw",
    "registry-150ms",
    "dir-election",
    "baton-lock-kernel",
    "baton-lock-file",
    "baton-election",
    "baton-election-lease",
    "baton-election-lease-paused",
    "state-rmw-unlocked",
    "state-write-in-place",
    "baton-state",
    "baton-state-cas",
    "claims-shared-json",
    "baton-claims",
    "commit-shared-index",
    "commit-lock-staging",
    "baton-txn",
];

/// Whether another process may still crash: crashes are bounded so the
/// state space stays finite and counterexamples stay short.
pub(crate) fn may_crash(alive: &[bool], crashes: usize) -> bool {
    alive.iter().filter(|a| !**a).count() < crashes
}

/// What exhaustive checking found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub name: &'static str,
    pub expect: Expect,
    pub instances: usize,
    /// The first property broken, if any: a safety property, or
    /// [`Invariant::Liveness`] when the bounded progress check fails.
    pub violated: Option<Invariant>,
    /// `sometimes` properties with no example: the model is vacuous there.
    pub vacuous: Vec<&'static str>,
    pub states: usize,
    pub unique_states: usize,
    pub depth: usize,
    /// Whether states equal up to a permutation of process ids were
    /// explored once (depth-first; breadth-first otherwise).
    pub symmetry: bool,
    /// The bounded progress check, for models that state one.
    pub progress: Option<ProgressVerdict>,
    /// The counterexample: the start state, then one numbered line per
    /// action with the state it led to.
    pub counterexample: Vec<String>,
}

impl Verdict {
    pub fn outcome(&self) -> String {
        match self.violated {
            Some(i) => format!("violates {i}"),
            None => "holds".into(),
        }
    }

    pub fn matches(&self) -> bool {
        self.vacuous.is_empty()
            && match self.expect {
                Expect::Holds => self.violated.is_none(),
                Expect::Violates(i) => self.violated == Some(i),
            }
    }
}

/// A state's representative under renumbering of processes.
pub(crate) type Representative<M> = fn(&<M as Model>::State) -> <M as Model>::State;

/// What to check of a model.
pub(crate) struct Checks<M: Model> {
    /// `always` properties, named after invariants.
    pub safety: &'static [Invariant],
    /// `sometimes` properties: each must have an example.
    pub examples: &'static [&'static str],
    /// A representative of each state's class under permutations of process
    /// ids, for protocols that never compare ids.
    pub symmetry: Option<Representative<M>>,
    pub progress: Option<Progress<M>>,
}

/// Exhausts `model` and reads the named properties. Without symmetry the
/// search is breadth first, so counterexamples are short (stateright
/// hands out states in batches, so not always the shortest); with it,
/// stateright reduces only depth first.
pub(crate) fn exhaust<M>(
    name: &'static str,
    instances: usize,
    model: M,
    checks: Checks<M>,
) -> Verdict
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Debug + Clone + PartialEq + Send + Sync,
    M::Action: Debug + Clone + PartialEq,
{
    let conditions: Vec<_> = model
        .properties()
        .into_iter()
        .map(|p| (p.name, p.condition))
        .collect();
    let progress = checks
        .progress
        .as_ref()
        .map(|p| progress::check(&model, p, checks.symmetry));
    let builder = model.checker();
    match checks.symmetry {
        Some(representative) => read(
            name,
            instances,
            builder.symmetry_fn(representative).spawn_dfs().join(),
            &conditions,
            checks,
            progress,
        ),
        None => read(
            name,
            instances,
            builder.spawn_bfs().join(),
            &conditions,
            checks,
            progress,
        ),
    }
}

type Condition<M> = fn(&M, &<M as Model>::State) -> bool;

/// The verdict of a finished checker.
fn read<M, C>(
    name: &'static str,
    instances: usize,
    checker: C,
    conditions: &[(&'static str, Condition<M>)],
    checks: Checks<M>,
    progress: Option<ProgressVerdict>,
) -> Verdict
where
    M: Model,
    M::State: Hash + Debug + Clone + PartialEq,
    M::Action: Debug + Clone + PartialEq,
    C: Checker<M>,
{
    let mut violated = None;
    let mut counterexample = Vec::new();
    for inv in checks.safety {
        if let Some(path) = checker.discovery(inv.name()) {
            violated = Some(*inv);
            // Path entries are (state, action taken from it); print each
            // action with the state it led to, up to the first state that
            // breaks the property.
            let holds = conditions
                .iter()
                .find(|(name, _)| *name == inv.name())
                .map(|(_, c)| *c)
                .expect("a safety property of the model");
            let mut steps = path.into_vec();
            if let Some(first) = steps.iter().position(|(s, _)| !holds(checker.model(), s)) {
                steps.truncate(first + 1);
            }
            counterexample = std::iter::once(format!(" 0. (start)  =>  {:?}", steps[0].0))
                .chain(steps.windows(2).enumerate().map(|(i, w)| {
                    let action = w[0]
                        .1
                        .as_ref()
                        .expect("every step but the last has an action");
                    format!("{:>2}. {action:?}  =>  {:?}", i + 1, w[1].0)
                }))
                .collect();
            break;
        }
    }
    if let Some(p) = progress
        .as_ref()
        .filter(|p| violated.is_none() && !p.holds())
    {
        violated = Some(Invariant::Liveness);
        counterexample = p.trap.clone();
    }
    let vacuous = checks
        .examples
        .iter()
        .filter(|e| checker.discovery(e).is_none())
        .copied()
        .collect();
    let expect = catalogue::protocol(name).map_or(Expect::Holds, |p| p.expect);
    Verdict {
        name,
        expect,
        instances,
        violated,
        vacuous,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        depth: checker.max_depth(),
        symmetry: checks.symmetry.is_some(),
        progress,
        counterexample,
    }
}

/// Serves stateright's Explorer for the model `name` at `addr` (a web UI
/// to step through states and see each property's status). Blocks while
/// serving; `None` if there is no such model.
pub fn explore(name: &str, instances: usize, addr: &str) -> Option<()> {
    use crate::commits::{Commits, Variant};
    let crashes = 1;
    let procs = instances;
    match name {
        "naive-reap" => drop(
            crate::naive_reap::NaiveReap {
                procs,
                faults: crate::naive_reap::ALL_FAULTS,
            }
            .checker()
            .serve(addr),
        ),
        "registry-rmw" => drop(crate::registry::RegistryRmw { procs }.checker().serve(addr)),
        "registry-150ms" => drop(
            crate::registry_150ms::Registry150ms { procs }
                .checker()
                .serve(addr),
        ),
        "dir-election" => drop(
            crate::dir_election::DirElection {
                procs,
                faults: crate::dir_election::ALL_FAULTS,
            }
            .checker()
            .serve(addr),
        ),
        "baton-lock-kernel" => drop(
            crate::lock_kernel::KernelLock { procs, crashes }
                .checker()
                .serve(addr),
        ),
        "baton-lock-file" => drop(crate::lock_file::catalogue(procs).checker().serve(addr)),
        "baton-election" => drop(
            crate::election::KernelElection { procs, crashes }
                .checker()
                .serve(addr),
        ),
        "baton-election-lease" | "baton-election-lease-paused" => drop(
            crate::lease::LeaseElection {
                procs,
                crashes,
                pauses: u8::from(name.ends_with("paused")),
                fenced: true,
            }
            .checker()
            .serve(addr),
        ),
        "claims-shared-json" | "baton-claims" => {
            use crate::claims::{ClaimsModel, Variant as C};
            let variant = if name == "baton-claims" {
                C::Baton
            } else {
                C::SharedJson
            };
            drop(
                ClaimsModel {
                    variant,
                    procs,
                    crashes,
                }
                .checker()
                .serve(addr),
            )
        }
        "state-rmw-unlocked" | "state-write-in-place" | "baton-state" | "baton-state-cas" => {
            use crate::state::{StateModel, Variant as S};
            let variant = match name {
                "state-rmw-unlocked" => S::Unlocked,
                "state-write-in-place" => S::InPlace,
                "baton-state" => S::Locked,
                _ => S::Cas,
            };
            drop(
                StateModel {
                    variant,
                    procs,
                    crashes,
                }
                .checker()
                .serve(addr),
            )
        }
        "commit-shared-index" | "commit-lock-staging" | "baton-txn" => {
            let variant = match name {
                "commit-shared-index" => Variant::SharedIndex,
                "commit-lock-staging" => Variant::LockStaging,
                _ => Variant::Txn,
            };
            drop(
                Commits {
                    variant,
                    tasks: procs,
                    crashes,
                }
                .checker()
                .serve(addr),
            )
        }
        _ => return None,
    }
    Some(())
}

/// Checks the model `name` with `instances` processes.
pub fn check(name: &str, instances: usize) -> Option<Verdict> {
    assert!(instances >= 1, "a model needs an instance");
    Some(match name {
        "naive-reap" => crate::naive_reap::check(instances),
        "baton-lock-kernel" => crate::lock_kernel::check(instances),
        "baton-lock-file" => crate::lock_file::check(instances),
        "registry-rmw" => crate::registry::check(instances),
        "registry-150ms" => crate::registry_150ms::check(instances),
        "dir-election" => crate::dir_election::check(instances),
        "baton-election" => crate::election::check(instances),
        "baton-election-lease" => crate::lease::check(instances, false, true),
        "baton-election-lease-paused" => crate::lease::check(instances, true, true),
        "commit-shared-index" => {
            crate::commits::check(crate::commits::Variant::SharedIndex, instances)
        }
        "commit-lock-staging" => {
            crate::commits::check(crate::commits::Variant::LockStaging, instances)
        }
        "baton-txn" => crate::commits::check(crate::commits::Variant::Txn, instances),
        "state-rmw-unlocked" => crate::state::check(crate::state::Variant::Unlocked, instances),
        "state-write-in-place" => crate::state::check(crate::state::Variant::InPlace, instances),
        "baton-state" => crate::state::check(crate::state::Variant::Locked, instances),
        "baton-state-cas" => crate::state::check(crate::state::Variant::Cas, instances),
        "claims-shared-json" => crate::claims::check(crate::claims::Variant::SharedJson, instances),
        "baton-claims" => crate::claims::check(crate::claims::Variant::Baton, instances),
        _ => return None,
    })
}
