//! Per-path claims (seed 004's "lock file system", done right): an
//! instance claims the paths it is about to edit, all or nothing, and
//! others asking `who` learn that it has them.
//!
//! # Files
//!
//! A claim is one file in the claims directory `DIR` (default
//! `.baton/claims`), named after the claimed path (percent-encoded; a
//! hash for very long paths), holding a [`ClaimRecord`]: who (instance id,
//! task, process identity), what (the path, relative to the root the paths
//! were normalised against) and how it lives. There is no shared JSON that
//! every instance read-modify-writes (seed 001's bug, and seed 004's
//! Option A): each claim is its own file, and `status` derives the
//! ACTIVE-TASKS view from them.
//!
//! # How a claim lives
//!
//! - **attached** (`baton claim ... -- CMD`, or a [`Held`] kept by a
//!   library user): the claim file is published already `flock`ed, and
//!   the lock is held while the claimant runs (a command inherits it). The
//!   claim is alive exactly while the lock is held: a dead claimant's is
//!   free at once, and reapable, however long ago it died.
//! - **detached** (`baton claim --id ID --ttl SECS PATH...` from a process
//!   that exits at once, as an agent's tool call does): nobody holds a lock
//!   for it, so it carries an expiry on the machine's boot clock
//!   ([`crate::env::Clock::since_boot`]), comparable between processes of
//!   one boot without trusting wall clocks. Claiming the same paths again
//!   with the same id renews it. An attached claim is never "renewed" by
//!   another process of the same id: it excludes it like anyone else's
//!   while its holder runs (found by the storm: a killed `baton`'s command
//!   still editing, and its instance's next `baton claim` let in beside it). It is dead once expired, or once the
//!   machine rebooted; a claim from another host cannot be judged and
//!   stays until released (or `--force`d).
//!
//! # Why claims never overlap
//!
//! Paths overlap when equal or one is an ancestor directory of the other
//! (a claim on `src` covers `src/x.rs`). Checking that a set of paths
//! overlaps no live claim and publishing them must be one step, or two
//! instances claiming `src` and `src/x.rs` at once would both succeed. So
//! every claimant takes a short lock on the directory (`DIR.baton.lock`),
//! scans the live claims (reaping dead ones, which only the lock's holder
//! does, so two reapers never race), publishes all of its claims or none,
//! and lets go. A claim held by a live instance is only removed by its
//! owner (or `--force`). Nothing waits while holding a claim's lock for
//! another: a claimant that finds a conflict publishes nothing, lets the
//! directory go and tries again later, so overlapping sets can never
//! deadlock, whatever their order.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::atomic::stage;
use crate::backoff::Backoff;
use crate::env::{Env, OpenFile};
use crate::error::IoFailure;
use crate::lock::{self, LockError, LockOptions, Wait};
use crate::record::{RECORD_LIMIT, written_by_baton};

/// What a claim file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub baton: u32,
    /// The claimed path, relative to the claims' root, `/`-separated
    /// (`.` for the whole root).
    pub path: String,
    pub id: String,
    pub task: String,
    pub pid: u32,
    pub start_time: u64,
    pub boot_id: String,
    pub pid_ns: u64,
    pub host: String,
    /// The claimant's wall clock when it claimed (for people).
    pub claimed_at_ms: u64,
    /// Detached claims: when it expires, on the boot clock, in ms.
    pub expires_boot_ms: Option<u64>,
}

