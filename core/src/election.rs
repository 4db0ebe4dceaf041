//! Primary election: leadership is held, not inferred.
//!
//! # Protocol (kernel mode)
//!
//! An election lives in a directory `DIR` (default `.baton/election`):
//!
//! - `DIR/members/ID.member`: one file per instance, **published already
//!   locked**: written as a temp file, `flock`ed, then `link`ed into place,
//!   its descriptor kept for the life of the instance. A member is alive
//!   exactly while its file's kernel lock is held, so `status` and `reap`
//!   never guess from mtimes, and a reaper that gets the lock knows the
//!   owner is dead (the kernel released it). Members feed `status`; they
//!   play no part in who is primary.
//! - `DIR/leader.baton.lock`: the primary holds its kernel lock (a sidecar lock
//!   in kernel mode, never unlinked, see [`crate::lock`]). A dead
//!   primary's leadership is released by the kernel with its last
//!   descriptor; a paused one keeps it.
//! - `DIR/leader.json`: `{epoch, id, pid, ...}`, replaced atomically and
//!   durably ([`crate::atomic`]) by each new primary, with the epoch one
//!   more than the last, **before** it acts. The epoch is a fencing token:
//!   every primary action carries it, and a sink that has seen a newer
//!   epoch rejects older ones ([`crate::fence`]).
//!
//! To campaign: join, then wait for `leader.baton.lock`; holding it, read the
//! last epoch, write the next one, and act as primary until stepping down
//! (release) or dying (the kernel releases).
//!
//! # Why there is never more than one primary
//!
//! Acting as primary requires holding `leader.baton.lock`'s kernel lock, which
//! one open file description holds at a time, on the inode the path names
//! (checked after locking). The kernel releases it only when its holder
//! unlocks or its last descriptor closes, i.e. the holder stepped down or
//! died: no timing assumption on one host, however long a primary pauses.
//! Epochs increase strictly: each is read and written under that lock, and
//! written durably before the primary acts, so a machine crash cannot
//! bring back a smaller epoch after a larger one was used.
//!
//! # One directory, one mode
//!
//! Kernel mode and lease mode ([`crate::lease`]) keep their terms in
//! different files: a kernel-mode member and a lease-mode member sharing a
//! directory would both be elected, both at epoch 1, and the epoch could
//! not fence them apart. So a directory's mode is recorded in `DIR/mode`
//! by whoever prepares it first (published by `link`: one writer wins) and
//! a member of the other mode is refused ([`ElectionError::ModeMismatch`]).
//! Epochs are then unique per directory: one counter, one mode.
//!
//! # Names
//!
//! A member id becomes a file name (`members/ID.member`), so it is checked
//! ([`check_id`]): letters, digits and `._:@+-`, not starting with `.` or
//! `-`, at most 128 bytes. Nothing is created or removed outside `DIR`.
//!
//! Preference (letting the smallest live id lead) is a voluntary hand-over
//! by the primary ([`preferred`]), never a seizure: the primary steps down
//! and the preferred member, already waiting on the lock, is woken by the
//! kernel. It cannot affect safety. Lease mode, for network filesystems
//! where kernel mode is refused, is in [`crate::lease`].

use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::atomic::{publish_new, stage, sweep_temps, write_atomic};
use crate::env::{Env, OpenFile};
use crate::error::IoFailure;
use crate::lock::{self, LockError, LockEvent, LockGuard, LockOptions, Mode, Wait};
use crate::record::{OwnerRecord, RECORD_LIMIT, Token, written_by_baton};

/// The leader record: who holds the current term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    pub epoch: u64,
    pub id: String,
    pub pid: u32,
    pub host: String,
    /// The primary's wall clock at election, ms since the epoch (for people).
    pub elected_at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{}: member id {id} is held by a live instance", path.display())]
    IdInUse { path: PathBuf, id: String },
    #[error("{}: not {what}: {why}", path.display())]
    BadRecord {
        path: PathBuf,
        what: &'static str,
        why: String,
    },
    #[error(
        "{}: not baton's file ({why}); baton never follows symlinks nor writes to or removes what it did not create: move it away",
        path.display()
    )]
    Foreign { path: PathBuf, why: &'static str },
    #[error(
        "{}: this election is in {recorded} mode; a {wanted}-mode member would make a second primary (use --mode {recorded}, or another directory)",
        dir.display()
    )]
    ModeMismatch {
        dir: PathBuf,
        recorded: ElectionMode,
        wanted: ElectionMode,
    },
    #[error("invalid instance id {id:?}: {why}")]
    BadId { id: String, why: &'static str },
}

