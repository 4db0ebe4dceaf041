//! The fenced log on etcd, with `baton_core::fence`'s rule: an append
//! under an epoch older than one the log has seen is refused. The newest
//! epoch is a key compared and moved in the same transaction as the entry
//! is written, so two writers cannot both pass the check on a stale read.

use std::hash::BuildHasher;

use crate::client::{self, Client, EtcdError};
use crate::escape;

/// Epochs as fixed-width decimals: etcd compares values as bytes.
fn padded(epoch: u64) -> Vec<u8> {
    format!("{epoch:020}").into_bytes()
}

/// Appends `line` under `epoch` to log `name`; `Ok(Err(newest))` when
/// the log has seen a newer epoch.
pub fn append(
    client: &Client,
    name: &str,
    epoch: u64,
    line: &str,
) -> Result<Result<(), u64>, EtcdError> {
    let fence = format!("/baton/fence/{}", escape(name)).into_bytes();
    // Unique per call; the order is the creation revision's.
    let nonce = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let entry = format!("/baton/log/{}/{epoch:020}-{nonce:016x}", escape(name)).into_bytes();
    let write = || {
        vec![
            client::put(&fence, &padded(epoch), 0),
            client::put(&entry, line.as_bytes(), 0),
        ]
    };
    for _ in 0..16 {
        let (done, _, responses) = client.txn(
            vec![client::absent(&fence)],
            write(),
            vec![client::get(&fence)],
        )?;
        if done {
            return Ok(Ok(()));
        }
        let seen = responses[0]["response_range"]["kvs"][0]["value"]
            .as_str()
            .and_then(client::unb64)
            .unwrap_or_default();
        let newest: u64 = String::from_utf8_lossy(&seen).parse().unwrap_or(u64::MAX);
        if newest > epoch {
            return Ok(Err(newest));
        }
        let (done, _, _) = client.txn(vec![client::holds(&fence, &seen)], write(), vec![])?;
        if done {
            return Ok(Ok(()));
        }
    }
    Err(EtcdError::Protocol(
        "the fence kept moving".into(),
        "/v3/kv/txn".into(),
    ))
}

/// The log's entries in the order they were appended: `(epoch, line)`.
pub fn entries(client: &Client, name: &str) -> Result<Vec<(u64, String)>, EtcdError> {
    let prefix = format!("/baton/log/{}/", escape(name)).into_bytes();
    let (kvs, _) = client.range_prefix(&prefix)?;
    Ok(kvs
        .iter()
        .map(|kv| {
            let rest = &kv.key[prefix.len()..];
            let epoch = std::str::from_utf8(&rest[..rest.len().min(20)])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (epoch, String::from_utf8_lossy(&kv.value).into_owned())
        })
        .collect())
}
