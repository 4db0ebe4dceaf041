//! `baton sim`, `baton verify`, `baton model` and replay tokens, through the binary.
#![allow(clippy::disallowed_methods)] // tests wait on real time

use std::process::{Command, Output};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

fn baton(args: &[&str]) -> Output {
    Command::new(BATON).args(args).output().expect("run baton")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `o` exited 0; its stderr is shown if not.
fn succeeded(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn sim_json_reports_each_scenario_with_its_verdict() {
    let o = baton(&["--json", "sim", "--seeds", "60"]);
    succeeded(&o);
    let rows = json_lines(&o);
    let names: Vec<_> = rows
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    let simulated: Vec<_> = baton_sim::scenarios::all()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, simulated);
    for r in &rows {
        assert_eq!(r["matches"], true, "{r}");
        assert_eq!(r["expected"], r["outcome"], "{r}");
    }
    let row = |name: &str| rows.iter().find(|r| r["scenario"] == name).unwrap();
    let naive = row("naive-reap");
    assert_eq!(naive["violation"]["invariant"], "mutual-exclusion");
    assert!(naive["violation"]["steps"].as_u64().unwrap() <= 30);
    assert_eq!(
        row("registry-rmw")["violation"]["invariant"],
        "single-primary"
    );
    assert!(row("baton-lock-kernel").get("violation").is_none());
    assert!(row("baton-election").get("violation").is_none());
}

#[test]
fn replay_prints_the_same_trace_and_verdict_every_time() {
    let o = baton(&["--json", "sim", "--scenario", "naive-reap", "--seeds", "40"]);
    let row = &json_lines(&o)[0];
    let token = row["violation"]["replay"].as_str().unwrap().to_owned();
    let first = baton(&["sim", "--replay", &token]);
    let second = baton(&["sim", "--replay", &token]);
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(stdout(&first), stdout(&second));
    let text = stdout(&first);
    assert!(text.contains("VIOLATION mutual-exclusion"), "{text}");
    let verdict = text.lines().last().unwrap();
    assert!(
        verdict.contains("expected violates mutual-exclusion, outcome violates mutual-exclusion"),
        "{verdict}"
    );
    // Every step line has the documented shape.
    for line in text.lines().filter(|l| l.starts_with("t=")) {
        let (_, rest) = line.split_once(" p").expect("process");
        assert!(rest.contains(" (clock "), "{line}");
    }
}

#[test]
fn replaying_a_holding_scenario_shows_it_holding() {
    let o = baton(&[
        "--json",
        "sim",
        "--replay",
        "baton-lock-file:random:5:4:3:cmpisr:8:::",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let row = &json_lines(&o)[0];
    assert_eq!(row["outcome"], "holds");
    assert!(!row["trace"].as_array().unwrap().is_empty());
}

#[test]
fn model_json_reports_each_model_matching_its_expectation() {
    let o = baton(&["--json", "model", "--instances", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let rows = json_lines(&o);
    let names: Vec<_> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(names, baton_model::MODELS);
    for r in &rows {
        assert_eq!(r["matches"], true, "{r}");
        assert_eq!(r["expected"], r["outcome"], "{r}");
        let has_counterexample = !r["counterexample"].as_array().unwrap().is_empty();
        assert_eq!(has_counterexample, r["outcome"] != "holds", "{r}");
        // baton's models state a progress bound, and meet it.
        if r["model"].as_str().unwrap().starts_with("baton-") && r["model"] != "baton-txn" {
            assert_eq!(r["progress"]["holds"], true, "{r}");
            assert!(
                r["progress"]["worst"].as_u64().unwrap()
                    <= r["progress"]["bound"].as_u64().unwrap()
            );
            // Claimants want different paths: not interchangeable.
            if r["model"] != "baton-claims" {
                assert_eq!(r["symmetry"], true, "{r}");
            }
        }
    }
}

#[test]
fn bad_scenario_and_bad_token_are_usage_errors_with_one_line() {
    for args in [
        &["sim", "--scenario", "no-such-protocol"][..],
        &["sim", "--replay", "naive-reap:random:zz"],
        &["sim", "--replay", "no-such:random:1:1:1:c:1:::"],
        &["model", "--model", "no-such-model"],
        &["model", "--instances", "9"],
    ] {
        let o = baton(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("baton: "), "{err}");
    }
}

#[test]
fn verify_prints_one_table_and_exits_0_when_every_verdict_matches() {
    let o = baton(&["verify", "--seeds", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    let mut tables = text.split("\n\n");
    let (sim, models, verdict) = (
        tables.next().unwrap(),
        tables.next().expect("a model table after the simulator's"),
        tables.next().expect("the verdict table last"),
    );
    // The verdict: one row per catalogued protocol, each `ok`.
    for p in baton_core::catalogue::PROTOCOLS {
        let row = verdict
            .lines()
            .find(|l| l.starts_with(&format!("{} ", p.name)))
            .unwrap_or_else(|| panic!("{} in the verdict table:\n{verdict}", p.name));
        assert!(row.ends_with(" ok"), "{row}");
    }
    for name in baton_sim::scenarios::all().iter().map(|s| s.name.clone()) {
        let rows = sim
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(rows, 3, "{name} once per strategy:\n{text}");
    }
    for name in baton_model::MODELS {
        let rows = models
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(rows, 1, "{name} once in the model table:\n{text}");
    }
    // Every catalogued protocol is checked by the simulator, a model, or both.
    for p in baton_core::catalogue::PROTOCOLS {
        let checked = text.lines().any(|l| l.starts_with(&format!("{} ", p.name)));
        assert!(checked, "{} is checked nowhere:\n{text}", p.name);
    }
    assert!(!text.contains("UNEXPECTED"), "{text}");
}

#[test]
fn model_explorer_serves_the_model_over_http() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(BATON)
        .args([
            "model",
            "--model",
            "registry-rmw",
            "--instances",
            "2",
            "--explore",
            &addr,
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            s.write_all(b"GET /.status HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap();
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            // A loaded machine may accept before the explorer serves:
            // an empty reply is asked again.
            if !reply.is_empty() {
                break reply;
            }
        }
        assert!(Instant::now() < deadline, "the explorer never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        reply.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{reply}"
    );
    assert!(reply.contains("single-primary"), "{reply}");
}

#[test]
fn explorer_needs_one_model_and_a_free_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (args, code) in [
        // Usage: which model to explore?
        (&["model", "--explore", "127.0.0.1:0"][..], 2),
        // The machine's answer: the address is taken.
        (&["model", "--model", "naive-reap", "--explore", &addr], 1),
    ] {
        let o = baton(args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn svg_draws_a_replay_and_a_model_counterexample_into_new_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let sim_svg = dir.path().join("replay.svg");
    let token = "naive-reap:random:0:2:1:cpsr:8:::";
    let o = baton(&["sim", "--replay", token, "--svg", sim_svg.to_str().unwrap()]);
    succeeded(&o);
    let svg = std::fs::read_to_string(&sim_svg).unwrap();
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    assert!(svg.contains(token), "titled by its token");
    assert!(svg.contains("VIOLATION mutual-exclusion"));
    // The trace still goes to stdout.
    assert!(stdout(&o).contains("VIOLATION mutual-exclusion"));

    let model_svg = dir.path().join("model.svg");
    let o = baton(&[
        "model",
        "--model",
        "naive-reap",
        "--svg",
        model_svg.to_str().unwrap(),
    ]);
    succeeded(&o);
    let svg = std::fs::read_to_string(&model_svg).unwrap();
    assert!(svg.contains("CreateExclusive(0)") && svg.contains("VIOLATION mutual-exclusion"));

    // A file that exists is the user's: refused, untouched.
    let theirs = dir.path().join("theirs.svg");
    std::fs::write(&theirs, "keep me").unwrap();
    // So is a symlink planted at the name, even a dangling one.
    let planted = dir.path().join("planted.svg");
    std::os::unix::fs::symlink(dir.path().join("target-file"), &planted).unwrap();
    for path in [&theirs, &planted] {
        let o = baton(&["sim", "--replay", token, "--svg", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{path:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains("exists"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "keep me");
    assert!(!dir.path().join("target-file").exists());

    // Nothing to draw: a holding model; no model named; no token to replay.
    let none = dir.path().join("none.svg");
    for (args, code) in [
        (&["model", "--model", "baton-lock-file", "--svg"][..], 1),
        (&["model", "--svg"], 2),
        (&["sim", "--scenario", "naive-reap", "--svg"], 2),
    ] {
        let mut args = args.to_vec();
        args.push(none.to_str().unwrap());
        let o = baton(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).lines().count(),
            1,
            "{args:?}"
        );
        assert!(!none.exists(), "{args:?}");
    }
}
