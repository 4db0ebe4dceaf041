//! The owner record: who holds a lock, written into the lock file.
//!
//! A record is one JSON object and a newline. It tells `status` who holds a
//! lock, and tells a waiter whether that holder is provably dead: a record
//! from this host, this boot and this pid namespace names a process that can
//! be checked in `/proc`; any other record cannot be checked.
//!
//! Bytes in a lock file were written by someone else (another baton, another
//! tool, a crash), so parsing never panics: every failure is a
//! [`RecordError`] saying what was there.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::env::{ProcessIdentity, Random};

/// The most bytes baton reads of any record it wrote (lock, member,
/// leader, lease): far above any real one, far below a planted huge file.
pub const RECORD_LIMIT: u64 = 64 * 1024;

/// Format version written into every record.
pub const RECORD_FORMAT: u32 = 1;

/// One acquisition of a lock: 128 random bits, unique across processes and
/// hosts, so a holder can tell its lock from the next holder's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u128);

impl Token {
    pub fn random(rng: &impl Random) -> Token {
        Token((u128::from(rng.random_u64()) << 64) | u128::from(rng.random_u64()))
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Every record baton writes begins with these bytes (serde writes the
/// `baton` field first), and so does any mix of two of them torn by a
/// machine crash. It is how baton tells its own files from a user's.
pub const MAGIC: &[u8] = b"{\"baton\":";

/// Whether `bytes`, found under one of baton's names, are baton's own: a
/// record (whole or torn, however short), or nothing at all. An empty file counts because
/// of how it can come to be: a file-mode lock file is published by `link`
/// with its record, unsynced, and a machine crash can keep the name but not
/// the data (delayed allocation); no other tool creates files under
/// baton's names (`.baton.lock`, `.member`). Anything else is a user's
/// file, which baton never writes to or removes.
pub fn written_by_baton(bytes: &[u8]) -> bool {
    // A tear can stop anywhere, even inside the magic itself.
    bytes.starts_with(MAGIC) || MAGIC.starts_with(bytes)
}

/// What a kernel-mode sidecar holds while nobody holds the lock: it is never
/// removed, so an exclusive-file waiter must not mistake it for a lock.
pub const FREE_SIDECAR: &[u8] = b"{\"baton\":1,\"free\":\"kernel-mode sidecar\"}\n";

/// Kernel-mode records are written over a fixed-size slot, padded with
/// spaces, so a new record overwrites the old in place. Truncating instead
/// costs a block flush on ext4 (`auto_da_alloc`), 50x the lock itself.
pub const SLOT_LEN: usize = 512;

/// `bytes` padded with spaces (before its final newline) to at least
/// [`SLOT_LEN`]; JSON ignores the padding.
pub fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.strip_suffix(b"\n").unwrap_or(bytes).to_vec();
    if out.len() < SLOT_LEN - 1 {
        out.resize(SLOT_LEN - 1, b' ');
    }
    out.push(b'\n');
    out
}

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub baton: u32,
    pub pid: u32,
    pub start_time: u64,
    pub boot_id: String,
    pub pid_ns: u64,
    pub host: String,
    pub instance: String,
    /// The holder's wall clock at acquisition, in ms since the epoch: for
    /// people reading `status`. Never compared with another clock.
    pub acquired_at_ms: u64,
    pub token: String,
}

/// Why the bytes in a lock file are not a baton record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("truncated record ({len} bytes)")]
    Truncated { len: usize },
    #[error("garbage record ({len} bytes, not JSON)")]
    Garbage { len: usize },
    #[error("free kernel-mode sidecar")]
    FreeSidecar,
    #[error("record from another tool ({reason})")]
    Foreign { reason: String },
}

impl OwnerRecord {
    pub fn new(
        me: &ProcessIdentity,
        instance: &str,
        acquired_at: SystemTime,
        token: Token,
    ) -> OwnerRecord {
        let acquired_at_ms = acquired_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        OwnerRecord {
            baton: RECORD_FORMAT,
            pid: me.pid,
            start_time: me.start_time,
            boot_id: me.boot_id.clone(),
            pid_ns: me.pid_ns,
            host: me.host.clone(),
            instance: instance.to_owned(),
            acquired_at_ms,
            token: token.to_string(),
        }
    }

