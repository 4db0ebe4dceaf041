//! glibc's own definitions of the functions this library replaces, found
//! with `dlsym(RTLD_NEXT)` on first use.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// The next definition of `name` (NUL-terminated) after this library, or
/// the oldest versioned one for compatibility symbols (`__xstat64`) that
/// `dlsym` does not return.
pub fn lookup(name: &'static [u8], cache: &AtomicUsize) -> usize {
    let cached = cache.load(Relaxed);
    if cached != 0 {
        return cached;
    }
    debug_assert_eq!(name.last(), Some(&0));
    // SAFETY: `name` is NUL-terminated; RTLD_NEXT is a valid handle for a
    // shared object's own lookups.
    let mut found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) } as usize;
    if found == 0 {
        // SAFETY: as above; the version string is NUL-terminated.
        found = unsafe {
            libc::dlvsym(
                libc::RTLD_NEXT,
                name.as_ptr().cast(),
                c"GLIBC_2.2.5".as_ptr(),
            )
        } as usize;
    }
    cache.store(found, Relaxed);
    found
}

/// Declares `real::NAME(args) -> ret`, calling glibc's `NAME`.
macro_rules! real {
    ($($name:ident($($arg:ident: $t:ty),*) -> $ret:ty;)*) => {$(
        #[allow(non_snake_case, clippy::too_many_arguments)]
        pub unsafe fn $name($($arg: $t),*) -> $ret {
            static CACHE: AtomicUsize = AtomicUsize::new(0);
            let f = lookup(concat!(stringify!($name), "\0").as_bytes(), &CACHE);
            if f == 0 {
                // SAFETY: errno is this thread's.
                unsafe { *libc::__errno_location() = libc::ENOSYS };
                return <$ret as Failed>::failed();
            }
            // SAFETY: `f` is glibc's definition of this very function,
            // whose C signature this is.
            let f: unsafe extern "C" fn($($t),*) -> $ret = unsafe { std::mem::transmute(f) };
            // SAFETY: the caller passes what its caller passed to us.
            unsafe { f($($arg),*) }
        }
    )*};
}

/// What a call returns when glibc has no such function.
pub trait Failed {
    fn failed() -> Self;
}
impl Failed for i32 {
    fn failed() -> i32 {
        -1
    }
}
impl Failed for i64 {
    fn failed() -> i64 {
        -1
    }
}
impl Failed for usize {
    fn failed() -> usize {
        0
    }
}
impl Failed for isize {
    fn failed() -> isize {
        -1
    }
}
impl Failed for () {
    fn failed() {}
}
impl Failed for *mut libc::c_void {
    fn failed() -> *mut libc::c_void {
        std::ptr::null_mut()
    }
}

use libc::{
    c_char, c_int, c_long, c_uint, c_void, clockid_t, iovec, mode_t, off_t, pid_t, size_t, ssize_t,
    time_t, timespec, timeval,
};

