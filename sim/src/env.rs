//! The simulated environment: `baton-core`'s environment traits on the
//! simulated kernel. It mirrors `core/src/env/real.rs` impl for impl, in
//! trait order (`Fs`, `OpenFile`, `Clock`, `Processes`, `Random`).
//!
//! Every call is a scheduling point (see [`crate::kernel`]); faults strike
//! at that point, before the call takes effect.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_core::catalogue::Invariant;
use baton_core::env::{
    Clock, Fs, FsKind, Liveness, Metadata, MonoTime, OpenFile, ProcessIdentity, Processes, Random,
};

use crate::fault::{Fault, Site};
use crate::fs::{EIO, Failing, OfdId, SimFs};
use crate::kernel::{CALL_NS, Guard, PState, Shared, Unwind, Yield};
use crate::oracle::{Finding, Oracle};

/// One simulated process's handle on the kernel, with the yielder its
/// coroutine suspends through.
#[derive(Clone)]
pub(crate) struct Caller<'y> {
    pub shared: Arc<Shared>,
    pub slot: usize,
    pub incarnation: u32,
    pub yielder: &'y Yield,
}

fn unwind(aborted: bool) -> ! {
    // resume_unwind skips the panic hook: a simulated crash prints nothing.
    std::panic::resume_unwind(Box::new(if aborted {
        Unwind::Aborted
    } else {
        Unwind::Crashed
    }))
}

/// How a call's result reads in a trace.
pub(crate) trait Brief {
    fn brief(&self) -> String;
}

impl Brief for () {
    fn brief(&self) -> String {
        "ok".into()
    }
}

impl Brief for bool {
    fn brief(&self) -> String {
        self.to_string()
    }
}

impl Brief for OfdId {
    fn brief(&self) -> String {
        format!("fd{self}")
    }
}

/// A number that is not a descriptor.
struct Plain(u64);

impl Brief for Plain {
    fn brief(&self) -> String {
        format!("{:#x}", self.0)
    }
}

impl Brief for Vec<u8> {
    fn brief(&self) -> String {
        let text = String::from_utf8_lossy(self);
        let text = text.trim_end();
        if text.len() > 60 {
            format!(
                "{:?}... ({} bytes)",
                &text[..text.floor_char_boundary(60)],
                self.len()
            )
        } else {
            format!("{text:?}")
        }
    }
}

impl Brief for Metadata {
    fn brief(&self) -> String {
        format!(
            "ino {} len {} nlink {} mtime {}",
            self.id.ino,
            self.len,
            self.nlink,
            self.modified.brief()
        )
    }
}

impl Brief for SystemTime {
    fn brief(&self) -> String {
        let ns = match self.duration_since(crate::clock::epoch()) {
            Ok(d) => d.as_nanos() as i64,
            Err(e) => -(e.duration().as_nanos() as i64),
        };
        crate::kernel::secs(ns)
    }
}

impl Brief for MonoTime {
    fn brief(&self) -> String {
        crate::kernel::secs(self.nanos as i64)
    }
}

impl Brief for Duration {
    fn brief(&self) -> String {
        crate::kernel::secs(i64::try_from(self.as_nanos()).unwrap_or(i64::MAX))
    }
}

impl Brief for Vec<OsString> {
    fn brief(&self) -> String {
        let names: Vec<_> = self.iter().map(|n| n.to_string_lossy()).collect();
        format!("[{}]", names.join(", "))
    }
}

impl Brief for Liveness {
    fn brief(&self) -> String {
        self.to_string()
    }
}

impl Brief for FsKind {
    fn brief(&self) -> String {
        format!("{self:?}")
    }
}

impl Brief for String {
    fn brief(&self) -> String {
        self.clone()
    }
}

impl Brief for PathBuf {
    fn brief(&self) -> String {
        self.display().to_string()
    }
}

fn show<T: Brief>(r: &io::Result<T>) -> String {
    match r {
        Ok(v) => v.brief(),
        Err(e) => match e.raw_os_error() {
            Some(code) => errno_name(code).to_owned(),
            None => e.to_string(),
        },
    }
}

