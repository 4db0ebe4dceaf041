//! What an intercepted process says to the controller, and how it is framed.
//!
//! `baton explore` and `baton crashes` run a user's program with
//! `libbaton_intercept.so` preloaded. For every file-system call on a path
//! under the run's root, the library sends a [`Msg::Call`] on its thread's
//! connection and blocks until the controller answers with [`GO`]; when the
//! call returns it sends [`Msg::Done`] with the result ([`Msg::Wrote`] for a
//! stdio write, whose bytes are known only afterwards). A thread that is
//! about to wait for something other than a file (a timer, a child, a
//! condition variable, a blocking lock) says [`Msg::Block`] first and
//! [`Msg::Unblock`] after, so the controller knows not to wait for its next
//! call. This crate has no dependencies: the preload library links it, and
//! nothing in it allocates more than a message.
//!
//! Frames are `u32` little-endian length, then the body. Paths travel
//! relative to the run's root, so a trace replays anywhere.

#![forbid(unsafe_code)]

/// The controller's answer to a [`Msg::Call`]: run it.
pub const GO: u8 = b'g';

/// Environment variables the controller sets for the programs it runs.
pub mod vars {
    /// The controller's Unix socket.
    pub const SOCKET: &str = "BATON_INTERCEPT_SOCKET";
    /// Absolute, normalised root: calls on paths outside it pass through.
    pub const ROOT: &str = "BATON_INTERCEPT_ROOT";
    /// Which of the copies this process (and every child it starts) is.
    pub const COPY: &str = "BATON_INTERCEPT_COPY";
    /// Nanoseconds added to every wall-clock reading (may be negative).
    pub const SKEW_NS: &str = "BATON_INTERCEPT_SKEW_NS";
    /// `1`: send the bytes of every write (recording for `baton crashes`).
    pub const DATA: &str = "BATON_INTERCEPT_DATA";
}

/// The calls the controller schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// `path`, `a` = open flags, `b` = mode; result: the descriptor.
    Open = 1,
    /// `fd`, `a` = offset or -1 for the file position, `b` = length.
    Read = 2,
    /// `fd`, `a` = offset or -1 for an append, `b` = length, `data` when
    /// recording; result: bytes written.
    Write = 3,
    /// `fd` (or `path` when `fd` is -1), `a` = new length.
    Truncate = 4,
    /// `path` to `path2`, `a` = `renameat2` flags.
    Rename = 5,
    /// `path` (existing) to `path2` (new name).
    Link = 6,
    /// `path`.
    Unlink = 7,
    /// `path`, `a` = mode.
    Mkdir = 8,
    /// `path`.
    Rmdir = 9,
    /// `fd`, `a` = `flock` operation (`LOCK_SH`, `LOCK_EX`, `LOCK_UN`,
    /// `| LOCK_NB`), or an `fcntl` record lock encoded as `0x100 | cmd`.
    Lock = 10,
    /// `fd`, `a` = 1 for `fdatasync`/`sync_file_range`, 0 for `fsync`.
    Sync = 11,
    /// `path` (or `fd`), `a` = 1 when it does not follow a final symlink.
    Stat = 12,
    /// `path` (or `fd`): `utimensat`/`futimens`.
    SetTimes = 13,
    /// `fd`: a descriptor on a file under the root is closed (it releases
    /// the process's `flock` and record locks on it).
    Close = 14,
}

impl Op {
    pub fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            1 => Op::Open,
            2 => Op::Read,
            3 => Op::Write,
            4 => Op::Truncate,
            5 => Op::Rename,
            6 => Op::Link,
            7 => Op::Unlink,
            8 => Op::Mkdir,
            9 => Op::Rmdir,
            10 => Op::Lock,
            11 => Op::Sync,
            12 => Op::Stat,
            13 => Op::SetTimes,
            14 => Op::Close,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Truncate => "truncate",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Unlink => "unlink",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Lock => "lock",
            Op::Sync => "fsync",
            Op::Stat => "stat",
            Op::SetTimes => "utimens",
            Op::Close => "close",
        }
    }

    /// Whether the call changes what is on disk (a crash point follows it).
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Op::Open
                | Op::Write
                | Op::Truncate
                | Op::Rename
                | Op::Link
                | Op::Unlink
                | Op::Mkdir
                | Op::Rmdir
                | Op::Sync
        )
    }
}