/// How an election's primary holds its term. One directory has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionMode {
    /// The kernel lock on `leader.baton.lock`.
    Kernel,
    /// A renewed lease ([`crate::lease`]).
    Lease,
}

impl ElectionMode {
    pub fn name(self) -> &'static str {
        match self {
            ElectionMode::Kernel => "kernel",
            ElectionMode::Lease => "lease",
        }
    }
}

impl std::fmt::Display for ElectionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest instance id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Checks that `id` can name a member file without escaping `members/` or
/// hiding: letters, digits and `._:@+-`, not starting with `.` or `-`.
pub fn check_id(id: &str) -> Result<(), ElectionError> {
    let bad = |why| {
        Err(ElectionError::BadId {
            id: id.to_owned(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("longer than 128 bytes");
    }
    if id.starts_with(['.', '-']) {
        return bad("starts with '.' or '-'");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:@+-".contains(&b))
    {
        return bad("only letters, digits and ._:@+- are allowed");
    }
    Ok(())
}

/// `id` with every character [`check_id`] refuses replaced by `_`: for
/// default ids built from host names.
pub fn sanitize_id(id: &str) -> String {
    let mut out: String = id
        .chars()
        .take(MAX_ID_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:@+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(['.', '-']) {
        out.insert(0, '_');
        out.truncate(MAX_ID_LEN);
    }
    out
}

/// The files of one election.
#[derive(Clone, Debug)]
pub struct Election {
    pub dir: PathBuf,
}

impl Election {
    pub fn new(dir: impl Into<PathBuf>) -> Election {
        Election { dir: dir.into() }
    }

    pub fn members(&self) -> PathBuf {
        self.dir.join("members")
    }

    /// The lock target: its sidecar is `DIR/leader.baton.lock`.
    pub fn leader(&self) -> PathBuf {
        self.dir.join("leader")
    }

    pub fn record(&self) -> PathBuf {
        self.dir.join("leader.json")
    }

    pub fn member_file(&self, id: &str) -> PathBuf {
        self.members().join(format!("{id}.member"))
    }

    /// Where the directory's mode is recorded.
    pub fn mode_file(&self) -> PathBuf {
        self.dir.join("mode")
    }

    /// The mode recorded for this election, if any yet.
    pub fn recorded_mode<E: Env>(&self, env: &E) -> Result<Option<ElectionMode>, ElectionError> {
        let path = self.mode_file();
        let Some(bytes) = read_record(env, &path)? else {
            return Ok(None);
        };
        let bad = |why: &str| ElectionError::BadRecord {
            path: path.clone(),
            what: "an election mode record",
            why: why.to_owned(),
        };
        let record: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
        match record["mode"].as_str() {
            Some("kernel") => Ok(Some(ElectionMode::Kernel)),
            Some("lease") => Ok(Some(ElectionMode::Lease)),
            _ => Err(bad("no mode \"kernel\" or \"lease\"")),
        }
    }

    /// Records `wanted` as the directory's mode if none is yet, and checks
    /// it is the recorded one. A directory made before modes were recorded
    /// keeps the mode its files show.
    fn settle_mode<E: Env>(&self, env: &E, wanted: ElectionMode) -> Result<(), ElectionError> {
        // A racer may publish between our read and our link: the next
        // read sees theirs. Twice published and still unread, the record
        // is being removed under us.
        for round in 0..3 {
            if let Some(recorded) = self.recorded_mode(env)? {
                if recorded != wanted {
                    return Err(ElectionError::ModeMismatch {
                        dir: self.dir.clone(),
                        recorded,
                        wanted,
                    });
                }
                return Ok(());
            }
            if round == 2 {
                break;
            }
            let mode = self.mode_shown_by_files(env)?.unwrap_or(wanted);
            let mut bytes =
                serde_json::to_vec(&serde_json::json!({ "baton": 1, "mode": mode.name() }))
                    .expect("a record serializes");
            bytes.push(b'\n');
            let path = self.mode_file();
            if publish_new(env, &path, &bytes)? {
                env.sync_dir(&self.dir)
                    .map_err(IoFailure::at("sync directory", &self.dir))?;
            }
        }
        Err(ElectionError::BadRecord {
            path: self.mode_file(),
            what: "an election mode record",
            why: "vanished after it was written".to_owned(),
        })
    }

    /// A directory without a mode record: kernel mode if a term was ever
    /// held by kernel lock (`leader.json`), lease mode if a lease exists.
    fn mode_shown_by_files<E: Env>(&self, env: &E) -> Result<Option<ElectionMode>, ElectionError> {
        let exists = |path: PathBuf| match env.symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(IoFailure::at("stat", &path)(e)),
        };
        Ok(if exists(self.record())? {
            Some(ElectionMode::Kernel)
        } else if exists(self.dir.join("lease"))? {
            Some(ElectionMode::Lease)
        } else {
            None
        })
    }

    /// Creates the election's directories ([`crate::dirs::prepare`]), then
    /// records the directory's mode, or checks it (see the module
    /// documentation).
    pub fn prepare<E: Env>(&self, env: &E, mode: ElectionMode) -> Result<(), ElectionError> {
        crate::dirs::prepare(env, &self.members(), &self.dir)?;
        self.settle_mode(env, mode)
    }

    /// The current leader record, if any primary was ever elected.
    pub fn leader_record<E: Env>(&self, env: &E) -> Result<Option<LeaderRecord>, ElectionError> {
        let path = self.record();
        let Some(bytes) = read_record(env, &path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ElectionError::BadRecord {
                path,
                what: "a leader record",
                why: e.to_string(),
            })
    }
}

/// The bytes of a record baton keeps in an election directory, `None` if
/// there is none. A symlink, FIFO, socket, directory or oversized file
/// there is not baton's: [`ElectionError::Foreign`].
pub(crate) fn read_record<E: Env>(env: &E, path: &Path) -> Result<Option<Vec<u8>>, ElectionError> {
    match env.read(path, RECORD_LIMIT) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(match lock::refusal(&e) {
            Some(why) => ElectionError::Foreign {
                path: path.to_owned(),
                why,
            },
            None => IoFailure::at("read", path)(e).into(),
        }),
    }
}

/// Whether a coordination directory can be trusted, or a warning saying
/// why not: writable by everyone without the sticky bit (anyone may
/// replace baton's files there), or owned by another user than `me`.
/// baton opens nothing there through a symlink either way; this is for
/// people to hear about.
pub fn distrust<E: Env>(env: &E, dir: &Path, me: u32) -> Result<Option<String>, IoFailure> {
    let meta = match env.symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoFailure::at("stat", dir)(e)),
    };
    Ok(if meta.mode & 0o002 != 0 && meta.mode & 0o1000 == 0 {
        Some(format!(
            "{}: writable by every user (mode {:o}): anyone can replace the election's files",
            dir.display(),
            meta.mode
        ))
    } else if meta.uid != me && meta.uid != 0 {
        Some(format!(
            "{}: owned by user {}, not by you ({me})",
            dir.display(),
            meta.uid
        ))
    } else {
        None
    })
}

/// An instance's registration: alive while this value (its locked
/// descriptor) lives. Dropping it removes the file.
#[derive(Debug)]
pub struct Member<'e, E: Env> {
    env: &'e E,
    pub id: String,
    path: PathBuf,
    file: Option<E::File>,
}

