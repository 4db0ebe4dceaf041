//! The one waiting line under locks and elections: each contender puts a
//! key under a common prefix, named for its lease and attached to it, in a
//! transaction conditioned on the key's absence. Keys are ordered by their
//! creation revision, which etcd assigns in one total order across the
//! cluster; the first key holds the lock, or leads. Each waiter watches
//! only the key created just before its own (no thundering herd), and
//! looks again when it goes: the one before may have left the line
//! without the line moving up to it.
//!
//! The holder's creation revision is its fencing token: it increases with
//! every new holder, across hosts, and is what `BATON_EPOCH` carries.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{self, EtcdError, Kv};
use crate::session::Session;

/// This process's place in a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub key: Vec<u8>,
    /// Its creation revision: the order in the line, and the fencing
    /// token once first.
    pub revision: i64,
}

/// What joining or waiting can end in besides an etcd error.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The lease lapsed (or the key was removed from outside): nothing is
    /// held.
    #[error("the etcd lease was lost")]
    Lost,
}

/// Joins the line under `prefix` with `value`.
pub fn join(session: &Session, prefix: &[u8], value: &[u8]) -> Result<Place, QueueError> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{:016x}", session.lease()).as_bytes());
    let (created, revision, responses) = session.client().txn(
        vec![client::absent(&key)],
        vec![client::put(&key, value, session.lease())],
        vec![client::get(&key)],
    )?;
    if created {
        return Ok(Place { key, revision });
    }
    // Joined before under this lease: the same place.
    let existing = first_kv(&responses).ok_or(QueueError::Lost)?;
    Ok(Place {
        key,
        revision: existing.create_revision,
    })
}

fn first_kv(responses: &Value) -> Option<Kv> {
    let kv = responses.as_array()?.first()?["response_range"]["kvs"]
        .as_array()?
        .first()?
        .clone();
    Some(client::parse_kv(&kv))
}

/// Waits until `place` is first in its line (true) or `deadline` passes
/// (false; the place is kept: [`leave`] it). While the cluster answers
/// nothing (between raft leaders) it waits on as long as the session's
/// lease holds and the deadline allows; past the lease, that error is
/// returned.
pub fn wait_first(
    session: &Session,
    prefix: &[u8],
    place: &Place,
    deadline: Option<Instant>,
) -> Result<bool, QueueError> {
    loop {
        match look(session, prefix, place, deadline) {
            Err(QueueError::Etcd(EtcdError::Unreachable { .. }))
                if session.valid() && deadline.is_none_or(|d| Instant::now() < d) => {}
            Err(QueueError::Etcd(EtcdError::Unreachable { .. })) if session.valid() => {
                return Ok(false);
            }
            Ok(None) => {}
            other => return other.map(|first| first.unwrap_or(false)),
        }
    }
}

/// One look at the line and, unless first, one slice of watching the key
/// before ours: `Some(true)` first, `Some(false)` past the deadline,
/// `None` to look again.
fn look(
    session: &Session,
    prefix: &[u8],
    place: &Place,
    deadline: Option<Instant>,
) -> Result<Option<bool>, QueueError> {
    if !session.valid() {
        return Err(QueueError::Lost);
    }
    let (before, revision) = session.client().predecessor(prefix, place.revision)?;
    let Some(before) = before else {
        // First, if still in line at all (a lease that expired took
        // the key with it).
        let (kvs, _) = session.client().range_prefix(&place.key)?;
        if !kvs
            .iter()
            .any(|kv| kv.key == place.key && kv.create_revision == place.revision)
        {
            return Err(QueueError::Lost);
        }
        return Ok(Some(true));
    };
    // Watch in slices, so a lapsed lease is noticed while waiting.
    let slice = session.ttl() / 3;
    let wait = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Some(false));
            }
            left.min(slice)
        }
        None => slice,
    };
    session.client().wait_deleted(
        &before.key,
        revision + 1,
        wait.max(Duration::from_millis(10)),
    )?;
    Ok(None)
}

/// When a wait per `wait` runs out (`None`: never).
pub fn deadline(wait: baton_core::lock::Wait) -> Option<Instant> {
    use baton_core::lock::Wait;
    match wait {
        Wait::No => Some(Instant::now()),
        Wait::For(d) => Some(Instant::now() + d),
        Wait::Forever => None,
    }
}

/// Leaves the line (or gives up the first place).
pub fn leave(session: &Session, place: &Place) -> Result<(), EtcdError> {
    // Only this place: a key re-created since under the same name is not ours.
    session.client().txn(
        vec![client::created_at(&place.key, place.revision)],
        vec![client::delete(&place.key)],
        vec![],
    )?;
    Ok(())
}

/// The line under `prefix`, first first.
pub fn line(session_client: &client::Client, prefix: &[u8]) -> Result<(Vec<Kv>, i64), EtcdError> {
    session_client.range_prefix(prefix)
}
