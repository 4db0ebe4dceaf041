//! `baton claim`, `release`, `who`, `status` with real processes.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BATON, assert_one_line_error, baton, run, stderr, stdout, wait_for};

/// A git repository with `src/x.rs` and `docs/a.md`.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join("src/x.rs"), "").unwrap();
    std::fs::write(dir.path().join("docs/a.md"), "").unwrap();
    dir
}

/// `baton claim --id ID ARGS -- sh -c SCRIPT`, started in the background.
fn hold(dir: &Path, id: &str, args: &[&str], script: &str) -> Child {
    Command::new(BATON)
        .current_dir(dir)
        .args(["claim", "--id", id])
        .args(args)
        .args(["--", "sh", "-c", script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_directory_claim_blocks_what_it_holds_and_the_reverse() {
    let dir = repo();
    let d = dir.path();
    let o = run(baton(d).args(["claim", "--id", "a", "--task", "feedback", "src/"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(baton(d).args(["claim", "--id", "b", "docs/a.md", "src/x.rs"]));
    assert_one_line_error(
        &o,
        75,
        &["src/x.rs", "claimed by a", "feedback", "through src"],
    );
    // All or nothing: docs/a.md was not claimed either.
    let o = run(baton(d).args(["who", "docs/a.md"]));
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), "docs/a.md: free")
    );
    let o = run(baton(d).args(["who", "src/x.rs"]));
    assert_eq!(o.status.code(), Some(75));
    assert!(stdout(&o).contains("claimed by a"), "{}", stdout(&o));
    // The claimant itself may edit it.
    let o = run(baton(d).args(["who", "--id", "a", "src/x.rs"]));
    assert_eq!(o.status.code(), Some(0));
    // The reverse: a file claimed blocks its directory.
    let o = run(baton(d).args(["claim", "--id", "c", "docs/a.md"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(baton(d).args(["claim", "--id", "b", "docs"]));
    assert_one_line_error(&o, 75, &["docs", "claimed by c"]);
}

#[test]
fn spellings_of_one_file_are_one_claim() {
    let dir = repo();
    let d = dir.path();
    std::os::unix::fs::symlink("src/x.rs", d.join("link.rs")).unwrap();
    let o = run(baton(d).args(["claim", "--id", "a", "src/x.rs"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for spelling in ["./src/../src/x.rs", "link.rs", "src//x.rs"] {
        let o = run(baton(d).args(["claim", "--id", "b", "-n", spelling]));
        assert_eq!(o.status.code(), Some(75), "{spelling}: {}", stderr(&o));
    }
    let o = run(baton(&d.join("src")).args(["who", "x.rs"]));
    assert_eq!(o.status.code(), Some(75), "from a subdirectory");
    let o = run(baton(d).args(["claim", "--id", "b", "../outside"]));
    assert_one_line_error(&o, 1, &["outside"]);
}

#[test]
fn opposite_orders_at_the_same_moment_never_deadlock() {
    let dir = repo();
    let d = dir.path();
    std::fs::write(d.join("a"), "").unwrap();
    std::fs::write(d.join("b"), "").unwrap();
    for round in 0..10 {
        // Without waiting: exactly one of two simultaneous claimants wins.
        let one = hold(d, "one", &["a", "b"], "sleep 0.3");
        let two = hold(d, "two", &["b", "a"], "sleep 0.3");
        let codes: Vec<_> = [one, two]
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code())
            .collect();
        let wins = codes.iter().filter(|c| **c == Some(0)).count();
        let losses = codes.iter().filter(|c| **c == Some(75)).count();
        assert_eq!((wins, losses), (1, 1), "round {round}: {codes:?}");
    }
    // Waiting: both get there, one after the other, in bounded time.
    let started = Instant::now();
    let one = hold(d, "one", &["-w", "20", "a", "b"], "sleep 0.2");
    let two = hold(d, "two", &["-w", "20", "b", "a"], "sleep 0.2");
    for c in [one, two] {
        let o = c.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_killed_claimants_claims_are_free_at_once_and_detached_ones_expire() {
    let dir = repo();
    let d = dir.path();
    let mut child = Command::new(BATON)
        .current_dir(d)
        .args([
            "claim",
            "--id",
            "doomed",
            "src",
            "--",
            "sh",
            "-c",
            "touch started; sleep 30",
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for(&d.join("started"));
    let o = run(baton(d).args(["claim", "--id", "next", "-n", "src/x.rs"]));
    assert_eq!(o.status.code(), Some(75), "held while it runs");
    // kill -9 baton and its command.
    let ok = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    child.wait().unwrap();
    // The command may take a moment to finish dying (it holds the claim's
    // inherited descriptor until then): a short wait, not a stale bound.
    let o = run(baton(d).args(["claim", "--id", "next", "-w", "5", "src/x.rs"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Detached claims expire by the boot clock unless renewed.
    let o = run(baton(d).args(["claim", "--id", "brief", "--ttl", "0.5", "docs"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(baton(d).args(["claim", "--id", "other", "-n", "docs/a.md"]));
    assert_eq!(o.status.code(), Some(75));
    std::thread::sleep(Duration::from_millis(600));
    let o = run(baton(d).args(["claim", "--id", "other", "-n", "docs/a.md"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn release_refuses_another_instances_claim_unless_forced() {
    let dir = repo();
    let d = dir.path();
    let o = run(baton(d).args(["claim", "--id", "a", "--task", "t1", "src"]));
    assert_eq!(o.status.code(), Some(0));
    let o = run(baton(d).args(["release", "--id", "b", "src"]));
    assert_one_line_error(&o, 1, &["src", "claimed by a", "--force"]);
    let o = run(baton(d).args(["release", "--id", "b", "--force", "src"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("forced, it was claimed by a"),
        "{}",
        stderr(&o)
    );
    let o = run(baton(d).args(["who", "src"]));
    assert_eq!(o.status.code(), Some(0));
    // All of one's own claims at once.
    let o = run(baton(d).args(["claim", "--id", "a", "src", "docs"]));
    assert_eq!(o.status.code(), Some(0));
    let o = run(baton(d).args(["release", "--id", "a"]));
    assert_eq!(o.status.code(), Some(0));
    let o = run(baton(d).args(["--json", "status"]));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["claims"], serde_json::json!([]));
}

#[test]
fn status_shows_each_instance_its_task_and_its_claims() {
    let dir = repo();
    let d = dir.path();
    let mut child = hold(
        d,
        "agent-1",
        &["--task", "Feedback System", "src"],
        "touch started; sleep 30",
    );
    wait_for(&d.join("started"));
    let o = run(baton(d).args(["claim", "--id", "agent-2", "--task", "Dashboard", "docs"]));
    assert_eq!(o.status.code(), Some(0));
    let o = run(baton(d).args(["status"]));
    let text = stdout(&o);
    assert!(
        text.contains("src")
            && text.contains("agent-1")
            && text.contains("Feedback System")
            && text.contains("held"),
        "{text}"
    );
    assert!(
        text.contains("docs") && text.contains("agent-2") && text.contains("detached"),
        "{text}"
    );
    let o = run(baton(d).args(["--json", "status"]));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let claims = v["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 2, "{v}");
    assert_eq!(claims[1]["id"], "agent-1");
    assert_eq!(claims[1]["alive"], true);
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing of this shows in git.
    let o = Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(".baton"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn detached_claims_need_a_lasting_id() {
    let dir = repo();
    let o = run(baton(dir.path()).args(["claim", "src"]));
    assert_one_line_error(&o, 2, &["--id", "BATON_ID"]);
    let o = run(baton(dir.path())
        .env("BATON_ID", "from-env")
        .args(["claim", "src"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(baton(dir.path()).args(["who", "src/x.rs"]));
    assert!(stdout(&o).contains("from-env"), "{}", stdout(&o));
}

#[test]
fn a_running_command_keeps_its_claims_from_its_own_instances_next_claim() {
    // The storm found this: `baton claim --id a -- CMD` killed, CMD still
    // editing; instance a claims again: it must wait for CMD, not join it.
    let dir = repo();
    let d = dir.path();
    let mut child = Command::new(BATON)
        .current_dir(d)
        .args([
            "claim",
            "--id",
            "a",
            "src",
            "--",
            "sh",
            "-c",
            "touch started; exec sleep 29.25",
        ])
        .spawn()
        .unwrap();
    wait_for(&d.join("started"));
    // baton alone is killed; its command runs on, holding the claims.
    child.kill().unwrap();
    child.wait().unwrap();
    let o = run(baton(d).args(["claim", "--id", "a", "-n", "src/x.rs", "--", "true"]));
    assert_one_line_error(&o, 75, &["src/x.rs", "claimed by a"]);
    // A detached claim of one's own is renewed, not a conflict.
    let o = run(baton(d).args(["claim", "--id", "b", "docs"]));
    assert_eq!(o.status.code(), Some(0));
    let o = run(baton(d).args(["claim", "--id", "b", "docs", "docs/a.md"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _ = Command::new("pkill")
        .args(["-x", "-f", "sleep 29.25"])
        .status();
}
