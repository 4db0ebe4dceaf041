//! Agreement between the model checker and the simulator: a model's
//! counterexample, turned into a schedule (which process makes which file
//! operation, in which order), replayed against the production-shaped
//! scenario in the simulator, breaks the same invariant.

use baton_core::catalogue::Invariant;
use baton_sim::fault::Site;
use baton_sim::{Finding, StrategyKind, run_guided, scenarios};

/// The (process, action) steps of a counterexample: `" 3. Read(1)  =>  ..."`.
fn steps(counterexample: &[String]) -> Vec<(String, usize)> {
    counterexample[1..]
        .iter()
        .filter_map(|line| {
            let (_, rest) = line.split_once(". ")?;
            let action = rest.split("  =>  ").next()?;
            let (name, arg) = action.split_once('(')?;
            Some((name.to_owned(), arg.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

#[test]
fn registry_rmw_model_counterexample_breaks_single_primary_in_the_simulator() {
    let verdict = baton_model::check("registry-rmw", 2).unwrap();
    assert_eq!(verdict.violated, Some(Invariant::SinglePrimary));
    // Model action -> the call the scenario's process makes for it.
    let guide: Vec<(usize, Site)> = steps(&verdict.counterexample)
        .into_iter()
        .map(|(action, p)| match action.as_str() {
            "Read" => (p, Site::Read),
            "WriteIfEmpty" => (p, Site::WriteAllAt),
            other => panic!("unmapped model action {other}"),
        })
        .collect();
    assert_eq!(guide.len(), 4, "{guide:?}");
    let mut scenario = scenarios::scenario("registry-rmw").unwrap();
    scenario.faults = baton_sim::FaultKinds::NONE;
    let config = baton_sim::Config {
        procs: 2,
        iters: 1,
        ..scenario.config(StrategyKind::Random, 0)
    };
    let order: Vec<String> = guide.iter().map(|(p, _)| format!(" p{p} ")).collect();
    let report = run_guided(&scenario, &config, true, guide);
    let v = report
        .violation
        .expect("the model's schedule breaks the production scenario");
    assert_eq!(
        v.finding,
        Finding::Invariant(Invariant::SinglePrimary),
        "{}",
        report.trace.join("\n")
    );
    // And the simulator followed the model's order of reads and writes.
    let calls: Vec<&String> = report
        .trace
        .iter()
        .filter(|l| l.contains("read(/w/plugin.lock)") || l.contains("write_all_at"))
        .collect();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(
        calls[0].contains("read") && calls[1].contains("read"),
        "{calls:#?}"
    );
    for (call, who) in calls.iter().zip(&order) {
        assert!(call.contains(who.as_str()), "{who} expected: {calls:#?}");
    }
}
