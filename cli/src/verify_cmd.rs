//! `baton verify`: the whole catalogue, simulated and model-checked.

use baton_sim::StrategyKind;

use crate::exit::Exit;
use crate::sim_cmd::{Verdict, check_scenario, print_table, selected};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Seeds per scenario and strategy.
    #[arg(long, default_value_t = 500, value_name = "N")]
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
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock());
    }
    crate::model_cmd::print(&models, json, false);
    Ok(
        if verdicts.iter().all(Verdict::matches) && models.iter().all(|(v, _)| v.matches()) {
            Exit::Ok
        } else {
            Exit::Error
        },
    )
}
