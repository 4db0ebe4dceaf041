//! Lease mode: primary election without kernel locks, for network
//! filesystems.
//!
//! # Protocol
//!
//! The lease is a sequence of immutable version files `DIR/lease/SEQ.json`,
//! each `{seq, epoch, holder}`; the highest `SEQ` is the current record.
//! Writing version `SEQ` is a compare-and-swap: the writer links a complete
//! temp file to that name, and `link` fails if it exists, so exactly one
//! writer wins each version (O_EXCL semantics hold on NFSv3 and later).
//!
//! - A challenger takes over only after observing the current version
//!   unchanged for the lease duration `L` **on its own monotonic clock**,
//!   by writing `SEQ+1` with `epoch+1`. A free lease (holder released it)
//!   is taken at once.
//! - The holder renews every retry period `R` by writing `SEQ+1` with its
//!   own epoch; losing that race means someone took over. It **stops
//!   acting** as soon as no renewal has succeeded for the renew deadline
//!   `D`, measured from the start of the last successful renewal, on its
//!   monotonic clock (client-go's rule). `L > D > R`; by default
//!   `D = 2L/3` and `R = 2L/15` (client-go's 15 s / 10 s / 2 s).
//!
//! # What it assumes
//!
//! Single primary holds when (1) clock *rates* differ by less than
//! `(L - D) / L` between any two instances (monotonic clocks drift by
//! parts per million; `L - D` is a third of the lease), and (2) no instance
//! pauses for more than `L - D - R` between checking that its lease is
//! valid and acting on it. A longer pause (a laptop lid, SIGSTOP) can make
//! two instances act at once. That is what the epoch is for: every action
//! carries it, and a fenced sink ([`crate::fence`]) rejects the old
//! primary's actions once the new one's first has landed, so what lands is
//! still written once. Both claims are checked in the simulator
//! (`baton-election-lease`, `baton-election-lease-paused`).
//!
//! A version file that a crashed writer left half-written cannot exist: it
//! is linked only once complete. Old versions are removed once `KEEP` newer
//! ones exist; a paused writer that recreates a removed version finds a
//! higher one already there and counts its write as lost.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::atomic::publish_new;
use crate::election::{Election, ElectionError, ElectionMode, read_record};
use crate::env::{Env, MonoTime};
use crate::error::IoFailure;
use crate::lock::Wait;

/// Versions kept behind the newest.
const KEEP: u64 = 16;

/// The lease's three durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    pub lease: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl LeaseTiming {
    /// Client-go's proportions: deadline two thirds of the lease, retry
    /// period two fifteenths.
    pub fn from_lease(lease: Duration) -> LeaseTiming {
        let t = LeaseTiming {
            lease,
            renew_deadline: lease * 2 / 3,
            retry: lease * 2 / 15,
        };
        assert!(t.lease > t.renew_deadline && t.renew_deadline > t.retry);
        t
    }
}

/// One version of the lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub seq: u64,
    pub epoch: u64,
    /// Empty when released.
    pub holder: String,
}

fn lease_dir(election: &Election) -> PathBuf {
    election.dir.join("lease")
}

fn version_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.json"))
}

/// Version numbers present, ascending.
fn versions<E: Env>(env: &E, dir: &Path) -> Result<Vec<u64>, IoFailure> {
    let names = match env.read_dir(dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IoFailure::at("read directory", dir)(e)),
    };
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| n.to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The current lease record, if any.
pub fn current<E: Env>(env: &E, election: &Election) -> Result<Option<LeaseRecord>, ElectionError> {
    let dir = lease_dir(election);
    // A newer writer's cleanup may remove the version between listing and
    // reading it: look again, a bounded number of times.
    for _ in 0..8 {
        let Some(&seq) = versions(env, &dir)?.last() else {
            return Ok(None);
        };
        let path = version_path(&dir, seq);
        match read_record(env, &path)? {
            Some(bytes) => {
                let bad = |why: String| ElectionError::BadRecord {
                    path: path.clone(),
                    what: "a lease version",
                    why,
                };
                let record: LeaseRecord =
                    serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                // Version files are input: one whose name and content
                // disagree, or that leaves no successor, was not baton's.
                if record.seq != seq {
                    return Err(bad(format!("holds version {}", record.seq)));
                }
                if record.seq == u64::MAX || record.epoch == u64::MAX {
                    return Err(bad("version or epoch cannot be followed".to_owned()));
                }
                return Ok(Some(record));
            }
            None => continue,
        }
    }
    Err(IoFailure::at("read lease", &dir)(io::Error::new(
        io::ErrorKind::Interrupted,
        "versions keep disappearing",
    ))
    .into())
}

/// Writes `record` as its version if nobody has: the compare-and-swap.
fn publish<E: Env>(
    env: &E,
    election: &Election,
    record: &LeaseRecord,
) -> Result<bool, ElectionError> {
    let dir = lease_dir(election);
    let path = version_path(&dir, record.seq);
    let mut bytes = serde_json::to_vec(record).expect("a record serializes");
    bytes.push(b'\n');
    if !publish_new(env, &path, &bytes)? {
        return Ok(false);
    }
    env.sync_dir(&dir)
        .map_err(IoFailure::at("sync directory", &dir))?;
    let seqs = versions(env, &dir)?;
    // A paused writer may have recreated a version cleaned up long ago: if
    // a newer one exists, this write changed nothing.
    if seqs.last() != Some(&record.seq) {
        return Ok(false);
    }
    for old in seqs.iter().filter(|&&s| s + KEEP < record.seq) {
        let _ = env.remove_file(&version_path(&dir, *old));
    }
    Ok(true)
}

