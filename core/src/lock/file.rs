//! Exclusive-file mode: the lock file's existence is the lock. The protocol
//! and its safety argument are in the parent module's documentation.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::{
    LockError, LockEvent, Release, locks_unavailable, locks_unsupported, open_failure, remaining,
    split, still_named, vet,
};
use crate::atomic::{stage, temp_sibling};
use crate::backoff::Backoff;
use crate::env::{Env, FsKind, Metadata, MonoTime, OpenFile};
use crate::error::IoFailure;
use crate::record::{OwnerRecord, RecordError, Token};
use crate::stale::{OwnerCheck, Sighting, StaleWatch, Why, check_owner};

const BACKOFF_BASE: Duration = Duration::from_millis(1);
const BACKOFF_CAP: Duration = Duration::from_millis(100);

/// Polls before giving up on a lock file that keeps vanishing and
/// reappearing between our `link` and our `open` (each poll is a new
/// holder, so this is progress by others, not a livelock of ours).
const MAX_POLLS_WITHOUT_SLEEP: u32 = 1_000;

/// What a waiter found at the lock path.
enum Found {
    /// Nothing, or a different inode than the one inspected: try again now.
    Changed,
    /// A lock held by a live process (its kernel lock is taken).
    HeldLive(Result<OwnerRecord, RecordError>),
    /// A lock whose owner cannot be checked, not yet stale.
    HeldUnverified(Result<OwnerRecord, RecordError>),
    /// A stale lock, now removed.
    Reaped,
}

