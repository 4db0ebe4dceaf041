//! Misconfiguration and bad input, as a new user (or a hostile one) would
//! try them: each is refused with one clear line and its documented exit
//! code, and nothing outside the given directory is touched (issue 9).
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BATON, assert_one_line_error, baton, run, stderr, stdout};

/// `baton elect` without a command; its JSON events on a channel.
fn elect(dir: &Path, args: &[&str]) -> (Child, mpsc::Receiver<serde_json::Value>) {
    let mut child = Command::new(BATON)
        .current_dir(dir)
        .arg("elect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next event named `name` within 20 s.
fn next(rx: &mpsc::Receiver<serde_json::Value>, name: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no {name} event"));
        let e = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {name} event"));
        if e["event"] == name {
            return e;
        }
    }
}

#[test]
fn kernel_and_lease_members_never_share_a_directory() {
    for (first, second) in [("kernel", "lease"), ("lease", "kernel")] {
        let dir = tempfile::tempdir().unwrap();
        let (mut primary, rx) = elect(
            dir.path(),
            &["--dir", "e", "--id", "a", "--mode", first, "--ttl", "1"],
        );
        assert_eq!(next(&rx, "elected")["epoch"], 1, "{first}");
        let o = run(baton(dir.path()).args([
            "elect", "--dir", "e", "--id", "b", "--mode", second, "--ttl", "1", "--", "true",
        ]));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{first} then {second}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.contains(&format!("this election is in {first} mode")),
            "{err}"
        );
        primary.kill().unwrap();
        primary.wait().unwrap();
    }
}

#[test]
fn ids_that_would_escape_the_directory_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("victim.member"), "keep\n").unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    for id in ["../../victim", "x/../../../victim", "", ".hidden", "a\nb"] {
        let o =
            run(baton(&dir.path().join("a/b"))
                .args(["elect", "--dir", "e", "--id", id, "--", "true"]));
        assert_eq!(o.status.code(), Some(2), "{id:?}: {}", stderr(&o));
        assert!(
            !dir.path().join("a/b/e").exists(),
            "{id:?}: created the election"
        );
    }
    assert_eq!(
        std::fs::read(dir.path().join("victim.member")).unwrap(),
        b"keep\n"
    );
}

#[test]
fn newline_in_a_path_never_injects_lines_into_git_exclude() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    git(&["init", "-q"]);
    std::fs::create_dir(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/main.rs"), "fn main() {}\n").unwrap();
    let o = run(baton(repo).args(["lock", "q\nsrc\nq", "--", "true"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot hide the lock file from git"),
        "{}",
        stderr(&o)
    );
    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap_or_default();
    assert!(
        !exclude.lines().any(|l| l == "src" || l == "q"),
        "{exclude}"
    );
    assert!(
        git(&["status", "--porcelain"]).contains("src/"),
        "src/ hidden"
    );
}

#[test]
fn symlinked_git_exclude_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let o = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(o.status.success());
    let shared = dir.path().join("shared-exclude");
    std::fs::write(&shared, "# mine\n").unwrap();
    let exclude = repo.join(".git/info/exclude");
    let _ = std::fs::remove_file(&exclude);
    std::os::unix::fs::symlink(&shared, &exclude).unwrap();
    let o = run(baton(&repo).args(["lock", "f", "--", "true"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        std::fs::symlink_metadata(&exclude)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&shared).unwrap(), b"# mine\n");
}

#[test]
fn absurd_durations_counts_and_tokens_are_usage_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["lock", "--stale", "0", "f", "--", "true"],
        &["lock", "--stale", "-1", "f", "--", "true"],
        &["lock", "--stale", "NaN", "f", "--", "true"],
        &["lock", "--stale", "inf", "f", "--", "true"],
        &["lock", "--stale", "1e300", "f", "--", "true"],
        &["lock", "-w", "-1", "f", "--", "true"],
        &["lock", "-w", "NaN", "f", "--", "true"],
        &["lock", "--id", "a/b", "f", "--", "true"],
        &["elect", "--ttl", "0", "--", "true"],
        &["elect", "--ttl", "0.01", "--mode", "lease", "--", "true"],
        &["elect", "--hand-over", "--mode", "lease"],
        &["elect", "--hand-over", "--", "true"],
        &["sim", "--seeds", "0"],
        &["verify", "--seeds", "0"],
        &["sim", "--replay", "naive-reap:random:0:0:1:cpsr:8:::"],
        &[
            "sim",
            "--replay",
            "naive-reap:random:0:99999999999:1:cpsr:8:::",
        ],
        &[
            "sim",
            "--replay",
            "naive-reap:random:0:2:99999999999:cpsr:8:::",
        ],
        &["sim", "--replay", "no-such:random:0:2:1:cpsr:8:::"],
        &["sim", "--replay", "garbage"],
    ];
    for args in cases {
        let o = run(baton(dir.path()).args(*args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!dir.path().join("f.baton.lock").exists(), "{args:?} locked");
    }
}

#[test]
fn status_of_a_missing_election_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(baton(dir.path()).args(["status", "--dir", "nowhere"]));
    assert_one_line_error(&o, 1, &["nowhere", "no election here"]);
}