fn errno_name(code: i32) -> &'static str {
    match code {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        13 => "EACCES",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        28 => "ENOSPC",
        37 => "ENOLCK",
        95 => "EOPNOTSUPP",
        39 => "ENOTEMPTY",
        _ => "E?",
    }
}

impl<'y> Caller<'y> {
    /// The scheduling point at the start of every call: waits for this
    /// process's turn, then applies the fault (if any) striking `site`.
    /// `Err` is an injected error, already traced.
    fn enter(&self, site: Site, what: &dyn Fn() -> String) -> Result<Guard<'_>, io::Error> {
        if std::thread::panicking() {
            // A destructor running while the process unwinds (killed, or a
            // panic the run reports): the call fails and changes nothing,
            // and it must not suspend (see `crate::kernel`).
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let k = self.shared.lock();
        if k.is_dead(self.slot, self.incarnation) {
            let aborted = k.aborted;
            drop(k);
            unwind(aborted);
        }
        let mut k = k;
        k.pending[self.slot] = Some(site);
        let mut k = self.switch(k);
        k.pending[self.slot] = None;
        self.unwind_if_dead(&k);
        if k.strategy.take_crash(self.slot) {
            k.record(self.slot, || format!("CRASH (guided) in {}", what()));
            k.kill(self.slot);
            drop(k);
            unwind(false)
        }
        if !k.in_fault_phase() {
            return Ok(k);
        }
        let targets = k.foreign_targets.len();
        if let Some((target, act)) = k.faults.foreign_strike(targets) {
            k.foreign(target, act);
        }
        let step = k.step;
        match k.faults.strike(site, step) {
            None => Ok(k),
            Some(Fault::Crash) => {
                k.record(self.slot, || format!("CRASH in {}", what()));
                k.kill(self.slot);
                drop(k);
                unwind(false)
            }
            Some(Fault::MachineCrash) => {
                k.record(self.slot, || format!("MACHINE CRASH in {}", what()));
                k.machine_crash();
                drop(k);
                unwind(false)
            }
            Some(Fault::Pause { ns })
                if k.faults
                    .pause_total_ns
                    .is_some_and(|cap| k.procs[self.slot].paused_ns + ns > cap) =>
            {
                // Beyond the scenario's pause assumption: no pause.
                Ok(k)
            }
            Some(Fault::Pause { ns }) => {
                k.procs[self.slot].paused_ns += ns;
                k.record(self.slot, || {
                    format!("PAUSE {}s before {}", ns / 1_000_000_000, what())
                });
                let until = k.now + ns;
                k.mark("pause");
                k.procs[self.slot].state = PState::Paused { until };
                let k = self.switch(k);
                self.unwind_if_dead(&k);
                Ok(k)
            }
            Some(Fault::Foreign) => {
                if !k.foreign_targets.is_empty() {
                    k.foreign(0, crate::fault::Foreign::Remove);
                }
                Ok(k)
            }
            Some(Fault::Io { errno }) => {
                k.mark("io-error");
                k.procs[self.slot].injected += 1;
                k.now += CALL_NS;
                k.record(self.slot, || {
                    format!("{} -> {} (injected)", what(), errno_name(errno))
                });
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }

    /// Lets the scheduler run whoever is next; returns on this process's
    /// next turn.
    fn switch<'a>(&'a self, k: Guard<'a>) -> Guard<'a> {
        self.shared.switch(k, Some((self.slot, self.yielder)))
    }

    fn unwind_if_dead(&self, k: &Guard<'_>) {
        if k.is_dead(self.slot, self.incarnation) {
            unwind(k.aborted);
        }
    }

    /// One non-blocking call: enter, run `op` on the kernel, trace it.
    fn call<T: Brief>(
        &self,
        site: Site,
        what: &dyn Fn() -> String,
        op: impl FnOnce(&mut Guard<'_>, usize) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut k = self.enter(site, what)?;
        let r = op(&mut k, self.slot);
        k.now += CALL_NS;
        k.record(self.slot, || format!("{} -> {}", what(), show(&r)));
        r
    }

    fn wall(&self, k: &Guard<'_>) -> SystemTime {
        k.procs[self.slot].clock.wall(k.now)
    }
}

/// One simulated process's environment.
pub struct SimEnv<'y> {
    caller: Caller<'y>,
    identity: ProcessIdentity,
}

impl std::fmt::Debug for SimEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimEnv(p{} pid {})", self.caller.slot, self.identity.pid)
    }
}

