//! The functions this library exports in glibc's place.
//!
//! Every hook does the same: if this thread is not already inside a hook,
//! a run is configured, and the call names something under the root, it
//! describes the call to the controller, waits for its go, makes the real
//! call, and reports the result; otherwise it makes the real call alone.
//! Calls that wait on something other than a file only announce the wait.

use libc::{
    AT_FDCWD, c_char, c_int, c_long, c_uint, c_void, clockid_t, iovec, mode_t, off_t, pid_t,
    size_t, ssize_t, time_t, timespec, timeval,
};

use baton_trace::{Call, Op, Wait};

use crate::conn::{self, Busy, Config};
use crate::{fds, real};

pub(crate) fn errno() -> c_int {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() }
}

pub(crate) fn set_errno(e: c_int) {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = e };
}

/// A hook's configuration, unless it must pass straight through.
pub(crate) fn start() -> Option<(Busy, &'static Config)> {
    let busy = conn::enter()?;
    Some((busy, conn::config()?))
}

/// A call's result as the controller records it: the value, or `-errno`.
trait Outcome: Copy {
    fn outcome(self, errno: c_int) -> i64;
}
impl Outcome for c_int {
    fn outcome(self, errno: c_int) -> i64 {
        if self < 0 {
            -i64::from(errno)
        } else {
            i64::from(self)
        }
    }
}
impl Outcome for ssize_t {
    fn outcome(self, errno: c_int) -> i64 {
        if self < 0 {
            -i64::from(errno)
        } else {
            self as i64
        }
    }
}
impl Outcome for *mut c_void {
    fn outcome(self, errno: c_int) -> i64 {
        if self.is_null() { -i64::from(errno) } else { 0 }
    }
}

/// Waits for the controller's go, makes the call, reports its result.
/// `wait`: the call may block on another process (a lock), so the thread
/// says so while it does.
fn scheduled<R: Outcome>(cfg: &Config, call: Call, wait: bool, f: impl FnOnce() -> R) -> R {
    if !conn::call(cfg, call) {
        return f();
    }
    let blocked = wait && conn::block(Wait::Lock);
    let r = f();
    let e = errno();
    if blocked {
        conn::unblock();
    }
    conn::done(r.outcome(e));
    set_errno(e);
    r
}

/// A call on one path.
///
/// # Safety
///
/// `p` is null or NUL-terminated.
unsafe fn on_path<R: Outcome>(
    op: Op,
    dirfd: c_int,
    p: *const c_char,
    a: i64,
    f: impl FnOnce() -> R,
) -> R {
    let Some((_busy, cfg)) = start() else {
        return f();
    };
    // SAFETY: the caller's contract.
    let Some(path) = (unsafe { fds::resolve(&cfg.root, dirfd, p) }) else {
        return f();
    };
    let mut call = Call::new(op);
    call.path = path;
    call.a = a;
    scheduled(cfg, call, false, f)
}

/// A call naming two paths (rename, link): scheduled when either is under
/// the root.
///
/// # Safety
///
/// `p` and `q` are null or NUL-terminated.
unsafe fn on_paths<R: Outcome>(
    op: Op,
    (d1, p): (c_int, *const c_char),
    (d2, q): (c_int, *const c_char),
    a: i64,
    f: impl FnOnce() -> R,
) -> R {
    let Some((_busy, cfg)) = start() else {
        return f();
    };
    // SAFETY: the caller's contract.
    let (from, to) = unsafe {
        (
            fds::resolve(&cfg.root, d1, p),
            fds::resolve(&cfg.root, d2, q),
        )
    };
    if from.is_none() && to.is_none() {
        return f();
    }
    let mut call = Call::new(op);
    call.path = from.unwrap_or_default();
    call.path2 = to.unwrap_or_default();
    call.a = a;
    scheduled(cfg, call, false, f)
}

/// A call on a descriptor: scheduled when it names a file under the root.
/// `data` gathers a write's bytes (only asked for when recording).
fn on_fd<R: Outcome>(
    op: Op,
    fd: c_int,
    a: i64,
    b: i64,
    wait: bool,
    data: impl FnOnce() -> Vec<u8>,
    f: impl FnOnce() -> R,
) -> R {
    let Some((_busy, cfg)) = start() else {
        return f();
    };
    let Some(append) = fds::ours(fd, &cfg.root) else {
        return f();
    };
    let mut call = Call::new(op);
    call.fd = fd;
    call.a = a;
    call.b = b;
    if op == Op::Write {
        if a == -1 && !append {
            // SAFETY: lseek on the caller's descriptor only reads its offset.
            call.a = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        }
        if cfg.record_data {
            call.data = data();
        }
    }
    call.path = fds::fd_path(fd)
        .and_then(|p| fds::relative(&cfg.root, &p))
        .unwrap_or_default();
    scheduled(cfg, call, wait, f)
}