real! {
    open(p: *const c_char, f: c_int, m: c_uint) -> c_int;
    open64(p: *const c_char, f: c_int, m: c_uint) -> c_int;
    openat(d: c_int, p: *const c_char, f: c_int, m: c_uint) -> c_int;
    openat64(d: c_int, p: *const c_char, f: c_int, m: c_uint) -> c_int;
    __open_2(p: *const c_char, f: c_int) -> c_int;
    __open64_2(p: *const c_char, f: c_int) -> c_int;
    __openat_2(d: c_int, p: *const c_char, f: c_int) -> c_int;
    __openat64_2(d: c_int, p: *const c_char, f: c_int) -> c_int;
    creat(p: *const c_char, m: mode_t) -> c_int;
    creat64(p: *const c_char, m: mode_t) -> c_int;
    close(fd: c_int) -> c_int;
    dup2(a: c_int, b: c_int) -> c_int;
    dup3(a: c_int, b: c_int, f: c_int) -> c_int;
    read(fd: c_int, b: *mut c_void, n: size_t) -> ssize_t;
    pread(fd: c_int, b: *mut c_void, n: size_t, o: off_t) -> ssize_t;
    pread64(fd: c_int, b: *mut c_void, n: size_t, o: off_t) -> ssize_t;
    readv(fd: c_int, v: *const iovec, n: c_int) -> ssize_t;
    preadv(fd: c_int, v: *const iovec, n: c_int, o: off_t) -> ssize_t;
    preadv64(fd: c_int, v: *const iovec, n: c_int, o: off_t) -> ssize_t;
    write(fd: c_int, b: *const c_void, n: size_t) -> ssize_t;
    pwrite(fd: c_int, b: *const c_void, n: size_t, o: off_t) -> ssize_t;
    pwrite64(fd: c_int, b: *const c_void, n: size_t, o: off_t) -> ssize_t;
    writev(fd: c_int, v: *const iovec, n: c_int) -> ssize_t;
    pwritev(fd: c_int, v: *const iovec, n: c_int, o: off_t) -> ssize_t;
    pwritev64(fd: c_int, v: *const iovec, n: c_int, o: off_t) -> ssize_t;
    ftruncate(fd: c_int, l: off_t) -> c_int;
    ftruncate64(fd: c_int, l: off_t) -> c_int;
    truncate(p: *const c_char, l: off_t) -> c_int;
    truncate64(p: *const c_char, l: off_t) -> c_int;
    rename(a: *const c_char, b: *const c_char) -> c_int;
    renameat(da: c_int, a: *const c_char, db: c_int, b: *const c_char) -> c_int;
    renameat2(da: c_int, a: *const c_char, db: c_int, b: *const c_char, f: c_uint) -> c_int;
    link(a: *const c_char, b: *const c_char) -> c_int;
    linkat(da: c_int, a: *const c_char, db: c_int, b: *const c_char, f: c_int) -> c_int;
    unlink(p: *const c_char) -> c_int;
    unlinkat(d: c_int, p: *const c_char, f: c_int) -> c_int;
    mkdir(p: *const c_char, m: mode_t) -> c_int;
    mkdirat(d: c_int, p: *const c_char, m: mode_t) -> c_int;
    rmdir(p: *const c_char) -> c_int;
    flock(fd: c_int, op: c_int) -> c_int;
    fcntl(fd: c_int, cmd: c_int, arg: usize) -> c_int;
    fcntl64(fd: c_int, cmd: c_int, arg: usize) -> c_int;
    fsync(fd: c_int) -> c_int;
    fdatasync(fd: c_int) -> c_int;
    sync_file_range(fd: c_int, o: off_t, n: off_t, f: c_uint) -> c_int;
    sync() -> ();
    fflush(f: *mut c_void) -> c_int;
    fclose(f: *mut c_void) -> c_int;
    fopen(p: *const c_char, m: *const c_char) -> *mut c_void;
    fopen64(p: *const c_char, m: *const c_char) -> *mut c_void;
    putc(c: c_int, f: *mut c_void) -> c_int;
    _IO_putc(c: c_int, f: *mut c_void) -> c_int;
    fputc(c: c_int, f: *mut c_void) -> c_int;
    putchar(c: c_int) -> c_int;
    putc_unlocked(c: c_int, f: *mut c_void) -> c_int;
    fputc_unlocked(c: c_int, f: *mut c_void) -> c_int;
    putchar_unlocked(c: c_int) -> c_int;
    fputs(s: *const c_char, f: *mut c_void) -> c_int;
    fputs_unlocked(s: *const c_char, f: *mut c_void) -> c_int;
    puts(s: *const c_char) -> c_int;
    fwrite(p: *const c_void, size: size_t, n: size_t, f: *mut c_void) -> size_t;
    fwrite_unlocked(p: *const c_void, size: size_t, n: size_t, f: *mut c_void) -> size_t;
    stat(p: *const c_char, b: *mut c_void) -> c_int;
    stat64(p: *const c_char, b: *mut c_void) -> c_int;
    lstat(p: *const c_char, b: *mut c_void) -> c_int;
    lstat64(p: *const c_char, b: *mut c_void) -> c_int;
    fstatat(d: c_int, p: *const c_char, b: *mut c_void, f: c_int) -> c_int;
    fstatat64(d: c_int, p: *const c_char, b: *mut c_void, f: c_int) -> c_int;
    __xstat(v: c_int, p: *const c_char, b: *mut c_void) -> c_int;
    __xstat64(v: c_int, p: *const c_char, b: *mut c_void) -> c_int;
    __lxstat(v: c_int, p: *const c_char, b: *mut c_void) -> c_int;
    __lxstat64(v: c_int, p: *const c_char, b: *mut c_void) -> c_int;
    __fxstatat(v: c_int, d: c_int, p: *const c_char, b: *mut c_void, f: c_int) -> c_int;
    __fxstatat64(v: c_int, d: c_int, p: *const c_char, b: *mut c_void, f: c_int) -> c_int;
    statx(d: c_int, p: *const c_char, f: c_int, m: c_uint, b: *mut c_void) -> c_int;
    access(p: *const c_char, m: c_int) -> c_int;
    faccessat(d: c_int, p: *const c_char, m: c_int, f: c_int) -> c_int;
    opendir(p: *const c_char) -> *mut c_void;
    scandir(p: *const c_char, l: *mut c_void, s: *const c_void, c: *const c_void) -> c_int;
    scandir64(p: *const c_char, l: *mut c_void, s: *const c_void, c: *const c_void) -> c_int;
    utimensat(d: c_int, p: *const c_char, t: *const timespec, f: c_int) -> c_int;
    futimens(fd: c_int, t: *const timespec) -> c_int;
    syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long;
    clock_gettime(c: clockid_t, t: *mut timespec) -> c_int;
    gettimeofday(t: *mut timeval, z: *mut c_void) -> c_int;
    time(t: *mut time_t) -> time_t;
    epoll_wait(e: c_int, v: *mut c_void, n: c_int, t: c_int) -> c_int;
    epoll_pwait(e: c_int, v: *mut c_void, n: c_int, t: c_int, s: *const c_void) -> c_int;
    poll(f: *mut c_void, n: libc::nfds_t, t: c_int) -> c_int;
    select(n: c_int, r: *mut c_void, w: *mut c_void, e: *mut c_void, t: *mut timeval) -> c_int;
    nanosleep(r: *const timespec, m: *mut timespec) -> c_int;
    clock_nanosleep(c: clockid_t, f: c_int, r: *const timespec, m: *mut timespec) -> c_int;
    usleep(u: libc::useconds_t) -> c_int;
    waitpid(p: pid_t, s: *mut c_int, o: c_int) -> pid_t;
    wait4(p: pid_t, s: *mut c_int, o: c_int, r: *mut c_void) -> pid_t;
    pthread_cond_wait(c: *mut c_void, m: *mut c_void) -> c_int;
    pthread_cond_timedwait(c: *mut c_void, m: *mut c_void, t: *const timespec) -> c_int;
}
