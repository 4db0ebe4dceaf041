//! One run of a user's program under the controller: start the copies with
//! the interception library, hear their calls, let one run at a time in
//! the order a [`Pick`] chooses, kill a copy at a chosen call.
//!
//! # When the controller decides
//!
//! A decision is only repeatable if it is taken when every copy has said
//! what it will do next. So the controller decides when every connected
//! thread is waiting for its go, waiting on something other than a file
//! (it said [`Msg::Block`]: a timer, a child, a condition variable, another
//! process's lock), or gone; a thread still computing after its last call
//! is waited for up to `settle`, then taken as busy elsewhere. When some
//! copy has no call waiting, the controller also waits for a `quiet` spell
//! with no message, so a thread just woken by a timer can speak first.
//! What remains unrepeatable is real time: a timer that fires sooner or
//! later against the others' calls, and work done by threads that never
//! touch the root. `baton explore --replay` measures how often a schedule
//! reproduces.
//!
//! All of it runs on one thread around one `epoll` (the listening socket,
//! every connection, and a pipe that each copy's reaper thread rings when
//! the copy exits): a call costs the controller one wake-up, not one per
//! thread it passes through.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};

use baton_trace::{Call, GO, Msg, vars};

/// How a run is started.
#[derive(Clone, Debug)]
pub struct Launch {
    pub argv: Vec<OsString>,
    /// The scratch copy the programs run in (absolute, no symlinks).
    pub root: PathBuf,
    pub copies: usize,
    /// Nanoseconds added to each copy's wall clock.
    pub skew_ns: Vec<i64>,
    /// Send every write's bytes (for `baton crashes`).
    pub record_data: bool,
    pub preload: PathBuf,
    /// Where the socket and the copies' output go.
    pub run_dir: PathBuf,
    pub timeout: Duration,
    pub settle: Duration,
    pub quiet: Duration,
}

/// Chooses which copy's waiting call runs next.
pub trait Pick {
    /// `waiting`: copies with a call waiting (sorted, non-empty);
    /// `current`: the copy whose call ran last.
    fn pick(&mut self, waiting: &[usize], current: Option<usize>, step: u64) -> usize;
    /// Whether to kill `copy` instead of letting its `nth` call (from 0) run.
    fn kill_at(&mut self, _copy: usize, _nth: u64) -> bool {
        false
    }
    /// How long to hold `copy` at its `nth` call while the others run (a
    /// process stopped, swapped out or slow to start), if at all.
    fn pause_at(&mut self, _copy: usize, _nth: u64) -> Option<Duration> {
        None
    }
}

/// A call that ran, in the order the controller let calls run.
#[derive(Clone, Debug)]
pub struct Step {
    pub copy: usize,
    pub pid: u32,
    pub call: Call,
    /// Its result, or `-errno`; `None` if the process died in the call.
    pub result: Option<i64>,
}

#[derive(Debug)]
pub struct Outcome {
    pub steps: Vec<Step>,
    /// Per copy: its exit status, or `None` when the controller killed it.
    pub exits: Vec<Option<ExitStatus>>,
    pub killed: Option<usize>,
    pub timed_out: bool,
    /// Calls each copy made.
    pub calls: Vec<u64>,
    pub elapsed: Duration,
}

impl Outcome {
    /// A copy that was not killed and did not exit 0.
    pub fn failed_copy(&self) -> Option<(usize, ExitStatus)> {
        self.exits
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.filter(|s| !s.success()).map(|s| (i, s)))
    }
}

enum Event {
    Hello(usize, Conn),
    Msg(usize, Msg),
    Closed(usize),
    Exited(usize, ExitStatus),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between calls, doing something the controller cannot see, since
    /// this instant.
    Running(Instant),
    Waiting,
    /// Let go; its `Done` has not come.
    InCall,
    Blocked,
    Closed,
}

struct Conn {
    copy: usize,
    pid: u32,
    state: State,
    writer: UnixStream,
    /// The call waiting for its go, and its arrival number (the order
    /// within a copy).
    waiting: Option<(u64, Call)>,
    /// Index in `steps` of the call let go last.
    last_step: Option<usize>,
}

