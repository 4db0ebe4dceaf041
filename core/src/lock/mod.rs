//! Sidecar locks: `FILE.baton.lock` beside `FILE`.
//!
//! # The sidecar's name, and files baton did not create
//!
//! Seed 002's convention was `FILE.lock`, but that name is taken: it is
//! Cargo's, Bundler's, Poetry's, Composer's, Nix's and git's own. Locking
//! `Gemfile` must not write into `Gemfile.lock`. So baton's sidecar carries
//! a suffix of its own, `.baton.lock` (still ending in `.lock`, so people
//! and `*.lock` ignore rules recognise it), and baton still trusts nothing
//! it finds there:
//!
//! - every sidecar is opened with `O_NOFOLLOW`: a symlink is refused,
//!   never followed, and so is anything but a regular file (FIFO, socket,
//!   device, directory);
//! - its bytes must be baton's ([`crate::record::written_by_baton`]): a
//!   record, whole or torn, or empty (a file-mode lock after a machine
//!   crash). A kernel-mode sidecar is created by `link` from a temp file
//!   already holding the "free" marker, synced, so it is never seen empty;
//! - anything else is a user's file: baton refuses with
//!   [`LockError::NotOurs`] and never writes to, truncates or removes it.
//!
//! `FILE` is named by its components: `sub`, `sub/` and `sub/.` are one
//! file, locked by `sub.baton.lock`; a path without a file name (`.`, `..`,
//! `/`) is refused.
//!
//! # Kernel mode (default on local filesystems)
//!
//! The sidecar is a plain file that is **never unlinked**; holding the lock
//! means holding `flock(LOCK_EX)` on an open description of it.
//!
//! 1. open `FILE.baton.lock` (creating it as above), check it is baton's,
//!    `try_lock`; if contended, announce the
//!    wait once and block in `flock`, woken by the kernel, until the deadline;
//! 2. compare the locked description's inode with the one the path names
//!    now; on a mismatch (someone removed or replaced the file by hand) the
//!    lock is on an orphan: drop it and start again;
//! 3. write the owner record into the file, for `status` (in place, over a
//!    fixed-size slot: readers may see a half-written record, which they
//!    report as unreadable; nothing is decided from it);
//! 4. release: overwrite the record with a "free" marker, then
//!    `flock(LOCK_UN)`, then close.
//!
//! *Safety.* Mutual exclusion is the kernel's: one open description holds
//! `LOCK_EX` on an inode at a time, and step 2 makes that inode the one the
//! path names. The sidecar is never unlinked, so waiters are never split
//! across two inodes (portalocker#115, filelock#574, hermit#423). A dead
//! holder's lock is released by the kernel when its last descriptor closes:
//! there is nothing to reap. On network filesystems (NFS, SMB, FUSE) kernel
//! locks are emulated, can be lost, or hang (cargo#2615), so kernel mode
//! refuses them and points at file mode.
//!
//! # Exclusive-file mode
//!
//! The lock exists while `FILE.baton.lock` exists: what other tools that use
//! `O_EXCL` lock files (git, npm lockfile, shell `noclobber`) understand.
//!
//! 1. acquire: create a private temp file `.FILE.baton.lock.TOKEN.tmp`, take
//!    `flock` on it, write the owner record, then `link` it to `FILE.lock`.
//!    `link` fails if the name exists, so the lock is taken atomically
//!    **with its content**: a reader never sees an empty or partial record
//!    (until a machine crash: the record is not synced, and an empty file
//!    left then is reaped as an unverifiable owner's).
//!    The temp name is unlinked; the holder keeps its descriptor, and so its
//!    kernel lock on the lock file's inode, for as long as it holds the lock;
//! 2. while holding: refresh the inode's mtime through that descriptor
//!    (`futimens`) every third of the stale threshold, for observers that
//!    cannot see kernel locks (other hosts, other tools);
//! 3. a waiter that finds the name taken opens it (refusing what is not
//!    baton's: a user's file there is never reaped) and tries the inode's
//!    kernel lock. If that blocks, a live process holds the lock (a baton
//!    holder, or the command it runs, which inherits the descriptor): wait.
//!    If the waiter gets it, it holds the right to remove *this inode* and
//!    checks, still holding it, that the name still points at this inode and
//!    whether the owner is stale (see [`crate::stale`]): provably dead, or
//!    unverifiable and seen unchanged for the stale threshold on the
//!    waiter's monotonic clock. If stale, it unlinks the name, then lets go;
//! 4. release: holding its kernel lock, the holder checks that the name
//!    still points at its own inode and unlinks it; otherwise it reports
//!    the lock lost and removes nothing. The unlink moves the name aside
//!    first and unlinks only if what moved is its own inode (anything else
//!    is linked back): POSIX has no conditional unlink, and another tool
//!    may put its own file at the name between the check and the unlink
//!    (the simulator's foreign-tool scenarios found exactly that). Reapers
//!    remove the same way.
//!
//! *Safety.* Every remover of a lock file — the holder releasing it, or a
//! reaper — holds the kernel lock on that very inode when it unlinks the
//! name, and has checked, under that lock, that the name still points at the
//! inode. Two such removers of one inode are serialised by its kernel lock;
//! the second finds the name gone or pointing at a newer inode and removes
//! nothing. While a remover holds the inode's lock, nobody else can change
//! what the name points at: removal needs that same lock, and `link` cannot
//! replace an existing name. So a reaper never deletes a fresh lock that
//! another reaper created (the double-reaper race of npm/lockfile#4 and
//! proper-lockfile#121), and a release never removes a lock that is not its
//! own. A live baton holder keeps its inode locked from before the name
//! exists until after it is gone, so it is never reaped, however long it is
//! paused: staleness by observation applies only to owners that hold no
//! kernel lock (other tools, or a filesystem that does not carry locks
//! between hosts).
//!
//! Where kernel locks stay on each host (an NFS mount with
//! `local_lock=flock` or `all`, read from the mount table), a holder or
//! reaper on another host is invisible to ours: judged by its refreshes
//! alone, a holder paused past the stale threshold would be reaped, and
//! two reapers on different hosts would not be serialised
//! (`model/src/lock_file.rs` shows both). So there an owner that cannot be
//! checked is never reaped by observation: the waiter says so
//! (`CannotReap`) and a person removes the file; provably dead owners on
//! this host are still reaped, by reapers this host's locks serialise.
//! With NFS's default (locks reach the server) reaping by observation is
//! safe, and the model holds with a holder paused for ever.
//!
//! //! What this cannot protect against: a tool that deletes lock files without
//! baton's protocol (exclusive-file mode then says `Lost` at release;
//! kernel mode cannot tell, its sidecar being one more file to `rm`), and
//! filesystems where `flock` is silently a no-op. On a
//! filesystem that rejects `flock` outright, waiters cannot serialise their
//! removals, so they reap nothing (not even a provably dead owner's lock)
//! and say so (`CannotReap`).
//!
//! # Waiting
//!
//! Kernel mode blocks in `flock` and is woken by the kernel. Exclusive-file
//! mode must poll (no syscall reports an unlink to a waiter on every
//! filesystem): capped exponential backoff with jitter, each sleep cut to
//! the deadline, so a timeout is exact to within one backoff step.

