//! Running scenarios: one seed, many seeds, replay tokens, shrinking.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use baton_core::catalogue::{Expect, Invariant};
use corosensei::Coroutine;
use corosensei::stack::DefaultStack;

use crate::clock::epoch;
use crate::env::{Probe, SimEnv};
use crate::explore::{MAX_PREEMPTIONS, next_script};
use crate::fault::{FaultKinds, FaultPlan, Placed};
use crate::fs::SimFs;
use crate::kernel::{Event, Kernel, Limits, PState, Shared, Unwind, Yield};
use crate::oracle::{Finding, Oracle, Violation};
use crate::strategy::{Strategy, StrategyKind};

/// What one simulated process is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Role {
    /// Its slot, `p<index>` in traces.
    pub index: usize,
    pub procs: usize,
    /// How many rounds of work (scenario-defined).
    pub iters: u32,
    /// Scenarios that draw random instance ids use the slot's index
    /// instead, so a schedule that depends on id order (a model's
    /// counterexample) can be replayed.
    pub pinned_ids: bool,
}

/// A process body: runs in every process, and again in each restart.
pub type Body = dyn Fn(&SimEnv, &Probe, Role) + Send + Sync;
/// The end-of-run check on the final state (no lost update, say).
pub type EndCheck = dyn Fn(&SimFs, &Oracle) -> Result<(), (Invariant, String)> + Send + Sync;
/// Builds the initial, durable tree.
pub type Setup = dyn Fn(&mut SimFs) + Send + Sync;

/// A protocol to check: processes running a body against the simulated
/// environment, with the faults it must survive and what must come out.
pub struct Scenario {
    pub name: String,
    pub expect: Expect,
    pub procs: usize,
    pub iters: u32,
    pub faults: FaultKinds,
    /// How many faults a run may draw.
    pub fault_budget: u32,
    /// Faults strike only in this first stretch of virtual time.
    pub fault_phase: Duration,
    /// After it, every process must finish within this.
    pub liveness_bound: Duration,
    pub max_steps: u64,
    pub max_restarts: u32,
    /// Longest pause a pause fault may cause.
    pub max_pause: Duration,
    /// If set, the most a process may be paused in total over a run (a
    /// protocol's pause assumption); further pause faults are skipped.
    pub pause_total: Option<Duration>,
    /// See [`Role::pinned_ids`].
    pub pinned_ids: bool,
    /// No process may crash in this scenario at all: its protocol is
    /// documented not to survive a crash (a lock nobody may reap), so
    /// exploration places none either.
    pub crash_free: bool,
    /// Files another tool may remove, replace or truncate when the
    /// `foreign` fault kind is on, each with the resource whose lock it is.
    pub foreign_targets: Vec<(std::path::PathBuf, String)>,
    pub setup: Box<Setup>,
    pub body: Arc<Body>,
    pub end: Box<EndCheck>,
}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scenario({})", self.name)
    }
}

impl Scenario {
    /// A scenario with `procs` processes running `body`, no faults, and
    /// nothing checked at the end. Adjust the public fields to taste.
    pub fn new(
        name: &str,
        procs: usize,
        body: impl Fn(&SimEnv, &Probe, Role) + Send + Sync + 'static,
    ) -> Scenario {
        Scenario {
            name: name.to_owned(),
            expect: Expect::Holds,
            procs,
            iters: 1,
            faults: FaultKinds::NONE,
            fault_budget: 8,
            fault_phase: Duration::from_secs(60),
            liveness_bound: Duration::from_secs(300),
            max_steps: 200_000,
            max_restarts: 3,
            max_pause: Duration::from_secs(120),
            pause_total: None,
            pinned_ids: false,
            crash_free: false,
            foreign_targets: Vec::new(),
            setup: Box::new(|_| {}),
            body: Arc::new(body),
            end: Box::new(|_, _| Ok(())),
        }
    }

