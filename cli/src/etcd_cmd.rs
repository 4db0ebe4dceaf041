//! `--backend etcd`: `lock`, `elect`, `claim`, `release`, `who` and
//! `status` on an etcd cluster (`baton_etcd`), for instances on several
//! hosts. Same events, exit codes and environment for the command as the
//! file backend; what differs is where the state lives, and that a
//! lease, not a kernel lock, keeps it: the command dies with `baton`.

// Deadlines here are for requests to a network service, which the
// simulator does not model: the clock is read directly, as baton-etcd does.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use baton_etcd::client::{Client, EtcdError};
use baton_etcd::queue::{self, Place, QueueError};
use baton_etcd::session::Session;
use baton_etcd::{claims, election_prefix, lock_prefix};
use serde_json::{Value, json};

use crate::args::UsageError;
use crate::child;
use crate::exit::Exit;
use crate::report;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Files in the working directory (one host, or a shared filesystem).
    #[default]
    File,
    /// An etcd cluster (several hosts).
    Etcd,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Where the coordination lives: files here, or an etcd cluster.
    #[arg(long, value_enum, default_value_t = Backend::File)]
    pub backend: Backend,
    /// etcd client URLs, comma-separated (default: $BATON_ETCD_ENDPOINTS).
    #[arg(long, value_name = "URL,...")]
    pub endpoints: Option<String>,
    /// etcd: the session lease's TTL; a holder cut off or paused this long
    /// loses what it holds (at least etcd's minimum, about 2 s).
    #[arg(long = "etcd-ttl", value_name = "SECS", default_value = "10", value_parser = crate::args::positive_secs)]
    pub etcd_ttl: Duration,
}

impl BackendArgs {
    pub fn etcd(&self) -> bool {
        self.backend == Backend::Etcd
    }

