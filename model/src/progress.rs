//! Bounded progress, the models' liveness check.
//!
//! stateright's `eventually` properties give false negatives on cyclic
//! paths, and every retry loop is a cycle. So liveness is checked as a
//! bounded reachability property instead: from **every** reachable state
//! (faults included on the way there), some path of at most `bound`
//! fault-free steps reaches a state where progress has been made (a lock
//! is held, a primary acts, everyone is done). The passage of time is not a
//! fault: waiting out a stale bound is how progress is made after a crash.
//!
//! This is `AG EF≤N goal`: nothing can trap the processes, whatever the
//! faults did before they stopped. It assumes a scheduler that lets the
//! right processes run (no model of fairness is claimed); the simulator's
//! liveness check, on real schedules after healing, covers the rest.
//!
//! The check builds the whole state graph once (states kept only as
//! fingerprints, parents and edges), then runs one breadth-first search
//! backwards from the goal states over fault-free edges.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};

use stateright::Model;

use crate::check::Representative;

/// What progress means for a model, and within how many steps it must be
/// possible.
pub(crate) struct Progress<M: Model> {
    /// The progress made, for the report ("a waiter holds the lock").
    pub what: &'static str,
    pub goal: fn(&M::State) -> bool,
    /// Actions that are faults (crash, pause, pid reuse, clock step).
    pub fault: fn(&M::Action) -> bool,
    pub bound: usize,
}

/// The result of a progress check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressVerdict {
    pub what: &'static str,
    pub bound: usize,
    /// The most fault-free steps any reachable state needs to make progress
    /// (`None`: some state can never make progress).
    pub worst: Option<usize>,
    /// When the bound is broken: the shortest path to the first such
    /// state, numbered as counterexamples are.
    pub trap: Vec<String>,
}

impl ProgressVerdict {
    pub fn holds(&self) -> bool {
        self.worst.is_some_and(|w| w <= self.bound)
    }
}

fn fingerprint<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

const ROOT: u32 = u32::MAX;
const UNREACHED: u32 = u32::MAX;