impl<'e, E: Env> Member<'e, E> {
    /// The locked descriptor: a child that inherits it keeps the member
    /// alive while it runs.
    pub fn file(&self) -> &E::File {
        self.file.as_ref().expect("held until dropped")
    }
}

impl<E: Env> Drop for Member<'_, E> {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            // Only while holding our own lock, and only our own inode.
            if let Ok(Some(_)) = lock::still_named(self.env, &self.path, &file) {
                let _ = self.env.remove_file(&self.path);
            }
        }
    }
}

/// Registers `id` in the election: a member file published already locked.
pub fn join<'e, E: Env>(
    env: &'e E,
    election: &Election,
    id: &str,
) -> Result<Member<'e, E>, ElectionError> {
    check_id(id)?;
    election.prepare(env, ElectionMode::Kernel)?;
    let path = election.member_file(id);
    let record = OwnerRecord::new(env.identity(), id, env.wall(), Token::random(env));
    // Two tries: the second after reaping a dead member with our id.
    for _ in 0..2 {
        let staged = stage(env, &path)?;
        let locked = staged
            .file
            .try_lock()
            .and_then(|locked| {
                staged.file.write_all_at(&record.to_bytes(), 0)?;
                Ok(locked)
            })
            .map_err(IoFailure::at("write member file", &staged.shown(&path)));
        match locked {
            Ok(locked) => assert!(locked, "a fresh member file is unlocked"),
            Err(e) => {
                staged.discard(env);
                return Err(e.into());
            }
        }
        if staged.link(env, &path)? {
            return Ok(Member {
                env,
                id: id.to_owned(),
                path,
                file: Some(staged.file),
            });
        }
        match reap_member(env, &path, false)? {
            MemberFate::Reaped(_) | MemberFate::Gone => {}
            MemberFate::Alive => {
                return Err(ElectionError::IdInUse {
                    path,
                    id: id.to_owned(),
                });
            }
            MemberFate::Foreign(why) => return Err(ElectionError::Foreign { path, why }),
        }
    }
    Err(ElectionError::IdInUse {
        path,
        id: id.to_owned(),
    })
}

