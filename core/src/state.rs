//! Shared state files: JSON documents that many processes update
//! (seed 002's `tasks.json` and `state.json`).
//!
//! An update reads the file (a missing file reads as `null`), computes the
//! new document from the old, and replaces the file atomically
//! ([`crate::atomic`]: written and synced unnamed, renamed over, directory
//! synced), so a reader sees the old document or the new one, never an
//! empty or partial file: while a writer is mid-update, after one was
//! killed, or after a machine crash.
//!
//! # Two ways to keep every update
//!
//! - **Locked** (the default): the whole read–compute–replace runs under
//!   the file's sidecar lock ([`crate::lock`]). Updates are serialised, none
//!   is lost, and each computes exactly once. Best when computing is cheap
//!   or contention is high: nobody ever computes twice.
//! - **Compare-and-swap** (seed 002's "optimistic locking"): read and
//!   compute without the lock; then, under the lock held only for the
//!   check and the replace, re-read the file and replace it only if it is
//!   still exactly what was read. Otherwise read again and compute again,
//!   with capped, jittered backoff, at most `max_attempts` times. Best
//!   when computing is slow (a command that thinks for seconds) and
//!   conflicts are rare: the lock is held for microseconds, not for the
//!   computation.
//!
//! The version compared is the content itself, byte for byte: the old
//! bytes are in memory anyway, a hash would add nothing but a collision
//! risk, and a version field maintained by baton would change the user's
//! JSON and be ignored by every other writer. Content that changes and
//! changes back (A, B, A) passes the check, which is right for a function
//! of the content: the update is computed from the document that is there.
//!
//! # Whose files these are
//!
//! The state file is the user's. baton replaces it only with a document
//! the user's function produced and that parses as JSON; keeps its
//! permission bits and, where it may, its owner and group (a file owned by
//! another user is refused rather than silently made ours); and refuses a
//! symlink (replacing it by rename would replace the link itself with a
//! regular file, leaving its target stale) or anything but a regular file.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::atomic::{sweep_temps, write_atomic_with};
use crate::backoff::Backoff;
use crate::env::{Env, OpenFile};
use crate::error::IoFailure;
use crate::lock::{self, LockError, LockEvent, LockOptions, Mode, Wait};

/// The largest state file baton reads (and the largest document it
/// writes): far above any coordination document.
pub const STATE_LIMIT: u64 = 64 * 1024 * 1024;

/// What a missing file reads as.
pub const MISSING: &[u8] = b"null";

/// How an update keeps concurrent updates from being lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Hold the sidecar lock for the whole update.
    Locked,
    /// Compute without the lock; replace only if the file is unchanged.
    Cas {
        /// Computations before giving up (at least 1).
        max_attempts: u32,
    },
}

#[derive(Clone, Debug)]
pub struct UpdateOptions {
    pub strategy: Strategy,
    /// How long to wait for the sidecar lock, each time it is taken.
    pub wait: Wait,
    pub lock_mode: Mode,
    /// Written into the lock's owner record.
    pub instance: String,
}

impl UpdateOptions {
    pub fn new(strategy: Strategy, lock_mode: Mode, wait: Wait) -> UpdateOptions {
        UpdateOptions {
            strategy,
            wait,
            lock_mode,
            instance: String::new(),
        }
    }
}

/// How an update ended, when nothing went wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<X> {
    /// The file now holds the new document.
    Updated {
        /// Computations it took (1 unless compare-and-swap retried).
        attempts: u32,
    },
    /// The lock was not obtained in time, or compare-and-swap lost every
    /// attempt: the file is as another writer left it.
    Busy { attempts: u32 },
    /// The function refused (its error): the file is untouched.
    Aborted(X),
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{}: not JSON (line {line}, column {column}): {why}", path.display())]
    NotJson {
        path: PathBuf,
        line: usize,
        column: usize,
        why: String,
    },
    #[error(
        "{}: the new document is not JSON (line {line}, column {column}): {why}; the file is untouched",
        path.display()
    )]
    BadDocument {
        path: PathBuf,
        line: usize,
        column: usize,
        why: String,
    },
    #[error(
        "{}: is a symbolic link; replacing it would replace the link itself, not its target: name the target ({})",
        path.display(),
        target.display()
    )]
    Symlink { path: PathBuf, target: PathBuf },
    #[error("{}: {what}, not a state file", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{}: larger than {} bytes", path.display(), STATE_LIMIT)]
    TooLarge { path: PathBuf },
    #[error(
        "{}: owned by user {uid}; replacing it would give it to you: run as its owner",
        path.display()
    )]
    ForeignOwner { path: PathBuf, uid: u32 },
}