impl<'y> SimEnv<'y> {
    pub(crate) fn new(shared: Arc<Shared>, slot: usize, yielder: &'y Yield) -> SimEnv<'y> {
        let k = shared.lock();
        let p = &k.procs[slot];
        let (host, boot_id) = k.host_and_boot(slot);
        let identity = ProcessIdentity {
            pid: p.pid,
            start_time: p.start_time,
            boot_id,
            pid_ns: 4_026_531_836,
            host,
        };
        let incarnation = p.incarnation;
        drop(k);
        SimEnv {
            caller: Caller {
                shared,
                slot,
                incarnation,
                yielder,
            },
            identity,
        }
    }

    /// This process's slot (`p<N>` in traces).
    pub fn slot(&self) -> usize {
        self.caller.slot
    }

    /// Runs one git command of the simulated git ([`crate::git`]) on the
    /// filesystem as a single call: a crash strikes before it or after it,
    /// never inside. git runs as its own process, which outlives a
    /// `baton` killed meanwhile, and publishes everything it writes by
    /// lock-and-rename with `core.fsync=committed,index` (which baton's
    /// real git calls set), so a machine crash too finds it done or not.
    pub fn git_command(
        &self,
        what: &dyn Fn() -> String,
        op: impl FnOnce(&mut SimFs, SystemTime) -> io::Result<String>,
    ) -> io::Result<String> {
        let c = &self.caller;
        c.call(Site::Git, what, |k, _| {
            let now = c.wall(k);
            op(&mut k.fs, now)
        })
    }

    fn file(&self, ofd: OfdId) -> SimFile<'y> {
        SimFile {
            caller: self.caller.clone(),
            ofd,
        }
    }
}

fn d(p: &Path) -> String {
    p.display().to_string()
}

impl<'y> Fs for SimEnv<'y> {
    type File = SimFile<'y>;

