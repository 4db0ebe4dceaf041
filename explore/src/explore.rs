//! `baton explore`: many runs of several copies of a program, each under
//! one schedule and at most one of each fault, each checked by the user's
//! own command; the first failing run is reported as a replay token.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use baton_sim::StrategyKind;
use baton_sim::rng::Rng;
use baton_sim::strategy::Strategy;

use crate::scratch::{Workspace, copy_tree};
use crate::session::{self, Launch, Outcome, Pick};

/// One run's schedule and faults: everything a replay token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub strategy: StrategyKind,
    pub copies: usize,
    pub seed: u64,
    /// Kill copy `.0` (its whole process group) at its call `.1`.
    pub kill: Option<(usize, u64)>,
    /// Hold copy `.0` at its call `.1` for `.2` milliseconds.
    pub pause: Option<(usize, u64, u64)>,
    /// Copy `.0`'s wall clock runs `.1` milliseconds ahead (or behind).
    pub skew: Option<(usize, i64)>,
    /// PCT's horizon: the calls a run makes, as measured.
    pub horizon: u64,
}

impl Plan {
    /// `x1.STRATEGY.COPIES.SEED.HORIZON.KILL.PAUSE.SKEW`, `-` for no fault.
    pub fn token(&self) -> String {
        let strategy = match self.strategy {
            StrategyKind::Pct { depth } => format!("pct{depth}"),
            k => k.name().to_string(),
        };
        let kill = self.kill.map_or("-".into(), |(c, n)| format!("k{c}@{n}"));
        let pause = self
            .pause
            .map_or("-".into(), |(c, n, ms)| format!("p{c}@{n}+{ms}"));
        let skew = self
            .skew
            .map_or("-".into(), |(c, ms)| format!("s{c}{ms:+}"));
        format!(
            "x1.{strategy}.{}.{:x}.{}.{kill}.{pause}.{skew}",
            self.copies, self.seed, self.horizon
        )
    }

    pub fn parse(token: &str) -> Result<Plan, String> {
        let bad = || format!("not a baton explore replay token: {token:?}");
        let parts: Vec<&str> = token.trim().split('.').collect();
        let [version, strategy, copies, seed, horizon, kill, pause, skew] = parts[..] else {
            return Err(bad());
        };
        if version != "x1" {
            return Err(bad());
        }
        let strategy = match strategy {
            "random" => StrategyKind::Random,
            s => StrategyKind::Pct {
                depth: s
                    .strip_prefix("pct")
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(bad)?,
            },
        };
        let copies: usize = copies.parse().map_err(|_| bad())?;
        if !(1..=64).contains(&copies) {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let kill = match kill {
            "-" => None,
            k => {
                let (c, n) = k
                    .strip_prefix('k')
                    .and_then(|k| k.split_once('@'))
                    .ok_or_else(bad)?;
                Some((num(c)? as usize, num(n)?))
            }
        };
        let pause = match pause {
            "-" => None,
            p => {
                let (c, rest) = p
                    .strip_prefix('p')
                    .and_then(|p| p.split_once('@'))
                    .ok_or_else(bad)?;
                let (n, ms) = rest.split_once('+').ok_or_else(bad)?;
                Some((num(c)? as usize, num(n)?, num(ms)?))
            }
        };
        let skew = match skew {
            "-" => None,
            s => {
                let s = s.strip_prefix('s').ok_or_else(bad)?;
                let at = s.find(['+', '-']).ok_or_else(bad)?;
                let ms: i64 = s[at..].parse().map_err(|_| bad())?;
                Some((num(&s[..at])? as usize, ms))
            }
        };
        let in_range = |c: usize| c < copies;
        if kill.is_some_and(|k| !in_range(k.0))
            || pause.is_some_and(|p| !in_range(p.0))
            || skew.is_some_and(|s| !in_range(s.0))
        {
            return Err(bad());
        }
        Ok(Plan {
            strategy,
            copies,
            seed: u64::from_str_radix(seed, 16).map_err(|_| bad())?,
            kill,
            pause,
            skew,
            horizon: num(horizon)?,
        })
    }
}

/// The faults an exploration may draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub kill: bool,
    pub pause: bool,
    pub skew: bool,
}

