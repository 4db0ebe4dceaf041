//! etcd's v3 API through its JSON gateway (`/v3/...`, etcd ≥ 3.4): keys and
//! values base64, 64-bit numbers as strings. Requests go to one endpoint
//! at a time; one that cannot be reached, times out or answers that it
//! cannot serve (no leader, a timed-out proposal) is left for the next.
//!
//! A request that timed out may still be applied by the member it went
//! to, after the next member applied the retry. Every write here is safe
//! to apply twice: a line's key is created only if absent and its owner
//! recognises its own key; claims are written only over what their
//! writer read (its own puts included) and re-put the same values; a log
//! entry's key is fixed before the first attempt, so a second put only
//! rewrites it; deletes are conditioned on the creation revision read;
//! a second lease grant expires unused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http;

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd endpoint given (--endpoints URL,... or BATON_ETCD_ENDPOINTS)")]
    NoEndpoints,
    #[error("not an http://host:port endpoint: {0}")]
    BadEndpoint(String),
    #[error("no etcd endpoint answered ({endpoints}): {last}")]
    Unreachable { endpoints: String, last: String },
    #[error("etcd refused {path}: {message}")]
    Refused { path: String, message: String },
    #[error("etcd answered {path} with something unexpected: {0}", path = .1)]
    Protocol(String, String),
}

/// A key-value pair as a range returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A connection to a cluster.
#[derive(Debug)]
pub struct Client {
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first.
    current: AtomicUsize,
    timeout: Duration,
    /// How long to keep going round the endpoints when none can serve
    /// (a raft election takes about one election timeout).
    patience: Duration,
}

pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let text = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)?) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// The end of the range of every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A 64-bit number as the gateway prints it (a string) or a plain one;
/// absent is 0, as protobuf's defaults are left out.
pub fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_str().and_then(unb64).unwrap_or_default()
}

pub fn parse_kv(v: &Value) -> Kv {
    Kv {
        key: bytes(&v["key"]),
        value: bytes(&v["value"]),
        create_revision: num(&v["create_revision"]),
        mod_revision: num(&v["mod_revision"]),
        lease: num(&v["lease"]),
    }
}

