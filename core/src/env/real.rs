//! The real environment: Linux system calls through std, and rustix where
//! std has no call (`statfs`, `getrandom`, descriptor flags).
//!
//! This is the only module of baton that touches the outside world; the
//! workspace `clippy.toml` denies the std calls everywhere else.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use super::handoff::Handoff;
use super::{
    Clock, FileId, Fs, FsKind, Liveness, Metadata, MonoTime, OpenFile, ProcessIdentity, Processes,
    Random,
};

/// `O_NOFOLLOW | O_NONBLOCK`: never through a symlink, never blocked by a
/// FIFO or device planted where a file was expected.
const NO_FOLLOW: i32 =
    rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32;

/// EFBIG ("File too large"), for a file longer than its reader's limit.
fn too_large() -> io::Error {
    io::Error::from_raw_os_error(27)
}

/// The machine baton runs on.
#[derive(Debug)]
pub struct RealEnv {
    identity: ProcessIdentity,
    /// SplitMix64's counter, seeded from `getrandom` once: a random value
    /// then costs no system call (two per lock acquisition did).
    rng: AtomicU64,
}

impl RealEnv {
    /// Reads this process's identity from `/proc`.
    pub fn new() -> io::Result<RealEnv> {
        let pid = std::process::id();
        let stat = std::fs::read(format!("/proc/{pid}/stat"))?;
        let start_time = parse_start_time(&stat).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/self/stat")
        })?;
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
            .trim()
            .to_owned();
        let pid_ns = std::fs::metadata("/proc/self/ns/pid")?.ino();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?
            .trim()
            .to_owned();
        Ok(RealEnv {
            identity: ProcessIdentity {
                pid,
                start_time,
                boot_id,
                pid_ns,
                host,
            },
            rng: AtomicU64::new(os_random_u64()),
        })
    }
}

/// Field 22 (`starttime`) of `/proc/PID/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted from the last `)`.
/// Returns the state letter too, since a zombie has exited.
fn parse_stat(stat: &[u8]) -> Option<(u8, u64)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields 4..=21 precede starttime: skip 18 of them.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn parse_start_time(stat: &[u8]) -> Option<u64> {
    parse_stat(stat).map(|(_, start)| start)
}

fn metadata_of(m: &std::fs::Metadata) -> io::Result<Metadata> {
    Ok(Metadata {
        id: FileId {
            dev: m.dev(),
            ino: m.ino(),
        },
        len: m.len(),
        modified: m.modified()?,
        is_dir: m.is_dir(),
        is_file: m.is_file(),
        is_symlink: m.file_type().is_symlink(),
        nlink: m.nlink(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    })
}

// statfs(2) magic numbers of filesystems whose advisory locks are emulated,
// lost on partition, or known to hang (rust-lang/cargo#2615).
const NETWORK_FS: &[(i64, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse"),
    (0x00C3_6400, "ceph"),
    (0x0102_1997, "9p"),
    (0x5346_414F, "afs"),
    (0x0BD0_0BD0, "lustre"),
    (0x4753_5446, "gpfs"),
];

impl Fs for RealEnv {
    type File = RealFile;

    fn create_new(&self, path: &Path) -> io::Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)?;
        Ok(RealFile::new(file))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(0o644)
            .custom_flags(NO_FOLLOW)
            .open(path)?;
        Ok(RealFile::new(file))
    }

    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(NO_FOLLOW)
            .open(path)?;
        RealFile::new(file).read_all(limit)
    }

    fn create_unnamed(&self, dir: &Path) -> io::Result<Option<RealFile>> {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::TMPFILE.bits() as i32)
            .open(dir);
        match opened {
            Ok(file) => Ok(Some(RealFile::new(file))),
            // EOPNOTSUPP: the filesystem has none; EISDIR: nor the kernel.
            Err(e) if matches!(e.raw_os_error(), Some(95) | Some(21)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        std::fs::hard_link(original, link)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        metadata_of(&std::fs::metadata(path)?)
    }

    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        metadata_of(&std::fs::symlink_metadata(path)?)
    }

    fn set_modified(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        File::open(path)?.set_modified(time)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o755).create(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn fs_kind(&self, path: &Path) -> io::Result<FsKind> {
        let stat = rustix::fs::statfs(path)?;
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
        let magic = stat.f_type as i64;
        let Some(&(_, name)) = NETWORK_FS.iter().find(|(m, _)| *m == magic) else {
            return Ok(FsKind::Local);
        };
        // Only NFS has the option; an unreadable mount table is treated
        // as the default (locks reach the server).
        let host_local_locks = name == "nfs"
            && match (
                std::fs::read_to_string("/proc/self/mountinfo"),
                path.canonicalize(),
            ) {
                (Ok(table), Ok(path)) => mountinfo_host_local_locks(&table, &path),
                _ => false,
            };
        Ok(FsKind::Network {
            name,
            host_local_locks,
        })
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }
}

