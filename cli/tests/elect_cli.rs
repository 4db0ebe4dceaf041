//! `baton elect`, `status` and `reap` with real processes.
#![allow(clippy::disallowed_methods)] // tests set the stage with std::fs and sleep

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

/// One `baton elect` without a command, its events arriving on a channel.
struct Instance {
    child: Child,
    events: mpsc::Receiver<serde_json::Value>,
}

/// Runs `baton ARGS` with piped stdin and its JSON events on a channel.
fn elect(args: &[&str], dir: &Path) -> Instance {
    let mut child = Command::new(BATON)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out: ChildStdout = child.stdout.take().unwrap();
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    Instance { child, events }
}

fn start(dir: &Path) -> Instance {
    elect(&["elect"], dir)
}

fn start_lease(dir: &Path) -> Instance {
    elect(&["elect", "--mode", "lease", "--ttl", "1"], dir)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Waits until `path` exists (a command under test has started).
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Instance {
    /// The next event other than `joined`, within `timeout`.
    fn next(&self, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let e = self.events.recv_timeout(left).ok()?;
            if e["event"] != "joined" {
                return Some(e);
            }
        }
    }

    fn leave(mut self) -> Vec<serde_json::Value> {
        drop(self.child.stdin.take()); // stdin closes: leave cleanly
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        self.events.try_iter().collect()
    }
}

#[test]
fn four_instances_started_together_elect_exactly_one_primary_50_times() {
    for round in 0..50 {
        let dir = tempfile::tempdir().unwrap();
        let instances: Vec<_> = (0..4).map(|_| start(dir.path())).collect();
        let first: Vec<_> = instances
            .iter()
            .map(|i| i.next(Duration::from_secs(20)).expect("an event"))
            .collect();
        let elected = first.iter().filter(|e| e["event"] == "elected").count();
        assert_eq!(elected, 1, "round {round}: {first:?}");
        assert!(
            first
                .iter()
                .all(|e| e["event"] == "elected" || e["event"] == "standby")
        );
        for i in instances {
            i.leave();
        }
        // Everyone left cleanly: no member files remain.
        let left = std::fs::read_dir(dir.path().join("members"))
            .unwrap()
            .count();
        assert_eq!(left, 0, "round {round}");
    }
}

#[test]
fn killing_the_primary_elects_another_with_a_higher_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut instances: Vec<_> = (0..3).map(|_| start(dir.path())).collect();
    let first: Vec<_> = instances
        .iter()
        .map(|i| i.next(Duration::from_secs(20)).unwrap())
        .collect();
    let primary = first.iter().position(|e| e["event"] == "elected").unwrap();
    let epoch = first[primary]["epoch"].as_u64().unwrap();
    let mut dead = instances.remove(primary);
    dead.child.kill().unwrap(); // SIGKILL
    dead.child.wait().unwrap();
    let start = Instant::now();
    let mut next: BTreeMap<usize, serde_json::Value> = BTreeMap::new();
    while next.is_empty() && start.elapsed() < Duration::from_secs(10) {
        for (i, inst) in instances.iter().enumerate() {
            if let Some(e) = inst.next(Duration::from_millis(50)) {
                next.insert(i, e);
            }
        }
    }
    assert_eq!(next.len(), 1, "exactly one successor: {next:?}");
    let (_, e) = next.into_iter().next().unwrap();
    assert_eq!(e["event"], "elected");
    assert!(e["epoch"].as_u64().unwrap() > epoch);
    for i in instances {
        i.leave();
    }
}

fn elect_cmd(dir: &Path, script: &str) -> Command {
    let mut c = Command::new(BATON);
    c.args(["elect", "--dir"])
        .arg(dir)
        .args(["--", "sh", "-c", script]);
    c.current_dir(dir);
    c
}

#[test]
fn commands_run_one_primary_at_a_time_and_exit_with_their_status() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo start >> log; sleep 0.3; echo end >> log; exit 3";
    let children: Vec<_> = (0..3)
        .map(|_| {
            elect_cmd(dir.path(), script)
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert_eq!(c.wait().unwrap().code(), Some(3));
    }
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "start\nend\n".repeat(3), "terms overlapped");
}

#[test]
fn killing_baton_never_lets_a_second_primary_in_while_the_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = elect_cmd(dir.path(), "touch started; sleep 1; echo first-done >> log")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.path().join("started"));
    first.kill().unwrap(); // SIGKILL baton; its command runs on
    first.wait().unwrap();
    let second = elect_cmd(dir.path(), "echo second >> log")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(second.success());
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "first-done\nsecond\n");
}