/// One intercepted file-system call, as the program made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub fd: i32,
    pub a: i64,
    pub b: i64,
    /// Relative to the root; empty when the call names no path.
    pub path: Vec<u8>,
    pub path2: Vec<u8>,
    /// The bytes of a write, only when recording.
    pub data: Vec<u8>,
}

impl Call {
    pub fn new(op: Op) -> Call {
        Call {
            op,
            fd: -1,
            a: 0,
            b: 0,
            path: Vec::new(),
            path2: Vec::new(),
            data: Vec::new(),
        }
    }
}

/// What a thread waits for when it says [`Msg::Block`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Wait {
    /// `epoll_wait`, `poll`, `select` with a timeout: an event loop idles.
    Events = 1,
    /// `nanosleep`, `clock_nanosleep`.
    Sleep = 2,
    /// `wait4`, `waitpid`, `waitid`: a child.
    Child = 3,
    /// `pthread_cond_wait` and friends: another thread.
    Thread = 4,
    /// A blocking `flock` or `F_SETLKW`: another process's lock.
    Lock = 5,
}

/// A message from an intercepted thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// First on every connection: which copy, process and thread.
    Hello {
        copy: u32,
        pid: u32,
        tid: u32,
    },
    /// A call that waits for [`GO`].
    Call(Call),
    /// The call returned: its result, or `-errno`.
    Done(i64),
    /// A scheduled write made by stdio returned: its result (bytes that
    /// reached the file, or `-errno`), where they went, and (recording)
    /// the bytes, read back from the file: what glibc flushed is only
    /// known once it has.
    Wrote {
        result: i64,
        at: i64,
        data: Vec<u8>,
    },
    Block(Wait),
    Unblock,
}

const HELLO: u8 = 1;
const CALL: u8 = 2;
const DONE: u8 = 3;
const BLOCK: u8 = 4;
const UNBLOCK: u8 = 5;
const WROTE: u8 = 6;

/// Why a frame could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFrame(pub &'static str);