/// Runs the copies to the end (or the timeout) and returns what happened.
pub fn run(launch: &Launch, pick: &mut dyn Pick) -> std::io::Result<Outcome> {
    std::fs::create_dir_all(&launch.run_dir)?;
    let socket = launch.run_dir.join("ctl.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", socket.display())))?;
    let mut hub = Hub::new(listener)?;

    let start = Instant::now();
    let mut groups = Vec::new();
    for copy in 0..launch.copies {
        let child = spawn_copy(launch, copy, &socket)?;
        groups.push(child.id());
        hub.reap(copy, child)?;
    }
    let mut events = Vec::new();

    let mut run = Run {
        conns: BTreeMap::new(),
        exits: vec![None; launch.copies],
        calls: vec![0; launch.copies],
        steps: Vec::new(),
        killed: None,
        arrival: 0,
        last_event: Instant::now(),
        current: None,
        paused: vec![None; launch.copies],
        recorded: 0,
    };
    let deadline = start + launch.timeout;
    let mut timed_out = false;
    while run.exits.iter().any(Option::is_none) {
        hub.poll(Duration::ZERO, &mut events)?;
        let got = !events.is_empty();
        for ev in events.drain(..) {
            run.apply(ev, &groups);
        }
        if run.recorded > MAX_RECORDED {
            for &g in &groups {
                let _ = kill_group(g);
            }
            return Err(std::io::Error::other(format!(
                "the run wrote more than {} MiB: too much to rebuild its crash states",
                MAX_RECORDED >> 20
            )));
        }
        if got {
            run.last_event = Instant::now();
            continue;
        }
        if Instant::now() > deadline {
            timed_out = true;
            for &g in &groups {
                let _ = kill_group(g);
            }
            let grace = Instant::now() + Duration::from_secs(5);
            while run.exits.iter().any(Option::is_none) && Instant::now() < grace {
                hub.poll(Duration::from_millis(50), &mut events)?;
                for ev in events.drain(..) {
                    run.apply(ev, &groups);
                }
            }
            break;
        }
        if let Some(id) = run.decide(launch, pick) {
            run.let_go(id, pick, &groups)?;
            continue;
        }
        // Nothing to decide: sleep until a message, or a millisecond (the
        // settle, quiet and pause clocks are read each time round).
        hub.poll(Duration::from_millis(1), &mut events)?;
        if !events.is_empty() {
            run.last_event = Instant::now();
        }
        for ev in events.drain(..) {
            run.apply(ev, &groups);
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(Outcome {
        steps: run.steps,
        exits: run.exits.into_iter().map(Option::flatten).collect(),
        killed: run.killed,
        timed_out,
        calls: run.calls,
        elapsed: start.elapsed(),
    })
}

struct Run {
    conns: BTreeMap<usize, Conn>,
    /// Per copy, once it has ended: its status, or `None` if killed.
    exits: Vec<Option<Option<ExitStatus>>>,
    calls: Vec<u64>,
    steps: Vec<Step>,
    killed: Option<usize>,
    arrival: u64,
    last_event: Instant,
    current: Option<usize>,
    /// Copies held until an instant (`Pick::pause_at`).
    paused: Vec<Option<Instant>>,
    /// Bytes of writes recorded so far.
    recorded: usize,
}

/// The most a recording may hold: it is rebuilt in memory.
pub const MAX_RECORDED: usize = 512 << 20;

impl Run {
    fn apply(&mut self, ev: Event, groups: &[u32]) {
        match ev {
            Event::Hello(id, conn) => {
                if conn.copy < self.exits.len() && self.exits[conn.copy].is_none() {
                    self.conns.insert(id, conn);
                }
            }
            Event::Msg(id, msg) => {
                let Some(c) = self.conns.get_mut(&id) else {
                    return;
                };
                match msg {
                    Msg::Call(call) => {
                        self.recorded += call.data.len();
                        self.arrival += 1;
                        c.waiting = Some((self.arrival, call));
                        c.state = State::Waiting;
                    }
                    Msg::Done(r) => {
                        if let Some(i) = c.last_step.take() {
                            self.steps[i].result = Some(r);
                        }
                        c.state = State::Running(Instant::now());
                    }
                    Msg::Wrote { result, at, data } => {
                        if let Some(i) = c.last_step.take() {
                            let step = &mut self.steps[i];
                            step.result = Some(result);
                            step.call.a = at;
                            step.call.data = data;
                        }
                        c.state = State::Running(Instant::now());
                    }
                    Msg::Block(_) => c.state = State::Blocked,
                    Msg::Unblock => c.state = State::Running(Instant::now()),
                    Msg::Hello { .. } => {}
                }
            }
            Event::Closed(id) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.state = State::Closed;
                    c.waiting = None;
                }
            }
            Event::Exited(copy, status) => {
                let killed = self.killed == Some(copy);
                self.exits[copy] = Some((!killed).then_some(status));
                // Whatever it left running goes with it.
                let _ = kill_group(groups[copy]);
                for c in self.conns.values_mut().filter(|c| c.copy == copy) {
                    c.waiting = None;
                }
            }
        }
    }

    /// The connection whose waiting call runs next, once the copies have
    /// settled (see the module documentation).
    fn decide(&mut self, launch: &Launch, pick: &mut dyn Pick) -> Option<usize> {
        let now = Instant::now();
        for (copy, exit) in self.exits.iter().enumerate() {
            if exit.is_none() && !self.conns.values().any(|c| c.copy == copy) {
                return None; // still starting
            }
        }
        for c in self.conns.values() {
            if self.exits[c.copy].is_some() {
                continue;
            }
            match c.state {
                State::InCall => return None,
                State::Running(since) if now.duration_since(since) < launch.settle => return None,
                _ => {}
            }
        }
        for p in self.paused.iter_mut() {
            if p.is_some_and(|until| until <= now) {
                *p = None;
            }
        }
        let mut waiting: Vec<usize> = self
            .conns
            .values()
            .filter(|c| c.waiting.is_some() && self.exits[c.copy].is_none())
            .filter(|c| self.paused[c.copy].is_none())
            .map(|c| c.copy)
            .collect();
        waiting.sort_unstable();
        waiting.dedup();
        if waiting.is_empty() {
            return None;
        }
        let live = (0..self.exits.len())
            .filter(|&i| self.exits[i].is_none() && self.paused[i].is_none())
            .count();
        if waiting.len() < live && now.duration_since(self.last_event) < launch.quiet {
            return None;
        }
        let copy = pick.pick(&waiting, self.current, self.steps.len() as u64);
        debug_assert!(waiting.contains(&copy));
        self.conns
            .iter()
            .filter(|(_, c)| c.copy == copy)
            .filter_map(|(&id, c)| c.waiting.as_ref().map(|(n, _)| (*n, id)))
            .min()
            .map(|(_, id)| id)
    }

    fn let_go(&mut self, id: usize, pick: &mut dyn Pick, groups: &[u32]) -> std::io::Result<()> {
        let c = self
            .conns
            .get_mut(&id)
            .expect("decided among live connections");
        let copy = c.copy;
        if let Some(hold) = pick.pause_at(copy, self.calls[copy]) {
            // The call stays waiting; the others run meanwhile.
            self.paused[copy] = Some(Instant::now() + hold);
            return Ok(());
        }
        let (_, call) = c.waiting.take().expect("decided on a waiting call");
        if self.killed.is_none() && pick.kill_at(copy, self.calls[copy]) {
            self.killed = Some(copy);
            kill_group(groups[copy])?;
            // Its threads never get their go: nothing waits for them.
            for c in self.conns.values_mut().filter(|c| c.copy == copy) {
                c.state = State::Closed;
                c.waiting = None;
            }
            return Ok(());
        }
        self.calls[copy] += 1;
        self.steps.push(Step {
            copy,
            pid: c.pid,
            call,
            result: None,
        });
        c.last_step = Some(self.steps.len() - 1);
        c.state = State::InCall;
        if c.writer.write_all(&[GO]).is_err() {
            c.state = State::Closed;
        }
        self.current = Some(copy);
        Ok(())
    }
}

