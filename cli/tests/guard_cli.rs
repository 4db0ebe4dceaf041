//! `baton guard` end to end: two agent sessions editing overlapping files
//! through their pre-tool-use hooks, as Claude Code runs them.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{baton, run, stderr, stdout};

/// Runs `baton guard ARGS` with the hook input Claude Code sends for
/// `tool` editing `file` in session `session`.
fn hook(dir: &Path, session: &str, tool: &str, file: &Path, args: &[&str]) -> Output {
    let input = serde_json::json!({
        "session_id": session,
        "transcript_path": "/dev/null",
        "cwd": dir,
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": { "file_path": file, "old_string": "a", "new_string": "b" },
    });
    send(dir, &input.to_string(), args)
}

fn send(dir: &Path, input: &str, args: &[&str]) -> Output {
    let mut child = baton(dir)
        .arg("guard")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Let through: exit 0 and nothing said (the agent's own rules decide).
fn assert_allowed(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    assert_eq!(stdout(o), "", "an allow says nothing");
}

/// Denied the Claude Code way: exit 0 and a PreToolUse deny decision.
fn assert_denied(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    let out: serde_json::Value = serde_json::from_str(&stdout(o)).expect("one JSON decision");
    let decision = &out["hookSpecificOutput"];
    assert_eq!(decision["hookEventName"], "PreToolUse");
    assert_eq!(decision["permissionDecision"], "deny");
    let reason = decision["permissionDecisionReason"].as_str().unwrap();
    for n in needles {
        assert!(reason.contains(n), "{n:?} not in {reason}");
    }
}

fn repo() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let ok = Command::new("git")
        .args(["init", "-q"])
        .current_dir(t.path())
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::create_dir(t.path().join("src")).unwrap();
    t
}

#[test]
fn two_sessions_editing_overlapping_files_are_kept_apart() {
    let t = repo();
    let d = t.path();
    let (a, b) = (d.join("src/a.ts"), d.join("src/b.ts"));
    let claim = ["--claim"];
    // Session one edits a.ts: let through and claimed for it.
    assert_allowed(&hook(d, "one", "Edit", &a, &claim));
    // Session two may not edit it, and is told who has it and why.
    assert_denied(
        &hook(d, "two", "Write", &a, &claim),
        &["src/a.ts", "session-one", "Edit", "baton who src/a.ts"],
    );
    // Session two takes b.ts; now one may not edit b.ts.
    assert_allowed(&hook(d, "two", "MultiEdit", &b, &claim));
    assert_denied(&hook(d, "one", "Edit", &b, &claim), &["session-two"]);
    // Each goes on editing its own file (the claim is renewed).
    assert_allowed(&hook(d, "one", "Edit", &a, &claim));
    assert_allowed(&hook(d, "two", "Edit", &b, &claim));
    // `baton who` sees what the guard claimed.
    let who = run(baton(d).args(["who", "src/a.ts"]));
    assert_eq!(who.status.code(), Some(75));
    assert!(stdout(&who).contains("session-one"), "{}", stdout(&who));
    // A directory claim covers the files in it.
    let out = run(baton(d).args(["claim", "--id", "person", "--task", "refactor", "src/lib"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_denied(
        &hook(d, "one", "Write", &d.join("src/lib/new.ts"), &claim),
        &["src/lib/new.ts", "person", "refactor", "through src/lib"],
    );
    // Once one releases a.ts, two may edit it.
    let out = run(baton(d).args(["release", "--id", "session-one", "src/a.ts"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_allowed(&hook(d, "two", "Edit", &a, &claim));
    assert_denied(&hook(d, "one", "Edit", &a, &[]), &["session-two"]);
    // Session two ends: a SessionEnd hook releases all it claimed.
    let end = r#"{"session_id":"two","hook_event_name":"SessionEnd","reason":"exit"}"#;
    assert_allowed(&send(d, end, &["--release"]));
    assert_allowed(&hook(d, "one", "Edit", &a, &claim));
    assert_allowed(&hook(d, "one", "Edit", &b, &claim));
}

#[test]
fn without_claim_only_looks_and_other_shapes_pass_through() {
    let t = repo();
    let d = t.path();
    let a = d.join("src/a.ts");
    assert_allowed(&hook(d, "one", "Edit", &a, &[]));
    // Nothing was claimed, so another session may edit it too.
    assert_allowed(&hook(d, "two", "Edit", &a, &["--claim"]));
    // A tool with no file, and a file outside the repository, pass.
    assert_allowed(&send(
        d,
        r#"{"session_id":"one","tool_name":"Bash","tool_input":{"command":"rm -rf /"}}"#,
        &[],
    ));
    assert_allowed(&hook(
        d,
        "one",
        "Edit",
        Path::new("/etc/hosts"),
        &["--claim"],
    ));
    // The exit-code format, for agents without JSON decisions.
    let o = hook(d, "one", "Edit", &a, &["--format", "exit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("session-two"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn bad_input_is_one_line_exit_1_and_claims_nothing() {
    let t = repo();
    let d = t.path();
    let o = send(d, "{ not json", &["--claim"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with("baton: guard"), "{}", stderr(&o));
    // --claim with no way to name the caller is a usage error.
    let o = send(
        d,
        r#"{"tool_name":"Edit","tool_input":{"file_path":"src/a.ts"}}"#,
        &["--claim"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A file name that would be a second line in a claim is refused, not
    // claimed.
    let o = hook(d, "one", "Edit", &d.join("src/a\nb.ts"), &["--claim"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("control character"), "{}", stderr(&o));
    assert!(!d.join(".baton/claims").exists(), "nothing claimed");
}