/// A claim on disk and whether it is alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimStatus {
    pub file: PathBuf,
    pub record: ClaimRecord,
    pub alive: bool,
    /// Detached: time left before it expires (if judged on this boot).
    pub expires_in: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{}: outside {}, where claims are kept for", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
    #[error("{}: not a path claims can name ({why})", path.display())]
    BadPath { path: PathBuf, why: &'static str },
    #[error("{path}: claimed by {holder} ({task}), not by {id}; `--force` releases it anyway")]
    NotYours {
        path: String,
        holder: String,
        task: String,
        id: String,
    },
    #[error("{}: not a claim file baton made ({why}); move it away", path.display())]
    Foreign { path: PathBuf, why: &'static str },
    #[error("the claims directory {} stayed busy for longer than {}s", dir.display(), DIR_WAIT.as_secs())]
    Busy { dir: PathBuf },
}

/// How long to wait for another claimant's short hold on the directory.
const DIR_WAIT: Duration = Duration::from_secs(30);

/// Claim file names longer than this are hashed.
const MAX_NAME: usize = 180;

/// A claims directory and the root its paths are relative to.
#[derive(Clone, Debug)]
pub struct Claims {
    pub dir: PathBuf,
    pub root: PathBuf,
}

/// Who claims, and for how long.
#[derive(Clone, Debug)]
pub struct Claimant {
    pub id: String,
    pub task: String,
    /// `None`: attached (alive while the returned [`Held`] is). `Some`:
    /// detached, expiring this long after claiming unless renewed.
    pub ttl: Option<Duration>,
}

/// The outcome of a claim.
#[derive(Debug)]
pub enum Claimed<'e, E: Env> {
    /// Every path is claimed. Attached claims stay alive while this lives.
    All(Held<'e, E>),
    /// Not within the wait: the first conflict found, the path asked for
    /// and the live claim overlapping it.
    Conflict { path: String, holder: ClaimRecord },
}

/// Claims made by one call. Attached ones are held by their files' kernel
/// locks, and dropping this releases them (each file removed only if it is
/// still ours); detached ones live on until they expire or are released.
#[derive(Debug)]
pub struct Held<'e, E: Env> {
    env: &'e E,
    files: Vec<(PathBuf, Option<E::File>)>,
    /// The claimed paths, normalised.
    pub paths: Vec<String>,
}

impl<E: Env> Held<'_, E> {
    /// The locked descriptors (attached claims): a child that inherits
    /// them keeps the claims alive while it runs.
    pub fn files(&self) -> impl Iterator<Item = &E::File> {
        self.files.iter().filter_map(|(_, f)| f.as_ref())
    }
}

impl<E: Env> Drop for Held<'_, E> {
    fn drop(&mut self) {
        for (path, file) in self.files.drain(..) {
            if let Some(file) = file
                && let Ok(Some(_)) = lock::still_named(self.env, &path, &file)
            {
                let _ = self.env.remove_file(&path);
            }
        }
    }
}