    /// The configuration of seed `seed` with this scenario's defaults.
    pub fn config(&self, strategy: StrategyKind, seed: u64) -> Config {
        Config {
            scenario: self.name.clone(),
            strategy,
            seed,
            procs: self.procs,
            iters: self.iters,
            faults: self.faults,
            fault_budget: self.fault_budget,
            suppressed: BTreeSet::new(),
            script: Vec::new(),
            crash_at: None,
            placed: Placed::Crash,
        }
    }
}

/// Everything a run depends on besides the scenario's code: printed as a
/// replay token, a run is a pure function of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub scenario: String,
    pub strategy: StrategyKind,
    pub seed: u64,
    pub procs: usize,
    pub iters: u32,
    /// Kinds of fault drawn (the scenario's, unless overridden).
    pub faults: FaultKinds,
    pub fault_budget: u32,
    /// Ordinals of faults suppressed (shrinking).
    pub suppressed: BTreeSet<u32>,
    /// Choices for the `dfs` strategy.
    pub script: Vec<u32>,
    /// Strike the call with this step number with `placed` (a crash by
    /// default): the fault placement bounded-exhaustive exploration
    /// enumerates.
    pub crash_at: Option<u64>,
    pub placed: Placed,
}

/// `scenario:strategy:seed:procs:iters:faults:budget:suppressed:script:crash_at`,
/// faults as letters (see [`FaultKinds::letters`]), lists comma-separated,
/// empty when empty: `naive-reap:random:1f:2:1:cps:3:0,2::`.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: Vec<String>| v.join(",");
        let strategy = match self.strategy {
            StrategyKind::Pct { depth } => format!("pct{depth}"),
            s => s.name().to_owned(),
        };
        write!(
            f,
            "{}:{}:{:x}:{}:{}:{}:{}:{}:{}:{}",
            self.scenario,
            strategy,
            self.seed,
            self.procs,
            self.iters,
            self.faults.letters(),
            self.fault_budget,
            join(self.suppressed.iter().map(u32::to_string).collect()),
            join(self.script.iter().map(u32::to_string).collect()),
            self.crash_at
                .map_or(String::new(), |s| format!("{}{s}", self.placed.letter())),
        )
    }
}

/// The most processes a replay token may ask for.
pub const MAX_PROCS: usize = 64;
/// The most rounds per process a replay token may ask for.
pub const MAX_ITERS: u32 = 100_000;

/// A replay token that does not parse or names another scenario.
#[derive(Debug)]
pub struct BadToken(pub String);

impl fmt::Display for BadToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad replay token: {}", self.0)
    }
}

impl std::error::Error for BadToken {}

impl FromStr for Config {
    type Err = BadToken;

    fn from_str(s: &str) -> Result<Config, BadToken> {
        let bad = |why: &str| BadToken(format!("{s}: {why}"));
        let parts: Vec<&str> = s.split(':').collect();
        let [
            scenario,
            strategy,
            seed,
            procs,
            iters,
            faults,
            budget,
            suppressed,
            script,
            crash_at,
        ] = parts[..]
        else {
            return Err(bad("expected 10 fields separated by ':'"));
        };
        let list = |field: &str| -> Result<Vec<u32>, BadToken> {
            field
                .split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.parse().map_err(|_| bad("lists hold numbers")))
                .collect()
        };
        let strategy = match strategy {
            "random" => StrategyKind::Random,
            "dfs" => StrategyKind::Dfs,
            s if s.starts_with("pct") => StrategyKind::Pct {
                depth: s[3..].parse().map_err(|_| bad("pct needs a depth"))?,
            },
            _ => return Err(bad("unknown strategy")),
        };
        // Bounds far above any scenario's, far below what would exhaust
        // memory: a token is input, and may be mistyped or hostile.
        let bounded = |field: &str, what: &str, max: u64| -> Result<u64, BadToken> {
            match field.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(&format!("{what} is a number from 1 to {max}"))),
            }
        };
        let procs = bounded(procs, "procs", MAX_PROCS as u64)? as usize;
        let iters = bounded(iters, "iters", u64::from(MAX_ITERS))? as u32;
        Ok(Config {
            scenario: scenario.to_owned(),
            strategy,
            seed: u64::from_str_radix(seed, 16).map_err(|_| bad("seed is hex"))?,
            procs,
            iters,
            faults: FaultKinds::from_letters(faults).ok_or_else(|| bad("unknown fault letter"))?,
            fault_budget: budget.parse().map_err(|_| bad("budget is a number"))?,
            suppressed: list(suppressed)?.into_iter().collect(),
            script: list(script)?,
            crash_at: match crash_at.trim_start_matches(char::is_alphabetic) {
                "" => None,
                n => Some(n.parse().map_err(|_| bad("crash_at is a step number"))?),
            },
            placed: {
                let letter = &crash_at
                    [..crash_at.len() - crash_at.trim_start_matches(char::is_alphabetic).len()];
                Placed::from_letter(letter).ok_or_else(|| bad("the placed fault is m, p or f"))?
            },
        })
    }
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct Report {
    pub config: Config,
    pub violation: Option<Violation>,
    pub steps: u64,
    pub virtual_ns: u64,
    /// The trace, when asked for: `t=<true> p<N> (clock <local>) <call> -> <result>`.
    pub trace: Vec<String>,
    /// The trace's steps as data (when traced), for diagrams.
    pub events: Vec<Event>,
    /// Hash of the whole run (of the trace lines, when traced).
    pub hash: u64,
    pub faults_fired: u32,
    /// Faults drawn, including suppressed ones (shrinking's search space).
    pub fault_ordinals: u32,
    /// `dfs`: the choice points met, as (taken, options).
    pub choices: Vec<(u32, u32)>,
    /// Coverage marks: rare paths and how often they ran.
    pub marks: BTreeMap<String, u64>,
}