/// Draws run `seed`'s faults, given how many calls each copy made in a
/// run without faults.
pub fn draw(
    strategy: StrategyKind,
    copies: usize,
    seed: u64,
    faults: Faults,
    calls: &[u64],
) -> Plan {
    let mut rng = Rng::stream(seed, 0xE4F1);
    let at = |rng: &mut Rng| {
        let c = rng.below(copies as u64) as usize;
        let n = rng.below(calls.get(c).copied().unwrap_or(1).max(1));
        (c, n)
    };
    let kill = faults.kill.then(|| at(&mut rng));
    let pause = faults.pause.then(|| {
        let (c, n) = at(&mut rng);
        (c, n, 50 + rng.below(951))
    });
    let skew = faults.skew.then(|| {
        let c = rng.below(copies as u64) as usize;
        let ms = 1_000 + rng.below(29_001) as i64;
        (c, if rng.chance(0.5) { ms } else { -ms })
    });
    Plan {
        strategy,
        copies,
        seed,
        kill,
        pause,
        skew,
        horizon: calls.iter().sum::<u64>().max(1),
    }
}

/// Schedules by the simulator's strategy and takes the plan's faults.
struct PlanPick {
    strategy: Strategy,
    kill: Option<(usize, u64)>,
    pause: Option<(usize, u64, u64)>,
}

impl PlanPick {
    fn new(plan: &Plan) -> PlanPick {
        PlanPick {
            strategy: Strategy::with_horizon(
                plan.strategy,
                plan.seed,
                plan.copies,
                Vec::new(),
                plan.horizon,
            ),
            kill: plan.kill,
            pause: plan.pause,
        }
    }
}

impl Pick for PlanPick {
    fn pick(&mut self, waiting: &[usize], current: Option<usize>, step: u64) -> usize {
        let current = current.filter(|c| waiting.contains(c));
        self.strategy.pick(waiting, current, step)
    }
    fn kill_at(&mut self, copy: usize, nth: u64) -> bool {
        self.kill == Some((copy, nth))
    }
    fn pause_at(&mut self, copy: usize, nth: u64) -> Option<Duration> {
        match self.pause {
            Some((c, n, ms)) if (c, n) == (copy, nth) => {
                self.pause = None;
                Some(Duration::from_millis(ms))
            }
            _ => None,
        }
    }
}

/// What the user asked to check.
#[derive(Clone, Debug)]
pub struct Target {
    /// The working directory each run starts from (copied).
    pub dir: PathBuf,
    pub cmd: Vec<OsString>,
    pub check: Vec<OsString>,
    pub preload: PathBuf,
    pub timeout: Duration,
    pub settle: Duration,
    pub quiet: Duration,
}

/// How one run ended.
#[derive(Debug)]
pub struct RunResult {
    pub plan: Plan,
    pub outcome: Outcome,
    /// `None`: the check passed. Otherwise why the run failed.
    pub failure: Option<String>,
    /// The run's directory (kept only for a failure).
    pub dir: PathBuf,
}

/// Runs one plan in a fresh copy under `ws` and checks it.
pub fn run_plan(
    target: &Target,
    plan: &Plan,
    ws: &Workspace,
    n: usize,
) -> std::io::Result<RunResult> {
    let run_dir = ws.path().join(format!("run{n}"));
    std::fs::create_dir(&run_dir)?;
    let root = run_dir.join("work");
    copy_tree(&target.dir, &root)?;
    let mut skew_ns = vec![0i64; plan.copies];
    if let Some((c, ms)) = plan.skew {
        skew_ns[c] = ms * 1_000_000;
    }
    let launch = Launch {
        argv: target.cmd.clone(),
        root: root.clone(),
        copies: plan.copies,
        skew_ns,
        record_data: false,
        preload: target.preload.clone(),
        run_dir: run_dir.clone(),
        timeout: target.timeout,
        settle: target.settle,
        quiet: target.quiet,
    };
    let outcome = session::run(&launch, &mut PlanPick::new(plan))?;
    std::fs::write(run_dir.join("calls.txt"), listing(&outcome))?;
    let failure = if outcome.timed_out {
        Some(format!(
            "the copies did not finish within {} s (deadlock, or a wait no schedule ends)",
            target.timeout.as_secs()
        ))
    } else if let Some((copy, status)) = outcome.failed_copy() {
        let err =
            std::fs::read_to_string(run_dir.join(format!("copy{copy}.err"))).unwrap_or_default();
        Some(format!("copy {copy} exited with {status}{}", tail(&err)))
    } else {
        check(&target.check, &root, &run_dir, outcome.killed)?
    };
    Ok(RunResult {
        plan: plan.clone(),
        outcome,
        failure,
        dir: run_dir,
    })
}

