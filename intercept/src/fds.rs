//! Which descriptors name files under the root, and paths made relative
//! to it.
//!
//! A descriptor's class is cached in a lock-free table (a lock here could
//! be held by another thread at a `fork` and never released in the child).
//! Descriptors the library did not see opened (inherited across `exec`, as
//! a shell's `> file` is) are classified on first use from
//! `/proc/self/fd`.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use baton_trace::under_root;

const SLOTS: usize = 4096;
const UNKNOWN: u8 = 0;
const FOREIGN: u8 = 1;
const OURS: u8 = 2;
const OURS_APPEND: u8 = 3;

static CLASS: [AtomicU8; SLOTS] = [const { AtomicU8::new(UNKNOWN) }; SLOTS];

fn slot(fd: i32) -> Option<&'static AtomicU8> {
    usize::try_from(fd).ok().and_then(|i| CLASS.get(i))
}

/// The descriptor was closed or replaced: classify it afresh next time.
pub fn forget(fd: i32) {
    if let Some(s) = slot(fd) {
        s.store(UNKNOWN, Relaxed);
    }
}

/// Records what an `open` under the root returned.
pub fn opened(fd: i32, flags: i32) {
    if let Some(s) = slot(fd) {
        let class = if flags & libc::O_APPEND != 0 {
            OURS_APPEND
        } else {
            OURS
        };
        s.store(class, Relaxed);
    }
}

/// Whether `fd` names a file under `root`, and if so, whether it appends.
pub fn ours(fd: i32, root: &[u8]) -> Option<bool> {
    let cached = slot(fd).map_or(UNKNOWN, |s| s.load(Relaxed));
    let class = match cached {
        UNKNOWN => {
            let class = match fd_path(fd).and_then(|p| relative(root, &p)) {
                None => FOREIGN,
                Some(_) => {
                    // SAFETY: F_GETFL reads the descriptor's flags.
                    let flags = unsafe { crate::real::fcntl(fd, libc::F_GETFL, 0) };
                    if flags >= 0 && flags & libc::O_APPEND != 0 {
                        OURS_APPEND
                    } else {
                        OURS
                    }
                }
            };
            if let Some(s) = slot(fd) {
                s.store(class, Relaxed);
            }
            class
        }
        c => c,
    };
    match class {
        OURS => Some(false),
        OURS_APPEND => Some(true),
        _ => None,
    }
}

/// What `/proc/self/fd/FD` says the descriptor names (the name it has now).
pub fn fd_path(fd: i32) -> Option<Vec<u8>> {
    if fd < 0 {
        return None;
    }
    let mut link = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let digits = fd.to_string();
    link[14..14 + digits.len()].copy_from_slice(digits.as_bytes());
    let mut buf = [0u8; 4096];
    // SAFETY: `link` is NUL-terminated; `buf` is writable for its length.
    let n = unsafe { libc::readlink(link.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    let mut path = buf[..n as usize].to_vec();
    if path.first() != Some(&b'/') {
        return None; // pipe:[..], socket:[..], anon_inode:..
    }
    if let Some(stripped) = path.strip_suffix(b" (deleted)") {
        path.truncate(stripped.len());
    }
    Some(path)
}

/// `path` relative to the root, when it lies under it.
pub fn relative(root: &[u8], path: &[u8]) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(path.len());
    under_root(root, path, &mut buf).map(<[u8]>::to_vec)
}

/// The path `path` names relative to `dirfd` (`AT_FDCWD` for the working
/// directory), relative to the root when it lies under it.
///
/// # Safety
///
/// `path` is null or a NUL-terminated string.
pub unsafe fn resolve(root: &[u8], dirfd: i32, path: *const libc::c_char) -> Option<Vec<u8>> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let path = unsafe { CStr::from_ptr(path) }.to_bytes();
    if path.first() == Some(&b'/') {
        return relative(root, path);
    }
    let mut base = if dirfd == libc::AT_FDCWD {
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` is writable for its length.
        let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: getcwd wrote a NUL-terminated string into `buf`.
        unsafe { CStr::from_ptr(buf.as_ptr().cast()) }
            .to_bytes()
            .to_vec()
    } else {
        fd_path(dirfd)?
    };
    base.push(b'/');
    base.extend_from_slice(path);
    relative(root, &base)
}