mod file;
mod handle;
mod kernel;

pub use handle::{Handle, HandleGuard};

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::{Env, FsKind, Metadata, MonoTime, OpenFile};
use crate::error::IoFailure;
use crate::record::{OwnerRecord, RECORD_LIMIT, RecordError, Token, written_by_baton};
use crate::stale::Why;

/// How a sidecar lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `flock` on a never-unlinked sidecar.
    Kernel,
    /// The sidecar's existence is the lock.
    File,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Kernel => "kernel",
            Mode::File => "file",
        }
    }
}

/// How long to wait for a contended lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Give up at once.
    No,
    For(Duration),
    Forever,
}

#[derive(Clone, Debug)]
pub struct LockOptions {
    pub mode: Mode,
    pub wait: Wait,
    /// Exclusive-file mode: how long an unverifiable owner's lock file must
    /// be seen unchanged before it is reaped.
    pub stale: Duration,
    /// Written into the owner record, for people reading `status`.
    pub instance: String,
    /// Kernel mode: a shared lock (`flock(LOCK_SH)`), held by any number
    /// of readers at once and by none while a writer holds the lock.
    /// Shared holders write no owner record (there may be many) and leave
    /// the sidecar's content alone.
    pub shared: bool,
}

impl LockOptions {
    pub fn new(mode: Mode, wait: Wait) -> LockOptions {
        LockOptions {
            mode,
            wait,
            stale: Duration::from_secs(30),
            instance: String::new(),
            shared: false,
        }
    }
}