pub(super) fn acquire<E: Env>(
    env: &E,
    lock: &Path,
    record: &OwnerRecord,
    deadline: Option<MonoTime>,
    stale: Duration,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Option<(E::File, bool)>, LockError> {
    let bytes = record.to_bytes();
    let mut reaped = false;

    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut watch = StaleWatch::default();
    let mut host_local_locks = None;
    let mut announced = false;
    let mut polls_without_sleep = 0u32;
    loop {
        if let Some(file) = publish(env, lock, &bytes)? {
            return Ok(Some((file, reaped)));
        }
        let found = inspect(env, lock, stale, &mut watch, &mut host_local_locks, events)?;
        reaped |= matches!(found, Found::Reaped);
        let holder = match found {
            Found::Changed | Found::Reaped => {
                polls_without_sleep += 1;
                if polls_without_sleep < MAX_POLLS_WITHOUT_SLEEP {
                    continue;
                }
                None
            }
            Found::HeldLive(holder) | Found::HeldUnverified(holder) => Some(holder),
        };
        polls_without_sleep = 0;
        let left = remaining(env, deadline);
        if left.is_some_and(|d| d.is_zero()) {
            return Ok(None);
        }
        if !announced && let Some(holder) = holder {
            announced = true;
            events(LockEvent::Waiting {
                lock: lock.to_owned(),
                holder,
            });
        }
        let delay = backoff.next_delay(env.random_u64());
        env.sleep(left.map_or(delay, |l| l.min(delay)));
    }
}

/// Step 1: a locked file with the record (unnamed, or under a temp name),
/// linked into place. `None` when the lock path is taken.
fn publish<E: Env>(env: &E, lock: &Path, bytes: &[u8]) -> Result<Option<E::File>, LockError> {
    let staged = stage(env, lock)?;
    let shown = staged.shown(lock);
    let prepared = match staged.file.try_lock() {
        // A fresh inode, unnamed or under a random name: nobody else can
        // hold it.
        Ok(locked) => {
            assert!(
                locked,
                "fresh lock file already locked: {}",
                shown.display()
            );
            Ok(())
        }
        // On a filesystem without kernel locks the protocol still
        // excludes, but reapers cannot be serialised; `inspect` refuses to
        // reap there, since every waiter's `flock` fails too. ENOLCK is not
        // that: peers' locks may work, and a waiter holding the kernel lock
        // of our unlocked inode would judge us by observation alone and
        // could reap us while we hold (found by the simulator, injecting
        // ENOLCK into this call). So that attempt fails.
        Err(e) if locks_unsupported(&e) => Ok(()),
        Err(e) => Err(IoFailure::at("lock new lock file", &shown)(e)),
    }
    .and_then(|()| {
        staged
            .file
            .write_all_at(bytes, 0)
            .map_err(IoFailure::at("write new lock file", &shown))
    });
    if let Err(e) = prepared {
        staged.discard(env);
        return Err(e.into());
    }
    Ok(staged.link(env, lock)?.then_some(staged.file))
}

/// Whether this filesystem's `flock` excludes at all. Holding the lock
/// through `file`, a second open description of the same inode must be
/// refused it. Some FUSE filesystems grant every `flock` and exclude
/// nothing: there a holder's lock is no evidence that it lives, and
/// reapers cannot be serialised, so nothing may be reaped (the simulator's
/// `baton-lock-file-noopflock` reaped a live holder before this check).
/// Asked only where reaping is considered, never on the uncontended path.
fn flock_excludes<E: Env>(env: &E, lock: &Path, file: &E::File) -> Result<bool, LockError> {
    // A name that no longer opens, or opens another inode, is the caller's
    // to find (`still_named`): this check only ever takes reaping away.
    let Ok(probe) = env.open(lock, false) else {
        return Ok(true);
    };
    match (probe.metadata(), file.metadata()) {
        (Ok(a), Ok(b)) if a.id == b.id => {}
        _ => return Ok(true),
    }
    match probe.try_lock() {
        Ok(granted) => Ok(!granted),
        Err(e) if locks_unsupported(&e) || locks_unavailable(&e) => Ok(false),
        Err(e) => Err(IoFailure::at("lock lock file", lock)(e).into()),
    }
}

/// Step 3: look at the lock file; reap it if it is stale.
/// `host_local_locks` caches whether the filesystem keeps kernel locks on
/// each host (asked only once an owner turns out unverifiable).
fn inspect<E: Env>(
    env: &E,
    lock: &Path,
    stale: Duration,
    watch: &mut StaleWatch,
    host_local_locks: &mut Option<bool>,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Found, LockError> {
    let file = match env.open(lock, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Changed),
        Err(e) => return Err(open_failure("open lock file", lock, e)),
    };
    // A user's file under the lock's name is never waited out and reaped.
    let (_, content) = vet(lock, &file)?;
    let owner = OwnerRecord::parse(&content);
    if owner == Err(RecordError::FreeSidecar) {
        return Err(LockError::ModeMismatch {
            path: lock.to_owned(),
        });
    }
    let can_serialise = match file.try_lock() {
        Ok(true) => flock_excludes(env, lock, &file)?,
        Ok(false) => return Ok(Found::HeldLive(owner)),
        // Unable to serialise with other reapers: reap nothing.
        Err(e) if locks_unsupported(&e) || locks_unavailable(&e) => false,
        Err(e) => return Err(IoFailure::at("lock lock file", lock)(e).into()),
    };
    // Holding the inode's kernel lock (if the fs has them), no baton peer
    // can remove this inode's name until we let go: check it is still the
    // one the path names, then judge it.
    let Some(ours) = still_named(env, lock, &file)? else {
        return Ok(Found::Changed);
    };
    let check = check_owner(&owner, env.identity(), |pid, start| {
        env.liveness(pid, start)
    })
    .map_err(IoFailure::at("check lock owner", lock))?;
    let why = match check {
        OwnerCheck::Dead(why) => why,
        OwnerCheck::Unverifiable(unverifiable) => {
            let unchanged = watch.observe(
                Sighting::new(ours.id, ours.modified, &content),
                env.monotonic(),
            );
            if unchanged < stale {
                return Ok(Found::HeldUnverified(owner));
            }
            // Silent for the stale threshold. But where kernel locks stay
            // on each host, a holder or reaper on another host is invisible
            // to ours: judged by its refreshes alone, a paused holder would
            // be reaped, and two reapers on different hosts would not be
            // serialised (the model of this protocol finds both). So no
            // reaping by observation there.
            let local = match *host_local_locks {
                Some(local) => local,
                None => {
                    let (dir, _) = split(lock);
                    let kind = env
                        .fs_kind(&dir)
                        .map_err(IoFailure::at("inspect filesystem", &dir))?;
                    let local = matches!(
                        kind,
                        FsKind::Network {
                            host_local_locks: true,
                            ..
                        }
                    );
                    *host_local_locks = Some(local);
                    local
                }
            };
            if local {
                events(LockEvent::CannotReap {
                    lock: lock.to_owned(),
                    why: format!(
                        "{unverifiable}, and this filesystem keeps kernel locks on each host (local_lock), so its holder cannot be told apart from a paused one; remove it by hand if its owner is gone"
                    ),
                });
                return Ok(Found::HeldUnverified(owner));
            }
            Why::Unchanged {
                for_ms: u64::try_from(unchanged.as_millis()).unwrap_or(u64::MAX),
                owner: unverifiable,
            }
        }
    };
    if !can_serialise {
        events(LockEvent::CannotReap {
            lock: lock.to_owned(),
            why: format!(
                "{why}, but this filesystem has no kernel locks to make reaping safe; remove it by hand"
            ),
        });
        return Ok(Found::HeldUnverified(owner));
    }
    if !unlink_ours(env, lock, &ours)? {
        return Ok(Found::Changed);
    }
    events(LockEvent::Reaped {
        lock: lock.to_owned(),
        owner,
        why,
    });
    drop(file);
    Ok(Found::Reaped)
}

/// Step 4, under the inode's kernel lock: unlink the name if it is ours.
fn remove_if_ours<E: Env>(env: &E, lock: &Path, file: &E::File) -> Result<Release, IoFailure> {
    let Some(ours) = still_named(env, lock, file)? else {
        return Ok(Release::Lost);
    };
    Ok(if unlink_ours(env, lock, &ours)? {
        Release::Released
    } else {
        Release::Lost
    })
}

/// Removes the name `lock` if it names `ours`, an inode whose kernel lock
/// the caller holds (having just seen the name point at it); `false`,
/// removing nothing, if it names anything else by then.
///
/// There is no conditional unlink. Baton peers cannot change the name
/// meanwhile (removing it needs this inode's kernel lock), but another
/// tool can: `rm` it and put its own file there between the check and an
/// unlink, which would then delete that tool's file. So the name is moved
/// aside first (`rename` moves whatever is there, atomically) and what
/// moved is checked: ours is unlinked; anything else is linked back under
/// the name (`link` never replaces one) and its private name dropped,
/// leaving the other tool's file where it was, as it was. A crash between
/// the two leaves our own dead record under a hidden `.tmp` name beside
/// the lock (harmless litter); another tool's file is never left aside
/// silently: if the name was taken again meanwhile, the error names where
/// that file now is.
fn unlink_ours<E: Env>(env: &E, lock: &Path, ours: &Metadata) -> Result<bool, IoFailure> {
    let aside = temp_sibling(lock, Token::random(env));
    match env.rename(lock, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(IoFailure::at("move lock file aside", lock)(e)),
    }
    let moved = env
        .symlink_metadata(&aside)
        .map_err(IoFailure::at("stat lock file", &aside))?;
    if moved.id == ours.id {
        env.remove_file(&aside)
            .map_err(IoFailure::at("remove lock file", &aside))?;
        return Ok(true);
    }
    env.hard_link(&aside, lock)
        .map_err(IoFailure::at("put another tool's file back from", &aside))?;
    env.remove_file(&aside)
        .map_err(IoFailure::at("remove second name of", &aside))?;
    Ok(false)
}

pub(super) fn release<E: Env>(env: &E, lock: &Path, file: E::File) -> Result<Release, LockError> {
    let outcome = remove_if_ours(env, lock, &file);
    // Closing drops the inode's kernel lock only after the name is gone.
    drop(file);
    Ok(outcome?)
}