impl Claims {
    pub fn new(dir: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Claims {
        Claims {
            dir: dir.into(),
            root: root.into(),
        }
    }

    /// `path` (absolute, or relative to `cwd`) as claims name it: relative
    /// to the root, `/`-separated, `.` and `..` resolved, symlinks in its
    /// existing part resolved, so two spellings of one file are one claim.
    pub fn normalise<E: Env>(
        &self,
        env: &E,
        cwd: &Path,
        path: &Path,
    ) -> Result<String, ClaimError> {
        let joined = cwd.join(path);
        // The longest existing ancestor, resolved; the rest taken as spelt
        // (a path that does not exist yet cannot hold a symlink).
        let mut rest: Vec<std::ffi::OsString> = Vec::new();
        let mut lexical = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    lexical.pop();
                }
                Component::CurDir => {}
                other => lexical.push(other),
            }
        }
        let mut base = lexical.clone();
        let resolved = loop {
            match env.canonicalize(&base) {
                Ok(r) => break r,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let Some(name) = base.file_name() else {
                        return Err(IoFailure::at("resolve", path)(e).into());
                    };
                    rest.push(name.to_owned());
                    if !base.pop() {
                        return Err(IoFailure::at("resolve", path)(e).into());
                    }
                }
                Err(e) => return Err(IoFailure::at("resolve", path)(e).into()),
            }
        };
        let mut full = resolved;
        for name in rest.iter().rev() {
            full.push(name);
        }
        let root = env
            .canonicalize(&self.root)
            .map_err(IoFailure::at("resolve", &self.root))?;
        let Ok(rel) = full.strip_prefix(&root) else {
            return Err(ClaimError::Outside {
                path: path.to_owned(),
                root,
            });
        };
        let Some(rel) = rel.to_str() else {
            return Err(ClaimError::BadPath {
                path: path.to_owned(),
                why: "not UTF-8",
            });
        };
        if rel.chars().any(char::is_control) {
            return Err(ClaimError::BadPath {
                path: path.to_owned(),
                why: "holds a control character",
            });
        }
        Ok(if rel.is_empty() {
            ".".to_owned()
        } else {
            rel.to_owned()
        })
    }

    /// The claim file for the normalised `path`.
    pub fn file_for(&self, path: &str) -> PathBuf {
        self.dir.join(file_name(path))
    }

    /// Claims every one of `paths` (normalised) for `who`, all or nothing,
    /// waiting per `wait` for conflicting claims to go.
    pub fn claim<'e, E: Env>(
        &self,
        env: &'e E,
        paths: &[String],
        who: &Claimant,
        wait: Wait,
    ) -> Result<Claimed<'e, E>, ClaimError> {
        crate::dirs::prepare(env, &self.dir, &self.dir)?;
        let mut wanted: Vec<String> = paths.to_vec();
        wanted.sort();
        wanted.dedup();
        let started = env.monotonic();
        let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(250));
        loop {
            let dir = self.hold_dir(env)?;
            let live = self.scan(env, true)?;
            let conflict = wanted.iter().find_map(|p| {
                live.iter()
                    .find(|c| c.alive && excludes(&c.record, who) && overlaps(p, &c.record.path))
                    .map(|c| Claimed::Conflict {
                        path: p.clone(),
                        holder: c.record.clone(),
                    })
            });
            // The directory's lock is released explicitly, never by a drop
            // at `return`: a destructor that fails (a crash) while the
            // return value exists leaks that value (rust-lang/rust#47949),
            // and with it the claims' descriptors.
            let Some(conflict) = conflict else {
                let held = self.publish(env, &wanted, who);
                dir.release()?;
                return held.map(Claimed::All);
            };
            dir.release()?;
            let waited = env.monotonic().saturating_since(started);
            let left = match wait {
                Wait::No => return Ok(conflict),
                Wait::For(d) if waited >= d => return Ok(conflict),
                Wait::For(d) => Some(d - waited),
                Wait::Forever => None,
            };
            let nap = backoff.next_delay(env.random_u64());
            env.sleep(left.map_or(nap, |l| l.min(nap)));
        }
    }

    /// Publishes `wanted` (no live conflict: checked under the directory's
    /// lock, which the caller holds). Our own claims on a path are renewed.
    fn publish<'e, E: Env>(
        &self,
        env: &'e E,
        wanted: &[String],
        who: &Claimant,
    ) -> Result<Held<'e, E>, ClaimError> {
        let me = env.identity();
        let claimed_at_ms = env
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let expires_boot_ms = who
            .ttl
            .map(|ttl| u64::try_from((env.since_boot() + ttl).as_millis()).unwrap_or(u64::MAX));
        let mut held = Held {
            env,
            files: Vec::new(),
            paths: wanted.to_vec(),
        };
        for path in wanted {
            let record = ClaimRecord {
                baton: 1,
                path: path.clone(),
                id: who.id.clone(),
                task: who.task.clone(),
                pid: me.pid,
                start_time: me.start_time,
                boot_id: me.boot_id.clone(),
                pid_ns: me.pid_ns,
                host: me.host.clone(),
                claimed_at_ms,
                expires_boot_ms,
            };
            let mut bytes = serde_json::to_vec(&record).expect("a record serializes");
            bytes.push(b'\n');
            let file = self.file_for(path);
            // Ours already (a renewal, or a claim we made before): replace
            // it; a dead claimant's was reaped by the scan.
            match self.read_claim(env, &file)? {
                Some(old) if old.id == who.id => {
                    env.remove_file(&file)
                        .map_err(IoFailure::at("renew claim", &file))?;
                }
                Some(other) if other.path != path.as_str() => {
                    // Two paths hashed to one name: conservative refusal.
                    drop(held);
                    return Err(ClaimError::NotYours {
                        path: path.clone(),
                        holder: other.id,
                        task: format!("claims {} under the same file name", other.path),
                        id: who.id.clone(),
                    });
                }
                _ => {}
            }
            let staged = stage(env, &file)?;
            let shown = staged.shown(&file);
            let prepared = (|| {
                if who.ttl.is_none() {
                    assert!(staged.file.try_lock()?, "a fresh claim file is unlocked");
                }
                staged.file.write_all_at(&bytes, 0)?;
                if who.ttl.is_some() {
                    // Detached claims outlive us: make them durable.
                    staged.file.sync_all()?;
                }
                Ok(())
            })()
            .map_err(IoFailure::at("write claim", &shown));
            if let Err(e) = prepared {
                staged.discard(env);
                drop(held);
                return Err(e.into());
            }
            if !staged.link(env, &file)? {
                // Only the directory's lock holder publishes: someone
                // outside baton's protocol made this name.
                drop(held);
                return Err(ClaimError::Foreign {
                    path: file,
                    why: "appeared while claiming",
                });
            }
            // Attached claims live with their locked descriptors; detached
            // ones live on without us.
            let attached = who.ttl.is_none().then_some(staged.file);
            held.files.push((file, attached));
        }
        env.sync_dir(&self.dir)
            .map_err(IoFailure::at("sync directory", &self.dir))?;
        Ok(held)
    }

    /// Releases `id`'s claims on `paths` (all of its claims when `None`).
    /// A path claimed by another live instance is refused unless `force`.
    /// Returns the records removed.
    pub fn release<E: Env>(
        &self,
        env: &E,
        id: &str,
        paths: Option<&[String]>,
        force: bool,
    ) -> Result<Vec<ClaimRecord>, ClaimError> {
        let dir = self.hold_dir(env)?;
        let live = self.scan(env, true)?;
        let mut removed = Vec::new();
        for c in live {
            let selected = match paths {
                None => c.record.id == id,
                Some(ps) => ps.contains(&c.record.path),
            };
            if !selected {
                continue;
            }
            if c.record.id != id && c.alive && !force {
                return Err(ClaimError::NotYours {
                    path: c.record.path,
                    holder: c.record.id,
                    task: c.record.task,
                    id: id.to_owned(),
                });
            }
            match env.remove_file(&c.file) {
                Ok(()) => removed.push(c.record),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(IoFailure::at("remove claim", &c.file)(e).into()),
            }
        }
        dir.release()?;
        Ok(removed)
    }

    /// Live claims overlapping `path` (normalised), without taking part.
    pub fn who<E: Env>(&self, env: &E, path: &str) -> Result<Vec<ClaimStatus>, ClaimError> {
        Ok(self
            .scan(env, false)?
            .into_iter()
            .filter(|c| c.alive && overlaps(path, &c.record.path))
            .collect())
    }

    /// Every claim, alive or not, in path order, reaping nothing.
    pub fn status<E: Env>(&self, env: &E) -> Result<Vec<ClaimStatus>, ClaimError> {
        self.scan(env, false)
    }

    /// The directory's short lock: held while scanning and publishing.
    fn hold_dir<'e, E: Env>(&self, env: &'e E) -> Result<lock::LockGuard<'e, E>, ClaimError> {
        crate::dirs::prepare(env, &self.dir, &self.dir)?;
        let mode = lock::mode_for(env, &self.dir)?;
        let opts = LockOptions::new(mode, Wait::For(DIR_WAIT));
        lock::acquire(env, &self.dir, &opts, &mut |_| {})?.ok_or_else(|| ClaimError::Busy {
            dir: self.dir.clone(),
        })
    }

    /// Reads one claim file; `None` if it is gone.
    fn read_claim<E: Env>(&self, env: &E, file: &Path) -> Result<Option<ClaimRecord>, ClaimError> {
        match env.read(file, RECORD_LIMIT) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => match lock::refusal(&e) {
                Some(why) => Err(ClaimError::Foreign {
                    path: file.to_owned(),
                    why,
                }),
                None => Err(IoFailure::at("read claim", file)(e).into()),
            },
        }
    }

    /// Every claim file and whether its claim is alive. With `reap` (only
    /// under the directory's lock), dead claims' files are removed and
    /// left out.
    fn scan<E: Env>(&self, env: &E, reap: bool) -> Result<Vec<ClaimStatus>, ClaimError> {
        let mut names = match env.read_dir(&self.dir) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(IoFailure::at("read directory", &self.dir)(e).into()),
        };
        names.sort();
        let me = env.identity();
        let now_ms = u64::try_from(env.since_boot().as_millis()).unwrap_or(u64::MAX);
        let mut out = Vec::new();
        for name in names {
            if !name.to_string_lossy().ends_with(".claim") {
                continue;
            }
            let file = self.dir.join(&name);
            let handle = match env.open(&file, false) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                // A symlink, FIFO or directory under a claim's name: not
                // ours, never followed or removed; not a claim either.
                Err(e) if lock::refusal(&e).is_some() => continue,
                Err(e) => return Err(IoFailure::at("open claim", &file)(e).into()),
            };
            let bytes = match handle.read_all(RECORD_LIMIT) {
                Ok(b) => b,
                Err(e) if lock::refusal(&e).is_some() => continue,
                Err(e) => return Err(IoFailure::at("read claim", &file)(e).into()),
            };
            if !written_by_baton(&bytes) {
                continue;
            }
            let record: Option<ClaimRecord> = serde_json::from_slice(&bytes).ok();
            // An attached claim is alive while its lock is held. Taking the
            // lock of a dead one serialises its reapers.
            let unlocked = handle
                .try_lock()
                .map_err(IoFailure::at("lock claim", &file))?;
            let (alive, expires_in) = match &record {
                // Torn or empty (a crash while claiming): dead once free.
                None => (!unlocked, None),
                Some(r) => match r.expires_boot_ms {
                    None => (!unlocked, None),
                    Some(expiry) if r.host == me.host && r.boot_id == me.boot_id => (
                        now_ms < expiry,
                        Some(Duration::from_millis(expiry.saturating_sub(now_ms))),
                    ),
                    // Another boot of this host: it died with the boot.
                    Some(_) if r.host == me.host => (false, None),
                    // Another host: cannot be judged; kept.
                    Some(_) => (true, None),
                },
            };
            if !alive && reap {
                if lock::still_named(env, &file, &handle)?.is_some() {
                    match env.remove_file(&file) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(IoFailure::at("remove dead claim", &file)(e).into()),
                    }
                }
                continue;
            }
            if let Some(record) = record {
                out.push(ClaimStatus {
                    file,
                    record,
                    alive,
                    expires_in,
                });
            }
        }
        out.sort_by(|a, b| a.record.path.cmp(&b.record.path));
        Ok(out)
    }
}

