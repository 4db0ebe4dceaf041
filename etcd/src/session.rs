//! A lease per process, kept alive by a thread, and this process's own
//! judgement of whether it still holds it.
//!
//! etcd expires a lease `TTL` after the last keep-alive it *received*; this
//! process counts from when it *sent* that keep-alive, on its monotonic
//! clock, and stops trusting the lease at nine tenths of the TTL. Holding
//! anything under the lease is safe as long as this process is not paused
//! for longer than that margin and its clock runs within 10 % of the
//! servers' (the assumption every lease makes; a pause is the fenced
//! append's to catch).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::{Client, EtcdError};

#[derive(Debug)]
struct State {
    valid_until: Instant,
    lost: bool,
    closing: bool,
}

/// A lease held by this process.
#[derive(Debug)]
pub struct Session {
    client: Arc<Client>,
    lease: i64,
    ttl: Duration,
    state: Arc<(Mutex<State>, Condvar)>,
    keeper: Option<JoinHandle<()>>,
}

/// The part of a TTL this process trusts.
fn trusted(ttl: Duration) -> Duration {
    ttl.mul_f64(0.9)
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// Grants a lease of `ttl` (whole seconds, at least etcd's minimum)
    /// and, with `keep_alive`, refreshes it every third of its TTL.
    pub fn open(
        client: Arc<Client>,
        ttl: Duration,
        keep_alive: bool,
    ) -> Result<Session, EtcdError> {
        let asked = ttl.as_secs().max(1) as i64;
        let sent = Instant::now();
        let (lease, granted) = client.grant(asked)?;
        let ttl = Duration::from_secs(granted.max(1) as u64);
        let state = Arc::new((
            Mutex::new(State {
                valid_until: sent + trusted(ttl),
                lost: false,
                closing: false,
            }),
            Condvar::new(),
        ));
        let keeper = keep_alive.then(|| {
            let (client, state) = (client.clone(), state.clone());
            std::thread::spawn(move || keep(&client, lease, ttl, &state))
        });
        Ok(Session {
            client,
            lease,
            ttl,
            state,
            keeper,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn lease(&self) -> i64 {
        self.lease
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether this process may still act under the lease.
    pub fn valid(&self) -> bool {
        let s = lock(&self.state.0);
        !s.lost && Instant::now() < s.valid_until
    }

    /// How much longer this process trusts the lease (zero once lost).
    pub fn remaining(&self) -> Duration {
        let s = lock(&self.state.0);
        if s.lost {
            return Duration::ZERO;
        }
        s.valid_until.saturating_duration_since(Instant::now())
    }

    /// Stops the keep-alives and revokes the lease: everything held under
    /// it is released at once, not at expiry.
    pub fn close(mut self) -> Result<(), EtcdError> {
        self.stop();
        self.client.revoke(self.lease)
    }

    fn stop(&mut self) {
        lock(&self.state.0).closing = true;
        self.state.1.notify_all();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keep(client: &Client, lease: i64, ttl: Duration, state: &(Mutex<State>, Condvar)) {
    let every = ttl / 3;
    let mut next = Instant::now() + every;
    loop {
        {
            let mut s = lock(&state.0);
            while !s.closing && Instant::now() < next {
                let wait = next.saturating_duration_since(Instant::now());
                s = state
                    .1
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if s.closing {
                return;
            }
        }
        let sent = Instant::now();
        let answer = client.keep_alive(lease);
        let mut s = lock(&state.0);
        match answer {
            Ok(left) if left > 0 => {
                s.valid_until = sent + trusted(Duration::from_secs(left as u64));
                next = sent + every;
            }
            // Expired: nothing held under it is held any more.
            Ok(_) => {
                s.lost = true;
                return;
            }
            // Unreachable for now: try again soon, while it may still be
            // alive; past the trusted deadline it is lost for good.
            Err(_) if sent < s.valid_until => next = Instant::now() + Duration::from_millis(100),
            Err(_) => {
                s.lost = true;
                return;
            }
        }
    }
}
