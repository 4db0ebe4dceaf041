//! A watchdog process for a command held under an etcd lease.
//!
//! `baton` judges the lease and kills the command when it lapses; but a
//! `baton` that is itself stopped (SIGSTOP, a debugger, a frozen VM slice)
//! judges nothing, while its command runs on and etcd expires the lease
//! and lets a successor in. So a second process, `baton __watchdog PID`,
//! is told after each of `baton`'s checks how much longer the lease is
//! trusted, and kills the command when that runs out without a word: on
//! its own clock, independent of whether `baton` runs. `baton` trusts the
//! lease for less than etcd keeps it, so the command is dead before a
//! successor can be elected. (A stop of the whole process group stops the
//! command too; on resuming, the watchdog kills it at once, and the fenced
//! append catches what it may do first.) If `baton` dies, the pipe closes
//! and the watchdog kills the command, as the parent-death signal does.
//!
//! The watchdog kills through a pidfd that `baton` opened on its own
//! child before reaping it, passed as the watchdog's stdout (which it
//! never writes): once the command has exited, the signal goes nowhere,
//! even if its pid has been given to another process. Where pidfds are
//! not available (Linux before 5.3) it falls back to the pid.

// The watchdog's deadline is real time on this host, by design.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The watchdog, from `baton`'s side.
#[derive(Debug)]
pub struct Watchdog {
    process: Child,
    to: Mutex<ChildStdin>,
}

impl Watchdog {
    /// Starts a watchdog over process `pid`, trusting the lease for
    /// `trusted` from now.
    pub fn start(pid: u32, trusted: Duration) -> anyhow::Result<Watchdog> {
        let exe = std::env::current_exe().context("find baton's own executable")?;
        // The command is our child and not yet reaped: this pidfd names it
        // and nothing else, whatever happens to its pid later.
        let target = rustix::process::Pid::from_raw(pid as i32)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
            .map_or_else(Stdio::null, Stdio::from);
        let mut process = Command::new(exe)
            .arg("__watchdog")
            .arg(pid.to_string())
            .arg(trusted.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(target)
            .spawn()
            .context("start the watchdog")?;
        let to = process.stdin.take().context("the watchdog's pipe")?;
        Ok(Watchdog {
            process,
            to: Mutex::new(to),
        })
    }

    /// The lease is trusted for `trusted` from now.
    pub fn extend(&self, trusted: Duration) {
        let mut to = self.to.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(to, "{}", trusted.as_millis());
    }

    /// Ends the watch (the command has exited).
    pub fn stop(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `baton __watchdog PID MS`: the watchdog itself.
pub fn run(pid: i32, first_ms: u64) -> anyhow::Result<crate::exit::Exit> {
    let target = rustix::process::Pid::from_raw(pid).context("a process id")?;
    let mut deadline = Instant::now() + Duration::from_millis(first_ms);
    let stdin = std::io::stdin();
    let mut lines = BufReader::new(stdin.lock());
    let mut line = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Lines already read ahead are newer word: take them first.
        if !lines.buffer().contains(&b'\n') {
            let fd = std::io::stdin();
            let mut fds = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) == 0 {
                continue;
            }
        }
        line.clear();
        match lines.read_line(&mut line) {
            // baton is gone: so is the command's protection.
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Ok(ms) = line.trim().parse::<u64>() {
                    deadline = Instant::now() + Duration::from_millis(ms);
                }
            }
        }
    }
    let pidfd = std::io::stdout();
    match rustix::process::pidfd_send_signal(pidfd.as_fd(), rustix::process::Signal::KILL) {
        // Not a pidfd (none could be opened): the pid it is.
        Err(e) if e == rustix::io::Errno::BADF || e == rustix::io::Errno::INVAL => {
            let _ = rustix::process::kill_process(target, rustix::process::Signal::KILL);
        }
        // Killed, or already gone: either way nothing else is hit.
        _ => {}
    }
    Ok(crate::exit::Exit::Ok)
}
