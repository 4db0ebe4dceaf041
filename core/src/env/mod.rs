//! The environment seam: the only door from baton's protocols to the world.
//!
//! Every protocol in this crate (atomic write, sidecar locks, reaping, and
//! the election and claims that build on them) is written against these
//! traits and nothing else. [`real::RealEnv`] implements them with Linux
//! system calls; the simulator implements them on a simulated filesystem
//! with virtual time, so it runs exactly the code that ships.
//!
//! The traits are the syscall surface, not a convenience layer: each method
//! is one call a process makes, named after std, and its doc comment states
//! the Linux semantics a simulated implementation must reproduce. Composed
//! operations (write-temp-then-rename, backoff, reaping) live above the seam
//! so a crash between any two of their steps can be explored.
//!
//! Errors are `std::io::Error` carrying real errno values in both worlds, so
//! protocol code can match on `ErrorKind` and `raw_os_error` alike.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub mod git;
pub mod handoff;
pub mod real;
pub mod real_git;

/// Identity of an inode: equal ids mean the same file, whatever its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// What `stat(2)`/`fstat(2)` tell baton about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub id: FileId,
    pub len: u64,
    /// Last modification, stamped from the clock of the process that wrote
    /// or touched the file (never comparable with another process's clock).
    pub modified: SystemTime,
    pub is_dir: bool,
    /// A regular file (not a directory, symlink, FIFO, socket or device).
    pub is_file: bool,
    /// A symbolic link (only [`Fs::symlink_metadata`] can say so).
    pub is_symlink: bool,
    /// Number of names the inode has; 0 once every name is unlinked.
    pub nlink: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
}

/// Whether kernel advisory locks on a filesystem can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// A local filesystem: `flock` is enforced by this kernel alone.
    Local,
    /// A network or userspace filesystem (NFS, SMB, FUSE, ...), named: locks
    /// may be emulated, lost after a partition, or block forever.
    Network {
        name: &'static str,
        /// Kernel locks are kept on this host and exclude its processes
        /// only (NFS mounted with `local_lock=flock` or `all`): they tell
        /// nothing about other hosts' holders or reapers.
        host_local_locks: bool,
    },
}

/// The filesystem calls protocols make, path-based.
pub trait Fs {
    /// An open file description.
    type File: OpenFile;

    /// `open(O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0644)`: fails with
    /// `AlreadyExists` (EEXIST) if `path` names anything, symlinks included.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;

    /// `open(O_RDWR|O_CLOEXEC|O_NOFOLLOW|O_NONBLOCK)`, adding `O_CREAT`
    /// (0644) when `create`. A symlink at `path` is never followed: ELOOP.
    /// `O_NONBLOCK` keeps a FIFO or device planted at `path` from blocking
    /// the open; it changes nothing for regular files or `flock`. Callers
    /// that will write check [`Metadata::is_file`] before they do.
    /// Opening the same path twice yields two open file descriptions, which
    /// contend for kernel locks even inside one process.
    fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;

    /// Read the whole file at `path` (open with `O_NOFOLLOW|O_NONBLOCK`,
    /// read, close). Fails with EFBIG, reading no more than `limit + 1`
    /// bytes, when the file holds more than `limit` bytes: a record planted
    /// as a 1 GiB sparse file costs nothing to refuse.
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;

    /// `open(DIR, O_TMPFILE|O_RDWR|O_CLOEXEC, 0644)`: a file with no name
    /// in `dir`'s filesystem, freed when its last description closes
    /// unless [`OpenFile::link_to`] names it first. A process that dies
    /// before naming it leaves nothing behind. `Ok(None)` where the
    /// filesystem has no `O_TMPFILE` (NFS, older kernels: EOPNOTSUPP,
    /// EISDIR): callers fall back to a named temp file.
    fn create_unnamed(&self, dir: &Path) -> io::Result<Option<Self::File>>;

    /// `link(2)`: give the inode named `original` the new name `link`.
    /// Fails with `AlreadyExists` if `link` exists: an atomic no-clobber
    /// publish. Kernel locks held on the inode survive the new name.
    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()>;

    /// `rename(2)`: atomically replace `to` with `from`; no observer ever
    /// finds `to` missing.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// `unlink(2)`: remove one name. Open descriptions keep the inode (and
    /// their kernel locks) alive until closed.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Names in a directory, without `.` and `..`, in no particular order:
    /// callers must not depend on it.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;

    /// `stat(2)`, following symlinks.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;

    /// `lstat(2)`: the name itself, a symlink not followed.
    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata>;

    /// Set the modification time of the file at `path` (`utimensat`).
    fn set_modified(&self, path: &Path, time: SystemTime) -> io::Result<()>;

    /// `mkdir(2)`, mode 0755: atomic; `AlreadyExists` if the name exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// `fsync(2)` on a directory: makes the entries created, renamed or
    /// removed in it durable. Until then a machine crash may undo them.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// `statfs(2)`: what kind of filesystem holds `path`.
    fn fs_kind(&self, path: &Path) -> io::Result<FsKind>;

    /// `realpath(3)`: the absolute path with symlinks, `.` and `..` resolved.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
}

/// Calls on an open file description.
pub trait OpenFile: std::fmt::Debug {
    /// `fstat(2)`.
    fn metadata(&self) -> io::Result<Metadata>;

