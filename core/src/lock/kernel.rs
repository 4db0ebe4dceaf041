//! Kernel mode: `flock` on a sidecar that is never unlinked. The protocol
//! and its safety argument are in the parent module's documentation.

use std::io;
use std::path::Path;

use super::{LockError, LockEvent, Release, remaining, split, still_named};
use crate::env::{Env, FsKind, MonoTime, OpenFile};
use crate::error::IoFailure;
use crate::record::{FREE_SIDECAR, OwnerRecord, padded};

/// Replacements of the sidecar tolerated while locking it before giving up:
/// each needs someone deleting the file by hand in a narrow window.
const MAX_REOPENS: u32 = 64;

pub(super) fn acquire<E: Env>(
    env: &E,
    lock: &Path,
    record: &OwnerRecord,
    deadline: Option<MonoTime>,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Option<E::File>, LockError> {
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
        let file = env
            .open(lock, true)
            .map_err(IoFailure::at("open lock file", lock))?;
        let locked = file
            .try_lock()
            .map_err(IoFailure::at("lock lock file", lock))?;
        if !locked {
            let left = remaining(env, deadline);
            if left.is_some_and(|d| d.is_zero()) {
                return Ok(None);
            }
            if !announced {
                announced = true;
                let holder = file
                    .read_all()
                    .map_err(IoFailure::at("read lock file", lock))?;
                events(LockEvent::Waiting {
                    lock: lock.to_owned(),
                    holder: OwnerRecord::parse(&holder),
                });
            }
            if !file
                .lock(left)
                .map_err(IoFailure::at("wait for lock file", lock))?
            {
                return Ok(None);
            }
        }
        if still_named(env, lock, &file)?.is_some() {
            write_record(lock, &file, record)?;
            return Ok(Some(file));
        }
        // Locked an inode the path no longer names: drop it, take the new one.
    }
    Err(LockError::Unstable {
        path: lock.to_owned(),
        attempts: MAX_REOPENS,
    })
}

/// Overwrites the sidecar's slot in place, trimming anything longer that a
/// previous writer left.
fn write_slot<F: OpenFile>(file: &F, bytes: &[u8]) -> io::Result<()> {
    let slot = padded(bytes);
    file.write_all_at(&slot, 0)?;
    if file.metadata()?.len > slot.len() as u64 {
        file.set_len(slot.len() as u64)?;
    }
    Ok(())
}

fn write_record<F: OpenFile>(lock: &Path, file: &F, record: &OwnerRecord) -> Result<(), LockError> {
    write_slot(file, &record.to_bytes()).map_err(IoFailure::at("write owner record", lock))?;
    Ok(())
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