#[test]
fn lease_mode_status_names_the_lease_holder_as_primary() {
    let dir = tempfile::tempdir().unwrap();
    let (mut primary, rx) = elect(
        dir.path(),
        &[
            "--dir", "e", "--id", "leaser", "--mode", "lease", "--ttl", "1",
        ],
    );
    next(&rx, "elected");
    let o = run(baton(dir.path()).args(["status", "--dir", "e"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("primary  leaser (lease holder), epoch 1"),
        "{out}"
    );
    let o = run(baton(dir.path()).args(["--json", "status", "--dir", "e"]));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["mode"], "lease");
    assert_eq!(v["primary"]["id"], "leaser");
    primary.kill().unwrap();
    primary.wait().unwrap();
}

#[test]
fn standbys_announce_the_new_primary_after_failover() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, rx_a) = elect(dir.path(), &["--dir", "e", "--id", "a"]);
    assert_eq!(next(&rx_a, "elected")["epoch"], 1);
    let (mut b, rx_b) = elect(dir.path(), &["--dir", "e", "--id", "b"]);
    let (mut c, rx_c) = elect(dir.path(), &["--dir", "e", "--id", "c"]);
    for rx in [&rx_b, &rx_c] {
        let s = next(rx, "standby");
        assert_eq!(
            (s["primary"].clone(), s["epoch"].clone()),
            ("a".into(), 1.into())
        );
    }
    a.kill().unwrap();
    a.wait().unwrap();
    // One of b and c is elected at epoch 2; the other says so.
    let (winner, loser_rx, loser_id) = loop {
        if let Ok(e) = rx_b.recv_timeout(Duration::from_millis(20))
            && e["event"] == "elected"
        {
            break ("b", &rx_c, "c");
        }
        if let Ok(e) = rx_c.recv_timeout(Duration::from_millis(20))
            && e["event"] == "elected"
        {
            break ("c", &rx_b, "b");
        }
    };
    let s = next(loser_rx, "standby");
    assert_eq!(s["id"], loser_id);
    assert_eq!(
        (s["primary"].clone(), s["epoch"].clone()),
        (winner.into(), 2.into())
    );
    for child in [&mut b, &mut c] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn json_lines_from_concurrent_processes_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    // Sixteen processes share one stderr pipe, as under a plugin host.
    let (reader, writer) = std::io::pipe().unwrap();
    let children: Vec<Child> = (0..16)
        .map(|_| {
            let w = writer.try_clone().unwrap();
            Command::new("sh")
                .current_dir(dir.path())
                .args(["-c", &format!(
                    "for i in 1 2 3 4 5 6 7 8 9 10; do {BATON} --json lock -w 30 f -- true; done"
                )])
                .stderr(w)
                .spawn()
                .unwrap()
        })
        .collect();
    drop(writer);
    let lines: Vec<String> = BufReader::new(reader)
        .lines()
        .map_while(Result::ok)
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert!(lines.len() >= 16 * 10 * 2, "{} lines", lines.len());
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
        assert!(v["event"].is_string(), "{line}");
    }
}

#[test]
fn world_writable_election_directory_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("e")).unwrap();
    std::fs::set_permissions(dir.path().join("e"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run(baton(dir.path()).args(["elect", "--dir", "e", "--id", "a", "--", "true"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: e: writable by every user"),
        "{}",
        stderr(&o)
    );
    // The sticky bit (as on /tmp) makes it safe: nobody replaces others' files.
    std::fs::set_permissions(
        dir.path().join("e"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    let o = run(baton(dir.path()).args(["status", "--dir", "e"]));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}