/// Something worth telling a person while acquiring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockEvent {
    /// The lock is held; waiting for it (said once per acquisition).
    Waiting {
        lock: PathBuf,
        holder: Result<OwnerRecord, RecordError>,
    },
    /// A stale lock file was removed.
    Reaped {
        lock: PathBuf,
        owner: Result<OwnerRecord, RecordError>,
        why: Why,
    },
    /// A stale-looking lock could not be reaped safely.
    CannotReap { lock: PathBuf, why: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Io(#[from] IoFailure),
    #[error(
        "{}: kernel locks are unreliable on {fs} filesystems; use exclusive-file mode (--mode file)",
        path.display()
    )]
    KernelLocksUnreliable { path: PathBuf, fs: &'static str },
    #[error(
        "{}: is a kernel-mode sidecar (never removed); lock it in kernel mode (--mode kernel)",
        path.display()
    )]
    ModeMismatch { path: PathBuf },
    #[error("{}: lock file keeps being replaced while locking it ({attempts} attempts)", path.display())]
    Unstable { path: PathBuf, attempts: u32 },
    #[error(
        "{}: not baton's lock file ({why}); baton never writes to or removes a file it did not create: move it away if it is not needed, or lock another name",
        path.display()
    )]
    NotOurs { path: PathBuf, why: &'static str },
    #[error("{}: names no file to lock (it ends in `.`, `..` or `/`)", path.display())]
    NoFileName { path: PathBuf },
    #[error(
        "{}: shared locks need kernel mode (an exclusive-file lock is the file's existence, which one holder has)",
        path.display()
    )]
    SharedNeedsKernel { path: PathBuf },
}

/// The mode a lock on `file` should use when the user has not chosen:
/// kernel mode where kernel locks are trustworthy, exclusive-file mode on
/// network filesystems.
pub fn mode_for<E: Env>(env: &E, file: &Path) -> Result<Mode, IoFailure> {
    let (dir, _) = split(file);
    Ok(
        match env
            .fs_kind(&dir)
            .map_err(IoFailure::at("inspect filesystem", &dir))?
        {
            FsKind::Local => Mode::Kernel,
            FsKind::Network { .. } => Mode::File,
        },
    )
}

/// The suffix of baton's sidecars: its own, so it never names a user's
/// `FILE.lock` (see the module documentation).
pub const SIDECAR_SUFFIX: &str = ".baton.lock";

/// `FILE.baton.lock`, beside `FILE`. `FILE` is taken by its components, so
/// `sub`, `sub/` and `sub/.` have one sidecar, `sub.baton.lock`. A path
/// with no file name gets `.baton.lock` inside it: [`acquire`] refuses such
/// paths first.
pub fn sidecar_path(file: &Path) -> PathBuf {
    let mut path: PathBuf = file.components().collect();
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(SIDECAR_SUFFIX);
    if path.file_name().is_some() {
        path.set_file_name(name);
    } else {
        path.push(name);
    }
    path
}