/// Answers that say "ask another member" rather than "no".
fn retryable(status: u16, body: &Value) -> bool {
    let message = body["error"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or("");
    status == 503
        || message.contains("no leader")
        || message.contains("timed out")
        || message.contains("leader changed")
        || message.contains("not capable")
        || message.contains("too many requests")
}

impl Client {
    /// A client of the cluster at `endpoints` (`http://host:port`), each
    /// request given `timeout` per endpoint.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Client, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let endpoints = endpoints
            .iter()
            .map(|e| {
                http::authority(e)
                    .map(str::to_owned)
                    .ok_or_else(|| EtcdError::BadEndpoint(e.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Client {
            endpoints,
            current: AtomicUsize::new(0),
            timeout,
            patience: Duration::ZERO,
        })
    }

    /// Keeps asking round the endpoints for up to `patience` before a
    /// request fails as unreachable.
    pub fn with_patience(mut self, patience: Duration) -> Client {
        self.patience = patience;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` to `path`, round the endpoints from the one that
    /// answered last, for up to the client's patience.
    pub fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let started = std::time::Instant::now();
        loop {
            match self.call_once(path, body) {
                Err(EtcdError::Unreachable { .. }) if started.elapsed() < self.patience => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    /// One round of the endpoints.
    fn call_once(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let body = serde_json::to_vec(body).expect("JSON serialises");
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let at = (start + i) % self.endpoints.len();
            let endpoint = &self.endpoints[at];
            let answer = http::post(endpoint, path, &body, self.timeout).and_then(|r| {
                let status = r.status;
                Ok((status, r.body()?))
            });
            let (status, raw) = match answer {
                Ok(a) => a,
                Err(e) => {
                    last = format!("{endpoint}: {e}");
                    continue;
                }
            };
            let value: Value = serde_json::from_slice(&raw)
                .map_err(|e| EtcdError::Protocol(format!("{e}"), path.to_owned()))?;
            if status == 200 {
                self.current.store(at, Ordering::Relaxed);
                return Ok(value);
            }
            if retryable(status, &value) {
                last = format!(
                    "{endpoint}: {}",
                    value["error"].as_str().unwrap_or("unavailable")
                );
                continue;
            }
            return Err(EtcdError::Refused {
                path: path.to_owned(),
                message: value["error"]
                    .as_str()
                    .or(value["message"].as_str())
                    .unwrap_or("(no message)")
                    .to_owned(),
            });
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints.join(","),
            last,
        })
    }

    /// A lease of `ttl` seconds: its id and the TTL granted.
    pub fn grant(&self, ttl: i64) -> Result<(i64, i64), EtcdError> {
        let r = self.call("/v3/lease/grant", &json!({ "TTL": ttl }))?;
        let id = num(&r["ID"]);
        if id == 0 {
            return Err(EtcdError::Protocol(
                format!("no lease id in {r}"),
                "/v3/lease/grant".into(),
            ));
        }
        Ok((id, num(&r["TTL"])))
    }

    /// Refreshes lease `id`: the TTL it now has, 0 if it expired.
    pub fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let r = self.call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))?;
        Ok(num(&r["result"]["TTL"]))
    }

    pub fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() })) {
            Ok(_) => Ok(()),
            // Already gone: what revoking wanted.
            Err(EtcdError::Refused { message, .. }) if message.contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Seconds lease `id` has left; -1 if it expired.
    pub fn time_to_live(&self, id: i64) -> Result<i64, EtcdError> {
        let r = self.call("/v3/lease/timetolive", &json!({ "ID": id.to_string() }))?;
        Ok(num(&r["TTL"]))
    }

    /// Every key under `prefix`, oldest first (by creation).
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<(Vec<Kv>, i64), EtcdError> {
        let r = self.call(
            "/v3/kv/range",
            &json!({
                "key": b64(prefix),
                "range_end": b64(&prefix_end(prefix)),
                "sort_order": "ASCEND",
                "sort_target": "CREATE",
            }),
        )?;
        let kvs = r["kvs"]
            .as_array()
            .map(|a| a.iter().map(parse_kv).collect())
            .unwrap_or_default();
        Ok((kvs, num(&r["header"]["revision"])))
    }

    /// `key` itself, and the revision the read saw.
    pub fn get_key(&self, key: &[u8]) -> Result<(Option<Kv>, i64), EtcdError> {
        let r = self.call("/v3/kv/range", &json!({ "key": b64(key) }))?;
        let kv = r["kvs"].as_array().and_then(|a| a.first()).map(parse_kv);
        Ok((kv, num(&r["header"]["revision"])))
    }

    /// The key under `prefix` created last before `revision`, if any.
    pub fn predecessor(
        &self,
        prefix: &[u8],
        revision: i64,
    ) -> Result<(Option<Kv>, i64), EtcdError> {
        let r = self.call(
            "/v3/kv/range",
            &json!({
                "key": b64(prefix),
                "range_end": b64(&prefix_end(prefix)),
                "sort_order": "DESCEND",
                "sort_target": "CREATE",
                "max_create_revision": (revision - 1).to_string(),
                "limit": 1,
            }),
        )?;
        let kv = r["kvs"].as_array().and_then(|a| a.first()).map(parse_kv);
        Ok((kv, num(&r["header"]["revision"])))
    }

    /// A transaction: `(succeeded, header revision, responses)`.
    pub fn txn(
        &self,
        compare: Vec<Value>,
        success: Vec<Value>,
        failure: Vec<Value>,
    ) -> Result<(bool, i64, Value), EtcdError> {
        let r = self.call(
            "/v3/kv/txn",
            &json!({ "compare": compare, "success": success, "failure": failure }),
        )?;
        Ok((
            r["succeeded"].as_bool().unwrap_or(false),
            num(&r["header"]["revision"]),
            r["responses"].clone(),
        ))
    }

    /// Waits until `key` is deleted at or after `revision`, or `timeout`
    /// passes (false). Each endpoint is tried as by [`Client::call`].
    pub fn wait_deleted(
        &self,
        key: &[u8],
        revision: i64,
        timeout: Duration,
    ) -> Result<bool, EtcdError> {
        let body = serde_json::to_vec(&json!({
            "create_request": { "key": b64(key), "start_revision": revision.to_string() }
        }))
        .expect("JSON serialises");
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let endpoint = &self.endpoints[(start + i) % self.endpoints.len()];
            let mut response = match http::post(endpoint, "/v3/watch", &body, self.timeout) {
                Ok(r) if r.status == 200 => r,
                Ok(r) => {
                    last = format!("{endpoint}: HTTP {}", r.status);
                    continue;
                }
                Err(e) => {
                    last = format!("{endpoint}: {e}");
                    continue;
                }
            };
            let _ = response.set_timeout(timeout.max(Duration::from_millis(1)));
            let mut pending = Vec::new();
            loop {
                match response.next_message(&mut pending) {
                    Ok(Some(message)) => {
                        let v: Value = serde_json::from_slice(&message)
                            .map_err(|e| EtcdError::Protocol(e.to_string(), "/v3/watch".into()))?;
                        let events = v["result"]["events"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        if events.iter().any(|e| e["type"] == "DELETE") {
                            return Ok(true);
                        }
                        if v["result"]["canceled"] == true || v["error"].is_object() {
                            // Compacted past `revision`, or refused: look again.
                            return Ok(true);
                        }
                    }
                    Ok(None) => {
                        last = format!("{endpoint}: the watch ended");
                        break;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Ok(false);
                    }
                    Err(e) => {
                        last = format!("{endpoint}: {e}");
                        break;
                    }
                }
            }
        }
        Err(EtcdError::Unreachable {
            endpoints: self.endpoints.join(","),
            last,
        })
    }
}

/// Compare: `key` does not exist.
pub fn absent(key: &[u8]) -> Value {
    json!({ "key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" })
}

/// Compare: `key` exists with this creation revision.
pub fn created_at(key: &[u8], revision: i64) -> Value {
    json!({ "key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": revision.to_string() })
}

/// Compare: no key in `[key, end)` (or `key` alone, `end` empty) was
/// changed after `revision`: what a read at `revision` saw still stands.
pub fn unchanged_since(key: &[u8], end: &[u8], revision: i64) -> Value {
    let mut c = json!({
        "key": b64(key), "target": "MOD", "result": "LESS",
        "mod_revision": (revision + 1).to_string(),
    });
    if !end.is_empty() {
        c["range_end"] = Value::String(b64(end));
    }
    c
}

/// Compare: `key` holds `value`.
pub fn holds(key: &[u8], value: &[u8]) -> Value {
    json!({ "key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value) })
}

/// Request: put `key` = `value` under `lease` (0: none).
pub fn put(key: &[u8], value: &[u8], lease: i64) -> Value {
    json!({ "request_put": { "key": b64(key), "value": b64(value), "lease": lease.to_string() } })
}

/// Request: read `key`.
pub fn get(key: &[u8]) -> Value {
    json!({ "request_range": { "key": b64(key) } })
}

/// Request: delete `key`.
pub fn delete(key: &[u8]) -> Value {
    json!({ "request_delete_range": { "key": b64(key) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_the_standard() {
        assert_eq!(b64(b"a"), "YQ==");
        assert_eq!(b64(b"ab"), "YWI=");
        assert_eq!(b64(b"abc"), "YWJj");
        assert_eq!(b64(b""), "");
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(unb64(&b64(&data)), Some(data));
        }
        assert_eq!(unb64("Y"), None);
        assert_eq!(unb64("Y!=="), None);
    }

    #[test]
    fn a_prefix_range_ends_past_every_key_under_it() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