    fn client(&self) -> anyhow::Result<Arc<Client>> {
        let endpoints = baton_etcd::endpoints(self.endpoints.as_deref());
        // A request may wait this long on one member before the next is
        // asked: well inside the lease, so a dead member costs a fraction
        // of it.
        let timeout = (self.etcd_ttl / 5).clamp(Duration::from_millis(200), Duration::from_secs(2));
        // Long enough to ride out a raft election (one to two election
        // timeouts, while requests to the old leader hang), never longer
        // than the lease, past which the session is lost anyway.
        let patience = self
            .etcd_ttl
            .clamp(Duration::from_secs(2), Duration::from_secs(30));
        match Client::new(&endpoints, timeout) {
            Ok(c) => Ok(Arc::new(c.with_patience(patience))),
            Err(e @ (EtcdError::NoEndpoints | EtcdError::BadEndpoint(_))) => {
                Err(UsageError(e.to_string()).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn session(&self, keep_alive: bool) -> anyhow::Result<Session> {
        Ok(Session::open(self.client()?, self.etcd_ttl, keep_alive)?)
    }
}

/// Refuses a file-backend option given with `--backend etcd`.
pub fn refuse(given: bool, option: &str) -> anyhow::Result<()> {
    if given {
        return Err(UsageError(format!(
            "{option} applies to the file backend, not --backend etcd"
        ))
        .into());
    }
    Ok(())
}

/// How often a holder checks its lease while the command runs.
fn check_every(session: &Session) -> Duration {
    (session.ttl() / 20).max(Duration::from_millis(50))
}

/// Runs `cmd` while `session` holds, with a watchdog that kills it when
/// the lease's trusted time runs out unrenewed even if `baton` is
/// stopped; `Ok(None)` if the lease was lost (the command was killed).
fn run_held(
    session: &Session,
    cmd: &[OsString],
    envs: &[(&str, String)],
) -> anyhow::Result<Option<Exit>> {
    let lost = AtomicBool::new(false);
    let exit = match child::spawn(cmd, envs, true)? {
        Ok(running) => {
            let dog = crate::watchdog::Watchdog::start(running.id(), session.remaining())?;
            let exit = child::supervise(running, Some(check_every(session)), &|| {
                let ok = session.valid();
                lost.store(!ok, Ordering::SeqCst);
                if ok {
                    dog.extend(session.remaining());
                }
                ok
            });
            dog.stop();
            exit?
        }
        Err(exit) => exit,
    };
    // Killed by the watchdog while baton was stopped: the lease is gone
    // all the same.
    if !session.valid() {
        lost.store(true, Ordering::SeqCst);
    }
    Ok((!lost.load(Ordering::SeqCst)).then_some(exit))
}

/// `baton lock --backend etcd NAME -- CMD`.
pub fn lock(
    backend: &BackendArgs,
    name: &str,
    id: &str,
    wait: baton_core::lock::Wait,
    cmd: &[OsString],
    conflict: Exit,
    json_mode: bool,
) -> anyhow::Result<Exit> {
    let say = |event: Value, text: String| {
        if json_mode {
            report::stderr_line(&event.to_string());
        } else if !text.is_empty() {
            report::stderr_line(&format!("baton: {text}"));
        }
    };
    let session = backend.session(true)?;
    let prefix = lock_prefix(name);
    let started = Instant::now();
    let place = queue::join(&session, &prefix, id.as_bytes()).map_err(queue_error)?;
    if !queue::wait_first(&session, &prefix, &place, queue::deadline(wait)).map_err(queue_error)? {
        queue::leave(&session, &place)?;
        session.close()?;
        say(
            json!({ "event": "timed-out", "lock": name, "backend": "etcd",
                    "waited_ms": started.elapsed().as_millis() as u64 }),
            format!("lock {name}: held by another (etcd)"),
        );
        return Ok(conflict);
    }
    let token = place.revision;
    say(
        json!({ "event": "acquired", "lock": name, "backend": "etcd", "token": token.to_string(),
                "waited_ms": started.elapsed().as_millis() as u64 }),
        String::new(),
    );
    let exit = run_held(&session, cmd, &[("BATON_LOCK_TOKEN", token.to_string())])?;
    let Some(exit) = exit else {
        say(
            json!({ "event": "lost", "lock": name, "token": token.to_string() }),
            String::new(),
        );
        anyhow::bail!("lock {name}: lost the etcd lease (token {token}): the command was stopped");
    };
    queue::leave(&session, &place)?;
    session.close()?;
    say(
        json!({ "event": "released", "lock": name, "token": token.to_string() }),
        String::new(),
    );
    Ok(exit)
}

fn queue_error(e: QueueError) -> anyhow::Error {
    match e {
        QueueError::Lost => anyhow::anyhow!("the etcd lease was lost before anything was held"),
        QueueError::Etcd(e) => e.into(),
    }
}

/// The first in an election's line: `(id, epoch)`.
fn leader(client: &Client, name: &str) -> anyhow::Result<Option<(String, i64)>> {
    let (kvs, _) = queue::line(client, &election_prefix(name))?;
    Ok(kvs.first().map(|kv| {
        (
            String::from_utf8_lossy(&kv.value).into_owned(),
            kv.create_revision,
        )
    }))
}

/// `baton elect --backend etcd --dir NAME [-- CMD]`: the same events as
/// lease mode; the epoch is the leader key's creation revision.
pub fn elect(
    backend: &BackendArgs,
    name: &str,
    id: &str,
    cmd: &[OsString],
    stop: &AtomicBool,
    announce: &mut dyn FnMut(Value),
) -> anyhow::Result<Exit> {
    const STOP_CHECK: Duration = Duration::from_millis(250);
    let prefix = election_prefix(name);
    announce(json!({ "event": "joined", "id": id, "dir": name, "mode": "etcd" }));
    loop {
        let session = backend.session(true)?;
        let place: Place = queue::join(&session, &prefix, id.as_bytes()).map_err(queue_error)?;
        let mut said: Option<Option<(String, i64)>> = None;
        let first = loop {
            if stop.load(Ordering::SeqCst) {
                queue::leave(&session, &place)?;
                session.close()?;
                announce(json!({ "event": "left", "id": id }));
                return Ok(Exit::Ok);
            }
            match queue::wait_first(&session, &prefix, &place, Some(Instant::now() + STOP_CHECK)) {
                Ok(true) => break true,
                Ok(false) => {}
                Err(QueueError::Lost) => break false,
                // The cluster is between leaders: a standby waits on (its
                // session says when its lease is gone).
                Err(QueueError::Etcd(EtcdError::Unreachable { .. })) => continue,
                Err(QueueError::Etcd(e)) => return Err(e.into()),
            }
            let primary = leader(session.client(), name)?;
            if said.as_ref() != Some(&primary) {
                let (holder, epoch) = primary.clone().unzip();
                announce(
                    json!({ "event": "standby", "id": id, "primary": holder, "epoch": epoch }),
                );
                said = Some(primary);
            }
        };
        if !first {
            continue;
        }
        let epoch = place.revision;
        announce(json!({ "event": "elected", "id": id, "epoch": epoch, "mode": "etcd" }));
        if !cmd.is_empty() {
            let envs = [
                ("BATON_EPOCH", epoch.to_string()),
                ("BATON_ID", id.to_owned()),
            ];
            let Some(exit) = run_held(&session, cmd, &envs)? else {
                announce(json!({ "event": "lost", "id": id, "epoch": epoch }));
                anyhow::bail!("lost the etcd lease of epoch {epoch}: the command was stopped");
            };
            queue::leave(&session, &place)?;
            session.close()?;
            announce(json!({ "event": "stepped-down", "id": id, "epoch": epoch }));
            return Ok(exit);
        }
        loop {
            std::thread::park_timeout(STOP_CHECK.min(check_every(&session)));
            if stop.load(Ordering::SeqCst) {
                queue::leave(&session, &place)?;
                session.close()?;
                announce(json!({ "event": "stepped-down", "id": id, "epoch": epoch }));
                return Ok(Exit::Ok);
            }
            if !session.valid() {
                announce(json!({ "event": "lost", "id": id, "epoch": epoch }));
                break;
            }
        }
    }
}

/// `baton claim --backend etcd`: attached to a kept-alive lease while CMD
/// runs; without CMD, to a lease of `--ttl` that nobody renews (claim
/// again to renew).
#[allow(clippy::too_many_arguments)]
pub fn claim(
    backend: &BackendArgs,
    namespace: &str,
    id: &str,
    task: &str,
    ttl: Duration,
    paths: &[String],
    wait: Option<Duration>,
    cmd: &[OsString],
    json_mode: bool,
) -> anyhow::Result<Exit> {
    let attached = !cmd.is_empty();
    let session = if attached {
        backend.session(true)?
    } else {
        Session::open(backend.client()?, ttl, false)?
    };
    let until = wait.map(|w| Instant::now() + w);
    let holders = loop {
        match claims::claim(&session, namespace, id, task, paths)? {
            Ok(()) => break None,
            Err(_) if until.is_some_and(|u| Instant::now() < u) => {
                std::thread::park_timeout(Duration::from_millis(100));
            }
            Err(holders) => break Some(holders),
        }
    };
    if let Some(holders) = holders {
        let _ = session.close();
        for h in &holders {
            if json_mode {
                report::stdout_line(
                    &json!({ "event": "held", "path": h.path, "id": h.id, "task": h.task })
                        .to_string(),
                );
            } else {
                report::error_line(&format!("claim {}: held by {} (etcd)", h.path, h.id));
            }
        }
        return Ok(Exit::Unavailable);
    }
    let said = json!({ "event": "claimed", "id": id, "paths": paths, "backend": "etcd",
                       "lease": session.lease().to_string() });
    if json_mode {
        report::stdout_line(&said.to_string());
    }
    if !attached {
        // Detached: the lease expires on its own; dropping the session
        // only stops nothing (no keep-alive was started).
        return Ok(Exit::Ok);
    }
    let exit = run_held(&session, cmd, &[("BATON_ID", id.to_owned())])?;
    let Some(exit) = exit else {
        anyhow::bail!("claims of {id}: lost the etcd lease: the command was stopped");
    };
    session.close()?;
    Ok(exit)
}

pub fn release(
    backend: &BackendArgs,
    namespace: &str,
    id: &str,
    paths: Option<&[String]>,
    json_mode: bool,
) -> anyhow::Result<Exit> {
    let client = backend.client()?;
    let released = claims::release(&client, namespace, id, paths)?;
    if json_mode {
        report::stdout_line(
            &json!({ "event": "released", "id": id, "paths": released }).to_string(),
        );
    }
    Ok(Exit::Ok)
}

pub fn who(
    backend: &BackendArgs,
    namespace: &str,
    path: &str,
    json_mode: bool,
) -> anyhow::Result<Exit> {
    let client = backend.client()?;
    let holder = claims::who(&client, namespace, path)?;
    match (&holder, json_mode) {
        (Some(h), true) => report::stdout_line(
            &json!({ "path": path, "held": true, "id": h.id, "task": h.task, "claimed": h.path })
                .to_string(),
        ),
        (None, true) => report::stdout_line(&json!({ "path": path, "held": false }).to_string()),
        (Some(h), false) => {
            report::stdout_line(&format!("{path}: held by {} (claim on {})", h.id, h.path))
        }
        (None, false) => report::stdout_line(&format!("{path}: free")),
    }
    Ok(if holder.is_some() {
        Exit::Unavailable
    } else {
        Exit::Ok
    })
}

/// `baton status --backend etcd`: the election's members in line order,
/// each lease's remaining TTL, the leader and its revision (the epoch),
/// and the claims.
pub fn status(
    backend: &BackendArgs,
    election: &str,
    namespace: &str,
    json_mode: bool,
) -> anyhow::Result<Exit> {
    let client = backend.client()?;
    let (line, revision) =
        queue::line(&client, &election_prefix(election)).context("read the election")?;
    let mut members = Vec::new();
    for kv in &line {
        let ttl = client.time_to_live(kv.lease)?;
        members.push(json!({
            "id": String::from_utf8_lossy(&kv.value),
            "revision": kv.create_revision,
            "lease": kv.lease.to_string(),
            "ttl_s": ttl,
        }));
    }
    let claims = claims::all(&client, namespace)?;
    let leader = line
        .first()
        .map(|kv| json!({ "id": String::from_utf8_lossy(&kv.value), "epoch": kv.create_revision }));
    if json_mode {
        report::stdout_line(
            &json!({ "backend": "etcd", "election": election, "revision": revision,
                     "leader": leader, "members": members, "claims": claims })
            .to_string(),
        );
        return Ok(Exit::Ok);
    }
    match &leader {
        Some(l) => report::stdout_line(&format!(
            "election {election}: leader {} (epoch {})",
            l["id"], l["epoch"]
        )),
        None => report::stdout_line(&format!("election {election}: no leader")),
    }
    for m in &members {
        report::stdout_line(&format!(
            "  member {} (revision {}, lease ttl {} s)",
            m["id"], m["revision"], m["ttl_s"]
        ));
    }
    for c in &claims {
        report::stdout_line(&format!("  claim {} by {}", c.path, c.id));
    }
    Ok(Exit::Ok)
}
