//! A kernel-mode lock kept open between acquisitions, for a process that
//! locks one file many times (as fs2's and fd-lock's users keep a file
//! open): an acquisition costs `flock`, the name check, reading the slot
//! and writing the owner record; the filesystem check, the open, the
//! sidecar's vetting and the close happen once.
//!
//! The protocol is kernel mode's (parent module), unchanged: the sidecar
//! is never unlinked, the locked inode must be the one the path names
//! (checked on every acquisition; if someone replaced the file by hand,
//! the handle reopens and vets the new one), a holder's record goes in the
//! slot and the free marker at release, and a holder that finds a record
//! left behind knows the last holder died holding the lock.

use std::path::{Path, PathBuf};

use super::kernel::{let_go, open_vetted, refuse_network, take, take_over};
use super::{LockError, LockEvent, Release, Wait, names, sidecar_path};
use crate::env::{Env, Metadata, OpenFile};
use crate::error::IoFailure;
use crate::record::{OwnerRecord, RECORD_LIMIT, Token};

/// Replacements of the sidecar tolerated during one acquisition.
const MAX_REOPENS: u32 = 64;

/// `FILE`'s kernel-mode lock, its sidecar kept open.
#[derive(Debug)]
pub struct Handle<'e, E: Env> {
    env: &'e E,
    lock: PathBuf,
    instance: String,
    /// The open sidecar and its metadata (an open description's inode
    /// never changes). `None` after a timed-out wait, which leaves the
    /// description unusable, or when the name was found replaced.
    open: Option<(E::File, Metadata)>,
}

/// A lock held through a [`Handle`]. Dropping it releases too.
#[derive(Debug)]
pub struct HandleGuard<'h, 'e, E: Env> {
    handle: &'h mut Handle<'e, E>,
    token: Token,
    holder_died: bool,
    held: bool,
}

impl<'e, E: Env> Handle<'e, E> {
    /// Opens `file`'s sidecar (creating it) for repeated locking. Refused
    /// on network filesystems, as kernel mode is.
    pub fn open(env: &'e E, file: &Path, instance: &str) -> Result<Handle<'e, E>, LockError> {
        if file.file_name().is_none() {
            return Err(LockError::NoFileName {
                path: file.to_owned(),
            });
        }
        let lock = sidecar_path(file);
        refuse_network(env, &lock)?;
        let (f, meta, _) = open_vetted(env, &lock)?;
        Ok(Handle {
            env,
            lock,
            instance: instance.to_owned(),
            open: Some((f, meta)),
        })
    }

    /// The sidecar's path.
    pub fn path(&self) -> &Path {
        &self.lock
    }

    /// Takes the lock exclusively, waiting as `wait` says. `Ok(None)`: not
    /// obtained in time.
    pub fn acquire(
        &mut self,
        wait: Wait,
        events: &mut dyn FnMut(LockEvent),
    ) -> Result<Option<HandleGuard<'_, 'e, E>>, LockError> {
        let env = self.env;
        let started = env.monotonic();
        let deadline = match wait {
            Wait::No => Some(started),
            Wait::For(d) => Some(started.saturating_add(d)),
            Wait::Forever => None,
        };
        let token = Token::random(env);
        let record = OwnerRecord::new(env.identity(), &self.instance, env.wall(), token);
        let mut announced = false;
        for _ in 0..MAX_REOPENS {
            if self.open.is_none() {
                let (f, meta, _) = open_vetted(env, &self.lock)?;
                self.open = Some((f, meta));
            }
            let (file, meta) = self.open.as_ref().expect("just opened");
            // Only a wait needs the holder's record first (for the event);
            // once locked, the slot is read as the last holder left it.
            let got = take(
                env,
                &self.lock,
                file,
                Vec::new(),
                false,
                deadline,
                &mut announced,
                events,
            )?;
            let Some(waited_for) = got else {
                self.open = None;
                return Ok(None);
            };
            if names(env, &self.lock, *meta)?.is_some() {
                let holder = if waited_for.is_empty() {
                    file.read_all(RECORD_LIMIT)
                        .map_err(IoFailure::at("read lock file", &self.lock))?
                } else {
                    waited_for
                };
                let holder_died = take_over(&self.lock, file, &holder, &record)?;
                return Ok(Some(HandleGuard {
                    handle: self,
                    token,
                    holder_died,
                    held: true,
                }));
            }
            // The name now points elsewhere (replaced by hand): let go of
            // the orphan and open what the name holds.
            let _ = file.unlock();
            self.open = None;
        }
        Err(LockError::Unstable {
            path: self.lock.clone(),
            attempts: MAX_REOPENS,
        })
    }
}

impl<E: Env> HandleGuard<'_, '_, E> {
    pub fn token(&self) -> Token {
        self.token
    }

    /// Whether the last holder died holding the lock (see
    /// [`super::LockGuard::holder_died`]).
    pub fn holder_died(&self) -> bool {
        self.holder_died
    }

    /// Releases the lock; the handle stays open for the next acquisition.
    pub fn release(mut self) -> Result<Release, LockError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<Release, LockError> {
        if !std::mem::take(&mut self.held) {
            return Ok(Release::Released);
        }
        let (file, _) = self
            .handle
            .open
            .as_ref()
            .expect("a held lock's description is open");
        let_go(&self.handle.lock, file)
    }
}

impl<E: Env> Drop for HandleGuard<'_, '_, E> {
    fn drop(&mut self) {
        // A failed release leaves the lock to the kernel, which frees it
        // when the handle closes.
        let _ = self.release_inner();
    }
}