fn spawn_copy(
    launch: &Launch,
    copy: usize,
    socket: &std::path::Path,
) -> std::io::Result<std::process::Child> {
    let out = std::fs::File::create(launch.run_dir.join(format!("copy{copy}.out")))?;
    let err = std::fs::File::create(launch.run_dir.join(format!("copy{copy}.err")))?;
    let mut preload = launch.preload.clone().into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD") {
        preload.push(":");
        preload.push(old);
    }
    Command::new(&launch.argv[0])
        .args(&launch.argv[1..])
        .current_dir(&launch.root)
        .env("LD_PRELOAD", preload)
        .env(vars::SOCKET, socket)
        .env(vars::ROOT, &launch.root)
        .env(vars::COPY, copy.to_string())
        .env(
            vars::SKEW_NS,
            launch.skew_ns.get(copy).copied().unwrap_or(0).to_string(),
        )
        .env(vars::DATA, if launch.record_data { "1" } else { "0" })
        // libuv would otherwise submit file calls through io_uring, which
        // no preloaded library sees.
        .env("UV_USE_IO_URING", "0")
        .env("BATON_EXPLORE_COPY", copy.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{}: {e}", launch.argv[0].to_string_lossy()),
            )
        })
}

fn kill_group(pgid: u32) -> std::io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pgid as i32)
        .ok_or_else(|| std::io::Error::other("pid 0"))?;
    match rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The listening socket, the connections and the reapers' bell, under one