/// Runs one configuration of `scenario`. With `trace`, records every step.
pub fn run(scenario: &Scenario, config: &Config, trace: bool) -> Report {
    run_guided(scenario, config, trace, Vec::new())
}

/// Runs `scenario` following `guide` first: each step a process's call at
/// a site, or its crash, in order (see `Strategy::follow`); then the
/// configured strategy. How a model checker's counterexample is replayed
/// against production code.
pub fn run_guided(
    scenario: &Scenario,
    config: &Config,
    trace: bool,
    guide: Vec<crate::strategy::GuideStep>,
) -> Report {
    assert!(config.procs > 0, "a run needs a process");
    let mut fs = SimFs::new(epoch());
    (scenario.setup)(&mut fs);
    fs.sync_everything();
    let mut faults = FaultPlan::draw(
        config.seed,
        config.faults,
        config.fault_budget,
        config.suppressed.clone(),
    );
    faults.crash_at = config.crash_at;
    faults.placed = config.placed;
    faults.pause_max_ns = nanos(scenario.max_pause);
    faults.pause_total_ns = scenario.pause_total.map(nanos);
    let limits = Limits {
        fault_phase_ns: nanos(scenario.fault_phase),
        liveness_bound_ns: nanos(scenario.liveness_bound),
        max_steps: scenario.max_steps,
        max_restarts: scenario.max_restarts,
    };
    let mut strategy = Strategy::new(
        config.strategy,
        config.seed,
        config.procs,
        config.script.clone(),
    );
    strategy.guide = guide.into();
    let mut kernel = Kernel::new(
        fs,
        config.procs,
        config.seed,
        strategy,
        faults,
        limits,
        trace,
    );
    kernel.foreign_targets = scenario.foreign_targets.clone();
    let shared = Arc::new(Shared::new(kernel));
    let mut procs: Vec<Process> = (0..config.procs)
        .map(|slot| {
            let role = Role {
                index: slot,
                procs: config.procs,
                iters: config.iters,
                pinned_ids: scenario.pinned_ids,
            };
            let (shared, body) = (Arc::clone(&shared), Arc::clone(&scenario.body));
            Coroutine::with_stack(stacks::take(), move |yielder: &Yield, ()| {
                process_main(&shared, role, &*body, yielder)
            })
        })
        .collect();
    drop(shared.switch(shared.lock(), None));
    loop {
        let next = {
            let k = shared.lock();
            if k.finished {
                break;
            }
            k.current.expect("an unfinished run has a current process")
        };
        // A process returns only after handing the turn on (process_main).
        let _ = procs[next].resume(());
    }
    for p in procs {
        assert!(p.done(), "every process has ended when the run has");
        stacks::give_back(p.into_stack());
    }
    let shared = Arc::into_inner(shared).expect(
        "every process has ended, and nothing of theirs outlived them: a value returned \
         while a destructor crashed is leaked (rust-lang/rust#47949), so release guards \
         explicitly before returning what they protect",
    );
    let mut k = shared.into_kernel();
    if k.violation.is_none()
        && let Err((inv, detail)) = (scenario.end)(&k.fs, &k.oracle)
    {
        k.violate(Finding::Invariant(inv), detail);
    }
    Report {
        config: config.clone(),
        violation: k.violation.clone(),
        steps: k.step,
        virtual_ns: k.now,
        hash: k.trace_hash(),
        trace: k.trace.take().unwrap_or_default(),
        events: std::mem::take(&mut k.events),
        faults_fired: k.faults.fired(),
        fault_ordinals: k.faults.ordinals(),
        choices: k.strategy.log.clone(),
        marks: std::mem::take(&mut k.marks),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// A slot's simulated processes, one coroutine.
type Process = Coroutine<(), (), (), DefaultStack>;

/// Coroutine stacks kept for the next run on this thread: allocating one
/// is an `mmap`, an `mprotect` for its guard page and a `munmap` later,
/// more than a whole short schedule's hand-offs.
mod stacks {
    use std::cell::RefCell;

    use corosensei::stack::DefaultStack;

    /// Twice the main thread's usual 1 MiB: production code, the trace's
    /// formatting and an unwind through both run on it.
    const SIZE: usize = 2 << 20;
    /// Stacks kept per thread; a run with more processes allocates more.
    const KEEP: usize = 16;

    thread_local! {
        static FREE: RefCell<Vec<DefaultStack>> = const { RefCell::new(Vec::new()) };
    }

    pub fn take() -> DefaultStack {
        FREE.with(|f| f.borrow_mut().pop())
            .unwrap_or_else(|| DefaultStack::new(SIZE).expect("map a coroutine stack"))
    }

    pub fn give_back(stack: DefaultStack) {
        FREE.with(|f| {
            let mut free = f.borrow_mut();
            if free.len() < KEEP {
                free.push(stack);
            }
        });
    }
}

/// One coroutine: a slot's successive processes, until done or gone. A
/// panic in the simulator itself (not in the body) is reported as a
/// finding too, and the turn handed on, so a run never hangs.
fn process_main(shared: &Arc<Shared>, role: Role, body: &Body, yielder: &Yield) {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        process_loop(shared, role, body, yielder)
    }));
    if let Err(payload) = outcome {
        let mut k = shared.lock();
        let message = panic_message(&*payload);
        k.violate(
            Finding::Panic,
            format!("simulator panicked in p{}: {message}", role.index),
        );
        k.procs[role.index].state = PState::Gone;
        if k.current == Some(role.index) {
            drop(shared.switch(k, None));
        }
    }
}