fn no_data() -> Vec<u8> {
    Vec::new()
}

/// # Safety
///
/// `b` is readable for `n` bytes.
unsafe fn bytes(b: *const c_void, n: size_t) -> Vec<u8> {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(b.cast::<u8>(), n) }.to_vec()
}

/// # Safety
///
/// `v` holds `n` readable buffers.
unsafe fn gather(v: *const iovec, n: c_int) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..usize::try_from(n).unwrap_or(0) {
        // SAFETY: the caller's contract.
        let iov = unsafe { &*v.add(i) };
        // SAFETY: each buffer is readable for its length.
        out.extend_from_slice(unsafe {
            std::slice::from_raw_parts(iov.iov_base.cast::<u8>(), iov.iov_len)
        });
    }
    out
}

fn iov_len(v: *const iovec, n: c_int) -> i64 {
    (0..usize::try_from(n).unwrap_or(0))
        // SAFETY: the caller passes `n` readable entries.
        .map(|i| unsafe { (*v.add(i)).iov_len } as i64)
        .sum()
}

// ----- open and close --------------------------------------------------

/// # Safety
///
/// `p` is null or NUL-terminated.
unsafe fn opening(
    dirfd: c_int,
    p: *const c_char,
    flags: c_int,
    mode: c_uint,
    f: impl FnOnce() -> c_int,
) -> c_int {
    let Some((_busy, cfg)) = start() else {
        return f();
    };
    // SAFETY: the caller's contract.
    let Some(path) = (unsafe { fds::resolve(&cfg.root, dirfd, p) }) else {
        let fd = f();
        fds::forget(fd);
        return fd;
    };
    let mut call = Call::new(Op::Open);
    call.path = path;
    call.a = i64::from(flags);
    call.b = i64::from(mode);
    let fd = scheduled(cfg, call, false, f);
    if fd >= 0 {
        fds::opened(fd, flags);
    }
    fd
}

variants! { open, open64 => fn(p: *const c_char, f: c_int, m: c_uint) -> c_int;
|glibc| unsafe { opening(AT_FDCWD, p, f, m, glibc) } }
variants! { openat, openat64 => fn(d: c_int, p: *const c_char, f: c_int, m: c_uint) -> c_int;
|glibc| unsafe { opening(d, p, f, m, glibc) } }
variants! { __open_2, __open64_2 => fn(p: *const c_char, f: c_int) -> c_int;
|glibc| unsafe { opening(AT_FDCWD, p, f, 0, glibc) } }
variants! { __openat_2, __openat64_2 => fn(d: c_int, p: *const c_char, f: c_int) -> c_int;
|glibc| unsafe { opening(d, p, f, 0, glibc) } }
variants! { creat, creat64 => fn(p: *const c_char, m: mode_t) -> c_int;
|glibc| unsafe { opening(AT_FDCWD, p, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, m, glibc) } }

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if conn::is_own_socket(fd) {
        return 0; // the library's own socket: the program never opened it
    }
    let r = on_fd(Op::Close, fd, 0, 0, false, no_data, || unsafe {
        real::close(fd)
    });
    fds::forget(fd);
    r
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(a: c_int, b: c_int) -> c_int {
    let r = unsafe { real::dup2(a, b) };
    fds::forget(b);
    r
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(a: c_int, b: c_int, f: c_int) -> c_int {
    let r = unsafe { real::dup3(a, b, f) };
    fds::forget(b);
    r
}

// ----- reads and writes ------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, b: *mut c_void, n: size_t) -> ssize_t {
    on_fd(Op::Read, fd, -1, n as i64, false, no_data, || unsafe {
        real::read(fd, b, n)
    })
}
variants! { pread, pread64 => fn(fd: c_int, b: *mut c_void, n: size_t, o: off_t) -> ssize_t;
|glibc| on_fd(Op::Read, fd, o, n as i64, false, no_data, glibc) }
variants! { preadv, preadv64 => fn(fd: c_int, v: *const iovec, n: c_int, o: off_t) -> ssize_t;
|glibc| on_fd(Op::Read, fd, o, iov_len(v, n), false, no_data, glibc) }
variants! { pwrite, pwrite64 => fn(fd: c_int, b: *const c_void, n: size_t, o: off_t) -> ssize_t;
|glibc| on_fd(Op::Write, fd, o, n as i64, false, || unsafe { bytes(b, n) }, glibc) }
variants! { pwritev, pwritev64 => fn(fd: c_int, v: *const iovec, n: c_int, o: off_t) -> ssize_t;
|glibc| on_fd(Op::Write, fd, o, iov_len(v, n), false, || unsafe { gather(v, n) }, glibc) }
variants! { ftruncate, ftruncate64 => fn(fd: c_int, l: off_t) -> c_int;
|glibc| on_fd(Op::Truncate, fd, l, 0, false, no_data, glibc) }
variants! { truncate, truncate64 => fn(p: *const c_char, l: off_t) -> c_int;
|glibc| unsafe { on_path(Op::Truncate, AT_FDCWD, p, l, glibc) } }