/// Why a found lock file is not baton's, from the error opening or reading
/// it: a symlink (`O_NOFOLLOW`'s ELOOP), a socket (ENXIO), a FIFO (ESPIPE
/// from `pread`), a directory, or more bytes than any record. `None`: an
/// ordinary I/O error.
pub(crate) fn refusal(e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error() {
        Some(40) => Some("a symbolic link, which baton never follows"),
        Some(6) | Some(29) => Some("not a regular file"),
        Some(21) => Some("a directory"),
        Some(27) => Some("larger than any record baton writes"),
        _ => None,
    }
}

/// An error opening or reading the lock file `lock`, as a refusal when it
/// shows the file is not baton's.
pub(crate) fn open_failure(op: &'static str, lock: &Path, e: io::Error) -> LockError {
    match refusal(&e) {
        Some(why) => LockError::NotOurs {
            path: lock.to_owned(),
            why,
        },
        None => IoFailure::at(op, lock)(e).into(),
    }
}

/// Checks that the lock file open as `file` is baton's, and returns its
/// metadata and bytes: a regular file holding a baton record (or nothing).
pub(crate) fn vet<F: OpenFile>(lock: &Path, file: &F) -> Result<(Metadata, Vec<u8>), LockError> {
    let meta = file
        .metadata()
        .map_err(IoFailure::at("stat lock file", lock))?;
    let not_ours = |why| LockError::NotOurs {
        path: lock.to_owned(),
        why,
    };
    if !meta.is_file {
        return Err(not_ours("not a regular file"));
    }
    let content = file
        .read_all(RECORD_LIMIT)
        .map_err(|e| open_failure("read lock file", lock, e))?;
    if !written_by_baton(&content) {
        return Err(not_ours("it holds something other than a baton record"));
    }
    Ok((meta, content))
}

/// How a release ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    Released,
    /// Exclusive-file mode: the lock file was no longer ours (removed by a
    /// tool outside baton's protocol); nothing was removed.
    Lost,
}

/// A held lock. Release it with [`LockGuard::release`] to learn how it
/// ended; dropping it releases too, ignoring errors.
#[derive(Debug)]
pub struct LockGuard<'e, E: Env> {
    env: &'e E,
    mode: Mode,
    lock: PathBuf,
    file: Option<E::File>,
    token: Token,
    acquired_at: MonoTime,
    waited: Duration,
    holder_died: bool,
    shared: bool,
}

impl<'e, E: Env> LockGuard<'e, E> {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.lock
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn token(&self) -> Token {
        self.token
    }

    /// Time spent waiting for the lock.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Whether the lock was taken over from a holder that died holding it
    /// (kernel mode: its record was still in the sidecar; file mode: its
    /// lock file was reaped). What it protected may hold its leftovers: a
    /// half-done job, a temp file it never renamed.
    pub fn holder_died(&self) -> bool {
        self.holder_died
    }

    /// The open, kernel-locked description of the lock file: a child that
    /// inherits it keeps the lock held while it runs.
    pub fn file(&self) -> &E::File {
        self.file
            .as_ref()
            .expect("a guard holds its file until released")
    }

    /// Exclusive-file mode: refresh the lock file's mtime, for observers
    /// that judge staleness by change. Call at least every third of the
    /// stale threshold. Touches the inode through its descriptor, so it can
    /// never refresh someone else's lock. No-op in kernel mode.
    pub fn heartbeat(&self) -> Result<(), LockError> {
        if self.mode == Mode::File {
            self.file()
                .set_modified(self.env.wall())
                .map_err(IoFailure::at("refresh lock file", &self.lock))?;
        }
        Ok(())
    }

    /// How long the lock has been held, on the monotonic clock.
    pub fn held(&self) -> Duration {
        self.env.monotonic().saturating_since(self.acquired_at)
    }

