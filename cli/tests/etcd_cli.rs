//! `--backend etcd` against a real three-member cluster on loopback
//! (`scripts/etcd-cluster.sh`, one per test on its own ports), with real
//! `baton` processes under faults: a member killed, the etcd leader
//! stopped past its election timeout, a baton holder stopped past its
//! lease. The oracle is `baton_etcd::check`: every holder's command
//! appends `enter`/`act`/`exit` lines to one file (`O_APPEND`, one host:
//! one total order), and no line of another holder may fall inside a
//! term, and epochs must rise.
//!
//! etcd comes from Debian's `etcd-server`; `.ci/run` installs it. Without
//! it these tests say they were skipped, unless `BATON_REQUIRE_ETCD` is
//! set (`.ci/run` sets it once etcd is there), when they fail.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton_etcd::check;
use baton_etcd::client::Client;
use common::BATON;

struct Cluster {
    dir: tempfile::TempDir,
    endpoints: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/etcd-cluster.sh")
}

impl Cluster {
    fn start(base: u16) -> Option<Cluster> {
        let found = Command::new("sh")
            .args(["-c", "command -v etcd"])
            .output()
            .unwrap();
        if !found.status.success() {
            assert!(
                std::env::var_os("CI").is_none(),
                "etcd is not installed (apt-get install etcd-server)"
            );
            eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path().join("c"))
            .arg(base.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let endpoints = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Some(Cluster { dir, endpoints })
    }

    fn pid(&self, member: usize) -> u32 {
        let p = self.dir.path().join(format!("c/m{member}.pid"));
        std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
    }

    /// Which member leads the raft group now.
    fn leader(&self) -> usize {
        for (i, endpoint) in self.endpoints.split(',').enumerate() {
            let Ok(c) = Client::new(&[endpoint.to_owned()], Duration::from_secs(1)) else {
                continue;
            };
            if let Ok(status) = c.call("/v3/maintenance/status", &serde_json::json!({}))
                && status["leader"] == status["header"]["member_id"]
            {
                return i;
            }
        }
        panic!("no member leads");
    }

    /// `sh -c SCRIPT` with the cluster's endpoints, started.
    fn shell(&self, script: &str) -> Child {
        Command::new("sh")
            .args(["-c", script])
            .env("BATON_ETCD_ENDPOINTS", &self.endpoints)
            .spawn()
            .unwrap()
    }

    fn baton(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BATON);
        c.args(args)
            .env("BATON_ETCD_ENDPOINTS", &self.endpoints)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path().join("c"))
            .status();
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

/// A command that records its term: `enter`, `acts` acts `pause` apart,
/// `exit`, under the id and token baton gives it.
fn term(history: &Path, id: &str, token_var: &str, acts: u32, pause: &str) -> String {
    let h = history.display();
    format!(
        "echo enter {id} ${token_var} >> {h}; i=0; while [ $i -lt {acts} ]; do echo act {id} ${token_var} >> {h}; sleep {pause}; i=$((i+1)); done; echo exit {id} ${token_var} >> {h}"
    )
}

fn checked(history: &Path) -> check::Summary {
    let text = std::fs::read_to_string(history).unwrap_or_default();
    match check::check(&text) {
        Ok(summary) => summary,
        Err(v) => panic!("line {}: {}\n{text}", v.line, v.what),
    }
}

fn wait_all(children: Vec<Child>, limit: Duration) -> Vec<i32> {
    let start = Instant::now();
    children
        .into_iter()
        .map(|mut c| {
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    return status.code().unwrap_or(-1);
                }
                if start.elapsed() > limit {
                    let _ = c.kill();
                    panic!("a baton ran past {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .collect()
}

#[test]
fn locks_exclude_each_other_while_a_member_is_killed() {
    let Some(cluster) = Cluster::start(24100) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let workers: Vec<Child> = (0..4)
        .map(|w| {
            let id = format!("w{w}");
            let body = term(&history, &id, "BATON_LOCK_TOKEN", 2, "0.02");
            cluster.shell(&format!(
                "for n in 1 2 3 4 5; do {BATON} lock --backend etcd --etcd-ttl 3 --id {id} shared -- sh -c '{body}' || exit 1; done"
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    // The first endpoint, which every client asks first.
    signal(cluster.pid(0), "KILL");
    let codes = wait_all(workers, Duration::from_secs(120));
    assert_eq!(codes, [0, 0, 0, 0]);
    let summary = checked(&history);
    assert_eq!(summary.terms, 20, "every acquisition ran its command once");
}

#[test]
fn one_leader_at_a_time_while_the_etcd_leader_is_stopped() {
    let Some(cluster) = Cluster::start(24200) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let candidates: Vec<Child> = (0..3)
        .map(|c| {
            let id = format!("c{c}");
            let body = term(&history, &id, "BATON_EPOCH", 4, "0.05");
            cluster.shell(&format!(
                "for n in 1 2; do {BATON} elect --backend etcd --etcd-ttl 3 --dir E --id {id} -- sh -c '{body}' 2>>{err} || exit 1; done",
                err = dir.path().join("err").display()
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Past the election timeout (1 s): the others elect a new raft leader.
    let leader = cluster.pid(cluster.leader());
    signal(leader, "STOP");
    std::thread::sleep(Duration::from_millis(2_500));
    signal(leader, "CONT");
    let codes = wait_all(candidates, Duration::from_secs(120));
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    assert_eq!(codes, [0, 0, 0], "{err}");
    assert_eq!(checked(&history).terms, 6);
}

#[test]
fn a_stopped_holder_is_cut_off_before_its_successor_acts_and_its_late_append_is_fenced() {
    let Some(cluster) = Cluster::start(24300) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let h = history.display();
    let forever = format!(
        "echo enter a $BATON_EPOCH >> {h}; while true; do echo act a $BATON_EPOCH >> {h}; sleep 0.02; done"
    );
    let a = cluster
        .baton(&[
            "--json",
            "elect",
            "--backend",
            "etcd",
            "--etcd-ttl",
            "2",
            "--dir",
            "P",
            "--id",
            "a",
            "--",
            "sh",
            "-c",
            &forever,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&history)
        .unwrap_or_default()
        .contains("act a")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a was never elected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let epoch_a: u64 = std::fs::read_to_string(&history)
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let client = Client::new(
        &baton_etcd::endpoints(Some(&cluster.endpoints)),
        Duration::from_secs(1),
    )
    .unwrap();
    baton_etcd::fence::append(&client, "events", epoch_a, "a before the pause")
        .unwrap()
        .unwrap();

    // baton A stops (its command does not): past the lease, B is elected.
    signal(a.id(), "STOP");
    let stopped = Instant::now();
    let body = term(&history, "b", "BATON_EPOCH", 3, "0.02");
    let b = cluster
        .baton(&[
            "elect",
            "--backend",
            "etcd",
            "--etcd-ttl",
            "2",
            "--dir",
            "P",
            "--id",
            "b",
            "--",
            "sh",
            "-c",
            &body,
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(b.success());
    let failover = stopped.elapsed();
    let text = std::fs::read_to_string(&history).unwrap();
    let epoch_b: u64 = text
        .lines()
        .find(|l| l.starts_with("enter b"))
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(epoch_b > epoch_a);
    baton_etcd::fence::append(&client, "events", epoch_b, "b")
        .unwrap()
        .unwrap();
    // A's command was killed by its watchdog before B entered.
    checked(&history);
    // A's late append, under its stale epoch, is refused.
    assert_eq!(
        baton_etcd::fence::append(&client, "events", epoch_a, "a after the pause").unwrap(),
        Err(epoch_b)
    );
    let lines: Vec<String> = baton_etcd::fence::entries(&client, "events")
        .unwrap()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(lines, ["a before the pause", "b"]);
    // A, resumed, says it lost the lease and exits 1.
    signal(a.id(), "CONT");
    let out = a.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("\"event\":\"lost\""), "{err}");
    eprintln!("failover after a 2 s lease's holder stopped: {failover:?}");
}

#[test]
fn claims_are_all_or_nothing_and_a_directory_covers_its_files() {
    let Some(cluster) = Cluster::start(24400) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = cluster
            .baton(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Detached claims, on a lease nobody renews.
    assert_eq!(
        run(&[
            "claim",
            "--backend",
            "etcd",
            "--id",
            "a",
            "--ttl",
            "60",
            "src/ui"
        ])
        .0,
        0
    );
    let (code, said) = run(&[
        "claim",
        "--backend",
        "etcd",
        "--id",
        "b",
        "--ttl",
        "60",
        "docs/x.md",
        "src/ui/button.js",
    ]);
    assert_eq!(code, 75, "{said}");
    assert!(said.contains("held by a"), "{said}");
    // None of b's were taken: docs/x.md is still free.
    let (code, said) = run(&["who", "--backend", "etcd", "docs/x.md"]);
    assert_eq!((code, said.trim()), (0, "docs/x.md: free"));
    let (code, said) = run(&["who", "--backend", "etcd", "src/ui/button.js"]);
    assert_eq!(code, 75);
    assert!(said.contains("held by a"), "{said}");
    // A file claimed keeps its directory from being claimed.
    assert_eq!(
        run(&[
            "claim",
            "--backend",
            "etcd",
            "--id",
            "b",
            "--ttl",
            "60",
            "docs/x.md"
        ])
        .0,
        0
    );
    assert_eq!(
        run(&[
            "claim",
            "--backend",
            "etcd",
            "--id",
            "c",
            "--ttl",
            "60",
            "docs"
        ])
        .0,
        75
    );
    // Released, it can be.
    assert_eq!(run(&["release", "--backend", "etcd", "--id", "b"]).0, 0);
    assert_eq!(
        run(&[
            "claim",
            "--backend",
            "etcd",
            "--id",
            "c",
            "--ttl",
            "60",
            "docs"
        ])
        .0,
        0
    );
    // Attached: held while the command runs, gone after.
    let (code, said) = run(&[
        "claim",
        "--backend",
        "etcd",
        "--id",
        "d",
        "--etcd-ttl",
        "3",
        "lib",
        "--",
        "sh",
        "-c",
        &format!("{BATON} who --backend etcd lib/a; true"),
    ]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("lib/a: held by d"), "{said}");
    assert_eq!(run(&["who", "--backend", "etcd", "lib/a"]).0, 0);
}

#[test]
fn usage_errors_name_what_etcd_does_not_take() {
    let out = Command::new(BATON)
        .args(["lock", "--backend", "etcd", "-s", "x", "--", "true"])
        .env("BATON_ETCD_ENDPOINTS", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-s/--shared applies to the file backend")
    );
    let out = Command::new(BATON)
        .args(["lock", "--backend", "etcd", "x", "--", "true"])
        .env_remove("BATON_ETCD_ENDPOINTS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no etcd endpoint given"));
    // Nothing listening: one line, exit 1.
    let out = Command::new(BATON)
        .args([
            "lock",
            "--backend",
            "etcd",
            "--endpoints",
            "http://127.0.0.1:1",
            "x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no etcd endpoint answered"), "{err}");
}

/// `baton elect --backend etcd` without a command: the plugin interface,
/// its events on stdout as JSON lines.
struct Member {
    child: Child,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Member {
    fn start(cluster: &Cluster, id: &str) -> Member {
        use std::io::BufRead;
        let mut child = cluster
            .baton(&[
                "elect",
                "--backend",
                "etcd",
                "--etcd-ttl",
                "3",
                "--dir",
                "plugins",
                "--id",
                id,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        Member { child, events }
    }

    fn next(&self) -> serde_json::Value {
        self.events
            .recv_timeout(Duration::from_secs(20))
            .expect("an event")
    }
}

#[test]
fn the_plugin_interface_says_joined_standby_elected_and_stepped_down() {
    let Some(cluster) = Cluster::start(24600) else {
        return;
    };
    let mut a = Member::start(&cluster, "a");
    assert_eq!(a.next()["event"], "joined");
    let elected = a.next();
    assert_eq!(elected["event"], "elected");
    let epoch_a = elected["epoch"].as_i64().unwrap();
    let mut b = Member::start(&cluster, "b");
    assert_eq!(b.next()["event"], "joined");
    let standby = b.next();
    assert_eq!(
        (standby["event"].as_str(), standby["primary"].as_str()),
        (Some("standby"), Some("a"))
    );
    assert_eq!(standby["epoch"].as_i64(), Some(epoch_a));
    let status = cluster
        .baton(&["--json", "status", "--backend", "etcd", "--dir", "plugins"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["leader"]["id"], "a");
    assert_eq!(status["leader"]["epoch"].as_i64(), Some(epoch_a));
    assert_eq!(status["members"].as_array().unwrap().len(), 2);
    assert!(
        status["members"][0]["ttl_s"].as_i64().unwrap() > 0,
        "{status}"
    );
    // A's plugin closes its end: A steps down, B is elected with a higher epoch.
    drop(a.child.stdin.take());
    assert_eq!(a.next()["event"], "stepped-down");
    assert!(a.child.wait().unwrap().success());
    let elected = b.next();
    assert_eq!(elected["event"], "elected");
    assert!(elected["epoch"].as_i64().unwrap() > epoch_a);
    drop(b.child.stdin.take());
    assert_eq!(b.next()["event"], "stepped-down");
    assert!(b.child.wait().unwrap().success());
}

/// One program against the seam (`baton_core::backend::Backend`), run on
/// files and on etcd: the same outcomes from both.
fn exercise<B: baton_core::backend::Backend + Sync>(b: &B) {
    use baton_core::backend::LeaderView;
    use baton_core::lock::Wait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let long = Wait::For(Duration::from_secs(60));
    // Locks: one holder at a time among four threads.
    let (inside, total) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let (inside, total) = (&inside, &total);
            s.spawn(move || {
                for _ in 0..5 {
                    let held = b
                        .lock("shared", &format!("t{t}"), long)
                        .unwrap()
                        .expect("in time");
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    std::thread::sleep(Duration::from_millis(5));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    total.fetch_add(1, Ordering::SeqCst);
                    b.unlock(held).unwrap();
                }
            });
        }
    });
    assert_eq!(total.load(Ordering::SeqCst), 20);
    let held = b.lock("shared", "a", Wait::No).unwrap().expect("free");
    assert!(
        b.lock("shared", "b", Wait::No).unwrap().is_none(),
        "held: not taken"
    );
    b.unlock(held).unwrap();

    // Elections and the fenced log.
    let a = b.campaign("e", "a", long).unwrap().expect("elected");
    let epoch_a = b.epoch(&a);
    assert!(b.leads(&a));
    assert_eq!(
        b.observe("e").unwrap(),
        Some(LeaderView {
            id: "a".into(),
            epoch: epoch_a
        })
    );
    assert!(
        b.campaign("e", "b", Wait::No).unwrap().is_none(),
        "one leader"
    );
    assert_eq!(b.append("log", epoch_a, "a1").unwrap(), Ok(()));
    b.resign(a).unwrap();
    let t = b.campaign("e", "b", long).unwrap().expect("elected");
    let epoch_b = b.epoch(&t);
    assert!(epoch_b > epoch_a, "{epoch_b} after {epoch_a}");
    assert_eq!(b.append("log", epoch_b, "b1").unwrap(), Ok(()));
    assert_eq!(b.append("log", epoch_a, "a, late").unwrap(), Err(epoch_b));
    assert_eq!(
        b.entries("log").unwrap(),
        [(epoch_a, "a1".to_owned()), (epoch_b, "b1".to_owned())]
    );
    b.resign(t).unwrap();

    // Claims: all or nothing, a directory covering its files.
    let ui = b
        .claim("a", "ui", &["src/ui".to_owned()])
        .unwrap()
        .expect("free");
    let Err(conflict) = b
        .claim(
            "b",
            "both",
            &["docs/x.md".to_owned(), "src/ui/button.js".to_owned()],
        )
        .unwrap()
    else {
        panic!("src/ui is a's");
    };
    assert!(conflict.iter().any(|h| h.id == "a"), "{conflict:?}");
    let docs = b
        .claim("b", "docs", &["docs/x.md".to_owned()])
        .unwrap()
        .expect("untouched by the refusal");
    assert!(b.claim("c", "all", &["src".to_owned()]).unwrap().is_err());
    b.release(ui).unwrap();
    let src = b
        .claim("c", "all", &["src".to_owned()])
        .unwrap()
        .expect("released");
    b.release(src).unwrap();
    b.release(docs).unwrap();
}

#[test]
fn one_program_on_the_file_backend() {
    let dir = tempfile::tempdir().unwrap();
    let env = baton_core::env::real::RealEnv::new().unwrap();
    exercise(&baton_core::backend::FileBackend::new(&env, dir.path()));
}

#[test]
fn the_same_program_on_the_etcd_backend() {
    let Some(cluster) = Cluster::start(24700) else {
        return;
    };
    let client = Client::new(
        &baton_etcd::endpoints(Some(&cluster.endpoints)),
        Duration::from_secs(1),
    )
    .unwrap()
    .with_patience(Duration::from_secs(5));
    exercise(&baton_etcd::backend::EtcdBackend::new(
        std::sync::Arc::new(client),
        Duration::from_secs(5),
        "ns",
    ));
}
