//! Each thread's connection to the controller, and the run's settings.
//!
//! A thread connects on its first intercepted call and keeps the socket for
//! its life. A forked child forgets its parent's socket (a `pthread_atfork`
//! handler) and connects anew, leaving the inherited copy alone; a `vfork`
//! child, which runs no such handler and shares its parent's memory until
//! it `exec`s, speaks on its parent's socket while the parent is
//! suspended, and closes nothing of the parent's. Before every call the
//! socket is checked to be the very one connected (same inode): a program
//! that took its number for a file of its own never receives a byte of the
//! protocol. (Between a call and its result the socket cannot change: a
//! `close` of it is ignored.)

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use baton_trace::{Call, GO, Msg, Wait, vars};

pub struct Config {
    socket: CString,
    pub root: Vec<u8>,
    copy: u32,
    pub skew_ns: i64,
    pub record_data: bool,
}

/// The run's settings, or `None` outside a run (every hook then passes
/// straight through).
pub fn config() -> Option<&'static Config> {
    static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let socket = std::env::var_os(vars::SOCKET)?;
            let root = std::env::var_os(vars::ROOT)?;
            let root = root.as_bytes();
            if root.first() != Some(&b'/') {
                return None;
            }
            // SAFETY: registers a handler that only resets thread-local
            // state, as a fork child handler may.
            unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
            Some(Config {
                socket: CString::new(socket.as_bytes()).ok()?,
                root: root.to_vec(),
                copy: std::env::var(vars::COPY).ok()?.parse().ok()?,
                skew_ns: std::env::var(vars::SKEW_NS)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                record_data: std::env::var_os(vars::DATA).is_some_and(|v| v == "1"),
            })
        })
        .as_ref()
}

/// A thread's connection: the socket and its inode.
#[derive(Clone, Copy)]
struct Link {
    fd: i32,
    ino: u64,
}

const NO_LINK: Link = Link { fd: -1, ino: 0 };

/// In a forked child: the parent's sockets are not this process's.
extern "C" fn forget_in_child() {
    CONN.with(|c| c.set(NO_LINK));
}

thread_local! {
    static CONN: Cell<Link> = const { Cell::new(NO_LINK) };
    /// Set while a hook runs: calls the hook itself makes pass through.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside a hook until dropped.
pub struct Busy(());

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(false));
    }
}

/// Enters a hook, unless this thread is already in one.
pub fn enter() -> Option<Busy> {
    BUSY.with(|b| {
        if b.get() {
            None
        } else {
            b.set(true);
            Some(Busy(()))
        }
    })
}

/// Sockets sit at or above this descriptor, out of the way of programs
/// that use small fixed numbers (shells use 10 and up, and 255).
const SOCKET_FLOOR: i32 = 900;

fn connect(cfg: &Config) -> Option<i32> {
    // SAFETY: plain socket calls on descriptors this function owns.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return None;
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = cfg.socket.as_bytes();
        if path.len() >= addr.sun_path.len() {
            crate::real::close(s);
            return None;
        }
        for (d, &b) in addr.sun_path.iter_mut().zip(path) {
            *d = b as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(s, (&raw const addr).cast(), len) != 0 {
            crate::real::close(s);
            return None;
        }
        let high = crate::real::fcntl(s, libc::F_DUPFD_CLOEXEC, SOCKET_FLOOR as usize);
        crate::real::close(s);
        if high < 0 {
            return None;
        }
        Some(high)
    }
}

/// The inode of `fd` if it is a socket.
fn socket_ino(fd: i32) -> Option<u64> {
    // SAFETY: fstat writes into a local struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; a closed descriptor makes fstat fail, nothing more.
    let ok = unsafe { libc::fstat(fd, &raw mut st) } == 0;
    (ok && st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
}

/// This thread's socket, if it has one; with `verify`, only if it is
/// still the one it opened.
fn live(verify: bool) -> Option<i32> {
    let link = CONN.with(Cell::get);
    (link.fd >= 0 && (!verify || socket_ino(link.fd) == Some(link.ino))).then_some(link.fd)
}

/// Whether `fd` is this thread's own socket (a `close` of it is ignored).
pub fn is_own_socket(fd: i32) -> bool {
    let link = CONN.with(Cell::get);
    fd >= 0 && link.fd == fd && socket_ino(fd) == Some(link.ino)
}

fn send_on(fd: i32, msg: &Msg) -> bool {
    let frame = msg.encode();
    let mut sent = 0;
    while sent < frame.len() {
        // SAFETY: the buffer is live for the call; MSG_NOSIGNAL keeps a
        // vanished controller from killing the program with SIGPIPE.
        let n = unsafe {
            libc::send(
                fd,
                frame[sent..].as_ptr().cast(),
                frame.len() - sent,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        sent += n as usize;
    }
    true
}

/// This thread's live connection, made now if needed.
fn conn(cfg: &Config) -> Option<i32> {
    if let Some(fd) = live(true) {
        return Some(fd);
    }
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    let fd = connect(cfg)?;
    let ino = socket_ino(fd)?;
    let hello = Msg::Hello {
        copy: cfg.copy,
        pid: pid as u32,
        tid: tid as u32,
    };
    if !send_on(fd, &hello) {
        return None;
    }
    CONN.with(|c| c.set(Link { fd, ino }));
    Some(fd)
}

/// Sends `call` and waits for the controller's go. `false`: no controller
/// (the call then runs unscheduled).
pub fn call(cfg: &Config, call: Call) -> bool {
    let Some(fd) = conn(cfg) else { return false };
    if !send_on(fd, &Msg::Call(call)) {
        return false;
    }
    let mut answer = 0u8;
    loop {
        // SAFETY: one byte into a local.
        let n = unsafe { libc::recv(fd, (&raw mut answer).cast(), 1, 0) };
        if n == 1 {
            return answer == GO;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return false;
    }
}

/// Reports a scheduled call's result (`-errno` on failure).
pub fn done(result: i64) {
    if let Some(fd) = live(false) {
        send_on(fd, &Msg::Done(result));
    }
}

/// Reports a scheduled stdio write: what reached the file, and where.
pub fn wrote(result: i64, at: i64, data: Vec<u8>) {
    if let Some(fd) = live(false) {
        send_on(fd, &Msg::Wrote { result, at, data });
    }
}

/// Tells the controller this thread is about to wait for something other
/// than a file, if it has ever spoken to it. Returns whether it did.
pub fn block(w: Wait) -> bool {
    live(false).is_some_and(|fd| send_on(fd, &Msg::Block(w)))
}

pub fn unblock() {
    if let Some(fd) = live(false) {
        send_on(fd, &Msg::Unblock);
    }
}