/// An open file description on the real machine.
#[derive(Debug)]
pub struct RealFile {
    file: File,
    /// Set once a timed [`OpenFile::lock`] gave up while its helper thread
    /// still blocks in `flock` on this description: locking it again could
    /// be undone by that thread, so it must be dropped instead.
    abandoned_wait: AtomicBool,
}

impl RealFile {
    fn new(file: File) -> RealFile {
        RealFile {
            file,
            abandoned_wait: AtomicBool::new(false),
        }
    }

    /// The open file description this process inherited as descriptor
    /// `fd` (a shell's `9>file`), through a duplicate of our own: `flock`
    /// locks belong to the description, so a lock taken here stays with
    /// the parent's descriptor after this process exits (`flock 9`).
    /// EBADF if `fd` is not open.
    pub fn inherited(fd: i32) -> io::Result<RealFile> {
        // Open descriptors are listed in /proc/self/fd: check before
        // borrowing, since a borrowed descriptor must be open.
        if fd < 0 || std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            return Err(io::Error::from_raw_os_error(9));
        }
        // SAFETY: `fd` is open (just checked, and nothing in this process
        // closes descriptors it did not open), and the borrow ends with
        // this call, before anything could close it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let ours = rustix::io::fcntl_dupfd_cloexec(borrowed, 0)?;
        Ok(RealFile::new(File::from(ours)))
    }

    fn assert_not_abandoned(&self) {
        assert!(
            !self.abandoned_wait.load(Ordering::Relaxed),
            "locking a description whose timed wait was abandoned"
        );
    }

    /// Let child processes inherit this descriptor (clear `FD_CLOEXEC`), so
    /// a kernel lock on it stays held while a child runs, even if this
    /// process is killed: what util-linux flock(1) does.
    pub fn set_inheritable(&self) -> io::Result<()> {
        rustix::io::fcntl_setfd(self.file.as_fd(), rustix::io::FdFlags::empty())?;
        Ok(())
    }
}

impl OpenFile for RealFile {
    fn metadata(&self) -> io::Result<Metadata> {
        metadata_of(&self.file.metadata()?)
    }

    fn read_all(&self, limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // Ask for at most one byte past the limit: enough to know.
            let room = limit.saturating_add(1).saturating_sub(out.len() as u64);
            let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let n = self.file.read_at(&mut buf[..want], out.len() as u64)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() as u64 > limit {
                return Err(too_large());
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn link_to(&self, path: &Path) -> io::Result<()> {
        // linkat(fd, "", ..., AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the
        // /proc link of the descriptor does the same for anyone.
        let proc = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc.as_str(),
            rustix::fs::CWD,
            path,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )?;
        Ok(())
    }

    fn set_permissions(&self, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.file
            .set_permissions(std::fs::Permissions::from_mode(mode))
    }

    fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::fchown(&self.file, Some(uid), Some(gid))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn set_modified(&self, time: SystemTime) -> io::Result<()> {
        self.file.set_modified(time)
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.try_lock_as(Share::Exclusive)
    }

    fn lock(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.lock_as(Share::Exclusive, timeout)
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.try_lock_as(Share::Shared)
    }

    fn lock_shared(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.lock_as(Share::Shared, timeout)
    }

    fn unlock(&self) -> io::Result<()> {
        self.file.unlock()
    }
}

/// Which `flock` lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Share {
    Exclusive,
    Shared,
}