    /// The record as written: one line that fits a [`SLOT_LEN`] slot. The
    /// instance text, the one field a user sets at any length, is
    /// shortened until it fits (it is for people); every other field is
    /// bounded by the kernel (a host name is at most 64 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut record = std::borrow::Cow::Borrowed(self);
        loop {
            let mut bytes = serde_json::to_vec(&*record).expect("a record always serializes");
            bytes.push(b'\n');
            if bytes.len() <= SLOT_LEN || record.instance.is_empty() {
                debug_assert!(bytes.len() <= SLOT_LEN, "identity fields are bounded");
                return bytes;
            }
            let keep = record.instance.chars().count() / 2;
            record.to_mut().instance = record.instance.chars().take(keep).collect();
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<OwnerRecord, RecordError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(RecordError::Empty);
        }
        if bytes.trim_ascii() == FREE_SIDECAR.trim_ascii() {
            return Err(RecordError::FreeSidecar);
        }
        let len = bytes.len();
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(RecordError::Garbage { len });
        }
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Eof => RecordError::Truncated { len },
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                RecordError::Garbage { len }
            }
            serde_json::error::Category::Data => RecordError::Foreign {
                reason: e.to_string(),
            },
        })
    }

    /// True when this record's pid can be checked from `me`: same host, same
    /// boot, same pid namespace.
    pub fn checkable_from(&self, me: &ProcessIdentity) -> bool {
        self.host == me.host && self.boot_id == me.boot_id && self.pid_ns == me.pid_ns
    }
}