/// Checks that `bytes` are one JSON document; the error says where not.
pub fn check_json(bytes: &[u8]) -> Result<(), (usize, usize, String)> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| {
            // serde ends its message with the position, said separately.
            let why = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            let why = why.strip_suffix(&at).unwrap_or(&why).to_owned();
            (e.line(), e.column(), why)
        })
}

/// What a replacement keeps of the file it replaces.
#[derive(Clone, Copy, Debug, Default)]
struct Keep {
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
}

/// The state file's document (its bytes, `None` if it does not exist) and
/// what must be kept when it is replaced.
fn read_state<E: Env>(env: &E, path: &Path) -> Result<(Option<Vec<u8>>, Keep), StateError> {
    let meta = match env.symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, Keep::default())),
        Err(e) => return Err(IoFailure::at("stat", path)(e).into()),
    };
    if !meta.is_file {
        if meta.is_dir {
            return Err(StateError::NotAFile {
                path: path.to_owned(),
                what: "a directory",
            });
        }
        return Err(match (meta.is_symlink, env.canonicalize(path)) {
            (true, Ok(target)) => StateError::Symlink {
                path: path.to_owned(),
                target,
            },
            (true, Err(_)) => StateError::NotAFile {
                path: path.to_owned(),
                what: "a dangling symbolic link",
            },
            (false, _) => StateError::NotAFile {
                path: path.to_owned(),
                what: "a FIFO, socket or device",
            },
        });
    }
    let bytes = match env.read(path, STATE_LIMIT) {
        Ok(b) => b,
        // Removed between the stat and the read: as if missing.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, Keep::default())),
        Err(e) if e.raw_os_error() == Some(27) => {
            return Err(StateError::TooLarge {
                path: path.to_owned(),
            });
        }
        Err(e) if e.raw_os_error() == Some(40) => {
            // Became a symlink between the stat and the read.
            return Err(StateError::NotAFile {
                path: path.to_owned(),
                what: "a symbolic link",
            });
        }
        Err(e) => return Err(IoFailure::at("read", path)(e).into()),
    };
    check_json(&bytes).map_err(|(line, column, why)| StateError::NotJson {
        path: path.to_owned(),
        line,
        column,
        why,
    })?;
    Ok((
        Some(bytes),
        Keep {
            mode: Some(meta.mode),
            owner: Some((meta.uid, meta.gid)),
        },
    ))
}

/// The current document of the state file at `path`: `null` if missing.
/// Never empty or partial (see the module documentation).
pub fn get<E: Env>(env: &E, path: &Path) -> Result<Vec<u8>, StateError> {
    Ok(read_state(env, path)?.0.unwrap_or_else(|| MISSING.to_vec()))
}

