//! `baton verify`: the whole catalogue, simulated and model-checked.
//!
//! Prints the simulator's table (one row per scenario and strategy), the
//! models' table (one row per model), then the verdict: one row per
//! catalogued protocol with what each world found.

use std::io::Write;
use std::time::Duration;

use baton_core::catalogue::PROTOCOLS;
use baton_sim::StrategyKind;
use serde_json::json;

use crate::exit::Exit;
use crate::sim_cmd::{Verdict, check_scenario, print_table, selected};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Seeds per scenario and strategy.
    #[arg(long, default_value = "500", value_name = "N", value_parser = crate::args::positive_count)]
    pub seeds: u64,
}

pub fn run(args: VerifyArgs, json: bool) -> anyhow::Result<Exit> {
    let strategies = [
        StrategyKind::Random,
        StrategyKind::Pct { depth: 3 },
        StrategyKind::Dfs,
    ];
    let mut verdicts: Vec<Verdict> = Vec::new();
    for s in selected("all")? {
        for strategy in strategies {
            verdicts.push(check_scenario(&s, strategy, 0, args.seeds));
        }
    }
    print_table(&verdicts, json, false);
    let models = crate::model_cmd::check_models("all", 3)?;
    if !json {
        let _ = writeln!(std::io::stdout().lock());
    }
    crate::model_cmd::print(&models, json, false);
    let ok = summary(&verdicts, &models, json);
    Ok(if ok { Exit::Ok } else { Exit::Error })
}

/// One row per catalogued protocol: the simulator's outcome (the same
/// under every strategy, or each one's), the model's, and whether both
/// match the expectation. Returns whether every row does.
fn summary(sim: &[Verdict], models: &[(baton_model::Verdict, Duration)], json_mode: bool) -> bool {
    let mut out = std::io::stdout().lock();
    if !json_mode {
        let _ = writeln!(
            out,
            "\n{:<28} {:<27} {:<27} {:<27} verdict",
            "protocol", "expected", "simulator", "model"
        );
    }
    let mut all = true;
    for p in PROTOCOLS {
        let runs: Vec<&Verdict> = sim.iter().filter(|v| v.scenario == p.name).collect();
        let mut outcomes: Vec<String> = runs.iter().map(|v| v.outcome()).collect();
        outcomes.dedup();
        let simulated = match outcomes.len() {
            0 => "-".to_owned(),
            1 => outcomes.remove(0),
            _ => runs
                .iter()
                .map(|v| format!("{}: {}", v.strategy, v.outcome()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let model = models
            .iter()
            .find(|(v, _)| v.name == p.name)
            .map(|(v, _)| v);
        let checked = !runs.is_empty() || model.is_some();
        let matches = checked
            && runs.iter().all(|v| v.matches())
            && model.is_none_or(baton_model::Verdict::matches);
        all &= matches;
        let modelled = model.map_or("-".to_owned(), |v| v.outcome());
        if json_mode {
            let _ = writeln!(
                out,
                "{}",
                json!({
                    "protocol": p.name,
                    "expected": p.expect.to_string(),
                    "simulator": simulated,
                    "model": modelled,
                    "matches": matches,
                })
            );
        } else {
            let verdict = if matches { "ok" } else { "MISMATCH" };
            let _ = writeln!(
                out,
                "{:<28} {:<27} {:<27} {:<27} {verdict}",
                p.name,
                p.expect.to_string(),
                simulated,
                modelled
            );
        }
    }
    all
}