/// What became of a member file a reaper looked at.
enum MemberFate {
    /// Its owner was dead: removed (or, dry run, would be).
    Reaped(Result<OwnerRecord, crate::record::RecordError>),
    /// Its owner holds its lock.
    Alive,
    /// Gone, or replaced, meanwhile.
    Gone,
    /// Not a member file baton made, whatever its name: never removed.
    Foreign(&'static str),
}

/// Removes a member file whose owner is dead (nobody holds its lock).
/// With `dry_run`, only says so.
fn reap_member<E: Env>(env: &E, path: &Path, dry_run: bool) -> Result<MemberFate, ElectionError> {
    let file = match env.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(MemberFate::Gone),
        Err(e) => match lock::refusal(&e) {
            Some(why) => return Ok(MemberFate::Foreign(why)),
            None => return Err(IoFailure::at("open member file", path)(e).into()),
        },
    };
    if !file
        .try_lock()
        .map_err(IoFailure::at("lock member file", path))?
    {
        return Ok(MemberFate::Alive);
    }
    // Holding the dead member's inode lock: no other reaper can remove it,
    // and the name cannot change to another inode until we unlink it.
    let Some(meta) = lock::still_named(env, path, &file)? else {
        return Ok(MemberFate::Gone);
    };
    let bytes = match file.read_all(RECORD_LIMIT) {
        Ok(b) => b,
        Err(e) => match lock::refusal(&e) {
            Some(why) => return Ok(MemberFate::Foreign(why)),
            None => return Err(IoFailure::at("read member file", path)(e).into()),
        },
    };
    if !meta.is_file {
        return Ok(MemberFate::Foreign("not a regular file"));
    }
    if !written_by_baton(&bytes) {
        return Ok(MemberFate::Foreign(
            "it holds something other than a baton record",
        ));
    }
    let owner = OwnerRecord::parse(&bytes);
    if !dry_run {
        match env.remove_file(path) {
            Ok(()) => {}
            // Removed by someone outside baton since we looked: gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(MemberFate::Gone),
            Err(e) => return Err(IoFailure::at("remove member file", path)(e).into()),
        }
    }
    Ok(MemberFate::Reaped(owner))
}

/// A term as primary: held while this value lives.
#[derive(Debug)]
pub struct Leadership<'e, E: Env> {
    guard: LockGuard<'e, E>,
    pub record: LeaderRecord,
}

impl<'e, E: Env> Leadership<'e, E> {
    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// The locked `leader.baton.lock` descriptor: a child that inherits it keeps
    /// the leadership held while it runs.
    pub fn file(&self) -> &E::File {
        self.guard.file()
    }

    /// Ends the term: stop acting first, then call this.
    pub fn step_down(self) -> Result<(), ElectionError> {
        self.guard.release()?;
        Ok(())
    }
}