/// `epoll`.
struct Hub {
    epoll: OwnedFd,
    listener: UnixListener,
    wires: BTreeMap<usize, Wire>,
    next: usize,
    /// Exits the reaper threads saw, and the pipe they ring after each.
    exits: Arc<Mutex<Vec<(usize, ExitStatus)>>>,
    bell: UnixStream,
    ringer: UnixStream,
}

/// A connection's stream and the bytes of its next frame so far.
struct Wire {
    stream: UnixStream,
    buf: Vec<u8>,
    greeted: bool,
}

const LISTENER: u64 = u64::MAX;
const BELL: u64 = u64::MAX - 1;

impl Hub {
    fn new(listener: UnixListener) -> std::io::Result<Hub> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        listener.set_nonblocking(true)?;
        let (bell, ringer) = UnixStream::pair()?;
        bell.set_nonblocking(true)?;
        epoll::add(
            &epoll,
            &listener,
            epoll::EventData::new_u64(LISTENER),
            epoll::EventFlags::IN,
        )?;
        epoll::add(
            &epoll,
            &bell,
            epoll::EventData::new_u64(BELL),
            epoll::EventFlags::IN,
        )?;
        Ok(Hub {
            epoll,
            listener,
            wires: BTreeMap::new(),
            next: 0,
            exits: Arc::new(Mutex::new(Vec::new())),
            bell,
            ringer,
        })
    }

    /// Waits for `copy` to exit on a thread of its own (a child's exit is
    /// not something `epoll` hears), which rings the bell.
    fn reap(&self, copy: usize, mut child: std::process::Child) -> std::io::Result<()> {
        let (exits, mut ringer) = (Arc::clone(&self.exits), self.ringer.try_clone()?);
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                exits.lock().expect("no reaper panics").push((copy, status));
                let _ = ringer.write_all(&[1]);
            }
        });
        Ok(())
    }

    /// Collects what happened within `timeout` into `out`.
    fn poll(&mut self, timeout: Duration, out: &mut Vec<Event>) -> std::io::Result<()> {
        let limit = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut ready = Vec::with_capacity(32);
        match epoll::wait(&self.epoll, spare_capacity(&mut ready), Some(&limit)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for ev in ready {
            match ev.data.u64() {
                LISTENER => self.accept()?,
                BELL => {
                    let mut sink = [0u8; 64];
                    while matches!(self.bell.read(&mut sink), Ok(n) if n > 0) {}
                    let seen = std::mem::take(&mut *self.exits.lock().expect("no reaper panics"));
                    out.extend(
                        seen.into_iter()
                            .map(|(copy, status)| Event::Exited(copy, status)),
                    );
                }
                id => self.read(id as usize, out),
            }
        }
        Ok(())
    }

    fn accept(&mut self) -> std::io::Result<()> {
        loop {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            stream.set_nonblocking(true)?;
            let id = self.next;
            self.next += 1;
            epoll::add(
                &self.epoll,
                &stream,
                epoll::EventData::new_u64(id as u64),
                epoll::EventFlags::IN,
            )?;
            self.wires.insert(
                id,
                Wire {
                    stream,
                    buf: Vec::new(),
                    greeted: false,
                },
            );
        }
    }

    /// Reads what connection `id` sent; whole frames become events.
    fn read(&mut self, id: usize, out: &mut Vec<Event>) {
        let Some(wire) = self.wires.get_mut(&id) else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            match wire.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => wire.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut at = 0;
        while wire.buf.len() - at >= 4 {
            let len =
                u32::from_le_bytes(wire.buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            if wire.buf.len() - at - 4 < len {
                break;
            }
            let body = &wire.buf[at + 4..at + 4 + len];
            at += 4 + len;
            let Ok(msg) = Msg::decode(body) else {
                closed = true;
                break;
            };
            if wire.greeted {
                out.push(Event::Msg(id, msg));
                continue;
            }
            let Msg::Hello { copy, pid, .. } = msg else {
                closed = true;
                break;
            };
            let Ok(writer) = wire.stream.try_clone() else {
                closed = true;
                break;
            };
            wire.greeted = true;
            out.push(Event::Hello(
                id,
                Conn {
                    copy: copy as usize,
                    pid,
                    state: State::Running(Instant::now()),
                    writer,
                    waiting: None,
                    last_step: None,
                },
            ));
        }
        wire.buf.drain(..at);
        if closed {
            let _ = epoll::delete(&self.epoll, &wire.stream);
            self.wires.remove(&id);
            out.push(Event::Closed(id));
        }
    }
}