impl Msg {
    /// The frame: length, then body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        match self {
            Msg::Hello { copy, pid, tid } => {
                out.push(HELLO);
                for v in [copy, pid, tid] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Msg::Call(c) => {
                out.push(CALL);
                out.push(c.op as u8);
                out.extend_from_slice(&c.fd.to_le_bytes());
                out.extend_from_slice(&c.a.to_le_bytes());
                out.extend_from_slice(&c.b.to_le_bytes());
                for bytes in [&c.path, &c.path2, &c.data] {
                    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    out.extend_from_slice(bytes);
                }
            }
            Msg::Done(r) => {
                out.push(DONE);
                out.extend_from_slice(&r.to_le_bytes());
            }
            Msg::Block(w) => {
                out.push(BLOCK);
                out.push(*w as u8);
            }
            Msg::Unblock => out.push(UNBLOCK),
            Msg::Wrote { result, at, data } => {
                out.push(WROTE);
                out.extend_from_slice(&result.to_le_bytes());
                out.extend_from_slice(&at.to_le_bytes());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Decodes a frame's body (without its length).
    pub fn decode(body: &[u8]) -> Result<Msg, BadFrame> {
        let mut r = Reader(body);
        let msg = match r.u8()? {
            HELLO => Msg::Hello {
                copy: r.u32()?,
                pid: r.u32()?,
                tid: r.u32()?,
            },
            CALL => {
                let op = Op::from_u8(r.u8()?).ok_or(BadFrame("unknown call"))?;
                let fd = r.u32()? as i32;
                let a = r.i64()?;
                let b = r.i64()?;
                Msg::Call(Call {
                    op,
                    fd,
                    a,
                    b,
                    path: r.bytes()?,
                    path2: r.bytes()?,
                    data: r.bytes()?,
                })
            }
            DONE => Msg::Done(r.i64()?),
            BLOCK => Msg::Block(match r.u8()? {
                1 => Wait::Events,
                2 => Wait::Sleep,
                3 => Wait::Child,
                4 => Wait::Thread,
                5 => Wait::Lock,
                _ => return Err(BadFrame("unknown wait")),
            }),
            UNBLOCK => Msg::Unblock,
            WROTE => Msg::Wrote {
                result: r.i64()?,
                at: r.i64()?,
                data: r.bytes()?,
            },
            _ => return Err(BadFrame("unknown message")),
        };
        if !r.0.is_empty() {
            return Err(BadFrame("trailing bytes"));
        }
        Ok(msg)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], BadFrame> {
        if self.0.len() < n {
            return Err(BadFrame("short frame"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, BadFrame> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, BadFrame> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, BadFrame> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, BadFrame> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

/// Normalises `path` lexically (`.` and `..` folded, slashes collapsed)
/// and returns it relative to `root` when it lies under it. `path` must be
/// absolute. No symlink is resolved: a symlink under the root that leads
/// out of it still counts as under the root, as the program named it.
pub fn under_root<'p>(root: &[u8], path: &'p [u8], buf: &'p mut Vec<u8>) -> Option<&'p [u8]> {
    debug_assert!(path.first() == Some(&b'/'));
    buf.clear();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                let cut = buf.iter().rposition(|&b| b == b'/').unwrap_or(0);
                buf.truncate(cut);
            }
            _ => {
                buf.push(b'/');
                buf.extend_from_slice(part);
            }
        }
    }
    if buf.is_empty() {
        buf.push(b'/');
    }
    let rest = buf.strip_prefix(root)?;
    match rest {
        [] => Some(b"."),
        [b'/', tail @ ..] => Some(tail),
        _ if root == b"/" => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let mut call = Call::new(Op::Rename);
        call.fd = -100;
        call.a = 1;
        call.b = -7;
        call.path = b"a.tmp".to_vec();
        call.path2 = b"a".to_vec();
        call.data = vec![0, 1, 2, 255];
        for msg in [
            Msg::Hello {
                copy: 3,
                pid: 4000,
                tid: 4001,
            },
            Msg::Call(call),
            Msg::Done(-2),
            Msg::Block(Wait::Lock),
            Msg::Unblock,
            Msg::Wrote {
                result: 3,
                at: 10,
                data: b"hi\n".to_vec(),
            },
        ] {
            let frame = msg.encode();
            let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len() - 4);
            assert_eq!(Msg::decode(&frame[4..]), Ok(msg));
        }
    }

    #[test]
    fn a_truncated_or_padded_frame_is_refused() {
        let frame = Msg::Done(5).encode();
        assert!(Msg::decode(&frame[4..frame.len() - 1]).is_err());
        let mut long = frame[4..].to_vec();
        long.push(0);
        assert!(Msg::decode(&long).is_err());
        assert!(Msg::decode(&[99]).is_err());
    }

    #[test]
    fn paths_are_judged_after_folding_dots() {
        let mut buf = Vec::new();
        let root = b"/tmp/run";
        assert_eq!(
            under_root(root, b"/tmp/run/a/b", &mut buf),
            Some(&b"a/b"[..])
        );
        assert_eq!(under_root(root, b"/tmp/run", &mut buf), Some(&b"."[..]));
        assert_eq!(
            under_root(root, b"/tmp/run/./x/../y", &mut buf),
            Some(&b"y"[..])
        );
        assert_eq!(under_root(root, b"/tmp/run/../etc/passwd", &mut buf), None);
        assert_eq!(under_root(root, b"/tmp/runner/a", &mut buf), None);
        assert_eq!(
            under_root(root, b"//tmp//run//z", &mut buf),
            Some(&b"z"[..])
        );
    }
}