fn process_loop(shared: &Arc<Shared>, role: Role, body: &Body, yielder: &Yield) {
    let slot = role.index;
    let me = Some((slot, yielder));
    let mut k = shared.lock();
    assert_eq!(k.current, Some(slot), "a process starts on its turn");
    loop {
        if k.procs[slot].state == PState::Dying {
            // Killed before or between runs of the body (machine crash).
            if !k.restart(slot) {
                break;
            }
            k = shared.switch(k, me);
            continue;
        }
        let incarnation = k.procs[slot].incarnation;
        drop(k);
        let env = SimEnv::new(Arc::clone(shared), slot, yielder);
        let probe = Probe::new(Arc::clone(shared), slot, incarnation);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| body(&env, &probe, role)));
        drop((env, probe));
        k = shared.lock();
        match outcome {
            Ok(()) if !k.is_dead(slot, incarnation) => {
                k.record(slot, || "DONE".into());
                // A finished process holds and acts as nothing any more.
                k.oracle.died(slot);
                k.procs[slot].state = PState::Done;
                break;
            }
            Ok(()) => {}
            Err(payload) => match payload.downcast_ref::<Unwind>() {
                Some(Unwind::Crashed) => {}
                Some(Unwind::Aborted) => {
                    k.procs[slot].state = PState::Gone;
                    break;
                }
                None => {
                    let message = panic_message(&*payload);
                    k.violate(Finding::Panic, format!("p{slot} panicked: {message}"));
                    k.procs[slot].state = PState::Gone;
                    break;
                }
            },
        }
        // Killed: a new process takes the slot after a delay.
        if !k.restart(slot) {
            break;
        }
        let pid = k.procs[slot].pid;
        k.record(slot, || format!("RESTART as pid {pid}"));
        k = shared.switch(k, me);
    }
    if !matches!(k.procs[slot].state, PState::Done) {
        k.procs[slot].state = PState::Gone;
    }
    drop(shared.switch(k, None));
}