/// Updates the state file at `path` with `compute`, which maps the old
/// document (`null` when missing) to the new one, or refuses with its own
/// error (the file is then untouched). The new document must be JSON.
pub fn update<E: Env, X>(
    env: &E,
    path: &Path,
    opts: &UpdateOptions,
    events: &mut dyn FnMut(LockEvent),
    mut compute: impl FnMut(&[u8]) -> Result<Vec<u8>, X>,
) -> Result<Outcome<X>, StateError> {
    let mut lock_opts = LockOptions::new(opts.lock_mode, opts.wait);
    lock_opts.instance = opts.instance.clone();
    match opts.strategy {
        Strategy::Locked => {
            let Some(guard) = lock::acquire(env, path, &lock_opts, events)? else {
                return Ok(Outcome::Busy { attempts: 0 });
            };
            sweep_if_holder_died(env, path, &guard)?;
            let (old, keep) = read_state(env, path)?;
            let new = match compute(old.as_deref().unwrap_or(MISSING)) {
                Ok(new) => new,
                Err(x) => return Ok(Outcome::Aborted(x)),
            };
            replace(env, path, &new, &keep)?;
            guard.release()?;
            Ok(Outcome::Updated { attempts: 1 })
        }
        Strategy::Cas { max_attempts } => {
            assert!(max_attempts >= 1, "compare-and-swap needs an attempt");
            let mut backoff = Backoff::new(CAS_BACKOFF_BASE, CAS_BACKOFF_CAP);
            for attempt in 1..=max_attempts {
                let (old, _) = read_state(env, path)?;
                let new = match compute(old.as_deref().unwrap_or(MISSING)) {
                    Ok(new) => new,
                    Err(x) => return Ok(Outcome::Aborted(x)),
                };
                check_document(path, &new)?;
                let Some(guard) = lock::acquire(env, path, &lock_opts, events)? else {
                    return Ok(Outcome::Busy { attempts: attempt });
                };
                sweep_if_holder_died(env, path, &guard)?;
                let (now, keep) = read_state(env, path)?;
                if now == old {
                    replace(env, path, &new, &keep)?;
                    guard.release()?;
                    return Ok(Outcome::Updated { attempts: attempt });
                }
                // Someone replaced it since we read: compute again.
                guard.release()?;
                if attempt < max_attempts {
                    env.sleep(backoff.next_delay(env.random_u64()));
                }
            }
            Ok(Outcome::Busy {
                attempts: max_attempts,
            })
        }
    }
}

/// A writer killed between naming its temp file and renaming it over the
/// state file left the temp behind; every writer replaces under the lock,
/// so the next holder after a death removes it (only then: listing the
/// directory on every update would cost more than the update).
fn sweep_if_holder_died<E: Env>(
    env: &E,
    path: &Path,
    guard: &lock::LockGuard<'_, E>,
) -> Result<(), StateError> {
    if guard.holder_died() {
        sweep_temps(env, path)?;
    }
    Ok(())
}

/// First delay between compare-and-swap attempts, and its cap.
const CAS_BACKOFF_BASE: Duration = Duration::from_millis(2);
const CAS_BACKOFF_CAP: Duration = Duration::from_millis(250);

fn check_document(path: &Path, new: &[u8]) -> Result<(), StateError> {
    if new.len() as u64 > STATE_LIMIT {
        return Err(StateError::TooLarge {
            path: path.to_owned(),
        });
    }
    check_json(new).map_err(|(line, column, why)| StateError::BadDocument {
        path: path.to_owned(),
        line,
        column,
        why,
    })
}

/// Replaces the document, keeping the old file's mode and owner: the new
/// file is made by us, so it is ours until given back; a file we may not
/// give back (another user's) is refused, not taken over.
fn replace<E: Env>(env: &E, path: &Path, new: &[u8], keep: &Keep) -> Result<(), StateError> {
    check_document(path, new)?;
    write_atomic_with(env, path, new, |file: &E::File| {
        let at = |op| IoFailure::at(op, path);
        if let Some(mode) = keep.mode {
            file.set_permissions(mode).map_err(at("keep the mode of"))?;
        }
        if let Some((uid, gid)) = keep.owner {
            let ours = file.metadata().map_err(at("stat new version of"))?;
            if (ours.uid, ours.gid) != (uid, gid) {
                match file.set_owner(uid, gid) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(1) && ours.uid != uid => {
                        return Err(StateError::ForeignOwner {
                            path: path.to_owned(),
                            uid,
                        });
                    }
                    // Our own file in a group we are not in: keep the
                    // owner, take our group (as any editor would).
                    Err(e) if e.raw_os_error() == Some(1) => {}
                    Err(e) => return Err(at("keep the owner of")(e).into()),
                }
            }
        }
        Ok(())
    })
}