    fn create_new(&self, path: &Path) -> io::Result<SimFile<'y>> {
        let c = &self.caller;
        c.call(
            Site::CreateNew,
            &|| format!("create_new({})", d(path)),
            |k, slot| {
                let now = c.wall(k);
                k.fs.create_new(path, slot, now)
            },
        )
        .map(|ofd| self.file(ofd))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<SimFile<'y>> {
        let c = &self.caller;
        c.call(
            Site::Open,
            &|| format!("open({}, create={create})", d(path)),
            |k, slot| {
                if let Some((failing, f)) = &mut k.fs.open_fails
                    && failing == path
                    && let Some(e) = f.strike()
                {
                    return Err(e);
                }
                let now = c.wall(k);
                k.fs.open(path, create, slot, now)
            },
        )
        .map(|ofd| self.file(ofd))
    }

    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        self.caller
            .call(Site::Read, &|| format!("read({})", d(path)), |k, _| {
                k.fs.read(path, limit)
            })
    }

    fn create_unnamed(&self, dir: &Path) -> io::Result<Option<SimFile<'y>>> {
        let c = &self.caller;
        // A filesystem setting, fixed before the run: no scheduling point.
        if c.shared.lock().fs.no_tmpfile {
            return Ok(None);
        }
        c.call(
            Site::CreateUnnamed,
            &|| format!("create_unnamed({})", d(dir)),
            |k, slot| {
                let now = c.wall(k);
                k.fs.create_unnamed(dir, slot, now)
            },
        )
        .map(|ofd| Some(self.file(ofd)))
    }

    fn hard_link(&self, original: &Path, link: &Path) -> io::Result<()> {
        self.caller.call(
            Site::HardLink,
            &|| format!("hard_link({}, {})", d(original), d(link)),
            |k, _| k.fs.hard_link(original, link),
        )
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.caller.call(
            Site::Rename,
            &|| format!("rename({}, {})", d(from), d(to)),
            |k, slot| {
                // Moving another tool's file is allowed (it must be back by
                // healing); replacing its last name deletes it.
                if let Some(ino) = k.fs.inode_of(to)
                    && k.fs.nlink(ino) == 1
                {
                    k.check_foreign(slot, ino, &format!("renamed over {}", d(to)));
                }
                k.fs.rename(from, to)
            },
        )
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.caller.call(
            Site::RemoveFile,
            &|| format!("remove_file({})", d(path)),
            |k, slot| {
                // Dropping one of several names deletes nothing.
                if let Some(ino) = k.fs.inode_of(path)
                    && k.fs.nlink(ino) == 1
                {
                    k.check_foreign(slot, ino, &format!("removed {}", d(path)));
                }
                k.fs.remove_file(path)
            },
        )
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        self.caller.call(
            Site::ReadDir,
            &|| format!("read_dir({})", d(path)),
            |k, _| {
                let mut names = k.fs.read_dir(path)?;
                // Directory order is the filesystem's, not sorted.
                for i in (1..names.len()).rev() {
                    let j = k.rng.below(i as u64 + 1) as usize;
                    names.swap(i, j);
                }
                Ok(names)
            },
        )
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.caller.call(
            Site::Metadata,
            &|| format!("metadata({})", d(path)),
            |k, _| k.fs.metadata(path),
        )
    }

    /// The simulated filesystem has no symlinks: `lstat` is `stat`.
    fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.caller.call(
            Site::Metadata,
            &|| format!("symlink_metadata({})", d(path)),
            |k, _| k.fs.metadata(path),
        )
    }

    fn set_modified(&self, path: &Path, time: SystemTime) -> io::Result<()> {
        self.caller.call(
            Site::SetModified,
            &|| format!("set_modified({})", d(path)),
            |k, slot| {
                if let Some(ino) = k.fs.inode_of(path) {
                    k.check_foreign(slot, ino, &format!("touched {}", d(path)));
                }
                k.fs.set_modified(path, time)
            },
        )
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let c = &self.caller;
        c.call(
            Site::CreateDir,
            &|| format!("create_dir({})", d(path)),
            |k, _| {
                let now = c.wall(k);
                k.fs.create_dir(path, now)
            },
        )
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.caller.call(
            Site::SyncDir,
            &|| format!("sync_dir({})", d(path)),
            |k, _| k.fs.sync_dir(path),
        )
    }

    fn fs_kind(&self, path: &Path) -> io::Result<FsKind> {
        self.caller
            .call(Site::FsKind, &|| format!("fs_kind({})", d(path)), |k, _| {
                k.fs.metadata(path).map(|_| match k.fs.network {
                    None => FsKind::Local,
                    Some(name) => FsKind::Network {
                        name,
                        host_local_locks: k.fs.host_local_locks,
                    },
                })
            })
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        self.caller.call(
            Site::Canonicalize,
            &|| format!("canonicalize({})", d(path)),
            |k, _| k.fs.canonicalize(path),
        )
    }
}

/// An open file description in the simulated kernel.
pub struct SimFile<'y> {
    caller: Caller<'y>,
    ofd: OfdId,
}

impl std::fmt::Debug for SimFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimFile(p{} ofd {})", self.caller.slot, self.ofd)
    }
}

impl SimFile<'_> {
    fn call<T: Brief>(
        &self,
        site: Site,
        name: &str,
        op: impl FnOnce(&mut Guard<'_>, OfdId) -> io::Result<T>,
    ) -> io::Result<T> {
        let ofd = self.ofd;
        self.caller
            .call(site, &|| format!("{name}(fd{ofd})"), |k, _| {
                if !k.fs.is_open(ofd) {
                    // Closed under us by a machine crash.
                    return Err(io::Error::from_raw_os_error(EIO));
                }
                op(k, ofd)
            })
    }
}