impl fmt::Display for OwnerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {} ({})", self.pid, self.host, self.instance)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn me() -> ProcessIdentity {
        ProcessIdentity {
            pid: 4242,
            start_time: 1_000,
            boot_id: "boot-a".into(),
            pid_ns: 4_026_531_836,
            host: "devbox".into(),
        }
    }

    fn record() -> OwnerRecord {
        OwnerRecord::new(&me(), "agent-1", UNIX_EPOCH, Token(0xabc))
    }

    #[test]
    fn a_token_carries_both_random_words() {
        struct Counting(std::cell::Cell<u64>);
        impl Random for Counting {
            fn random_u64(&self) -> u64 {
                self.0.set(self.0.get() + 1);
                self.0.get()
            }
        }
        assert_eq!(
            Token::random(&Counting(Default::default())),
            Token((1 << 64) | 2)
        );
    }

    #[test]
    fn padding_fills_exactly_one_slot() {
        for record in [
            &b"{}\n"[..],
            &[b'x'; SLOT_LEN - 2][..],
            &[b'x'; SLOT_LEN - 1][..],
        ] {
            let p = padded(record);
            assert_eq!(p.len(), SLOT_LEN, "{}", record.len());
            assert!(p.ends_with(b"\n"));
        }
    }

    #[test]
    fn an_owner_shows_its_pid_host_and_instance() {
        assert_eq!(record().to_string(), "pid 4242 on devbox (agent-1)");
    }

    #[test]
    fn record_round_trips_through_bytes() {
        let r = record();
        assert_eq!(OwnerRecord::parse(&r.to_bytes()), Ok(r));
    }

    #[test]
    fn a_long_instance_is_shortened_to_fit_the_slot() {
        // Control characters escape to six bytes each: the worst case.
        let long = "\u{1}é".repeat(400);
        let r = OwnerRecord::new(&me(), &long, UNIX_EPOCH, Token(7));
        let bytes = r.to_bytes();
        assert!(bytes.len() <= SLOT_LEN, "{} bytes", bytes.len());
        let back = OwnerRecord::parse(&bytes).unwrap();
        assert!(long.starts_with(&back.instance) && !back.instance.is_empty());
        assert_eq!((back.pid, back.token), (r.pid, r.token));
    }

    #[test]
    fn token_prints_as_32_hex_digits() {
        assert_eq!(Token(0xabc).to_string(), format!("{:0>32}", "abc"));
    }

    #[test]
    fn empty_file_is_an_empty_record() {
        assert_eq!(OwnerRecord::parse(b""), Err(RecordError::Empty));
        assert_eq!(OwnerRecord::parse(b" \n"), Err(RecordError::Empty));
    }

    #[test]
    fn truncated_json_is_reported_as_truncated() {
        let bytes = record().to_bytes();
        let cut = &bytes[..bytes.len() / 2];
        assert_eq!(
            OwnerRecord::parse(cut),
            Err(RecordError::Truncated { len: cut.len() })
        );
    }

    #[test]
    fn garbage_bytes_are_garbage() {
        assert_eq!(
            OwnerRecord::parse(b"\xff\xfe\x00lock"),
            Err(RecordError::Garbage { len: 7 })
        );
        // A bare pid, as some tools write.
        assert!(matches!(
            OwnerRecord::parse(b"12345 x"),
            Err(RecordError::Garbage { .. })
        ));
    }

    #[test]
    fn batons_records_are_told_from_users_files() {
        assert!(written_by_baton(&record().to_bytes()));
        assert!(written_by_baton(&padded(FREE_SIDECAR)));
        assert!(
            written_by_baton(b""),
            "a file-mode lock after a machine crash"
        );
        let torn = &record().to_bytes()[..20];
        assert!(written_by_baton(torn));
        for users in [
            &b"GEM\n"[..],
            b"# This file is automatically @generated by Cargo.\n",
            b"{\"lockfileVersion\": 3}",
            b" {\"baton\":1}",
            b"\n",
        ] {
            assert!(
                !written_by_baton(users),
                "{:?}",
                String::from_utf8_lossy(users)
            );
        }
    }

    #[test]
    fn free_kernel_sidecar_is_recognised() {
        assert_eq!(
            OwnerRecord::parse(FREE_SIDECAR),
            Err(RecordError::FreeSidecar)
        );
    }

    #[test]
    fn json_without_baton_fields_is_foreign() {
        assert!(matches!(
            OwnerRecord::parse(br#"{"pid": 12}"#),
            Err(RecordError::Foreign { .. })
        ));
    }

    #[test]
    fn record_from_another_host_boot_or_namespace_is_not_checkable() {
        let mine = record();
        assert!(mine.checkable_from(&me()));
        for change in [
            |r: &mut OwnerRecord| r.host = "laptop".into(),
            |r: &mut OwnerRecord| r.boot_id = "boot-b".into(),
            |r: &mut OwnerRecord| r.pid_ns += 1,
        ] {
            let mut other = mine.clone();
            change(&mut other);
            assert!(!other.checkable_from(&me()), "{other:?}");
        }
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn any_record() -> impl Strategy<Value = OwnerRecord> {
            (
                any::<u32>(),
                any::<u64>(),
                ".*",
                any::<u64>(),
                ".*",
                ".*",
                any::<u64>(),
                any::<u128>(),
            )
                .prop_map(|(pid, start, boot, ns, host, inst, ms, token)| {
                    OwnerRecord {
                        baton: RECORD_FORMAT,
                        pid,
                        start_time: start,
                        boot_id: boot,
                        pid_ns: ns,
                        host,
                        instance: inst,
                        acquired_at_ms: ms,
                        token: Token(token).to_string(),
                    }
                })
        }

        proptest! {
            #[test]
            fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let parsed = OwnerRecord::parse(&bytes);
                // Whatever parses was JSON: never empty or free.
                if parsed.is_ok() {
                    prop_assert!(!bytes.trim_ascii().is_empty());
                }
                let _ = written_by_baton(&bytes);
            }

            #[test]
            fn every_record_round_trips_and_every_tear_is_batons(r in any_record(), cut in any::<prop::sample::Index>()) {
                let bytes = r.to_bytes();
                prop_assert_eq!(OwnerRecord::parse(&bytes), Ok(r.clone()));
                prop_assert_eq!(OwnerRecord::parse(&padded(&bytes)), Ok(r));
                // A machine crash can keep any prefix of a record.
                let torn = &bytes[..cut.index(bytes.len() + 1)];
                prop_assert!(written_by_baton(torn));
            }
        }
    }
}