/// A term held under a lease. Act only while [`LeaseHolder::valid`].
#[derive(Debug)]
pub struct LeaseHolder<'e, E: Env> {
    env: &'e E,
    election: Election,
    pub record: LeaseRecord,
    timing: LeaseTiming,
    /// Start of the last successful renewal (or of the takeover).
    renewed_at: MonoTime,
}

impl<'e, E: Env> LeaseHolder<'e, E> {
    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// Whether this instance may still act: its last successful renewal
    /// started less than the renew deadline ago.
    pub fn valid(&self) -> bool {
        self.env.monotonic().saturating_since(self.renewed_at) < self.timing.renew_deadline
    }

    /// Renews the lease. `Ok(false)`: it was lost (taken over, or not
    /// renewed within the deadline): stop acting.
    pub fn renew(&mut self) -> Result<bool, ElectionError> {
        let started = self.env.monotonic();
        let next = LeaseRecord {
            seq: self.record.seq + 1,
            ..self.record.clone()
        };
        if !self.valid() || !publish(self.env, &self.election, &next)? {
            return Ok(false);
        }
        self.record = next;
        self.renewed_at = started;
        Ok(true)
    }

    /// Gives the lease up at once (stop acting first).
    pub fn release(self) -> Result<(), ElectionError> {
        let free = LeaseRecord {
            seq: self.record.seq + 1,
            epoch: self.record.epoch,
            holder: String::new(),
        };
        if self.valid() {
            publish(self.env, &self.election, &free)?;
        }
        Ok(())
    }
}

/// A challenger for the lease: remembers which version it saw and since
/// when, across attempts, so the lease's silence is measured on its own
/// monotonic clock however the attempts are spaced.
#[derive(Debug)]
pub struct Challenger<'e, E: Env> {
    env: &'e E,
    election: Election,
    id: String,
    timing: LeaseTiming,
    seen: Option<(u64, MonoTime)>,
}

impl<'e, E: Env> Challenger<'e, E> {
    pub fn new(
        env: &'e E,
        election: &Election,
        id: &str,
        timing: LeaseTiming,
    ) -> Result<Challenger<'e, E>, ElectionError> {
        crate::election::check_id(id)?;
        election.prepare(env, ElectionMode::Lease)?;
        let dir = lease_dir(election);
        match env.create_dir(&dir) {
            Ok(()) => env
                .sync_dir(&election.dir)
                .map_err(IoFailure::at("sync directory", &election.dir))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(IoFailure::at("create directory", &dir)(e).into()),
        }
        Ok(Challenger {
            env,
            election: election.clone(),
            id: id.to_owned(),
            timing,
            seen: None,
        })
    }

    /// One look at the lease: takes it if it is free, or has been seen
    /// unchanged for the lease duration. Never sleeps.
    pub fn attempt(&mut self) -> Result<Option<LeaseHolder<'e, E>>, ElectionError> {
        let attempt = self.env.monotonic();
        let mine = |seq, epoch| LeaseRecord {
            seq,
            epoch,
            holder: self.id.clone(),
        };
        let next = match current(self.env, &self.election)? {
            None => Some(mine(1, 1)),
            Some(r) if r.holder.is_empty() => Some(mine(r.seq + 1, r.epoch + 1)),
            Some(r) => match self.seen {
                Some((seq, since))
                    if seq == r.seq && attempt.saturating_since(since) >= self.timing.lease =>
                {
                    Some(mine(r.seq + 1, r.epoch + 1))
                }
                Some((seq, _)) if seq == r.seq => None,
                _ => {
                    self.seen = Some((r.seq, attempt));
                    None
                }
            },
        };
        let Some(record) = next else {
            return Ok(None);
        };
        if !publish(self.env, &self.election, &record)? {
            return Ok(None);
        }
        Ok(Some(LeaseHolder {
            env: self.env,
            election: self.election.clone(),
            record,
            timing: self.timing,
            renewed_at: attempt,
        }))
    }
}

/// Waits (per `wait`) to take the lease for `id`, attempting every retry
/// period (jittered).
pub fn campaign<'e, E: Env>(
    env: &'e E,
    election: &Election,
    id: &str,
    timing: LeaseTiming,
    wait: Wait,
) -> Result<Option<LeaseHolder<'e, E>>, ElectionError> {
    let mut challenger = Challenger::new(env, election, id, timing)?;
    let started = env.monotonic();
    let deadline = match wait {
        Wait::No => Some(started),
        Wait::For(d) => Some(started.saturating_add(d)),
        Wait::Forever => None,
    };
    loop {
        if let Some(holder) = challenger.attempt()? {
            return Ok(Some(holder));
        }
        let now = env.monotonic();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(None);
        }
        let spread = u64::try_from(timing.retry.as_nanos() / 4).unwrap_or(u64::MAX);
        let nap = timing.retry / 2 + Duration::from_nanos(env.random_u64() % (spread + 1));
        env.sleep(deadline.map_or(nap, |d| nap.min(d.saturating_since(now))));
    }
}