fn flock_as(file: &File, how: Share) -> io::Result<()> {
    match how {
        Share::Exclusive => file.lock(),
        Share::Shared => file.lock_shared(),
    }
}

impl RealFile {
    fn try_lock_as(&self, how: Share) -> io::Result<bool> {
        self.assert_not_abandoned();
        let tried = match how {
            Share::Exclusive => self.file.try_lock(),
            Share::Shared => self.file.try_lock_shared(),
        };
        match tried {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    fn lock_as(&self, how: Share, timeout: Option<Duration>) -> io::Result<bool> {
        self.assert_not_abandoned();
        let Some(timeout) = timeout else {
            flock_as(&self.file, how)?;
            return Ok(true);
        };
        if self.try_lock_as(how)? {
            return Ok(true);
        }
        // flock(2) has no timeout. A helper thread blocks in it on a clone of
        // this descriptor (the lock belongs to the shared open file
        // description), so the kernel wakes us; the hand-off decides whether
        // a lock that arrives after the deadline is ours or is given back.
        let clone = self.file.try_clone()?;
        let handoff = Arc::new(Handoff::default());
        let theirs = Arc::clone(&handoff);
        std::thread::Builder::new()
            .name("baton-flock-wait".into())
            .spawn(move || {
                let result = flock_as(&clone, how);
                if let Some(Ok(())) = theirs.deliver(result) {
                    // The waiter gave up: give the lock back.
                    let _ = clone.unlock();
                }
            })?;
        let deadline = Instant::now() + timeout;
        let outcome = handoff.wait(|| {
            let now = Instant::now();
            (now < deadline).then(|| deadline - now)
        });
        match outcome {
            Some(result) => result.map(|()| true),
            None => {
                // The helper may still take the lock later and give it back.
                self.abandoned_wait.store(true, Ordering::Relaxed);
                Ok(false)
            }
        }
    }
}

/// Process-wide origin of [`MonoTime`] readings.
fn mono_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for RealEnv {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> MonoTime {
        let origin = mono_origin();
        let nanos = Instant::now().duration_since(origin).as_nanos();
        MonoTime {
            nanos: u64::try_from(nanos).unwrap_or(u64::MAX),
        }
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }

    fn since_boot(&self) -> Duration {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
}

impl Processes for RealEnv {
    fn identity(&self) -> &ProcessIdentity {
        &self.identity
    }

    fn liveness(&self, pid: u32, start_time: u64) -> io::Result<Liveness> {
        let stat = match std::fs::read(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat,
            // ESRCH: the process exited between readdir and read.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
                return Ok(Liveness::Dead);
            }
            Err(e) => return Err(e),
        };
        let (state, actual) = parse_stat(&stat).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat")
        })?;
        Ok(if actual != start_time {
            Liveness::Reused { start_time: actual }
        } else if matches!(state, b'Z' | b'X') {
            // A zombie has exited: its descriptors and locks are gone.
            Liveness::Dead
        } else {
            Liveness::Alive
        })
    }
}

