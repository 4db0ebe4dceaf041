//! The coordination backend seam: locks, elections, the fenced log and
//! claims, by name, whatever keeps them. [`FileBackend`] is today's file
//! protocols under a root directory; `baton_etcd::EtcdBackend` keeps the
//! same things on an etcd cluster. A program written against [`Backend`]
//! moves from one host to several by changing the value it is given;
//! `cli/tests/etcd_cli.rs` runs one such program against both.
//!
//! The seam carries what both backends mean the same way: a lock held by
//! one at a time, a term with an epoch that rises with every new leader,
//! a log that refuses appends under an epoch older than one it has seen,
//! and claims taken all or nothing with a directory covering its files.
//! What only one backend has (kernel-lock inheritance by a child, shared
//! locks, lease timings, a session's TTL) stays with that backend and the
//! command line's options for it.

use std::path::PathBuf;

use crate::claims::{Claimant, Claimed, Claims, Held};
use crate::election::{self, Election, Leadership, Member};
use crate::env::Env;
use crate::lock::{self, LockGuard, LockOptions, Wait};

/// Any backend's failure, with its own message.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync>);

impl BackendError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
        BackendError(Box::new(e))
    }
}

/// Who leads an election, as an observer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderView {
    pub id: String,
    pub epoch: u64,
}

/// A claim in the way of another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub path: String,
    pub id: String,
}

/// Locks, elections, the fenced log and claims, by name.
pub trait Backend {
    /// A lock held while this lives (or until [`Backend::unlock`]).
    type Lock<'a>
    where
        Self: 'a;
    /// A term as leader.
    type Term<'a>
    where
        Self: 'a;
    /// Claims held.
    type Claims<'a>
    where
        Self: 'a;

    /// Takes lock `name` for `id`, waiting per `wait`; `None` if not in
    /// time.
    fn lock(
        &self,
        name: &str,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Self::Lock<'_>>, BackendError>;
    fn unlock<'a>(&'a self, lock: Self::Lock<'a>) -> Result<(), BackendError>;

    /// Becomes leader of `election` as `id`, waiting per `wait`.
    fn campaign(
        &self,
        election: &str,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Self::Term<'_>>, BackendError>;
    /// The term's epoch: higher than every earlier term's.
    fn epoch<'a>(&'a self, term: &Self::Term<'a>) -> u64;
    /// Whether the term may still act (a lease may have lapsed).
    fn leads<'a>(&'a self, term: &Self::Term<'a>) -> bool;
    fn resign<'a>(&'a self, term: Self::Term<'a>) -> Result<(), BackendError>;
    /// Who leads `election` now, if anyone.
    fn observe(&self, election: &str) -> Result<Option<LeaderView>, BackendError>;

    /// Appends `line` under `epoch` to log `name`; `Ok(Err(newest))` if the
    /// log has seen a newer epoch.
    fn append(&self, log: &str, epoch: u64, line: &str) -> Result<Result<(), u64>, BackendError>;
    /// The log's lines in order, with their epochs.
    fn entries(&self, log: &str) -> Result<Vec<(u64, String)>, BackendError>;

    /// Claims all of `paths` for `id`, or none (without waiting):
    /// `Ok(Err(holders))` names claims in the way.
    #[allow(clippy::type_complexity)]
    fn claim(
        &self,
        id: &str,
        task: &str,
        paths: &[String],
    ) -> Result<Result<Self::Claims<'_>, Vec<Holder>>, BackendError>;
    fn release<'a>(&'a self, claims: Self::Claims<'a>) -> Result<(), BackendError>;
}

/// The file protocols under `root`: lock `NAME` is `root/locks/NAME`'s
/// sidecar (kernel mode where kernel locks are trusted, else exclusive
/// files), election `NAME` the directory `root/elections/NAME` (kernel
/// mode), log `NAME` the fenced file `root/logs/NAME`, and claims are on
/// paths relative to `root`, kept in `root/.baton/claims`. Names must be
/// one path component.
#[derive(Debug)]
pub struct FileBackend<'e, E: Env> {
    env: &'e E,
    root: PathBuf,
}

impl<'e, E: Env> FileBackend<'e, E> {
    pub fn new(env: &'e E, root: impl Into<PathBuf>) -> FileBackend<'e, E> {
        FileBackend {
            env,
            root: root.into(),
        }
    }

    fn place(&self, kind: &str, name: &str) -> Result<PathBuf, BackendError> {
        let plain =
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0', '\n']);
        if !plain {
            return Err(BackendError::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{kind} name {name:?}: one path component, please"),
            )));
        }
        let dir = self.root.join(kind);
        crate::dirs::prepare(self.env, &dir, &self.root).map_err(BackendError::new)?;
        Ok(dir.join(name))
    }

