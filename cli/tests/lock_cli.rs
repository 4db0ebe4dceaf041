//! `baton lock` with real processes: the built binary, spawned.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs and sleep

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BATON: &str = env!("CARGO_BIN_EXE_baton");
const MODES: [&str; 2] = ["kernel", "file"];

fn baton(dir: &Path) -> Command {
    let mut c = Command::new(BATON);
    c.current_dir(dir);
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run baton")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_events(o: &Output) -> Vec<serde_json::Value> {
    stderr(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Starts `baton lock` holding `file` with `script`, in its own process
/// group, and waits until the script has created `started` (scripts that
/// set up traps create it after them).
fn hold(dir: &Path, mode: &str, file: &str, script: &str) -> Child {
    let started = dir.join("started");
    let _ = std::fs::remove_file(&started);
    let child = baton(dir)
        .args(["lock", "--mode", mode, file, "--", "sh", "-c"])
        .arg(if script.contains("touch started") {
            script.to_owned()
        } else {
            format!("touch started; {script}")
        })
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "holder never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn kill(pid: i32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), "--", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn eight_processes_count_to_800_under_the_lock_in_both_modes() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("counter"), "0\n").unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..100 {
                        let o = run(baton(dir.path()).args([
                            "lock",
                            "--mode",
                            mode,
                            "counter",
                            "--",
                            "sh",
                            "-c",
                            "read n < counter; echo $((n + 1)) > counter",
                        ]));
                        assert!(o.status.success(), "{mode}: {}", stderr(&o));
                    }
                });
            }
        });
        let count = std::fs::read_to_string(dir.path().join("counter")).unwrap();
        assert_eq!(count.trim(), "800", "{mode}: lost updates");
    }
}

#[test]
fn nonblocking_against_a_held_lock_exits_75_at_once() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = hold(dir.path(), mode, "f", "sleep 30");
        let o = run(baton(dir.path()).args(["lock", "-n", "--mode", mode, "f", "--", "true"]));
        assert_eq!(o.status.code(), Some(75), "{mode}: {}", stderr(&o));
        kill(-(holder.id() as i32), "KILL");
        holder.wait().unwrap();
    }
}

#[test]
fn timed_wait_against_a_held_lock_exits_75_after_the_timeout() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = hold(dir.path(), mode, "f", "sleep 30");
        let start = Instant::now();
        let o = run(baton(dir.path()).args([
            "--json", "lock", "-w", "1", "--mode", mode, "f", "--", "true",
        ]));
        let took = start.elapsed();
        assert_eq!(o.status.code(), Some(75), "{mode}: {}", stderr(&o));
        assert!(
            took >= Duration::from_secs(1),
            "{mode}: gave up early: {took:?}"
        );
        // Generous: exactness is within one backoff step, but CI is shared.
        assert!(took < Duration::from_secs(5), "{mode}: waited {took:?}");
        let events: Vec<_> = json_events(&o)
            .into_iter()
            .map(|e| e["event"].clone())
            .collect();
        assert_eq!(events, ["waiting", "timed-out"], "{mode}");
        kill(-(holder.id() as i32), "KILL");
        holder.wait().unwrap();
    }
}