impl Random for RealEnv {
    /// SplitMix64 (Steele, Lea, Flood 2014): a bijective mix of a counter,
    /// so one environment never returns a value twice in 2^64 calls, and
    /// two processes' streams start at independent random points. Tokens
    /// and temp names need uniqueness, not secrecy. (A process that forks
    /// without exec duplicates the stream: give the child its own
    /// `RealEnv`.)
    fn random_u64(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// 64 bits from the kernel's random source.
fn os_random_u64() -> u64 {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
    u64::from_le_bytes(buf)
}

/// Whether the mount holding `path` (canonical) is NFS mounted with
/// `local_lock=flock` or `local_lock=all`, by `/proc/self/mountinfo`: the
/// mount with the longest mount point above `path`, the last one listed
/// where several are stacked.
fn mountinfo_host_local_locks(table: &str, path: &Path) -> bool {
    let mut best: Option<(usize, bool)> = None;
    for line in table.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(point), Some(options), Some(fstype)) = (left.get(4), left.get(5), right.first())
        else {
            continue;
        };
        let point = unescape_octal(point);
        if !path.starts_with(&point) {
            continue;
        }
        let depth = Path::new(&point).components().count();
        let local = fstype.starts_with("nfs")
            && [Some(options), right.get(2)]
                .into_iter()
                .flatten()
                .any(|opts| {
                    opts.split(',')
                        .any(|o| o == "local_lock=flock" || o == "local_lock=all")
                });
        if best.is_none_or(|(d, _)| depth >= d) {
            best = Some((depth, local));
        }
    }
    best.is_some_and(|(_, local)| local)
}

/// Undoes mountinfo's escapes (`\040` for a space, and so on).
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_fields_from_the_last_paren() {
        let stat =
            b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some((b'S', 987654)));
        assert_eq!(parse_stat(b"42 (no close"), None);
        assert_eq!(parse_stat(b"42 (x) S 1 2"), None);
    }

    #[test]
    fn own_process_is_alive_and_a_different_start_time_is_reuse() {
        let env = RealEnv::new().unwrap();
        let me = env.identity().clone();
        assert_eq!(
            env.liveness(me.pid, me.start_time).unwrap(),
            Liveness::Alive
        );
        assert_eq!(
            env.liveness(me.pid, me.start_time + 1).unwrap(),
            Liveness::Reused {
                start_time: me.start_time
            }
        );
        // pid_max is at most 2^22 on Linux.
        assert_eq!(env.liveness(u32::MAX - 1, 1).unwrap(), Liveness::Dead);
    }

    #[test]
    fn mountinfo_finds_host_local_locks_on_the_mount_holding_the_path() {
        let table = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:50 / /mnt/shared rw,relatime shared:20 - nfs4 srv:/export rw,vers=4.2,local_lock=none,addr=10.0.0.2
41 22 0:51 / /mnt/solo rw,relatime shared:21 - nfs srv:/solo rw,vers=3,local_lock=flock,addr=10.0.0.2
42 22 0:52 / /mnt/all\\040in rw - nfs4 srv:/all rw,local_lock=all
43 41 0:53 / /mnt/solo/inner rw - nfs4 srv:/inner rw,local_lock=none
";
        let local = |p: &str| mountinfo_host_local_locks(table, Path::new(p));
        assert!(!local("/home/me/repo"), "ext4");
        assert!(!local("/mnt/shared/repo/tasks.json"), "local_lock=none");
        assert!(local("/mnt/solo/repo/tasks.json"), "local_lock=flock");
        assert!(local("/mnt/all in/x"), "local_lock=all, escaped space");
        assert!(!local("/mnt/solo/inner/x"), "the deeper mount decides");
        assert!(
            !local("/mnt/solitary/x"),
            "a prefix by components, not bytes"
        );
        assert!(!mountinfo_host_local_locks("garbage\n", Path::new("/x")));
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn proc_stat_and_mountinfo_parsers_take_any_input(
                stat in proptest::collection::vec(any::<u8>(), 0..200),
                table in ".{0,300}",
                escaped in "[ -~]{0,40}",
            ) {
                let _ = parse_stat(&stat);
                let _ = mountinfo_host_local_locks(&table, Path::new("/a/b"));
                let _ = unescape_octal(&escaped);
            }
        }
    }
}