/// Waits (per `wait`) to become primary; holding `leader.baton.lock`, writes the
/// next epoch durably. `None` if not elected within `wait`.
pub fn campaign<'e, E: Env>(
    env: &'e E,
    election: &Election,
    member: &Member<'e, E>,
    wait: Wait,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Option<Leadership<'e, E>>, ElectionError> {
    let mut opts = LockOptions::new(Mode::Kernel, wait);
    opts.instance = member.id.clone();
    let Some(guard) = lock::acquire(env, &election.leader(), &opts, events)? else {
        return Ok(None);
    };
    if guard.holder_died() {
        // A primary killed while writing its epoch may have left its temp.
        sweep_temps(env, &election.record())?;
    }
    let last = election.leader_record(env)?.map_or(0, |r| r.epoch);
    // leader.json is input: a planted maximum must not wrap to epoch 0.
    let next = last
        .checked_add(1)
        .ok_or_else(|| ElectionError::BadRecord {
            path: election.record(),
            what: "a leader record",
            why: format!("epoch {last} cannot be followed"),
        })?;
    let me = env.identity();
    let record = LeaderRecord {
        epoch: next,
        id: member.id.clone(),
        pid: me.pid,
        host: me.host.clone(),
        elected_at_ms: env
            .wall()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let mut bytes = serde_json::to_vec(&record).expect("a record serializes");
    bytes.push(b'\n');
    write_atomic(env, &election.record(), &bytes)?;
    Ok(Some(Leadership { guard, record }))
}

/// One member, as `status` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub id: String,
    pub owner: Result<OwnerRecord, crate::record::RecordError>,
    /// Its kernel lock is held: the instance is alive.
    pub alive: bool,
}

/// What an election looks like now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The last leader record, and whether its term is still held.
    pub leader: Option<LeaderRecord>,
    pub primary_alive: bool,
    pub members: Vec<MemberStatus>,
}

/// Looks at an election without taking part: who is a member and alive,
/// who is primary. Locks are only tried, and released at once.
pub fn status<E: Env>(env: &E, election: &Election) -> Result<Status, ElectionError> {
    let leader = election.leader_record(env)?;
    let sidecar = lock::sidecar_path(&election.leader());
    let primary_alive = match env.open(&sidecar, false) {
        Ok(f) => !f.try_lock().map_err(IoFailure::at("lock", &sidecar))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(match lock::refusal(&e) {
                Some(why) => ElectionError::Foreign { path: sidecar, why },
                None => IoFailure::at("open", &sidecar)(e).into(),
            });
        }
    };
    let dir = election.members();
    let mut names = match env.read_dir(&dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(IoFailure::at("read directory", &dir)(e).into()),
    };
    names.sort();
    let mut members = Vec::new();
    for name in names {
        let name = name.to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".member") else {
            continue;
        };
        let path = dir.join(&name);
        let file = match env.open(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if let Some(why) = lock::refusal(&e) => {
                members.push(MemberStatus {
                    id: id.to_owned(),
                    owner: Err(crate::record::RecordError::Foreign {
                        reason: why.to_owned(),
                    }),
                    alive: false,
                });
                continue;
            }
            Err(e) => return Err(IoFailure::at("open member file", &path)(e).into()),
        };
        let alive = !file
            .try_lock()
            .map_err(IoFailure::at("lock member file", &path))?;
        let owner = match file.read_all(RECORD_LIMIT) {
            Ok(bytes) => OwnerRecord::parse(&bytes),
            Err(e) => match lock::refusal(&e) {
                Some(why) => Err(crate::record::RecordError::Foreign {
                    reason: why.to_owned(),
                }),
                None => return Err(IoFailure::at("read member file", &path)(e).into()),
            },
        };
        members.push(MemberStatus {
            id: id.to_owned(),
            owner,
            alive,
        });
    }
    Ok(Status {
        leader,
        primary_alive,
        members,
    })
}

/// The live member the primary `me` should hand over to: the smallest id
/// alive, if it is smaller than `me`.
pub fn preferred<E: Env>(
    env: &E,
    election: &Election,
    me: &str,
) -> Result<Option<String>, ElectionError> {
    let st = status(env, election)?;
    Ok(st
        .members
        .into_iter()
        .filter(|m| m.alive && m.id.as_str() < me)
        .map(|m| m.id)
        .min())
}

/// A member file removed (or, dry run, that would be) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaped {
    pub path: PathBuf,
    pub owner: Result<OwnerRecord, crate::record::RecordError>,
}

/// Removes the member files of dead instances: provably dead, since no
/// process holds their kernel lock.
pub fn reap<E: Env>(
    env: &E,
    election: &Election,
    dry_run: bool,
) -> Result<Vec<Reaped>, ElectionError> {
    let dir = election.members();
    let mut names = match env.read_dir(&dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(IoFailure::at("read directory", &dir)(e).into()),
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if !name.to_string_lossy().ends_with(".member") {
            continue;
        }
        let path = dir.join(&name);
        if let MemberFate::Reaped(owner) = reap_member(env, &path, dry_run)? {
            out.push(Reaped { path, owner });
        }
    }
    Ok(out)
}
