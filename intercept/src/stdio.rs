//! stdio's writes. glibc writes a stream's buffer through its own internal
//! `write`, which no preloaded library sees, so the stream functions a
//! program calls are hooked instead: when one is about to send bytes to a
//! file under the root (the stream is unbuffered, a newline reaches a
//! line-buffered stream, the buffer would overflow, or it is flushed or
//! closed), the call is scheduled as a write. What it wrote is measured
//! after the fact, from the descriptor's offset before and after, and read
//! back from the file for a recording: the controller holds every other
//! process meanwhile, so the bytes read are the bytes written.
//!
//! The variadic `printf` family cannot be hooked from stable Rust (no
//! `va_list` to forward); a flush it causes goes unseen.
//!
//! The stream's fields are read at glibc's `struct _IO_FILE` offsets on
//! x86-64, stable since glibc 2.1: `_flags` at 0, then pointers from 8:
//! read ptr/end/base, write base (32), write ptr (40), write end (48),
//! buffer base (56) and end (64).

use libc::{c_char, c_int, c_void, size_t};

use baton_trace::{Call, Op};

use crate::hooks::{errno, set_errno, start};
use crate::{conn, fds, real};

const UNBUFFERED: c_int = 0x2;
const LINE_BUF: c_int = 0x200;
/// glibc's buffer size for a stream whose buffer is not allocated yet.
const DEFAULT_BUF: usize = 4096;

unsafe extern "C" {
    static mut stdout: *mut c_void;
}

struct Stream {
    flags: c_int,
    /// Bytes buffered, not yet written.
    pending: usize,
    capacity: usize,
}

/// # Safety
///
/// `f` is a live glibc `FILE *`.
unsafe fn stream(f: *mut c_void) -> Stream {
    // SAFETY: the caller's contract and the layout above.
    unsafe {
        let flags = *f.cast::<c_int>();
        let words = f.cast::<*const u8>();
        let (base, ptr) = (*words.add(4), *words.add(5));
        let (buf, end) = (*words.add(7), *words.add(8));
        let pending = if base.is_null() || ptr < base {
            0
        } else {
            ptr as usize - base as usize
        };
        let capacity = if buf.is_null() || end <= buf {
            DEFAULT_BUF
        } else {
            end as usize - buf as usize
        };
        Stream {
            flags,
            pending,
            capacity,
        }
    }
}

/// Whether writing `data` (plus `newline`) to the stream sends bytes to
/// its file now.
fn sends(s: &Stream, data: &[u8], newline: bool) -> bool {
    let adding = data.len() + usize::from(newline);
    s.flags & UNBUFFERED != 0
        || (s.flags & LINE_BUF != 0 && (newline || data.contains(&b'\n')))
        || s.pending + adding > s.capacity
}

/// The descriptor's position (for an appending one, the file's end).
fn position(fd: c_int, append: bool) -> i64 {
    if append {
        // SAFETY: fstat into a local.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &raw mut st) } == 0 {
            st.st_size
        } else {
            -1
        }
    } else {
        // SAFETY: reads the descriptor's offset, changes nothing.
        unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
    }
}

/// `n` bytes of `fd`'s file from `at`, through a descriptor of our own
/// (the program's may be write-only).
fn read_back(fd: c_int, at: i64, n: usize) -> Vec<u8> {
    let path = format!("/proc/self/fd/{fd}\0");
    // SAFETY: a NUL-terminated path; the descriptor is ours and closed
    // below.
    let ours = unsafe { real::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC, 0) };
    if ours < 0 {
        return Vec::new();
    }
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        // SAFETY: `out` has room for `n - got` bytes at `got`.
        let r = unsafe {
            libc::pread(
                ours,
                out[got..].as_mut_ptr().cast(),
                n - got,
                at + got as i64,
            )
        };
        if r <= 0 {
            break;
        }
        got += r as usize;
    }
    out.truncate(got);
    // SAFETY: our own descriptor.
    unsafe { real::close(ours) };
    out
}

/// Runs a stream call that sends bytes to a file under the root as a
/// scheduled write; any other passes straight through.
///
/// # Safety
///
/// `f` is a live glibc `FILE *`.
unsafe fn emitting<R: Copy>(
    f: *mut c_void,
    data: &[u8],
    newline: bool,
    forced: bool,
    failed: impl Fn(R) -> bool,
    real: impl FnOnce() -> R,
) -> R {
    if f.is_null() {
        return real();
    }
    let Some((_busy, cfg)) = start() else {
        return real();
    };
    // SAFETY: the caller's contract.
    let s = unsafe { stream(f) };
    let will = if forced {
        s.pending > 0
    } else {
        sends(&s, data, newline)
    };
    if !will {
        return real();
    }
    // SAFETY: fileno only reads the live stream.
    let fd = unsafe { libc::fileno(f.cast()) };
    let Some(append) = fds::ours(fd, &cfg.root) else {
        return real();
    };
    let before = position(fd, append);
    let mut call = Call::new(Op::Write);
    call.fd = fd;
    call.a = if append { -1 } else { before };
    call.b = (s.pending + data.len() + usize::from(newline)) as i64;
    call.path = fds::fd_path(fd)
        .and_then(|p| fds::relative(&cfg.root, &p))
        .unwrap_or_default();
    if !conn::call(cfg, call) {
        return real();
    }
    let r = real();
    let e = errno();
    let after = position(fd, append);
    let n = usize::try_from(after - before).unwrap_or(0);
    let result = if failed(r) && n == 0 {
        -i64::from(e)
    } else {
        n as i64
    };
    let bytes = if cfg.record_data && n > 0 {
        read_back(fd, before, n)
    } else {
        Vec::new()
    };
    conn::wrote(result, before, bytes);
    set_errno(e);
    r
}

