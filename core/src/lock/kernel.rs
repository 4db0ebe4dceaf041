//! Kernel mode: `flock` on a sidecar that is never unlinked. The protocol
//! and its safety argument are in the parent module's documentation.

use std::io;
use std::path::Path;

use super::{LockError, LockEvent, Release, names, open_failure, remaining, split, vet};
use crate::atomic::publish_new;
use crate::env::{Env, FsKind, Metadata, MonoTime, OpenFile};
use crate::error::IoFailure;
use crate::record::{FREE_SIDECAR, OwnerRecord, RECORD_LIMIT, SLOT_LEN, padded};

/// Replacements of the sidecar tolerated while locking it before giving up:
/// each needs someone deleting the file by hand in a narrow window.
const MAX_REOPENS: u32 = 64;

pub(super) fn acquire<E: Env>(
    env: &E,
    lock: &Path,
    record: &OwnerRecord,
    shared: bool,
    deadline: Option<MonoTime>,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Option<(E::File, bool)>, LockError> {
    refuse_network(env, lock)?;
    let mut announced = false;
    for _ in 0..MAX_REOPENS {
        // Before anything is written: is this baton's sidecar at all?
        let (file, meta, holder) = open_vetted(env, lock)?;
        let Some(holder) = take(
            env,
            lock,
            &file,
            holder,
            shared,
            deadline,
            &mut announced,
            events,
        )?
        else {
            return Ok(None);
        };
        if names(env, lock, meta)?.is_some() {
            if shared {
                // Readers leave the sidecar as it is: there may be many.
                return Ok(Some((file, false)));
            }
            let holder_died = take_over(lock, &file, &holder, record)?;
            return Ok(Some((file, holder_died)));
        }
        // Locked an inode the path no longer names: drop it, take the new one.
    }
    Err(LockError::Unstable {
        path: lock.to_owned(),
        attempts: MAX_REOPENS,
    })
}

/// Kernel locks are emulated or lost on network filesystems: refused.
pub(super) fn refuse_network<E: Env>(env: &E, lock: &Path) -> Result<(), LockError> {
    let (dir, _) = split(lock);
    match env
        .fs_kind(&dir)
        .map_err(IoFailure::at("inspect filesystem", &dir))?
    {
        FsKind::Network { name: fs, .. } => Err(LockError::KernelLocksUnreliable {
            path: lock.to_owned(),
            fs,
        }),
        FsKind::Local => Ok(()),
    }
}

/// Opens the sidecar, creating it (free) if it is missing, and checks it is
/// baton's: the open file, its metadata and its content.
pub(super) fn open_vetted<E: Env>(
    env: &E,
    lock: &Path,
) -> Result<(E::File, Metadata, Vec<u8>), LockError> {
    for _ in 0..MAX_REOPENS {
        match env.open(lock, false) {
            Ok(file) => {
                let (meta, content) = vet(lock, &file)?;
                return Ok((file, meta, content));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(env, lock)?,
            Err(e) => return Err(open_failure("open lock file", lock, e)),
        }
    }
    Err(LockError::Unstable {
        path: lock.to_owned(),
        attempts: MAX_REOPENS,
    })
}

/// Takes `file`'s flock (shared or exclusive), waiting until `deadline`
/// and announcing the wait once: what the sidecar held when it was got
/// (`holder`, read again after a wait), or `None` when not in time (the
/// description must then not be locked again).
#[allow(clippy::too_many_arguments)]
pub(super) fn take<E: Env>(
    env: &E,
    lock: &Path,
    file: &E::File,
    holder: Vec<u8>,
    shared: bool,
    deadline: Option<MonoTime>,
    announced: &mut bool,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Option<Vec<u8>>, LockError> {
    let locked = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    }
    .map_err(IoFailure::at("lock lock file", lock))?;
    if locked {
        return Ok(Some(holder));
    }
    let left = remaining(env, deadline);
    if left.is_some_and(|d| d.is_zero()) {
        return Ok(None);
    }
    if !*announced {
        *announced = true;
        // A caller that has not read the slot yet (a kept-open handle)
        // reads it now, for the event.
        let holder = if holder.is_empty() {
            file.read_all(RECORD_LIMIT).unwrap_or_default()
        } else {
            holder
        };
        events(LockEvent::Waiting {
            lock: lock.to_owned(),
            holder: OwnerRecord::parse(&holder),
        });
    }
    let got = if shared {
        file.lock_shared(left)
    } else {
        file.lock(left)
    };
    if !got.map_err(IoFailure::at("wait for lock file", lock))? {
        return Ok(None);
    }
    // What the holder we waited for left behind.
    file.read_all(RECORD_LIMIT)
        .map(Some)
        .map_err(|e| IoFailure::at("read lock file", lock)(e).into())
}

/// An exclusive holder's first act: whether the last holder died holding
/// the lock (its record is still there; a clean release leaves the free
/// marker), then this holder's record in the slot.
pub(super) fn take_over<F: OpenFile>(
    lock: &Path,
    file: &F,
    holder: &[u8],
    record: &OwnerRecord,
) -> Result<bool, LockError> {
    let holder_died = OwnerRecord::parse(holder).is_ok();
    // Every holder writes one slot's length; anything longer (an older
    // baton's record) is trimmed once, here.
    if holder.len() > SLOT_LEN {
        file.set_len(SLOT_LEN as u64)
            .map_err(IoFailure::at("trim lock file", lock))?;
    }
    write_record(lock, file, record)?;
    Ok(holder_died)
}

/// Creates the sidecar with the "free" marker already in it: written and
/// synced in a temp file, then `link`ed into place, so nobody ever finds a
/// kernel-mode sidecar empty, and an existing name (someone else's sidecar,
/// or a user's file) is never replaced. Synced once per sidecar: it is
/// never removed.
fn create<E: Env>(env: &E, lock: &Path) -> Result<(), LockError> {
    // `false`: someone else created it first, and theirs will do.
    publish_new(env, lock, &padded(FREE_SIDECAR))?;
    Ok(())
}

/// Overwrites the sidecar's slot in place. The file is never longer than
/// a slot while held (acquire trims it), so nothing is left past it.
fn write_slot<F: OpenFile>(file: &F, bytes: &[u8]) -> io::Result<()> {
    let slot = padded(bytes);
    debug_assert_eq!(slot.len(), SLOT_LEN, "a record fits its slot");
    file.write_all_at(&slot, 0)
}

fn write_record<F: OpenFile>(lock: &Path, file: &F, record: &OwnerRecord) -> Result<(), LockError> {
    match write_slot(file, &record.to_bytes()) {
        Ok(()) => Ok(()),
        // The lock is held: the record only tells `status` who holds it.
        // A full disk (a copy-on-write filesystem allocates even to
        // overwrite) must not stop a lock that needs no space.
        Err(e) if matches!(e.raw_os_error(), Some(28) | Some(122)) => Ok(()),
        Err(e) => Err(IoFailure::at("write owner record", lock)(e).into()),
    }
}

/// A shared holder's release: its lock only (the sidecar is the writers').
pub(super) fn release_shared<F: OpenFile>(lock: &Path, file: F) -> Result<Release, LockError> {
    let unlocked = file.unlock();
    drop(file);
    unlocked.map_err(IoFailure::at("unlock lock file", lock))?;
    Ok(Release::Released)
}

pub(super) fn release<F: OpenFile>(lock: &Path, file: F) -> Result<Release, LockError> {
    let released = let_go(lock, &file);
    drop(file);
    released
}

/// An exclusive holder's release, keeping the description open: clear the
/// record before unlocking, so nobody reads ours as the next holder's, and
/// mark the sidecar free for exclusive-file waiters.
pub(super) fn let_go<F: OpenFile>(lock: &Path, file: &F) -> Result<Release, LockError> {
    let cleared = write_slot(file, FREE_SIDECAR);
    let unlocked = file.unlock();
    cleared.map_err(IoFailure::at("clear owner record", lock))?;
    unlocked.map_err(IoFailure::at("unlock lock file", lock))?;
    Ok(Release::Released)
}