/// The calls of a run, one a line, in the order they ran.
pub fn listing(outcome: &Outcome) -> String {
    let mut out = String::new();
    for (i, s) in outcome.steps.iter().enumerate() {
        out.push_str(&format!(
            "#{i} copy {} pid {} {}\n",
            s.copy,
            s.pid,
            describe(&s.call, s.result)
        ));
    }
    out
}

/// One call as a person reads it: `rename a.tmp -> a = 0`.
pub fn describe(call: &baton_trace::Call, result: Option<i64>) -> String {
    let path = String::from_utf8_lossy(&call.path);
    let mut s = format!("{} {path}", call.op.name());
    if !call.path2.is_empty() {
        s.push_str(&format!(" -> {}", String::from_utf8_lossy(&call.path2)));
    }
    match result {
        Some(r) if r < 0 => s.push_str(&format!(
            " = {}",
            std::io::Error::from_raw_os_error(-r as i32)
        )),
        Some(r) => s.push_str(&format!(" = {r}")),
        None => s.push_str(" (did not return)"),
    }
    s
}

/// Runs the check in `root`; `Some(why)` if it fails.
/// The check learns the run's directory (`BATON_EXPLORE_RUN`) and which
/// copy was killed, if one was (`BATON_EXPLORE_KILLED`).
pub fn check(
    check: &[OsString],
    root: &Path,
    run_dir: &Path,
    killed: Option<usize>,
) -> std::io::Result<Option<String>> {
    let mut cmd = Command::new(&check[0]);
    cmd.args(&check[1..])
        .current_dir(root)
        .env("BATON_EXPLORE_RUN", run_dir);
    if let Some(copy) = killed {
        cmd.env("BATON_EXPLORE_KILLED", copy.to_string());
    }
    let out = cmd.output().map_err(|e| {
        std::io::Error::new(e.kind(), format!("{}: {e}", check[0].to_string_lossy()))
    })?;
    if out.status.success() {
        return Ok(None);
    }
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Some(format!(
        "the check exited with {}{}",
        out.status,
        tail(&said)
    )))
}

/// What a program said, for a one-line report: the line naming an error
/// if there is one (a stack trace's message), else the last lines.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(error) = lines
        .iter()
        .find(|l| l.contains("Error") || l.starts_with("error"))
    {
        return format!(": {error}");
    }
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(3);
    format!(": {}", lines[from..].join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_junk_is_refused() {
        let plan = Plan {
            strategy: StrategyKind::Pct { depth: 3 },
            copies: 4,
            seed: 0xbeef,
            kill: Some((2, 17)),
            pause: Some((0, 3, 250)),
            skew: Some((1, -2500)),
            horizon: 120,
        };
        assert_eq!(plan.token(), "x1.pct3.4.beef.120.k2@17.p0@3+250.s1-2500");
        assert_eq!(Plan::parse(&plan.token()), Ok(plan.clone()));
        let plain = Plan {
            strategy: StrategyKind::Random,
            kill: None,
            pause: None,
            skew: None,
            ..plan
        };
        assert_eq!(Plan::parse(&plain.token()), Ok(plain));
        for junk in [
            "",
            "x2.random.2.1.1.-.-.-",
            "x1.random.2.zz.1.-.-.-",
            "x1.random.2.1.1.k5@1.-.-",
            "x1.dfs.2.1.1.-.-.-",
        ] {
            assert!(Plan::parse(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn draws_are_a_function_of_the_seed() {
        let faults = Faults {
            kill: true,
            pause: true,
            skew: true,
        };
        let a = draw(StrategyKind::Random, 3, 7, faults, &[10, 20, 30]);
        assert_eq!(a, draw(StrategyKind::Random, 3, 7, faults, &[10, 20, 30]));
        let (c, n) = a.kill.unwrap();
        assert!(c < 3 && n < [10, 20, 30][c]);
        let seeds: Vec<Plan> = (0..50)
            .map(|s| draw(StrategyKind::Random, 3, s, faults, &[10, 20, 30]))
            .collect();
        assert!(
            seeds.iter().any(|p| p.skew.unwrap().1 < 0)
                && seeds.iter().any(|p| p.skew.unwrap().1 > 0)
        );
    }
}