#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, v: *const iovec, n: c_int) -> ssize_t {
    on_fd(Op::Read, fd, -1, iov_len(v, n), false, no_data, || unsafe {
        real::readv(fd, v, n)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, b: *const c_void, n: size_t) -> ssize_t {
    on_fd(
        Op::Write,
        fd,
        -1,
        n as i64,
        false,
        || unsafe { bytes(b, n) },
        || unsafe { real::write(fd, b, n) },
    )
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, v: *const iovec, n: c_int) -> ssize_t {
    on_fd(
        Op::Write,
        fd,
        -1,
        iov_len(v, n),
        false,
        || unsafe { gather(v, n) },
        || unsafe { real::writev(fd, v, n) },
    )
}

// ----- names -----------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn rename(a: *const c_char, b: *const c_char) -> c_int {
    unsafe {
        on_paths(Op::Rename, (AT_FDCWD, a), (AT_FDCWD, b), 0, || {
            real::rename(a, b)
        })
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn renameat(
    da: c_int,
    a: *const c_char,
    db: c_int,
    b: *const c_char,
) -> c_int {
    unsafe {
        on_paths(Op::Rename, (da, a), (db, b), 0, || {
            real::renameat(da, a, db, b)
        })
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn renameat2(
    da: c_int,
    a: *const c_char,
    db: c_int,
    b: *const c_char,
    f: c_uint,
) -> c_int {
    unsafe {
        on_paths(Op::Rename, (da, a), (db, b), i64::from(f), || {
            real::renameat2(da, a, db, b, f)
        })
    }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn link(a: *const c_char, b: *const c_char) -> c_int {
    unsafe {
        on_paths(Op::Link, (AT_FDCWD, a), (AT_FDCWD, b), 0, || {
            real::link(a, b)
        })
    }
}
/// `linkat` names an open descriptor's file two ways: `(fd, "",
/// AT_EMPTY_PATH)` and `("/proc/self/fd/N", AT_SYMLINK_FOLLOW)`, the way
/// an `O_TMPFILE` file gets its name. Either is sent with the descriptor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn linkat(
    da: c_int,
    a: *const c_char,
    db: c_int,
    b: *const c_char,
    f: c_int,
) -> c_int {
    let real = || unsafe { real::linkat(da, a, db, b, f) };
    // SAFETY: `a` is null or the caller's NUL-terminated path.
    let old = if a.is_null() {
        &[][..]
    } else {
        unsafe { std::ffi::CStr::from_ptr(a) }.to_bytes()
    };
    let source_fd = if old.is_empty() && f & libc::AT_EMPTY_PATH != 0 {
        Some(da)
    } else {
        old.strip_prefix(b"/proc/self/fd/")
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<c_int>().ok())
    };
    let Some(fd) = source_fd else {
        return unsafe { on_paths(Op::Link, (da, a), (db, b), 0, real) };
    };
    let Some((_busy, cfg)) = start() else {
        return real();
    };
    // SAFETY: `b` is the caller's NUL-terminated path.
    let to = unsafe { fds::resolve(&cfg.root, db, b) };
    if fds::ours(fd, &cfg.root).is_none() && to.is_none() {
        return real();
    }
    let mut call = Call::new(Op::Link);
    call.fd = fd;
    call.path = fds::fd_path(fd)
        .and_then(|p| fds::relative(&cfg.root, &p))
        .unwrap_or_default();
    call.path2 = to.unwrap_or_default();
    scheduled(cfg, call, false, real)
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unlink(p: *const c_char) -> c_int {
    unsafe { on_path(Op::Unlink, AT_FDCWD, p, 0, || real::unlink(p)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unlinkat(d: c_int, p: *const c_char, f: c_int) -> c_int {
    let op = if f & libc::AT_REMOVEDIR != 0 {
        Op::Rmdir
    } else {
        Op::Unlink
    };
    unsafe { on_path(op, d, p, 0, || real::unlinkat(d, p, f)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mkdir(p: *const c_char, m: mode_t) -> c_int {
    unsafe { on_path(Op::Mkdir, AT_FDCWD, p, i64::from(m), || real::mkdir(p, m)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mkdirat(d: c_int, p: *const c_char, m: mode_t) -> c_int {
    unsafe { on_path(Op::Mkdir, d, p, i64::from(m), || real::mkdirat(d, p, m)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmdir(p: *const c_char) -> c_int {
    unsafe { on_path(Op::Rmdir, AT_FDCWD, p, 0, || real::rmdir(p)) }
}

// ----- locks and durability --------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "C" fn flock(fd: c_int, op: c_int) -> c_int {
    let waits = op & libc::LOCK_NB == 0 && op & libc::LOCK_UN == 0;
    on_fd(Op::Lock, fd, i64::from(op), 0, waits, no_data, || unsafe {
        real::flock(fd, op)
    })
}

/// `fcntl`'s record locks are scheduled; a duplicated descriptor is
/// classified afresh; everything else passes through.
fn fcntl_hook(fd: c_int, cmd: c_int, arg: usize, f: impl FnOnce() -> c_int) -> c_int {
    let lock = matches!(
        cmd,
        libc::F_SETLK | libc::F_SETLKW | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    );
    if !lock {
        let r = f();
        if matches!(cmd, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) {
            fds::forget(r);
        }
        return r;
    }
    let waits = matches!(cmd, libc::F_SETLKW | libc::F_OFD_SETLKW);
    // SAFETY: for these commands `arg` is the caller's `struct flock *`.
    let kind = unsafe { (*(arg as *const libc::flock)).l_type };
    on_fd(
        Op::Lock,
        fd,
        0x100 | i64::from(cmd),
        i64::from(kind),
        waits,
        no_data,
        f,
    )
}
variants! { fcntl, fcntl64 => fn(fd: c_int, cmd: c_int, arg: usize) -> c_int;
|glibc| fcntl_hook(fd, cmd, arg, glibc) }

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fsync(fd: c_int) -> c_int {
    on_fd(Op::Sync, fd, 0, 0, false, no_data, || unsafe {
        real::fsync(fd)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fdatasync(fd: c_int) -> c_int {
    on_fd(Op::Sync, fd, 1, 0, false, no_data, || unsafe {
        real::fdatasync(fd)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sync_file_range(fd: c_int, o: off_t, n: off_t, f: c_uint) -> c_int {
    // Starts or waits for write-back of data only: no metadata, no cache
    // flush. The controller records it and grants it no durability.
    on_fd(Op::Sync, fd, 2, 0, false, no_data, || unsafe {
        real::sync_file_range(fd, o, n, f)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sync() {
    let Some((_busy, cfg)) = start() else {
        return unsafe { real::sync() };
    };
    let mut call = Call::new(Op::Sync);
    call.a = 3;
    if conn::call(cfg, call) {
        unsafe { real::sync() };
        conn::done(0);
    } else {
        unsafe { real::sync() };
    }
}

// ----- looking --------------------------------------------------------

/// An `*at` stat: one that names no path (`AT_EMPTY_PATH`) is a look at
/// an open descriptor, which is not scheduled.
///
/// # Safety
///
/// `p` is null or NUL-terminated.
unsafe fn stat_at(d: c_int, p: *const c_char, flags: c_int, f: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: the caller's contract.
    if p.is_null() || unsafe { *p } == 0 {
        return f();
    }
    let nofollow = i64::from(flags & libc::AT_SYMLINK_NOFOLLOW != 0);
    unsafe { on_path(Op::Stat, d, p, nofollow, f) }
}
variants! { stat, stat64 => fn(p: *const c_char, b: *mut c_void) -> c_int;
|glibc| unsafe { on_path(Op::Stat, AT_FDCWD, p, 0, glibc) } }
variants! { lstat, lstat64 => fn(p: *const c_char, b: *mut c_void) -> c_int;
|glibc| unsafe { on_path(Op::Stat, AT_FDCWD, p, 1, glibc) } }
variants! { fstatat, fstatat64 => fn(d: c_int, p: *const c_char, b: *mut c_void, f: c_int) -> c_int;
|glibc| unsafe { stat_at(d, p, f, glibc) } }
variants! { __xstat, __xstat64 => fn(v: c_int, p: *const c_char, b: *mut c_void) -> c_int;
|glibc| unsafe { on_path(Op::Stat, AT_FDCWD, p, 0, glibc) } }
variants! { __lxstat, __lxstat64 => fn(v: c_int, p: *const c_char, b: *mut c_void) -> c_int;
|glibc| unsafe { on_path(Op::Stat, AT_FDCWD, p, 1, glibc) } }
variants! { __fxstatat, __fxstatat64 => fn(v: c_int, d: c_int, p: *const c_char, b: *mut c_void, f: c_int) -> c_int;
|glibc| unsafe { stat_at(d, p, f, glibc) } }
variants! { scandir, scandir64 => fn(p: *const c_char, l: *mut c_void, s: *const c_void, c: *const c_void) -> c_int;
|glibc| unsafe { on_path(Op::Stat, AT_FDCWD, p, 3, glibc) } }

#[unsafe(no_mangle)]
pub unsafe extern "C" fn statx(
    d: c_int,
    p: *const c_char,
    f: c_int,
    m: c_uint,
    b: *mut c_void,
) -> c_int {
    unsafe { stat_at(d, p, f, || real::statx(d, p, f, m, b)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn access(p: *const c_char, m: c_int) -> c_int {
    unsafe { on_path(Op::Stat, AT_FDCWD, p, 2, || real::access(p, m)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn faccessat(d: c_int, p: *const c_char, m: c_int, f: c_int) -> c_int {
    unsafe { on_path(Op::Stat, d, p, 2, || real::faccessat(d, p, m, f)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn opendir(p: *const c_char) -> *mut c_void {
    unsafe { on_path(Op::Stat, AT_FDCWD, p, 3, || real::opendir(p)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn utimensat(
    d: c_int,
    p: *const c_char,
    t: *const timespec,
    f: c_int,
) -> c_int {
    if p.is_null() {
        return on_fd(Op::SetTimes, d, 0, 0, false, no_data, || unsafe {
            real::utimensat(d, p, t, f)
        });
    }
    unsafe { on_path(Op::SetTimes, d, p, 0, || real::utimensat(d, p, t, f)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn futimens(fd: c_int, t: *const timespec) -> c_int {
    on_fd(Op::SetTimes, fd, 0, 0, false, no_data, || unsafe {
        real::futimens(fd, t)
    })
}

/// libuv calls `statx` and `close` through `syscall(2)`; everything else
/// passes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a: c_long,
    b: c_long,
    c: c_long,
    d: c_long,
    e: c_long,
    f: c_long,
) -> c_long {
    let raw = || unsafe { real::syscall(n, a, b, c, d, e, f) };
    if n == libc::SYS_close {
        // libuv closes files this way, not through `close`.
        let fd = a as c_int;
        if conn::is_own_socket(fd) {
            return 0;
        }
        let r = on_fd(Op::Close, fd, 0, 0, false, no_data, || raw() as c_int);
        fds::forget(fd);
        return c_long::from(r);
    }
    if n != libc::SYS_statx {
        return raw();
    }
    let (dirfd, path, flags) = (a as c_int, b as *const c_char, c as c_int);
    let r = unsafe { stat_at(dirfd, path, flags, || raw() as c_int) };
    c_long::from(r)
}

// ----- clocks --------------------------------------------------------

fn skew() -> i64 {
    conn::config().map_or(0, |c| c.skew_ns)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_gettime(c: clockid_t, t: *mut timespec) -> c_int {
    let r = unsafe { real::clock_gettime(c, t) };
    let s = skew();
    if r == 0
        && s != 0
        && matches!(c, libc::CLOCK_REALTIME | libc::CLOCK_REALTIME_COARSE)
        && !t.is_null()
    {
        // SAFETY: glibc just filled `*t`.
        let ts = unsafe { &mut *t };
        let ns = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec) + i128::from(s);
        ts.tv_sec = ns.div_euclid(1_000_000_000) as time_t;
        ts.tv_nsec = ns.rem_euclid(1_000_000_000) as c_long;
    }
    r
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gettimeofday(t: *mut timeval, z: *mut c_void) -> c_int {
    let r = unsafe { real::gettimeofday(t, z) };
    let s = skew();
    if r == 0 && s != 0 && !t.is_null() {
        // SAFETY: glibc just filled `*t`.
        let tv = unsafe { &mut *t };
        let us = i128::from(tv.tv_sec) * 1_000_000 + i128::from(tv.tv_usec) + i128::from(s / 1000);
        tv.tv_sec = us.div_euclid(1_000_000) as time_t;
        tv.tv_usec = us.rem_euclid(1_000_000) as libc::suseconds_t;
    }
    r
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn time(t: *mut time_t) -> time_t {
    let now = unsafe { real::time(std::ptr::null_mut()) } + skew().div_euclid(1_000_000_000);
    if !t.is_null() {
        // SAFETY: the caller's out-pointer.
        unsafe { *t = now };
    }
    now
}

// ----- waits ----------------------------------------------------------

/// Announces a wait on something other than a file around `f`.
fn waiting<R>(w: Wait, blocks: bool, f: impl FnOnce() -> R) -> R {
    let busy = if blocks { conn::enter() } else { None };
    let told = busy.is_some() && conn::block(w);
    let r = f();
    if told {
        let e = errno();
        conn::unblock();
        set_errno(e);
    }
    r
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_wait(ep: c_int, v: *mut c_void, n: c_int, t: c_int) -> c_int {
    waiting(Wait::Events, t != 0, || unsafe {
        real::epoll_wait(ep, v, n, t)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn epoll_pwait(
    ep: c_int,
    v: *mut c_void,
    n: c_int,
    t: c_int,
    s: *const c_void,
) -> c_int {
    waiting(Wait::Events, t != 0, || unsafe {
        real::epoll_pwait(ep, v, n, t, s)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(f: *mut c_void, n: libc::nfds_t, t: c_int) -> c_int {
    waiting(Wait::Events, t != 0, || unsafe { real::poll(f, n, t) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn select(
    n: c_int,
    r: *mut c_void,
    w: *mut c_void,
    e: *mut c_void,
    t: *mut timeval,
) -> c_int {
    // SAFETY: a non-null timeout is the caller's timeval.
    let zero = !t.is_null() && unsafe { (*t).tv_sec == 0 && (*t).tv_usec == 0 };
    waiting(Wait::Events, !zero, || unsafe {
        real::select(n, r, w, e, t)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanosleep(r: *const timespec, m: *mut timespec) -> c_int {
    waiting(Wait::Sleep, true, || unsafe { real::nanosleep(r, m) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_nanosleep(
    c: clockid_t,
    f: c_int,
    r: *const timespec,
    m: *mut timespec,
) -> c_int {
    waiting(Wait::Sleep, true, || unsafe {
        real::clock_nanosleep(c, f, r, m)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usleep(u: libc::useconds_t) -> c_int {
    waiting(Wait::Sleep, true, || unsafe { real::usleep(u) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn waitpid(p: pid_t, s: *mut c_int, o: c_int) -> pid_t {
    waiting(Wait::Child, o & libc::WNOHANG == 0, || unsafe {
        real::waitpid(p, s, o)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wait4(p: pid_t, s: *mut c_int, o: c_int, r: *mut c_void) -> pid_t {
    waiting(Wait::Child, o & libc::WNOHANG == 0, || unsafe {
        real::wait4(p, s, o, r)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_cond_wait(c: *mut c_void, m: *mut c_void) -> c_int {
    waiting(Wait::Thread, true, || unsafe {
        real::pthread_cond_wait(c, m)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_cond_timedwait(
    c: *mut c_void,
    m: *mut c_void,
    t: *const timespec,
) -> c_int {
    waiting(Wait::Thread, true, || unsafe {
        real::pthread_cond_timedwait(c, m, t)
    })
}