fn eof(r: c_int) -> bool {
    r == libc::EOF
}

fn char_of(c: c_int) -> [u8; 1] {
    [c as u8]
}

/// # Safety
///
/// `s` is NUL-terminated.
unsafe fn text<'a>(s: *const c_char) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::ffi::CStr::from_ptr(s) }.to_bytes()
}

/// # Safety
///
/// `p` is readable for `size * n` bytes.
unsafe fn block<'a>(p: *const c_void, size: size_t, n: size_t) -> &'a [u8] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), size.saturating_mul(n)) }
}

fn out() -> *mut c_void {
    // SAFETY: glibc's `stdout`, read once per call.
    unsafe { stdout }
}

/// `fopen`'s mode as the `open` flags glibc gives it.
fn open_flags(mode: &[u8]) -> c_int {
    let plus = mode.contains(&b'+');
    let mut flags = match mode.first() {
        Some(b'w') => {
            libc::O_CREAT | libc::O_TRUNC | if plus { libc::O_RDWR } else { libc::O_WRONLY }
        }
        Some(b'a') => {
            libc::O_CREAT | libc::O_APPEND | if plus { libc::O_RDWR } else { libc::O_WRONLY }
        }
        _ => {
            if plus {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            }
        }
    };
    if mode.contains(&b'x') {
        flags |= libc::O_EXCL;
    }
    flags
}

/// `fopen` opens inside glibc: scheduled as the `open` it makes.
///
/// # Safety
///
/// `p` and `m` are null or NUL-terminated.
unsafe fn opening(
    p: *const c_char,
    m: *const c_char,
    real: impl FnOnce() -> *mut c_void,
) -> *mut c_void {
    let Some((_busy, cfg)) = start() else {
        return real();
    };
    // SAFETY: the caller's contract.
    let Some(path) = (unsafe { fds::resolve(&cfg.root, libc::AT_FDCWD, p) }) else {
        let f = real();
        if !f.is_null() {
            // SAFETY: a stream glibc just opened.
            fds::forget(unsafe { libc::fileno(f.cast()) });
        }
        return f;
    };
    // SAFETY: the caller's contract.
    let flags = open_flags(unsafe { text(m) });
    let mut call = Call::new(Op::Open);
    call.path = path;
    call.a = i64::from(flags);
    call.b = 0o666;
    if !conn::call(cfg, call) {
        return real();
    }
    let f = real();
    let e = errno();
    let result = if f.is_null() {
        -i64::from(e)
    } else {
        // SAFETY: a stream glibc just opened.
        let fd = unsafe { libc::fileno(f.cast()) };
        fds::opened(fd, flags);
        i64::from(fd)
    };
    conn::done(result);
    set_errno(e);
    f
}

// SAFETY (all hooks below): arguments pass unchanged to glibc's
// definition, under the caller's contract for the C function.

variants! { fopen, fopen64 => fn(p: *const c_char, m: *const c_char) -> *mut c_void;
|glibc| unsafe { opening(p, m, glibc) } }
variants! { putc, _IO_putc, fputc, putc_unlocked, fputc_unlocked => fn(c: c_int, f: *mut c_void) -> c_int;
|glibc| unsafe { emitting(f, &char_of(c), false, false, eof, glibc) } }
variants! { putchar, putchar_unlocked => fn(c: c_int) -> c_int;
|glibc| unsafe { emitting(out(), &char_of(c), false, false, eof, glibc) } }
variants! { fputs, fputs_unlocked => fn(s: *const c_char, f: *mut c_void) -> c_int;
|glibc| unsafe { emitting(f, text(s), false, false, eof, glibc) } }
variants! { fwrite, fwrite_unlocked => fn(p: *const c_void, size: size_t, n: size_t, f: *mut c_void) -> size_t;
|glibc| unsafe { emitting(f, block(p, size, n), false, false, |r: size_t| r < n, glibc) } }

#[unsafe(no_mangle)]
pub unsafe extern "C" fn puts(s: *const c_char) -> c_int {
    unsafe { emitting(out(), text(s), true, false, eof, || real::puts(s)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fflush(f: *mut c_void) -> c_int {
    unsafe { emitting(f, &[], false, true, eof, || real::fflush(f)) }
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fclose(f: *mut c_void) -> c_int {
    if f.is_null() {
        return unsafe { real::fclose(f) };
    }
    // SAFETY: a live stream until the real fclose.
    let fd = unsafe { libc::fileno(f.cast()) };
    // The buffer goes out first, scheduled, while the descriptor still
    // says where it went; then the stream closes.
    let flushed = unsafe { emitting(f, &[], false, true, eof, || real::fflush(f)) };
    let r = unsafe { real::fclose(f) };
    fds::forget(fd);
    if flushed == libc::EOF { libc::EOF } else { r }
}