#[test]
fn status_and_reap_tell_live_from_dead_members() {
    let dir = tempfile::tempdir().unwrap();
    let alive = start(dir.path());
    assert_eq!(
        alive.next(Duration::from_secs(20)).unwrap()["event"],
        "elected"
    );
    let mut dead = start(dir.path());
    assert_eq!(
        dead.next(Duration::from_secs(20)).unwrap()["event"],
        "standby"
    );
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let status = Command::new(BATON)
        .args(["--json", "status", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["epoch"], 1);
    assert!(st["primary"]["id"].is_string());
    let mut alive_flags: Vec<bool> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["alive"].as_bool().unwrap())
        .collect();
    alive_flags.sort();
    assert_eq!(alive_flags, [false, true]);
    let reap = Command::new(BATON)
        .args(["--json", "reap", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&reap.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the dead member: {lines:?}");
    assert_eq!(lines[0]["why"], "owner-dead");
    assert_eq!(lines[0]["owner"]["pid"], dead.child.id());
    alive.leave();
}

#[test]
fn lease_mode_sigstopped_primary_is_replaced_and_fenced_off() {
    use baton_core::env::real::RealEnv;
    use baton_core::fence;
    let env = RealEnv::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.log");
    let a = start_lease(dir.path());
    let elected = a.next(Duration::from_secs(20)).unwrap();
    assert_eq!(elected["event"], "elected");
    let epoch_a = elected["epoch"].as_u64().unwrap();
    // The plugin behind A logs under A's epoch.
    fence::append(&env, &log, epoch_a, "A before the pause").unwrap();
    let b = start_lease(dir.path());
    assert_eq!(b.next(Duration::from_secs(20)).unwrap()["event"], "standby");
    // SIGSTOP the primary for longer than the lease.
    let pid = a.child.id();
    signal(pid, "STOP");
    let took_over = b.next(Duration::from_secs(20)).expect("B takes over");
    assert_eq!(took_over["event"], "elected");
    let epoch_b = took_over["epoch"].as_u64().unwrap();
    assert!(epoch_b > epoch_a);
    fence::append(&env, &log, epoch_b, "B").unwrap();
    // A's plugin, resuming with a stale epoch, is fenced off...
    let late = fence::append(&env, &log, epoch_a, "A after the pause");
    assert!(
        matches!(late, Err(fence::FenceError::Fenced { .. })),
        "{late:?}"
    );
    // ...and A itself says it lost the lease once it runs again.
    signal(pid, "CONT");
    let lost = a.next(Duration::from_secs(20)).unwrap();
    assert_eq!(lost["event"], "lost");
    assert_eq!(lost["epoch"], epoch_a);
    let entries: Vec<String> = fence::entries(&env, &log)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(entries, ["A before the pause", "B"]);
    a.leave();
    b.leave();
}

#[test]
fn lease_mode_command_is_stopped_when_the_lease_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Command::new(BATON)
        .args(["elect", "--mode", "lease", "--ttl", "0.6", "--dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "touch started; sleep 30"])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&dir.path().join("started"));
    let pid = holder.id();
    // Stop baton past its renew deadline: on resuming it finds the lease
    // lapsed, kills the command and exits 1.
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(1_000));
    signal(pid, "CONT");
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status}");
}

#[test]
fn lease_mode_command_dies_with_baton() {
    // A lease lapses when its renewer dies, so the command must not run on.
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Command::new(BATON)
        .args(["elect", "--mode", "lease", "--ttl", "5", "--dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "echo $$ > pid; exec sleep 30"])
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&pid_file)
            && p.ends_with('\n')
        {
            break p.trim().to_owned();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    };
    holder.kill().unwrap(); // SIGKILL baton
    holder.wait().unwrap();
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        // A zombie awaiting its reaper has exited too.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            break;
        }
        assert!(Instant::now() < gone, "the command outlived baton");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn primary_hands_over_to_a_smaller_live_id_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let start_as = |id: &str| elect(&["elect", "--hand-over", "--id", id], dir.path());
    let z = start_as("zz-late-preferred-not");
    assert_eq!(z.next(Duration::from_secs(20)).unwrap()["event"], "elected");
    let a = start_as("aa-preferred");
    let handed = z.next(Duration::from_secs(20)).unwrap();
    assert_eq!(handed["event"], "handed-over");
    assert_eq!(handed["to"], "aa-preferred");
    // Standby first (the primary still held it when a joined), then elected.
    let mut a_events = vec![a.next(Duration::from_secs(20)).unwrap()];
    if a_events[0]["event"] == "standby" {
        a_events.push(a.next(Duration::from_secs(20)).unwrap());
    }
    let elected = a_events.last().unwrap();
    assert_eq!(elected["event"], "elected", "{a_events:?}");
    assert_eq!(elected["epoch"], 2);
    assert_eq!(z.next(Duration::from_secs(20)).unwrap()["event"], "standby");
    a.leave();
    z.leave();
}