impl OpenFile for SimFile<'_> {
    fn metadata(&self) -> io::Result<Metadata> {
        self.call(Site::FileMetadata, "fstat", |k, ofd| Ok(k.fs.fstat(ofd)))
    }

    fn read_all(&self, limit: u64) -> io::Result<Vec<u8>> {
        self.call(Site::ReadAll, "read_all", |k, ofd| {
            k.fs.read_all(ofd, limit)
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let c = &self.caller;
        self.call(Site::WriteAllAt, "write_all_at", |k, ofd| {
            if let Some(e) = k.fs.write_fails.as_mut().and_then(Failing::strike) {
                return Err(e);
            }
            let now = c.wall(k);
            let ino = k.fs.fstat(ofd).id.ino;
            k.check_foreign(c.slot, ino, "wrote into a file");
            k.fs.write_all_at(ofd, buf, offset, now);
            Ok(())
        })
    }

    fn link_to(&self, path: &Path) -> io::Result<()> {
        self.call(Site::LinkTo, &format!("link_to({})", d(path)), |k, ofd| {
            k.fs.link_to(ofd, path)
        })
    }

    fn set_permissions(&self, mode: u32) -> io::Result<()> {
        self.call(Site::SetPermissions, "set_permissions", |k, ofd| {
            k.fs.set_permissions(ofd, mode);
            Ok(())
        })
    }

    fn set_owner(&self, uid: u32, gid: u32) -> io::Result<()> {
        self.call(Site::SetOwner, "set_owner", |k, ofd| {
            k.fs.set_owner(ofd, uid, gid)
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let c = &self.caller;
        self.call(Site::SetLen, "set_len", |k, ofd| {
            let now = c.wall(k);
            let ino = k.fs.fstat(ofd).id.ino;
            k.check_foreign(c.slot, ino, "truncated a file");
            k.fs.set_len(ofd, len, now);
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.call(Site::SyncAll, "sync_all", |k, ofd| {
            k.fs.sync_all(ofd);
            Ok(())
        })
    }

    fn set_modified(&self, time: SystemTime) -> io::Result<()> {
        let c = &self.caller;
        self.call(Site::FileSetModified, "futimens", |k, ofd| {
            let ino = k.fs.fstat(ofd).id.ino;
            k.check_foreign(c.slot, ino, "touched a file");
            k.fs.fset_modified(ofd, time);
            Ok(())
        })
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.call(Site::TryLock, "try_lock", |k, ofd| {
            no_flock(k)?;
            if let Some(e) = k.fs.try_lock_fails.as_mut().and_then(Failing::strike) {
                return Err(e);
            }
            Ok(k.fs.try_lock(ofd))
        })
    }

    fn lock(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.lock_with("lock", SimFs::try_lock, timeout)
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.call(Site::TryLock, "try_lock_shared", |k, ofd| {
            no_flock(k)?;
            Ok(k.fs.try_lock_shared(ofd))
        })
    }

    fn lock_shared(&self, timeout: Option<Duration>) -> io::Result<bool> {
        self.lock_with("lock_shared", SimFs::try_lock_shared, timeout)
    }

    fn unlock(&self) -> io::Result<()> {
        self.call(Site::Unlock, "unlock", |k, ofd| {
            no_flock(k)?;
            if let Some(ino) = k.fs.unlock(ofd) {
                k.wake_lock_waiters(&[ino]);
            }
            Ok(())
        })
    }
}

impl SimFile<'_> {
    /// A blocking `flock`: tries with `take`, else blocks until a holder
    /// lets go (woken, not polling) or the deadline passes.
    fn lock_with(
        &self,
        name: &str,
        take: fn(&mut SimFs, OfdId) -> bool,
        timeout: Option<Duration>,
    ) -> io::Result<bool> {
        let c = &self.caller;
        let ofd = self.ofd;
        let what = || format!("{name}(fd{ofd}, timeout={timeout:?})");
        let mut k = c.enter(Site::Lock, &what)?;
        if let Err(e) = no_flock(&k) {
            k.now += CALL_NS;
            k.record(c.slot, || format!("{} -> EOPNOTSUPP", what()));
            return Err(e);
        }
        let deadline = timeout.map(|t| k.now + u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        loop {
            k.now += CALL_NS;
            if !k.fs.is_open(ofd) {
                k.record(c.slot, || format!("{} -> EIO", what()));
                return Err(io::Error::from_raw_os_error(EIO));
            }
            if take(&mut k.fs, ofd) {
                k.record(c.slot, || format!("{} -> acquired", what()));
                return Ok(true);
            }
            if deadline.is_some_and(|d| k.now >= d) {
                k.record(c.slot, || format!("{} -> timed out", what()));
                return Ok(false);
            }
            let ino = k.fs.fstat(ofd).id.ino;
            k.record(c.slot, || format!("{} -> blocked", what()));
            k.procs[c.slot].state = PState::Blocked {
                ino,
                until: deadline,
            };
            k = c.switch(k);
            c.unwind_if_dead(&k);
        }
    }
}

/// `flock` on a filesystem that has none.
fn no_flock(k: &Guard<'_>) -> io::Result<()> {
    if k.fs.flock_unsupported {
        return Err(io::Error::from_raw_os_error(crate::fs::EOPNOTSUPP));
    }
    Ok(())
}

impl Drop for SimFile<'_> {
    fn drop(&mut self) {
        // close(2): not a scheduling point (a destructor must not block on
        // the scheduler while its process unwinds). A dead process's
        // descriptors were closed when it died.
        let mut k = self.caller.shared.lock();
        if k.fs.is_open(self.ofd) && k.fs.ofd(self.ofd).owner == self.caller.slot {
            if let Some(ino) = k.fs.close(self.ofd) {
                k.wake_lock_waiters(&[ino]);
            }
            if !k.is_dead(self.caller.slot, self.caller.incarnation) {
                let ofd = self.ofd;
                k.record(self.caller.slot, || format!("close(fd{ofd})"));
            }
        }
    }
}

impl Clock for SimEnv<'_> {
    fn wall(&self) -> SystemTime {
        let c = &self.caller;
        c.call(Site::Wall, &|| "wall()".into(), |k, _| Ok(c.wall(k)))
            .unwrap_or_else(|_| c.wall(&c.shared.lock()))
    }

    fn monotonic(&self) -> MonoTime {
        let c = &self.caller;
        let read = |k: &Guard<'_>| MonoTime {
            nanos: k.procs[c.slot].clock.monotonic_ns(k.now),
        };
        c.call(Site::Monotonic, &|| "monotonic()".into(), |k, _| {
            Ok(read(k))
        })
        .unwrap_or_else(|_| read(&c.shared.lock()))
    }

    /// The simulated machine's one clock since boot: true virtual time.
    fn since_boot(&self) -> Duration {
        let c = &self.caller;
        c.call(Site::SinceBoot, &|| "since_boot()".into(), |k, _| {
            Ok(Duration::from_nanos(k.now))
        })
        .unwrap_or_else(|_| Duration::from_nanos(c.shared.lock().now))
    }

    fn sleep(&self, d: Duration) {
        let c = &self.caller;
        let what = || format!("sleep({d:?})");
        let Ok(mut k) = c.enter(Site::Sleep, &what) else {
            return;
        };
        k.now += CALL_NS;
        k.record(c.slot, what);
        // Timer slack and scheduling latency: a sleeper wakes a little
        // late, by a different amount each time, so processes polling at
        // one period drift in and out of phase as they do on a real machine.
        let late = k.wake_latency();
        let until = k
            .now
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .saturating_add(late);
        k.procs[c.slot].state = PState::Sleeping { until };
        let k = c.switch(k);
        c.unwind_if_dead(&k);
    }
}

impl Processes for SimEnv<'_> {
    fn identity(&self) -> &ProcessIdentity {
        &self.identity
    }

    fn liveness(&self, pid: u32, start_time: u64) -> io::Result<Liveness> {
        self.caller.call(
            Site::Liveness,
            &|| format!("liveness(pid {pid}, start {start_time})"),
            |k, _| {
                let host = k.fs.host_of(self.caller.slot);
                Ok(match k.live_pid_on(host, pid) {
                    None => Liveness::Dead,
                    Some(p) if p.start_time == start_time => Liveness::Alive,
                    Some(p) => Liveness::Reused {
                        start_time: p.start_time,
                    },
                })
            },
        )
    }
}

impl Random for SimEnv<'_> {
    fn random_u64(&self) -> u64 {
        let c = &self.caller;
        c.call(Site::Random, &|| "random()".into(), |k, _| {
            Ok(Plain(k.rng.next_u64()))
        })
        .map_or(0, |p| p.0)
    }
}