    pub fn release(mut self) -> Result<Release, LockError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<Release, LockError> {
        let Some(file) = self.file.take() else {
            return Ok(Release::Released);
        };
        match self.mode {
            Mode::Kernel if self.shared => kernel::release_shared(&self.lock, file),
            Mode::Kernel => kernel::release(&self.lock, file),
            Mode::File => file::release(self.env, &self.lock, file),
        }
    }
}

impl<E: Env> Drop for LockGuard<'_, E> {
    fn drop(&mut self) {
        // Never panic in Drop: a failed release leaves a lock that the
        // kernel (kernel mode) or the stale rules (file mode) recover.
        let _ = self.release_inner();
    }
}

/// Takes `FILE.lock` for `file`. `Ok(None)` when it was not obtained within
/// `opts.wait`: contention is an outcome, not an error.
pub fn acquire<'e, E: Env>(
    env: &'e E,
    file: &Path,
    opts: &LockOptions,
    events: &mut dyn FnMut(LockEvent),
) -> Result<Option<LockGuard<'e, E>>, LockError> {
    if file.file_name().is_none() {
        return Err(LockError::NoFileName {
            path: file.to_owned(),
        });
    }
    let lock = sidecar_path(file);
    if opts.shared && opts.mode == Mode::File {
        return Err(LockError::SharedNeedsKernel { path: lock });
    }
    let started = env.monotonic();
    let deadline = match opts.wait {
        Wait::No => Some(started),
        Wait::For(d) => Some(started.saturating_add(d)),
        Wait::Forever => None,
    };
    let token = Token::random(env);
    let record = OwnerRecord::new(env.identity(), &opts.instance, env.wall(), token);
    let held = match opts.mode {
        Mode::Kernel => kernel::acquire(env, &lock, &record, opts.shared, deadline, events)?,
        Mode::File => file::acquire(env, &lock, &record, deadline, opts.stale, events)?,
    };
    let acquired_at = env.monotonic();
    Ok(held.map(|(file, holder_died)| LockGuard {
        env,
        mode: opts.mode,
        lock,
        file: Some(file),
        token,
        acquired_at,
        waited: acquired_at.saturating_since(started),
        holder_died,
        shared: opts.shared,
    }))
}

/// Time left before `deadline`; `None` means no deadline.
fn remaining(env: &impl Env, deadline: Option<MonoTime>) -> Option<Duration> {
    deadline.map(|d| d.saturating_since(env.monotonic()))
}

/// The directory holding `path` and its file name.
fn split(path: &Path) -> (PathBuf, OsString) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    (dir, name)
}

/// The inode `file` is open on, if `lock` still names it (`None` if the
/// name is gone or names another inode): the check every holder and
/// remover makes while holding that inode's kernel lock.
pub(crate) fn still_named<E: Env>(
    env: &E,
    lock: &Path,
    file: &E::File,
) -> Result<Option<Metadata>, IoFailure> {
    let ours = file
        .metadata()
        .map_err(IoFailure::at("stat lock file", lock))?;
    names(env, lock, ours)
}

/// [`still_named`] for a caller that has its open file's metadata already
/// (an open description's inode never changes).
pub(crate) fn names<E: Env>(
    env: &E,
    lock: &Path,
    ours: Metadata,
) -> Result<Option<Metadata>, IoFailure> {
    // lstat: a symlink put in its place names another file, not ours.
    match env.symlink_metadata(lock) {
        Ok(now) => Ok((now.id == ours.id).then_some(ours)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoFailure::at("stat lock file", lock)(e)),
    }
}

/// Whether an error means the filesystem does not do `flock` at all
/// (EOPNOTSUPP, ENOSYS): for every process, every time.
fn locks_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(95) | Some(38))
}

/// Whether `flock` failed for want of a lock now (ENOLCK: the kernel's
/// lock records ran out, or an NFS client has no lock manager). Unlike
/// [`locks_unsupported`], peers on the same filesystem may well hold
/// theirs.
fn locks_unavailable(e: &io::Error) -> bool {
    e.raw_os_error() == Some(37)
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
