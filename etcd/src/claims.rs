//! Claims on paths, all or nothing in one transaction, with the file
//! backend's rule that a directory covers everything beneath it.
//!
//! A claim on `src/a.js` is the key `/baton/claim/NS/src/a.js/`, attached
//! to the claimant's lease. Claiming `P` conflicts with a claim on any
//! ancestor of `P` (an exact key each) and on `P` or anything beneath it
//! (every key under `P/`). The claimant reads those, and commits its keys
//! in a transaction conditioned on none of what it read having changed
//! since (`mod_revision` below the read's revision, over each key and each
//! range): optimistic, so a claim costs its reads and one write, and two
//! claimants racing cannot both see the other's absence.

use serde::{Deserialize, Serialize};

use crate::client::{self, Client, EtcdError, prefix_end};
use crate::escape;
use crate::session::Session;

/// Who holds a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub path: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
    /// The lease it is held under (its remaining TTL is the claim's).
    #[serde(default)]
    pub lease: i64,
}

fn namespace_prefix(namespace: &str) -> Vec<u8> {
    format!("/baton/claim/{}/", escape(namespace)).into_bytes()
}

/// The key of a claim on `path` (relative, `/`-separated, no empty, `.`
/// or `..` component: the CLI normalises it so).
fn key(namespace: &str, path: &str) -> Vec<u8> {
    let mut k = namespace_prefix(namespace);
    k.extend_from_slice(path.as_bytes());
    k.push(b'/');
    k
}

fn parse(value: &[u8]) -> Option<Claim> {
    serde_json::from_slice(value).ok()
}

fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Claims every one of `paths` for `id`, or none: `Ok(Err(holders))`
/// names the claims of others in the way. Claims `id` already holds are
/// taken over by this session's lease.
pub fn claim(
    session: &Session,
    namespace: &str,
    id: &str,
    task: &str,
    paths: &[String],
) -> Result<Result<(), Vec<Claim>>, EtcdError> {
    let client = session.client();
    for _ in 0..16 {
        let mut compares = Vec::new();
        let mut others = Vec::new();
        let mut note = |value: &[u8], path: &str| match parse(value) {
            Some(c) if c.id == id => {}
            Some(c) => others.push(c),
            None => others.push(Claim {
                path: path.to_owned(),
                id: "(not baton's)".to_owned(),
                task: String::new(),
                lease: 0,
            }),
        };
        for path in paths {
            let below = key(namespace, path);
            let (kvs, revision) = client.range_prefix(&below)?;
            for kv in &kvs {
                note(&kv.value, path);
            }
            compares.push(client::unchanged_since(
                &below,
                &prefix_end(&below),
                revision,
            ));
            for above in ancestors(path) {
                let above = key(namespace, above);
                let (kv, revision) = client.get_key(&above)?;
                if let Some(kv) = kv {
                    note(&kv.value, path);
                }
                compares.push(client::unchanged_since(&above, b"", revision));
            }
        }
        if !others.is_empty() {
            others.dedup();
            return Ok(Err(others));
        }
        let puts = paths
            .iter()
            .map(|p| {
                let claim = Claim {
                    path: p.clone(),
                    id: id.to_owned(),
                    task: task.to_owned(),
                    lease: session.lease(),
                };
                let value = serde_json::to_vec(&claim).expect("JSON serialises");
                client::put(&key(namespace, p), &value, session.lease())
            })
            .collect();
        let (done, _, _) = client.txn(compares, puts, vec![])?;
        if done {
            return Ok(Ok(()));
        }
    }
    Err(EtcdError::Protocol(
        "claims kept changing".into(),
        "/v3/kv/txn".into(),
    ))
}

/// Who holds `path` or a directory above it.
pub fn who(client: &Client, namespace: &str, path: &str) -> Result<Option<Claim>, EtcdError> {
    for candidate in ancestors(path).chain([path]) {
        if let (Some(kv), _) = client.get_key(&key(namespace, candidate))? {
            return Ok(parse(&kv.value));
        }
    }
    Ok(None)
}

/// Every claim in the namespace.
pub fn all(client: &Client, namespace: &str) -> Result<Vec<Claim>, EtcdError> {
    let (kvs, _) = client.range_prefix(&namespace_prefix(namespace))?;
    Ok(kvs.iter().filter_map(|kv| parse(&kv.value)).collect())
}

/// Releases `id`'s claims (on `paths`, or all): each deleted only if it
/// is still the one read. Returns the paths released.
pub fn release(
    client: &Client,
    namespace: &str,
    id: &str,
    paths: Option<&[String]>,
) -> Result<Vec<String>, EtcdError> {
    let (kvs, _) = client.range_prefix(&namespace_prefix(namespace))?;
    let mut released = Vec::new();
    for kv in kvs {
        let Some(c) = parse(&kv.value) else { continue };
        if c.id != id || paths.is_some_and(|ps| !ps.contains(&c.path)) {
            continue;
        }
        let (done, _, _) = client.txn(
            vec![client::holds(&kv.key, &kv.value)],
            vec![client::delete(&kv.key)],
            vec![],
        )?;
        if done {
            released.push(c.path);
        }
    }
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_key_is_its_path_closed_by_a_slash() {
        assert_eq!(key("ns", "src/a.js"), b"/baton/claim/ns/src/a.js/");
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        // A directory's key is a prefix of its files' keys, never of a
        // sibling's that merely starts with its name.
        assert!(key("ns", "src/a.js").starts_with(&key("ns", "src")));
        assert!(!key("ns", "srcx/a").starts_with(&key("ns", "src")));
    }
}