    /// Read the whole file from offset 0 (`pread` until end of file).
    /// Fails with EFBIG, reading no more than `limit + 1` bytes, when the
    /// file holds more than `limit` bytes.
    fn read_all(&self, limit: u64) -> io::Result<Vec<u8>>;

    /// `pwrite` all of `buf` at `offset`. Data is in the page cache only:
    /// durable after [`OpenFile::sync_all`].
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// `linkat(2)` of this description's inode to `path`
    /// (`/proc/self/fd/N` with `AT_SYMLINK_FOLLOW`): EEXIST if `path`
    /// exists, so like [`Fs::hard_link`] it publishes without clobbering.
    /// Names a file from [`Fs::create_unnamed`]; ENOENT for any other inode
    /// that has no name left. Kernel locks held on it are kept.
    fn link_to(&self, path: &Path) -> io::Result<()>;

    /// `fchmod(2)`: set the permission bits (not masked by the umask).
    fn set_permissions(&self, mode: u32) -> io::Result<()>;

    /// `fchown(2)`: set owner and group. EPERM unless permitted (root, or
    /// the owner giving the file to a group of its own).
    fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()>;

    /// `ftruncate(2)`.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// `fsync(2)`: data and metadata of this inode become durable (not its
    /// directory entry; see [`Fs::sync_dir`]).
    fn sync_all(&self) -> io::Result<()>;

    /// `futimens(2)`: set the modification time of this inode, whatever
    /// name it has now, or none.
    fn set_modified(&self, time: SystemTime) -> io::Result<()>;

    /// `flock(LOCK_EX|LOCK_NB)`. `Ok(false)` when another open file
    /// description holds the lock. The lock belongs to this description and
    /// is released by [`OpenFile::unlock`], by closing it, or by the death
    /// of the last process holding it.
    fn try_lock(&self) -> io::Result<bool>;

    /// `flock(LOCK_EX)`, woken by the kernel when the holder releases (no
    /// polling). With a timeout, `Ok(false)` once it has passed without the
    /// lock. After `Ok(false)` this description must not be locked again:
    /// drop it and open a new one.
    fn lock(&self, timeout: Option<Duration>) -> io::Result<bool>;

    /// `flock(LOCK_SH|LOCK_NB)`: any number of descriptions may hold the
    /// shared lock at once, none while one holds the exclusive lock. On a
    /// description that holds either lock, converts it (not atomically:
    /// flock(2) drops the old lock first).
    fn try_lock_shared(&self) -> io::Result<bool>;

    /// `flock(LOCK_SH)`, woken by the kernel, with [`OpenFile::lock`]'s
    /// timeout rules.
    fn lock_shared(&self, timeout: Option<Duration>) -> io::Result<bool>;

    /// `flock(LOCK_UN)`.
    fn unlock(&self) -> io::Result<()>;
}

/// A point on a process's monotonic clock, in nanoseconds since an arbitrary
/// origin. Comparable only with other readings of the same process's clock,
/// and never with wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime {
    pub nanos: u64,
}

impl MonoTime {
    pub fn saturating_add(self, d: Duration) -> MonoTime {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        MonoTime {
            nanos: self.nanos.saturating_add(add),
        }
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

/// Time as one process sees it.
pub trait Clock {
    /// Wall-clock time: may be skewed against other processes' clocks and may
    /// jump (NTP steps, suspend). Use it to stamp records for humans, never
    /// to measure how long something took.
    fn wall(&self) -> SystemTime;

    /// Monotonic time: never goes backwards; the only clock for timeouts and
    /// staleness.
    fn monotonic(&self) -> MonoTime;

    /// Block this process for `d`.
    fn sleep(&self, d: Duration);

    /// `CLOCK_BOOTTIME`: time since this machine booted, suspend included.
    /// One clock for every process of one boot, so readings of different
    /// processes compare, as long as their boot ids match; never across
    /// boots or hosts.
    fn since_boot(&self) -> Duration;
}

/// Who a process is, in the terms other processes can check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22):
    /// `(pid, start_time)` names one process per boot.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id`: changes every boot.
    pub boot_id: String,
    /// Inode of `/proc/self/ns/pid`: pids mean nothing across namespaces.
    pub pid_ns: u64,
    pub host: String,
}

/// What became of a recorded process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// No such pid, or it has exited and is a zombie.
    Dead,
    /// The pid is alive but belongs to a later process (start time differs).
    Reused {
        start_time: u64,
    },
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Liveness::Alive => f.write_str("alive"),
            Liveness::Dead => f.write_str("dead"),
            Liveness::Reused { start_time } => write!(f, "reused (start time {start_time})"),
        }
    }
}

/// The process table, as seen from this process.
pub trait Processes {
    /// This process.
    fn identity(&self) -> &ProcessIdentity;

    /// Whether `pid` in this pid namespace is still the process that started
    /// at `start_time`.
    fn liveness(&self, pid: u32, start_time: u64) -> io::Result<Liveness>;
}

/// Randomness (tokens, jitter). Deterministic in the simulator.
pub trait Random {
    fn random_u64(&self) -> u64;
}

/// Everything a protocol may touch.
pub trait Env: Fs + Clock + Processes + Random {}

impl<T: Fs + Clock + Processes + Random> Env for T {}