    fn claims(&self) -> Claims {
        Claims::new(self.root.join(".baton").join("claims"), self.root.clone())
    }
}

impl<'e, E: Env> Backend for FileBackend<'e, E> {
    type Lock<'a>
        = LockGuard<'e, E>
    where
        Self: 'a;
    type Term<'a>
        = (Member<'e, E>, Leadership<'e, E>)
    where
        Self: 'a;
    type Claims<'a>
        = Held<'e, E>
    where
        Self: 'a;

    fn lock(
        &self,
        name: &str,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Self::Lock<'_>>, BackendError> {
        let path = self.place("locks", name)?;
        let mode = lock::mode_for(self.env, &path).map_err(BackendError::new)?;
        let mut opts = LockOptions::new(mode, wait);
        opts.instance = id.to_owned();
        lock::acquire(self.env, &path, &opts, &mut |_| {}).map_err(BackendError::new)
    }

    fn unlock<'a>(&'a self, lock: Self::Lock<'a>) -> Result<(), BackendError> {
        lock.release().map(|_| ()).map_err(BackendError::new)
    }

    fn campaign(
        &self,
        name: &str,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Self::Term<'_>>, BackendError> {
        let election = Election::new(self.place("elections", name)?);
        let member = election::join(self.env, &election, id).map_err(BackendError::new)?;
        let term = election::campaign(self.env, &election, &member, wait, &mut |_| {})
            .map_err(BackendError::new)?;
        Ok(term.map(|t| (member, t)))
    }

    fn epoch<'a>(&'a self, term: &Self::Term<'a>) -> u64 {
        term.1.epoch()
    }

    fn leads<'a>(&'a self, _term: &Self::Term<'a>) -> bool {
        // A kernel lock is held until it is released or its holder dies.
        true
    }

    fn resign<'a>(&'a self, (member, term): Self::Term<'a>) -> Result<(), BackendError> {
        term.step_down().map_err(BackendError::new)?;
        drop(member);
        Ok(())
    }

    fn observe(&self, name: &str) -> Result<Option<LeaderView>, BackendError> {
        let election = Election::new(self.place("elections", name)?);
        let status = election::status(self.env, &election).map_err(BackendError::new)?;
        Ok(status
            .leader
            .filter(|_| status.primary_alive)
            .map(|l| LeaderView {
                id: l.id,
                epoch: l.epoch,
            }))
    }

    fn append(&self, log: &str, epoch: u64, line: &str) -> Result<Result<(), u64>, BackendError> {
        let path = self.place("logs", log)?;
        match crate::fence::append(self.env, &path, epoch, line) {
            Ok(()) => Ok(Ok(())),
            Err(crate::fence::FenceError::Fenced { newest, .. }) => Ok(Err(newest)),
            Err(e) => Err(BackendError::new(e)),
        }
    }

    fn entries(&self, log: &str) -> Result<Vec<(u64, String)>, BackendError> {
        let path = self.place("logs", log)?;
        crate::fence::entries(self.env, &path).map_err(BackendError::new)
    }

    fn claim(
        &self,
        id: &str,
        task: &str,
        paths: &[String],
    ) -> Result<Result<Self::Claims<'_>, Vec<Holder>>, BackendError> {
        let who = Claimant {
            id: id.to_owned(),
            task: task.to_owned(),
            ttl: None,
        };
        match self
            .claims()
            .claim(self.env, paths, &who, Wait::No)
            .map_err(BackendError::new)?
        {
            Claimed::All(held) => Ok(Ok(held)),
            Claimed::Conflict { holder, .. } => Ok(Err(vec![Holder {
                path: holder.path,
                id: holder.id,
            }])),
        }
    }

    fn release<'a>(&'a self, claims: Self::Claims<'a>) -> Result<(), BackendError> {
        drop(claims);
        Ok(())
    }
}