/// How a simulated process tells the oracle what it is doing. Not an
/// environment call: it takes no time and is never a scheduling point.
pub struct Probe {
    shared: Arc<Shared>,
    slot: usize,
    incarnation: u32,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Probe(p{})", self.slot)
    }
}

impl Probe {
    pub(crate) fn new(shared: Arc<Shared>, slot: usize, incarnation: u32) -> Probe {
        Probe {
            shared,
            slot,
            incarnation,
        }
    }

    fn with(&self, f: impl FnOnce(&mut Guard<'_>, usize)) {
        let mut k = self.shared.lock();
        if !k.is_dead(self.slot, self.incarnation) {
            f(&mut k, self.slot);
        }
    }

    fn outcome(k: &mut Guard<'_>, r: Result<(), (Invariant, String)>) {
        if let Err((inv, detail)) = r {
            k.violate(Finding::Invariant(inv), detail);
        }
    }

    /// This process now holds `resource` exclusively.
    pub fn enter(&self, resource: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("ENTER {resource}"));
            let r = k.oracle.enter(slot, resource);
            Self::outcome(k, r);
        });
    }

    /// This process now reads `resource` under a shared lock.
    pub fn enter_shared(&self, resource: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("ENTER SHARED {resource}"));
            let r = k.oracle.enter_shared(slot, resource);
            Self::outcome(k, r);
        });
    }

    /// This process no longer reads `resource`.
    pub fn exit_shared(&self, resource: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("EXIT SHARED {resource}"));
            k.oracle.exit_shared(slot, resource);
        });
    }

    /// This process no longer holds `resource`.
    pub fn exit(&self, resource: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("EXIT {resource}"));
            k.oracle.exit(slot, resource);
        });
    }

    /// This process acquired `resource`'s lock (scenarios that let another
    /// tool act on lock files say so, and [`Probe::released`]).
    pub fn acquired(&self, resource: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("ACQUIRED {resource}"));
            k.acquired(slot, resource);
        });
    }

    /// This process released its lock on `resource`; `lost` is whether
    /// the release said the lock was no longer its own (`None` where the
    /// mode cannot tell: kernel mode). Where another tool
    /// removed or replaced the lock file while this process held it, a
    /// release that says nothing fails the run
    /// ([`Finding::Misreported`]).
    pub fn released(&self, resource: &str, lost: Option<bool>) {
        self.with(|k, slot| {
            k.record(slot, || {
                let how = match lost {
                    Some(true) => " (lost)",
                    Some(false) => "",
                    None => " (mode cannot tell)",
                };
                format!("RELEASED {resource}{how}")
            });
            if lost == Some(true) {
                k.mark("release-lost");
            }
            let foreign_about = k.marks.contains_key("foreign");
            if let Err(detail) = k.oracle.released(slot, resource, lost, foreign_about) {
                k.violate(Finding::Misreported, detail);
            }
        });
    }

    /// This process used up its `attempts` at a round without success:
    /// the liveness property behind bounded polls (faults heal; the work
    /// must get done).
    pub fn gave_up(&self, attempts: u32) {
        self.with(|k, slot| {
            k.violate(
                Finding::Invariant(Invariant::Liveness),
                format!("p{slot} gave up after {attempts} attempts"),
            );
        });
    }

    /// What baton told this process contradicts what happened (see
    /// [`Finding::Misreported`]).
    pub fn misreported(&self, detail: &str) {
        self.with(|k, slot| k.violate(Finding::Misreported, format!("p{slot}: {detail}")));
    }

    /// This process now acts as primary of `election`, in `epoch`.
    pub fn acting_primary(&self, election: &str, epoch: u64) {
        self.with(|k, slot| {
            k.record(slot, || format!("PRIMARY {election} epoch {epoch}"));
            let r = k.oracle.acting_primary(slot, election, epoch);
            Self::outcome(k, r);
        });
    }

    pub fn stepped_down(&self, election: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("STEPPED DOWN {election}"));
            k.oracle.stepped_down(slot, election);
        });
    }

    /// This process claimed `path` (exclusively).
    pub fn claimed(&self, path: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("CLAIMED {path}"));
            let r = k.oracle.claimed(slot, path);
            Self::outcome(k, r);
        });
    }

    pub fn unclaimed(&self, path: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("UNCLAIMED {path}"));
            k.oracle.unclaimed(slot, path);
        });
    }

    /// A commit for `task` landed changing `diff`; the task's own edits
    /// were `own`.
    pub fn committed(
        &self,
        task: &str,
        diff: &std::collections::BTreeSet<String>,
        own: &std::collections::BTreeSet<String>,
    ) {
        self.with(|k, slot| {
            k.record(slot, || format!("COMMITTED {task}"));
            let r = k.oracle.committed(task, diff, own);
            Self::outcome(k, r);
        });
    }

    /// An update to `key` was acknowledged to its caller.
    pub fn ack(&self, key: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("ACK {key}"));
            k.oracle.ack(key);
        });
    }

    /// How many I/O errors have been injected into this process's calls
    /// so far: take it before an operation, and hand it to
    /// [`Probe::error_seen`] if the operation fails.
    pub fn injected(&self) -> u32 {
        self.shared.lock().procs[self.slot].injected
    }

    /// The operation `what`, begun when [`Probe::injected`] said `before`,
    /// failed with `err`. Fine if a fault was injected into one of its
    /// calls since; otherwise production code failed on its own, and the
    /// run fails with [`Finding::UnexpectedError`].
    pub fn error_seen(&self, before: u32, what: &str, err: &dyn std::fmt::Display) {
        self.with(|k, slot| {
            k.record(slot, || format!("ERROR {what}: {err}"));
            if k.procs[slot].injected == before && !k.foreign_file_present() {
                k.violate(
                    Finding::UnexpectedError,
                    format!("p{slot}: {what} failed ({err}) with no fault injected into its calls"),
                );
            }
        });
    }

    /// The operation `what` gave up a bounded wait for another process's
    /// short hold (fence or claims directory busy). Fine if some process
    /// has been paused in this run (it may have been paused holding it);
    /// otherwise nothing held it that long, and the run fails with
    /// [`Finding::UnexpectedError`].
    pub fn busy_seen(&self, what: &str) {
        self.with(|k, slot| {
            k.record(slot, || format!("BUSY {what}"));
            if !k.marks.contains_key("pause") {
                k.violate(
                    Finding::UnexpectedError,
                    format!("p{slot}: {what} found it busy though no process was ever paused"),
                );
            }
        });
    }

    /// Counts a rare path as covered (see [`crate::Report::marks`]).
    pub fn mark(&self, name: &str) {
        self.with(|k, _| k.mark(name));
    }

    /// Checks `check` against the filesystem and oracle as they are now,
    /// from outside the simulated world (no call, no step): for invariants
    /// on durable state that must hold the moment an operation returns,
    /// such as a repository's history right after a commit, rather than
    /// only when the run ends.
    pub fn check(&self, check: impl FnOnce(&SimFs, &Oracle) -> Result<(), (Invariant, String)>) {
        self.with(|k, _| {
            let r = check(&k.fs, &k.oracle);
            Self::outcome(k, r);
        });
    }

    /// Changes the simulated world from outside it (no call, no step): a
    /// test arranging what the next calls meet, such as a write that will
    /// fail.
    pub fn arrange(&self, change: impl FnOnce(&mut SimFs)) {
        self.with(|k, _| change(&mut k.fs));
    }

    /// The scenario itself saw an invariant broken (a torn read, say).
    pub fn violated(&self, invariant: Invariant, detail: &str) {
        self.with(|k, _| k.violate(Finding::Invariant(invariant), detail.to_owned()));
    }
}