/// Whether a live claim keeps `who` out. Another instance's always does.
/// So does the same instance's attached claim: it is held by a process
/// that is still running (a command whose `baton` was killed, say), and a
/// second process of that instance must not edit beside it. The same
/// instance's detached claim is renewed, not a conflict.
fn excludes(claim: &ClaimRecord, who: &Claimant) -> bool {
    claim.id != who.id || claim.expires_boot_ms.is_none()
}

/// Whether two normalised paths overlap: equal, or one is a directory
/// holding the other (`.` holds everything).
pub fn overlaps(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| {
        outer == "."
            || inner == outer
            || (inner.len() > outer.len()
                && inner.starts_with(outer)
                && inner.as_bytes()[outer.len()] == b'/')
    };
    within(a, b) || within(b, a)
}

/// The claim file name for a normalised path: percent-encoded, or, past
/// [`MAX_NAME`], a hash of it (the record holds the path).
fn file_name(path: &str) -> String {
    let mut name = String::with_capacity(path.len() + 6);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && !name.is_empty()) {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > MAX_NAME {
        name = format!("h-{:016x}", fnv1a(path.as_bytes()));
    }
    name.push_str(".claim");
    name
}

/// FNV-1a, 64 bits: a stable hash for long claim names (not a secret).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_overlap_what_they_hold_and_nothing_else() {
        assert!(overlaps("src", "src/x.rs"));
        assert!(overlaps("src/x.rs", "src"));
        assert!(overlaps("src/x.rs", "src/x.rs"));
        assert!(overlaps(".", "anything/at/all"));
        assert!(!overlaps("src", "srcx/y"));
        assert!(!overlaps("src/x.rs", "src/y.rs"));
        assert!(!overlaps("a/b", "a/bc"));
    }

    #[test]
    fn claim_names_stay_in_the_directory_and_apart() {
        for path in ["src/x.rs", "../up", ".hidden", "a b", "q\nx", "."] {
            let name = file_name(path);
            assert!(!name.contains('/'), "{name}");
            assert!(!name.starts_with('.'), "{name}");
            assert!(name.ends_with(".claim"));
        }
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
        assert_ne!(file_name("a/b"), file_name("a_b"));
        let long = "d/".repeat(200);
        assert!(file_name(&long).len() < 40);
    }

    #[test]
    fn claim_names_keep_what_is_safe_readable_and_encode_the_rest() {
        // The names are what a person sees in `ls .baton/claims`.
        assert_eq!(file_name("src/my_file-1.rs"), "src%2Fmy_file-1.rs.claim");
        assert_eq!(file_name(".env"), "%2Eenv.claim");
        assert_eq!(file_name("a b%"), "a%20b%25.claim");
        assert_eq!(file_name("."), "%2E.claim");
        // Long ones are hashed, each to its own name.
        let a = "deep/".repeat(50) + "a.rs";
        let b = "deep/".repeat(50) + "b.rs";
        assert_ne!(file_name(&a), file_name(&b));
        assert!(file_name(&a).starts_with("h-"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