/// What checking many seeds found.
#[derive(Clone, Debug)]
pub struct Check {
    pub seeds: u64,
    pub steps: u64,
    /// Coverage marks summed over the seeds run.
    pub marks: BTreeMap<String, u64>,
    /// The first violating run of the invariant the scenario is expected to
    /// break (any invariant, for a scenario expected to hold).
    pub failure: Option<Report>,
    /// For a scenario expected to break one invariant: the first run that
    /// broke another one instead. The search goes on past it.
    pub other: Option<Report>,
}

impl Check {
    /// Whether a violation ends the search: for a known-bad scenario only a
    /// violation of the expected invariant does (others are kept aside).
    pub(crate) fn take(&mut self, scenario: &Scenario, report: Report) -> bool {
        let Some(v) = &report.violation else {
            return false;
        };
        match scenario.expect {
            Expect::Violates(i) if v.finding != Finding::Invariant(i) => {
                if self.other.is_none() {
                    self.other = Some(report);
                }
                false
            }
            _ => {
                self.failure = Some(report);
                true
            }
        }
    }
}

/// Runs `seeds` consecutive seeds from `first`, stopping at the first
/// violation that settles the scenario's expectation; `progress` is told
/// each seed done.
pub fn check(
    scenario: &Scenario,
    strategy: StrategyKind,
    first: u64,
    seeds: u64,
    progress: &mut dyn FnMut(u64),
) -> Check {
    let mut out = Check {
        seeds: 0,
        steps: 0,
        marks: BTreeMap::new(),
        failure: None,
        other: None,
    };
    for seed in first..first.saturating_add(seeds) {
        let report = run(scenario, &scenario.config(strategy, seed), false);
        out.seeds += 1;
        out.steps += report.steps;
        for (name, n) in &report.marks {
            *out.marks.entry(name.clone()).or_default() += n;
        }
        progress(out.seeds);
        if out.take(scenario, report) {
            break;
        }
    }
    out
}

/// Replays a token with a full trace.
pub fn replay(scenario: &Scenario, token: &str) -> Result<Report, BadToken> {
    let config: Config = token.parse()?;
    if config.scenario != scenario.name {
        return Err(BadToken(format!(
            "{token}: token is for {}, not {}",
            config.scenario, scenario.name
        )));
    }
    Ok(run(scenario, &config, true))
}

/// Most runs shrinking may try (a run takes 0.1 to 1 ms).
const SHRINK_RUNS: usize = 5_000;
/// Other seeds tried for a smaller configuration when the failing seed
/// does not fail with it.
const SHRINK_SEEDS: u64 = 48;

