//! Kernel mode: `flock` on a sidecar that is never unlinked. The protocol
//! and its safety argument are in the parent module's documentation.

use std::io;
use std::path::Path;

use super::{LockError, LockEvent, Release, names, open_failure, remaining, split, vet};
use crate::atomic::publish_new;
use crate::env::{Env, FsKind, MonoTime, OpenFile};
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
    let (dir, _) = split(lock);
    if let FsKind::Network { name: fs, .. } = env
        .fs_kind(&dir)
        .map_err(IoFailure::at("inspect filesystem", &dir))?
    {
        return Err(LockError::KernelLocksUnreliable {
            path: lock.to_owned(),
            fs,
        });
    }
    let mut announced = false;
    for _ in 0..MAX_REOPENS {
        let file = match env.open(lock, false) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(env, lock)?;
                continue;
            }
            Err(e) => return Err(open_failure("open lock file", lock, e)),
        };
        // Before anything is written: is this baton's sidecar at all?
        let (meta, mut holder) = vet(lock, &file)?;
        let locked = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        }
        .map_err(IoFailure::at("lock lock file", lock))?;
        if !locked {
            let left = remaining(env, deadline);
            if left.is_some_and(|d| d.is_zero()) {
                return Ok(None);
            }
            if !announced {
                announced = true;
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
            holder = file
                .read_all(RECORD_LIMIT)
                .map_err(IoFailure::at("read lock file", lock))?;
        }
        if names(env, lock, meta)?.is_some() {
            if shared {
                // Readers leave the sidecar as it is: there may be many.
                return Ok(Some((file, false)));
            }
            // A holder that let go cleanly marked the sidecar free; an
            // owner record still there means its holder died holding it.
            let holder_died = OwnerRecord::parse(&holder).is_ok();
            // Every holder writes one slot's length; anything longer (an
            // older baton's record) is trimmed once, here.
            if holder.len() > SLOT_LEN {
                file.set_len(SLOT_LEN as u64)
                    .map_err(IoFailure::at("trim lock file", lock))?;
            }
            write_record(lock, &file, record)?;
            return Ok(Some((file, holder_died)));
        }
        // Locked an inode the path no longer names: drop it, take the new one.
    }
    Err(LockError::Unstable {
        path: lock.to_owned(),
        attempts: MAX_REOPENS,
    })
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
    // Clear the record before unlocking, so nobody reads our record as the
    // next holder's; mark the sidecar free for exclusive-file waiters.
    let cleared = write_slot(&file, FREE_SIDECAR);
    let unlocked = file.unlock();
    drop(file);
    cleared.map_err(IoFailure::at("clear owner record", lock))?;
    unlocked.map_err(IoFailure::at("unlock lock file", lock))?;
    Ok(Release::Released)
}