/// Checks `p` over every reachable state of `model`. With a
/// `representative`, states equal up to renumbering of processes are one
/// node (sound when the goal and the fault set do not name processes).
pub(crate) fn check<M>(
    model: &M,
    p: &Progress<M>,
    representative: Option<Representative<M>>,
) -> ProgressVerdict
where
    M: Model,
    M::State: Hash + Debug,
    M::Action: Debug,
{
    let canonical = |s: M::State| match representative {
        Some(r) => r(&s),
        None => s,
    };
    // Forward: every reachable state, its parent, and its fault-free edges.
    let mut index: HashMap<u64, u32> = HashMap::new();
    let mut fingerprints: Vec<u64> = Vec::new();
    // (parent, ordinal of the action taken from it, or of the init state)
    let mut parent: Vec<(u32, u16)> = Vec::new();
    let mut goal: Vec<bool> = Vec::new();
    let mut edges: Vec<(u32, u32)> = Vec::new(); // (from, to), fault-free
    let mut queue = VecDeque::new();
    for (i, s) in model.init_states().into_iter().enumerate() {
        let s = canonical(s);
        let fp = fingerprint(&s);
        if let Entry::Vacant(e) = index.entry(fp) {
            e.insert(parent.len() as u32);
            fingerprints.push(fp);
            parent.push((ROOT, i as u16));
            goal.push((p.goal)(&s));
            queue.push_back(s);
        }
    }
    let mut actions = Vec::new();
    let mut from = 0u32;
    while let Some(s) = queue.pop_front() {
        actions.clear();
        model.actions(&s, &mut actions);
        for (k, a) in actions.drain(..).enumerate() {
            let fault = (p.fault)(&a);
            let Some(next) = model.next_state(&s, a) else {
                continue;
            };
            let next = canonical(next);
            let fp = fingerprint(&next);
            let to = match index.entry(fp) {
                Entry::Occupied(e) => *e.get(),
                Entry::Vacant(e) => {
                    let to = parent.len() as u32;
                    e.insert(to);
                    fingerprints.push(fp);
                    parent.push((from, k as u16));
                    goal.push((p.goal)(&next));
                    queue.push_back(next);
                    to
                }
            };
            if !fault {
                edges.push((from, to));
            }
        }
        from += 1;
    }
    assert!(
        parent.len() < UNREACHED as usize,
        "too many states to index"
    );

    // Backward: fault-free distance to the nearest goal state.
    let n = parent.len();
    let mut start = vec![0u32; n + 1];
    for &(_, to) in &edges {
        start[to as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut preds = vec![0u32; edges.len()];
    for &(from, to) in &edges {
        preds[fill[to as usize] as usize] = from;
        fill[to as usize] += 1;
    }
    let mut dist = vec![UNREACHED; n];
    let mut queue: VecDeque<u32> = (0..n as u32).filter(|&i| goal[i as usize]).collect();
    for &g in &queue {
        dist[g as usize] = 0;
    }
    while let Some(s) = queue.pop_front() {
        let d = dist[s as usize] + 1;
        for &pred in &preds[start[s as usize] as usize..start[s as usize + 1] as usize] {
            if dist[pred as usize] == UNREACHED {
                dist[pred as usize] = d;
                queue.push_back(pred);
            }
        }
    }
    let worst = if dist.contains(&UNREACHED) {
        None
    } else {
        dist.iter().max().map(|&d| d as usize)
    };
    let mut verdict = ProgressVerdict {
        what: p.what,
        bound: p.bound,
        worst,
        trap: Vec::new(),
    };
    if !verdict.holds() {
        // States were numbered breadth first: the first one over the bound
        // has the shortest path.
        let trapped = dist
            .iter()
            .position(|&d| d == UNREACHED || d as usize > p.bound)
            .expect("a state over the bound");
        verdict.trap = path_to(
            model,
            &parent,
            &fingerprints,
            representative,
            trapped as u32,
        );
        verdict.trap.push(match dist[trapped] {
            UNREACHED => format!("    from here no fault-free path leads to: {}", p.what),
            d => format!(
                "    from here the shortest fault-free path to \"{}\" takes {d} steps",
                p.what
            ),
        });
    }
    verdict
}

/// Replays the recorded parents from an initial state to `target`. With
/// symmetry the recorded states are representatives: each step takes the
/// action of the concrete state that leads to the next one's class, so the
/// path printed keeps its process numbers.
fn path_to<M>(
    model: &M,
    parent: &[(u32, u16)],
    fingerprints: &[u64],
    representative: Option<Representative<M>>,
    target: u32,
) -> Vec<String>
where
    M: Model,
    M::State: Hash + Debug,
    M::Action: Debug,
{
    let class = |s: &M::State| match representative {
        Some(r) => fingerprint(&r(s)),
        None => fingerprint(s),
    };
    let mut chain = vec![target];
    while parent[*chain.last().unwrap() as usize].0 != ROOT {
        chain.push(parent[*chain.last().unwrap() as usize].0);
    }
    chain.reverse();
    let (_, init) = parent[chain[0] as usize];
    let mut state = model.init_states().swap_remove(init as usize);
    let mut lines = vec![format!(" 0. (start)  =>  {state:?}")];
    let mut actions = Vec::new();
    for (i, &node) in chain.iter().enumerate().skip(1) {
        actions.clear();
        model.actions(&state, &mut actions);
        let (action, next) = actions
            .drain(..)
            .find_map(|a| {
                let line = format!("{a:?}");
                let next = model.next_state(&state, a)?;
                (class(&next) == fingerprints[node as usize]).then_some((line, next))
            })
            .expect("a recorded step replays");
        state = next;
        lines.push(format!("{i:>2}. {action}  =>  {state:?}"));
    }
    lines
}