/// Minimises a failing run, schedule and faults together, while the same
/// invariant still breaks. In turn, until nothing gets smaller: fewer
/// processes or rounds (at the same seed, or another); fewer faults (each
/// suppressed in turn); then the schedule itself, re-run as the `dfs`
/// script its choices were logged as (see [`crate::strategy`]), with
/// preemptions removed by delta debugging: blocks of choices set back to
/// "keep running the current process", halving the block while any
/// remain. Smaller is fewer processes, then rounds, then steps to the
/// violation, then faults, then preemptions. Returns the smallest run
/// found, traced; its token replays it.
pub fn shrink(scenario: &Scenario, failing: &Report) -> Report {
    let mut s = Shrinker {
        scenario,
        finding: failing
            .violation
            .as_ref()
            .expect("shrink a failing run")
            .finding
            .clone(),
        origin: failing.config.strategy,
        best: failing.clone(),
        runs: 0,
    };
    loop {
        let before = size(&s.best);
        s.fewer_processes_or_rounds();
        s.fewer_faults();
        s.one_crash();
        s.fewer_preemptions();
        s.shortest_schedule();
        if size(&s.best) == before || s.runs >= SHRINK_RUNS {
            break;
        }
    }
    run(scenario, &s.best.config, true)
}

/// What shrinking minimises, in order.
fn size(r: &Report) -> (usize, u32, u64, u32, usize) {
    (
        r.config.procs,
        r.config.iters,
        r.violation.as_ref().map_or(u64::MAX, |v| v.step),
        r.faults_fired,
        preemptions(&script_of(r)),
    )
}

/// The run's schedule as a `dfs` script, up to its last preemption (past
/// the script, `dfs` keeps running the current process anyway).
fn script_of(r: &Report) -> Vec<u32> {
    let mut script: Vec<u32> = r.choices.iter().map(|c| c.0).collect();
    while script.last() == Some(&0) {
        script.pop();
    }
    script
}

fn preemptions(script: &[u32]) -> usize {
    script.iter().filter(|&&c| c != 0).count()
}

struct Shrinker<'a> {
    scenario: &'a Scenario,
    finding: Finding,
    /// The failing run's strategy, for new shapes (whose old schedule
    /// means nothing).
    origin: StrategyKind,
    best: Report,
    runs: usize,
}

