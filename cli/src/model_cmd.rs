//! `baton model`: check the stateright models exhaustively and print one
//! verdict per model.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use baton_model::{MODELS, Verdict, check, explore};
use serde_json::json;

use crate::exit::Exit;
use crate::report::per_second;

#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// A model, or `all`.
    #[arg(long, default_value = "all", value_name = "NAME")]
    pub model: String,
    /// Processes in each model.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub instances: usize,
    /// Print every counterexample, not only unexpected ones.
    #[arg(long)]
    pub trace: bool,
    /// Serve stateright's Explorer for `--model NAME` at ADDR (host:port)
    /// to browse its states and counterexamples; runs until interrupted.
    #[arg(long, value_name = "ADDR")]
    pub explore: Option<String>,
    /// Draw `--model NAME`'s counterexample as a swimlane diagram (SVG) in
    /// FILE, which must not exist.
    #[arg(long, value_name = "FILE", conflicts_with = "explore")]
    pub svg: Option<std::path::PathBuf>,
}

/// Wall-clock time of the checker's own work, for the report.
#[allow(clippy::disallowed_methods)]
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed())
}

pub fn check_models(name: &str, instances: usize) -> anyhow::Result<Vec<(Verdict, Duration)>> {
    if !(1..=4).contains(&instances) {
        return Err(crate::args::UsageError(format!(
            "--instances {instances}: models are checked with 1 to 4 processes"
        ))
        .into());
    }
    let names: Vec<&str> = if name == "all" {
        MODELS.to_vec()
    } else if MODELS.contains(&name) {
        vec![name]
    } else {
        return Err(crate::args::UsageError(format!(
            "no model {name}: the models are {}",
            MODELS.join(", ")
        ))
        .into());
    };
    Ok(names
        .into_iter()
        .map(|n| timed(|| check(n, instances).expect("listed model")))
        .collect())
}

pub fn print(verdicts: &[(Verdict, Duration)], json_mode: bool, trace: bool) {
    let mut out = std::io::stdout().lock();
    if json_mode {
        for (v, took) in verdicts {
            let _ = writeln!(
                out,
                "{}",
                json!({
                    "model": v.name,
                    "instances": v.instances,
                    "expected": v.expect.to_string(),
                    "outcome": v.outcome(),
                    "matches": v.matches(),
                    "vacuous": v.vacuous,
                    "states": v.states,
                    "unique_states": v.unique_states,
                    "depth": v.depth,
                    "symmetry": v.symmetry,
                    "progress": v.progress.as_ref().map(|p| json!({
                        "what": p.what,
                        "bound": p.bound,
                        "worst": p.worst,
                        "holds": p.holds(),
                    })),
                    "ms": took.as_millis() as u64,
                    "states_per_second": per_second(v.states as u64, *took),
                    "counterexample": v.counterexample,
                })
            );
        }
        return;
    }
    let _ = writeln!(
        out,
        "{:<27} {:>2} {:<26} {:<26} {:>9} {:>9} {:>5} {:>6} {:>9} {:>8}",
        "model",
        "n",
        "expected",
        "outcome",
        "states",
        "unique",
        "depth",
        "ms",
        "states/s",
        "progress"
    );
    for (v, took) in verdicts {
        let mark = if v.matches() { "" } else { "  << UNEXPECTED" };
        let vacuous = if v.vacuous.is_empty() {
            String::new()
        } else {
            format!("  (vacuous: {})", v.vacuous.join(", "))
        };
        // Unique states are per class of renumbered processes where the
        // model is reduced by symmetry (marked `~`).
        let unique = format!("{}{}", if v.symmetry { "~" } else { "" }, v.unique_states);
        let progress = match &v.progress {
            None => "-".to_owned(),
            Some(p) => match p.worst {
                Some(w) => format!("{w}/{}", p.bound),
                None => format!("never/{}", p.bound),
            },
        };
        let _ = writeln!(
            out,
            "{:<27} {:>2} {:<26} {:<26} {:>9} {:>9} {:>5} {:>6} {:>9} {:>8}{mark}{vacuous}",
            v.name,
            v.instances,
            v.expect.to_string(),
            v.outcome(),
            v.states,
            unique,
            v.depth,
            took.as_millis(),
            per_second(v.states as u64, *took),
            progress,
        );
    }
    for (v, _) in verdicts {
        if !v.counterexample.is_empty() && (trace || !v.matches()) {
            let _ = writeln!(
                out,
                "\n{} counterexample ({} instances):",
                v.name, v.instances
            );
            for line in &v.counterexample {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
}

pub fn run(args: ModelArgs, json_mode: bool) -> anyhow::Result<Exit> {
    if let Some(addr) = &args.explore {
        if args.model == "all" || !MODELS.contains(&args.model.as_str()) {
            return Err(crate::args::UsageError(format!(
                "--explore needs one model (--model NAME): {}",
                MODELS.join(", ")
            ))
            .into());
        }
        // Bind first, so a taken address is a clean error (the Explorer
        // itself would panic), then hand the address over.
        drop(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("--explore {addr}: cannot listen"))?,
        );
        eprintln!(
            "baton: exploring {} ({} instances) at http://{addr}/ until interrupted",
            args.model, args.instances
        );
        explore(&args.model, args.instances, addr).expect("a listed model");
        return Ok(Exit::Ok);
    }
    if args.svg.is_some() && args.model == "all" {
        return Err(crate::args::UsageError(format!(
            "--svg draws one model's counterexample: name it with --model ({})",
            MODELS.join(", ")
        ))
        .into());
    }
    let verdicts = check_models(&args.model, args.instances)?;
    print(&verdicts, json_mode, args.trace);
    if let (Some(path), [(v, _)]) = (&args.svg, &verdicts[..]) {
        let Some(violated) = v.violated else {
            return Err(anyhow::anyhow!(
                "--svg {}: {} holds at {} instances; there is no counterexample to draw",
                path.display(),
                v.name,
                v.instances
            ));
        };
        let diagram = baton_sim::swimlane::Diagram::from_model(
            v.name,
            v.instances,
            &v.counterexample,
            &format!("VIOLATION {violated}"),
        );
        crate::report::write_new_file(path, diagram.svg().as_bytes())?;
    }
    Ok(if verdicts.iter().all(|(v, _)| v.matches()) {
        Exit::Ok
    } else {
        Exit::Error
    })
}