#[test]
fn killed_file_mode_holder_is_reaped_as_dead_and_json_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = hold(dir.path(), "file", "f", "sleep 30");
    let holder_pid = holder.id();
    let waiter = baton(dir.path())
        .args([
            "--json", "lock", "--mode", "file", "--stale", "3600", "-w", "20", "f",
        ])
        .args(["--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // kill -9 the holder: baton and the command it runs.
    kill(-(holder_pid as i32), "KILL");
    holder.wait().unwrap();
    let o = waiter.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let events = json_events(&o);
    let reaped: Vec<_> = events.iter().filter(|e| e["event"] == "reaped").collect();
    assert_eq!(reaped.len(), 1, "{events:?}");
    assert_eq!(reaped[0]["why"], "owner-dead");
    assert_eq!(reaped[0]["owner"]["pid"], holder_pid);
    assert!(
        reaped[0]["lock"]
            .as_str()
            .unwrap()
            .ends_with("f.baton.lock")
    );
    let names: Vec<_> = events.iter().map(|e| e["event"].clone()).collect();
    assert_eq!(names, ["waiting", "reaped", "acquired", "released"]);
}

#[test]
fn crashed_file_mode_lock_on_this_host_is_reaped_without_waiting_for_staleness() {
    let dir = tempfile::tempdir().unwrap();
    // A holder whose baton and command died without releasing.
    let mut holder = hold(dir.path(), "file", "f", "sleep 30");
    kill(-(holder.id() as i32), "KILL");
    holder.wait().unwrap();
    assert!(
        dir.path().join("f.baton.lock").exists(),
        "the crash left its lock"
    );
    // The killed command may take a moment to finish dying, and while any
    // process of it lives it still holds the lock (inherited descriptor):
    // wait for that, but nowhere near the hour-long stale threshold.
    let o = run(baton(dir.path()).args([
        "--json", "lock", "-w", "20", "--mode", "file", "--stale", "3600", "f", "--", "true",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(json_events(&o).iter().any(|e| e["why"] == "owner-dead"));
}

#[test]
fn killing_baton_never_lets_a_second_holder_in_while_the_command_runs() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = hold(
            dir.path(),
            mode,
            "f",
            "echo first-start >> log; sleep 1; echo first-end >> log",
        );
        // SIGKILL baton alone: its command goes on running.
        kill(holder.id() as i32, "KILL");
        holder.wait().unwrap();
        let o = run(baton(dir.path()).args([
            "lock",
            "-w",
            "20",
            "--mode",
            mode,
            "f",
            "--",
            "sh",
            "-c",
            "echo second >> log",
        ]));
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(log, "first-start\nfirst-end\nsecond\n", "{mode}");
    }
}

#[test]
fn sigterm_is_forwarded_and_the_lock_released_after_the_command_exits() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let mut holder = hold(
            dir.path(),
            mode,
            "f",
            "trap 'echo got-term >> log; kill $!; exit 7' TERM; touch started; sleep 30 & wait",
        );
        kill(holder.id() as i32, "TERM");
        let status = holder.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(7),
            "{mode}: baton exits with the command's status"
        );
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(log, "got-term\n");
        let o = run(baton(dir.path()).args(["lock", "-n", "--mode", mode, "f", "--", "true"]));
        assert!(
            o.status.success(),
            "{mode}: lock not released: {}",
            stderr(&o)
        );
    }
}

#[test]
fn exit_status_of_the_command_is_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(baton(dir.path()).args(["lock", "f", "--", "sh", "-c", "exit 42"]));
    assert_eq!(o.status.code(), Some(42));
    let o = run(baton(dir.path()).args(["lock", "f", "--", "sh", "-c", "kill -9 $$"]));
    assert_eq!(o.status.code(), Some(128 + 9));
}

#[test]
fn missing_command_exits_127_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(baton(dir.path()).args(["lock", "f", "--", "no-such-command-xyz"]));
    assert_eq!(o.status.code(), Some(127));
    assert!(stderr(&o).contains("no-such-command-xyz"));
    for args in [
        &["lock", "f"][..],
        &["lock", "-n", "-w", "1", "f", "--", "true"],
        &["lock", "--mode", "sideways", "f", "--", "true"],
        &["no-such-subcommand"],
    ] {
        let o = run(baton(dir.path()).args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn errors_are_one_line_naming_the_path_and_the_cause_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A sidecar that is a directory is not baton's lock file.
    std::fs::create_dir(dir.path().join("f.baton.lock")).unwrap();
    let missing: PathBuf = ["nowhere", "f"].iter().collect();
    for (file, named, cause) in [
        ("f", "f.baton.lock", "a directory"),
        (missing.to_str().unwrap(), "nowhere", "No such file"),
    ] {
        let o = run(baton(dir.path()).args(["lock", "-n", file, "--", "true"]));
        assert_eq!(o.status.code(), Some(1), "{file}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("baton: "), "{err}");
        assert!(err.contains(named) && err.contains(cause), "{err}");
    }
}

#[test]
fn lock_files_never_show_in_git_status() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("state")).unwrap();
        let git = |args: &[&str]| {
            let o = Command::new("git")
                .args(args)
                .current_dir(&repo)
                .output()
                .unwrap();
            assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
            String::from_utf8(o.stdout).unwrap()
        };
        git(&["init", "-q"]);
        // While held (a file-mode lock exists only then), git sees nothing,
        // and `git add -A` sweeps nothing in.
        let o = run(baton(&repo).args([
            "lock",
            "--mode",
            mode,
            "state/tasks.json",
            "--",
            "sh",
            "-c",
            "git add -A && git status --porcelain > ../seen",
        ]));
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
        assert_eq!(seen, "", "{mode}: git saw baton's files while held");
        assert_eq!(git(&["status", "--porcelain"]), "", "{mode}: after release");
    }
}