impl Shrinker<'_> {
    /// Runs `c`; keeps it if it breaks the same invariant and is smaller.
    fn attempt(&mut self, c: Config) -> bool {
        if self.runs >= SHRINK_RUNS {
            return false;
        }
        let before = size(&self.best);
        self.try_run(c);
        size(&self.best) < before
    }

    /// Runs `c`, keeping it if it is a smaller run breaking the same
    /// invariant; returns its report either way.
    fn try_run(&mut self, c: Config) -> Report {
        self.runs += 1;
        let r = run(self.scenario, &c, false);
        let same = r.violation.as_ref().map(|v| &v.finding) == Some(&self.finding);
        if same && size(&r) < size(&self.best) {
            self.best = r.clone();
        }
        r
    }

    fn fewer_processes_or_rounds(&mut self) {
        let c = self.best.config.clone();
        let fresh = Config {
            strategy: self.origin,
            script: Vec::new(),
            suppressed: BTreeSet::new(),
            ..c.clone()
        };
        let mut shapes = Vec::new();
        if c.procs > 1 {
            shapes.push(Config {
                procs: c.procs - 1,
                ..fresh.clone()
            });
        }
        if c.iters > 1 {
            shapes.push(Config {
                iters: c.iters - 1,
                ..fresh.clone()
            });
        }
        // This seed first, then others; the failing run's strategy, then
        // pct, whose few preemptions reach shallow bugs with few processes.
        let mut strategies = vec![self.origin];
        for other in [StrategyKind::Pct { depth: 3 }, StrategyKind::Random] {
            if !strategies.contains(&other) {
                strategies.push(other);
            }
        }
        for shape in &shapes {
            for &strategy in &strategies {
                for offset in 0..=SHRINK_SEEDS {
                    let seed = shape.seed.wrapping_add(offset);
                    if self.attempt(Config {
                        seed,
                        strategy,
                        ..shape.clone()
                    }) {
                        return;
                    }
                }
            }
        }
        // The smaller shape with no drawn faults and one crash placed at
        // each step in turn, run without preemptions: exploration's fault
        // placement, for a violation a crash can cause on its own.
        if !(c.faults.crash || c.crash_at.is_some()) {
            return;
        }
        let last = self.best.violation.as_ref().map_or(0, |v| v.step);
        for shape in shapes {
            for at in 1..last {
                if self.attempt(Config {
                    strategy: StrategyKind::Dfs,
                    fault_budget: 0,
                    crash_at: Some(at),
                    placed: Placed::Crash,
                    ..shape.clone()
                }) {
                    return;
                }
            }
        }
    }

    fn fewer_faults(&mut self) {
        let mut ordinal = 0;
        while ordinal < self.best.fault_ordinals {
            let c = self.best.config.clone();
            if !c.suppressed.contains(&ordinal) {
                let mut suppressed = c.suppressed.clone();
                suppressed.insert(ordinal);
                self.attempt(Config { suppressed, ..c });
            }
            ordinal += 1;
        }
    }

    /// The drawn faults replaced by one crash placed at a step, earliest
    /// first: how exploration places faults (see [`crate::explore`]), and
    /// often a shorter road to the same violation than where the seed's
    /// faults happened to strike.
    fn one_crash(&mut self) {
        let c = self.best.config.clone();
        // Only where crashes are a fault the scenario allows: a crash
        // elsewhere would be a different failure.
        if self.best.faults_fired == 0 || !(c.faults.crash || c.crash_at.is_some()) {
            return;
        }
        let last = self.best.violation.as_ref().map_or(0, |v| v.step);
        let every: BTreeSet<u32> = (0..self.best.fault_ordinals.max(1)).collect();
        for at in 1..last {
            if self.attempt(Config {
                suppressed: every.clone(),
                crash_at: Some(at),
                placed: Placed::Crash,
                ..c.clone()
            }) {
                return;
            }
        }
    }

    /// Every schedule of the best run's shape and faults with at most
    /// [`MAX_PREEMPTIONS`] preemptions, varying only choices made before
    /// its violation: delta debugging only removes preemptions, so a
    /// violation that needs one elsewhere (a waiter switched in earlier, say)
    /// stays as long as the schedule it started from. Bounded like
    /// exploration, and by what is left of the run budget.
    fn shortest_schedule(&mut self) {
        let base = Config {
            strategy: StrategyKind::Dfs,
            script: Vec::new(),
            ..self.best.config.clone()
        };
        let mut script = Vec::new();
        while self.runs < SHRINK_RUNS {
            let r = self.try_run(Config {
                script,
                ..base.clone()
            });
            let horizon = self.best.violation.as_ref().map_or(0, |v| v.step);
            let horizon = usize::try_from(horizon).unwrap_or(usize::MAX);
            // Choice points come at most one a step: those past the best
            // violation cannot make a shorter one.
            let choices = &r.choices[..r.choices.len().min(horizon)];
            match next_script(choices, MAX_PREEMPTIONS) {
                Some(next) => script = next,
                None => return,
            }
        }
    }

    /// Delta debugging over the schedule's preemptions.
    fn fewer_preemptions(&mut self) {
        let as_script = |r: &Report| Config {
            strategy: StrategyKind::Dfs,
            script: script_of(r),
            ..r.config.clone()
        };
        if self.best.config.strategy != StrategyKind::Dfs {
            // The same run, as a script: equal in size, so taken only
            // when it reproduces the violation at the same step.
            let again = run(self.scenario, &as_script(&self.best), false);
            self.runs += 1;
            if again.violation.as_ref().map(|v| (&v.finding, v.step))
                != self.best.violation.as_ref().map(|v| (&v.finding, v.step))
            {
                return;
            }
            self.best = again;
        }
        let mut block = preemptions(&script_of(&self.best)).max(1);
        while block >= 1 && self.runs < SHRINK_RUNS {
            let script = script_of(&self.best);
            let at: Vec<usize> = (0..script.len()).filter(|&i| script[i] != 0).collect();
            let mut shrunk = false;
            // Latest preemptions first: they are the likeliest to come
            // after what the violation needs.
            for chunk in at.rchunks(block) {
                let mut s = script.clone();
                for &i in chunk {
                    s[i] = 0;
                }
                while s.last() == Some(&0) {
                    s.pop();
                }
                if self.attempt(Config {
                    script: s,
                    ..self.best.config.clone()
                }) {
                    shrunk = true;
                    break;
                }
            }
            if !shrunk {
                block /= 2;
            }
        }
    }
}
