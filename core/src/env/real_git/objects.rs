//! git's object database, read and written in-process: loose objects, and
//! pack files through their version-2 indexes with both kinds of delta.
//! Only what a scoped commit needs: find a commit's tree, read the trees on
//! the paths it changes, write blobs, trees and the commit.
//!
//! Formats as git documents them (`gitformat-pack(5)`, "loose objects" in
//! `gitrepository-layout(5)`): a loose object is the zlib stream of
//! `TYPE SIZE\0CONTENT` at `objects/XX/YYYY...`, named by the SHA-1 of
//! that header and content. Anything this reader does not know (an index
//! version other than 2, an object in an alternate store, a promised one)
//! reads as absent, and the caller hands the whole step back to git.
//!
//! Objects are written as one pack per [`Objects::flush`], not one loose
//! file each: a commit's handful of objects then costs two file syncs and
//! one directory sync rather than a sync per object and per fan-out
//! directory (five objects: eleven syncs, most of the in-process commit's
//! time). The pack and its index are synced before they are renamed into
//! place, the index last (git ignores a pack without one), and the pack
//! directory after: when `flush` returns, a machine crash keeps every
//! object, which git's own `core.fsync=committed` leaves to the file
//! system's ordering of directory entries. Packs accumulate like a
//! fetch's; git's automatic maintenance folds them (see
//! [`Objects::pack_count`]).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A SHA-1 object name.
pub type Id = [u8; 20];

/// The four object types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Commit => "commit",
            Kind::Tree => "tree",
            Kind::Blob => "blob",
            Kind::Tag => "tag",
        }
    }

    fn parse(name: &[u8]) -> Option<Kind> {
        match name {
            b"commit" => Some(Kind::Commit),
            b"tree" => Some(Kind::Tree),
            b"blob" => Some(Kind::Blob),
            b"tag" => Some(Kind::Tag),
            _ => None,
        }
    }

    /// The type numbers of a pack entry's header.
    fn packed(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Commit),
            2 => Some(Kind::Tree),
            3 => Some(Kind::Blob),
            4 => Some(Kind::Tag),
            _ => None,
        }
    }
}

/// Largest object this reader inflates: trees and commits, never the
/// user's big files (blobs are only written).
const READ_LIMIT: usize = 64 << 20;

/// Longest delta chain followed before the pack is taken as corrupt.
const MAX_CHAIN: usize = 10_000;

/// One repository's `objects` directory.
#[derive(Debug)]
pub struct Objects {
    dir: PathBuf,
    /// The packs found by the last scan of `objects/pack`, newest first.
    packs: Mutex<Option<Arc<Vec<PackSlot>>>>,
    /// Objects added since the last [`Objects::flush`], by name.
    pending: Mutex<BTreeMap<Id, (Kind, Vec<u8>)>>,
}

fn corrupt(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub fn to_hex(id: &Id) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(hex: &str) -> Option<Id> {
    if hex.len() != 40 {
        return None;
    }
    let mut id = [0u8; 20];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

/// The name git gives `content` of type `kind`, and the bytes it hashes.
fn framed(kind: Kind, content: &[u8]) -> (Id, Vec<u8>) {
    let mut raw = format!("{} {}\0", kind.name(), content.len()).into_bytes();
    raw.extend_from_slice(content);
    (sha1_smol::Sha1::from(&raw).digest().bytes(), raw)
}

/// The name of `content` as an object of type `kind`, written or not.
pub fn id_of(kind: Kind, content: &[u8]) -> Id {
    framed(kind, content).0
}

impl Objects {
    pub fn new(dir: PathBuf) -> Objects {
        Objects {
            dir,
            packs: Mutex::new(None),
            pending: Mutex::new(BTreeMap::new()),
        }
    }

    fn loose_path(&self, id: &Id) -> PathBuf {
        let hex = to_hex(id);
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The object named `id`: `None` if this store does not hold it where
    /// this reader looks.
    pub fn read(&self, id: &Id) -> io::Result<Option<(Kind, Vec<u8>)>> {
        if let Some((kind, content)) = lock(&self.pending).get(id) {
            return Ok(Some((*kind, content.clone())));
        }
        match fs::read(self.loose_path(id)) {
            Ok(zipped) => return parse_loose(&zipped).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // A pack written since the last scan (another commit's, or a
        // repack's) is found by scanning again, once, as git does.
        for rescan in [false, true] {
            for slot in self.packs(rescan)?.iter() {
                let Some(pack) = slot.open()? else { continue };
                if let Some(offset) = pack.find(id)? {
                    return pack.read_at(offset, 0).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The object named `id` if it has type `kind`.
    pub fn read_kind(&self, id: &Id, kind: Kind) -> io::Result<Option<Vec<u8>>> {
        match self.read(id)? {
            Some((k, content)) if k == kind => Ok(Some(content)),
            Some((k, _)) => Err(corrupt(format!(
                "{} is a {}, not a {}",
                to_hex(id),
                k.name(),
                kind.name()
            ))),
            None => Ok(None),
        }
    }

    /// The packs, newest first (a commit's tip and the trees it rewrote
    /// are in the newest ones), each opened only when first searched: a
    /// repository where packs have piled up costs a listing, not an open
    /// of every pack.
    fn packs(&self, rescan: bool) -> io::Result<Arc<Vec<PackSlot>>> {
        let mut packs = lock(&self.packs);
        if let (Some(found), false) = (&*packs, rescan) {
            return Ok(found.clone());
        }
        let mut found = Vec::new();
        let dir = self.dir.join("pack");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        for entry in entries.into_iter().flatten() {
            let entry = entry?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".idx")) else {
                continue;
            };
            // Gone meanwhile (a repack): skipped like a missing pack.
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            found.push((
                modified,
                PackSlot {
                    idx: dir.join(format!("{stem}.idx")),
                    pack: dir.join(format!("{stem}.pack")),
                    opened: OnceLock::new(),
                },
            ));
        }
        found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        let found = Arc::new(found.into_iter().map(|(_, slot)| slot).collect::<Vec<_>>());
        *packs = Some(found.clone());
        Ok(found)
    }

    /// How many packs the last scan found (git's `gc.autoPackLimit`
    /// counts the same).
    pub fn pack_count(&self) -> usize {
        lock(&self.packs).as_ref().map_or(0, |p| p.len())
    }

    /// Adds an object of type `kind` to be written by the next
    /// [`Objects::flush`], and returns its name.
    pub fn add(&self, kind: Kind, content: Vec<u8>) -> Id {
        let id = id_of(kind, &content);
        lock(&self.pending).entry(id).or_insert((kind, content));
        id
    }

    /// Writes every object added since the last flush as one pack, durable
    /// when this returns. Nothing added: nothing written.
    pub fn flush(&self) -> io::Result<()> {
        let mut pending = lock(&self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let (pack, index) = encode_pack(&pending);
        let dir = self.dir.join("pack");
        let made_dir = match fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let name = to_hex(pack[pack.len() - 20..].try_into().expect("a trailer"));
        let pack_temp = write_synced(&dir, &pack)?;
        let index_temp = match write_synced(&dir, &index) {
            Ok(temp) => temp,
            Err(e) => {
                let _ = fs::remove_file(&pack_temp);
                return Err(e);
            }
        };
        let renamed = fs::rename(&pack_temp, dir.join(format!("pack-{name}.pack")))
            .and_then(|()| fs::rename(&index_temp, dir.join(format!("pack-{name}.idx"))));
        if let Err(e) = renamed {
            let _ = fs::remove_file(&pack_temp);
            let _ = fs::remove_file(&index_temp);
            return Err(e);
        }
        File::open(&dir)?.sync_all()?;
        if made_dir {
            File::open(&self.dir)?.sync_all()?;
        }
        pending.clear();
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to a new read-only temporary file in `dir`, synced.
fn write_synced(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let temp = dir.join(format!(
        "tmp_pack_baton_{}_{:016x}",
        std::process::id(),
        random_u64()
    ));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        });
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// A pack of `objects` (version 2, none deltified) and its version-2
/// index, as `gitformat-pack(5)` lays them out.
fn encode_pack(objects: &BTreeMap<Id, (Kind, Vec<u8>)>) -> (Vec<u8>, Vec<u8>) {
    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&(objects.len() as u32).to_be_bytes());
    let mut entries = Vec::with_capacity(objects.len());
    for (id, (kind, content)) in objects {
        let start = pack.len();
        let code = match kind {
            Kind::Commit => 1u8,
            Kind::Tree => 2,
            Kind::Blob => 3,
            Kind::Tag => 4,
        };
        let mut size = content.len() as u64;
        let mut byte = (code << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size != 0 {
            pack.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        pack.push(byte);
        pack.extend_from_slice(&miniz_oxide::deflate::compress_to_vec_zlib(content, 1));
        entries.push((*id, crc32(&pack[start..]), start as u64));
    }
    let trailer = sha1_smol::Sha1::from(&pack).digest().bytes();
    pack.extend_from_slice(&trailer);

    // `objects` is ordered by name, as the index must be.
    let mut index = IDX_MAGIC.to_vec();
    index.extend_from_slice(&2u32.to_be_bytes());
    for first in 0..=255u8 {
        let upto = entries.iter().filter(|(id, _, _)| id[0] <= first).count() as u32;
        index.extend_from_slice(&upto.to_be_bytes());
    }
    for (id, _, _) in &entries {
        index.extend_from_slice(id);
    }
    for (_, crc, _) in &entries {
        index.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, _, offset) in &entries {
        if *offset < 0x8000_0000 {
            index.extend_from_slice(&(*offset as u32).to_be_bytes());
        } else {
            index.extend_from_slice(&(0x8000_0000 | large.len() as u32).to_be_bytes());
            large.push(*offset);
        }
    }
    for offset in large {
        index.extend_from_slice(&offset.to_be_bytes());
    }
    index.extend_from_slice(&trailer);
    let checksum = sha1_smol::Sha1::from(&index).digest().bytes();
    index.extend_from_slice(&checksum);
    (pack, index)
}

/// CRC-32 (IEEE, reflected), which the index keeps of each packed entry.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
}

/// A random number for a temporary file's name.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // A short read leaves zeros: the name is still unique by pid, and
    // created exclusively.
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    u64::from_le_bytes(bytes)
}

fn parse_loose(zipped: &[u8]) -> io::Result<(Kind, Vec<u8>)> {
    let raw = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(zipped, READ_LIMIT + 64)
        .map_err(|e| corrupt(format!("loose object: {:?}", e.status)))?;
    let nul = raw
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| corrupt("loose object without a header"))?;
    let header = &raw[..nul];
    let space = header
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| corrupt("loose object header"))?;
    let kind = Kind::parse(&header[..space]).ok_or_else(|| corrupt("loose object type"))?;
    let size: usize = std::str::from_utf8(&header[space + 1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt("loose object size"))?;
    let content = raw[nul + 1..].to_vec();
    if content.len() != size {
        return Err(corrupt("loose object shorter or longer than its header"));
    }
    Ok((kind, content))
}

/// A pack a scan found, opened on first use.
#[derive(Debug)]
struct PackSlot {
    idx: PathBuf,
    pack: PathBuf,
    opened: OnceLock<Option<Arc<Pack>>>,
}

impl PackSlot {
    /// The pack, or `None` if it is gone or its index is not version 2
    /// (a pack being written has its index renamed in last; one being
    /// removed loses its index first: either way, skipped).
    fn open(&self) -> io::Result<Option<Arc<Pack>>> {
        if let Some(pack) = self.opened.get() {
            return Ok(pack.clone());
        }
        let pack = Pack::open(&self.idx, &self.pack)?.map(Arc::new);
        Ok(self.opened.get_or_init(|| pack).clone())
    }
}

/// A pack and its version-2 index, read by offset (never whole).
#[derive(Debug)]
struct Pack {
    idx: File,
    pack: File,
    pack_len: u64,
    /// The index's fan-out table: objects whose first byte is ≤ i.
    fanout: [u32; 256],
}

const IDX_MAGIC: [u8; 4] = [0xff, b't', b'O', b'c'];
const IDX_HEADER: u64 = 8 + 256 * 4;

impl Pack {
    /// `None` when the pair is not there (any more) or the index is not
    /// version 2.
    fn open(idx_path: &Path, pack_path: &Path) -> io::Result<Option<Pack>> {
        let (idx, pack) = match (File::open(idx_path), File::open(pack_path)) {
            (Ok(idx), Ok(pack)) => (idx, pack),
            (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let mut header = [0u8; IDX_HEADER as usize];
        idx.read_exact_at(&mut header, 0)?;
        if header[..4] != IDX_MAGIC || header[4..8] != 2u32.to_be_bytes() {
            return Ok(None);
        }
        let mut fanout = [0u32; 256];
        for (i, slot) in fanout.iter_mut().enumerate() {
            let at = 8 + 4 * i;
            *slot = u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        }
        let pack_len = pack.metadata()?.len();
        Ok(Some(Pack {
            idx,
            pack,
            pack_len,
            fanout,
        }))
    }

    fn count(&self) -> u64 {
        u64::from(self.fanout[255])
    }

    /// The offset in the pack of object `id`, by binary search of the
    /// index's names between the fan-out bounds of its first byte.
    fn find(&self, id: &Id) -> io::Result<Option<u64>> {
        let first = usize::from(id[0]);
        let lo = if first == 0 {
            0
        } else {
            u64::from(self.fanout[first - 1])
        };
        let hi = u64::from(self.fanout[first]);
        if hi <= lo {
            return Ok(None);
        }
        let mut names = vec![0u8; ((hi - lo) * 20) as usize];
        self.idx.read_exact_at(&mut names, IDX_HEADER + lo * 20)?;
        let found = names
            .chunks_exact(20)
            .collect::<Vec<_>>()
            .binary_search_by(|name| (*name).cmp(&id[..]));
        let Ok(i) = found else {
            return Ok(None);
        };
        let n = self.count();
        let at = lo + i as u64;
        // Names, then CRCs, then 4-byte offsets (top bit: an index into the
        // 8-byte table that follows).
        let mut small = [0u8; 4];
        self.idx
            .read_exact_at(&mut small, IDX_HEADER + n * 24 + at * 4)?;
        let small = u32::from_be_bytes(small);
        if small & 0x8000_0000 == 0 {
            return Ok(Some(u64::from(small)));
        }
        let mut large = [0u8; 8];
        let slot = u64::from(small & 0x7fff_ffff);
        self.idx
            .read_exact_at(&mut large, IDX_HEADER + n * 28 + slot * 8)?;
        Ok(Some(u64::from_be_bytes(large)))
    }

    /// The object whose entry starts at `offset`, its deltas applied.
    fn read_at(&self, offset: u64, depth: usize) -> io::Result<(Kind, Vec<u8>)> {
        if depth > MAX_CHAIN {
            return Err(corrupt("pack delta chain too long"));
        }
        // The header: type and size (≤ 10 bytes), then a delta's base
        // (≤ 10 bytes of offset, or a 20-byte name).
        let mut head = [0u8; 32];
        let avail = self.pack_len.saturating_sub(offset).min(head.len() as u64) as usize;
        self.pack.read_exact_at(&mut head[..avail], offset)?;
        let head = &head[..avail];
        let mut pos = 0;
        let next = |pos: &mut usize| -> io::Result<u8> {
            let b = *head.get(*pos).ok_or_else(|| corrupt("pack entry header"))?;
            *pos += 1;
            Ok(b)
        };
        let mut byte = next(&mut pos)?;
        let code = (byte >> 4) & 7;
        let mut size = u64::from(byte & 0x0f);
        let mut shift = 4;
        while byte & 0x80 != 0 {
            byte = next(&mut pos)?;
            if shift > 60 {
                return Err(corrupt("pack entry size"));
            }
            size |= u64::from(byte & 0x7f) << shift;
            shift += 7;
        }
        if size > READ_LIMIT as u64 {
            return Err(corrupt("pack entry too large to read here"));
        }
        let base = match code {
            6 => {
                // OFS_DELTA: a big-endian base-128 distance back, each
                // continuation adding one (so no two spellings collide).
                let mut b = next(&mut pos)?;
                let mut distance = u64::from(b & 0x7f);
                while b & 0x80 != 0 {
                    b = next(&mut pos)?;
                    distance = ((distance + 1) << 7) | u64::from(b & 0x7f);
                }
                let base = offset
                    .checked_sub(distance)
                    .filter(|_| distance > 0)
                    .ok_or_else(|| corrupt("pack delta base offset"))?;
                Some(self.read_at(base, depth + 1)?)
            }
            7 => {
                let name: Id = head
                    .get(pos..pos + 20)
                    .ok_or_else(|| corrupt("pack entry header"))?
                    .try_into()
                    .expect("20 bytes");
                pos += 20;
                let base = self
                    .find(&name)?
                    .ok_or_else(|| corrupt("pack delta base outside its pack"))?;
                Some(self.read_at(base, depth + 1)?)
            }
            _ => None,
        };
        let data = self.inflate(offset + pos as u64, size as usize)?;
        match base {
            Some((kind, base)) => Ok((kind, apply_delta(&base, &data)?)),
            None => {
                let kind = Kind::packed(code).ok_or_else(|| corrupt("pack entry type"))?;
                Ok((kind, data))
            }
        }
    }

    /// The zlib stream at `offset`, which inflates to `size` bytes.
    fn inflate(&self, offset: u64, size: usize) -> io::Result<Vec<u8>> {
        // zlib's worst case: stored blocks, 5 bytes per 16 KiB, 6 of
        // header and checksum; the pack's 20-byte trailer is never data.
        let bound = size as u64 + 5 * (size as u64 / 16_383 + 1) + 6;
        let end = self.pack_len.saturating_sub(20);
        let len = bound.min(end.saturating_sub(offset));
        let mut zipped = vec![0u8; len as usize];
        self.pack.read_exact_at(&mut zipped, offset)?;
        let data = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&zipped, size + 1)
            .map_err(|e| corrupt(format!("pack entry: {:?}", e.status)))?;
        if data.len() != size {
            return Err(corrupt("pack entry shorter or longer than its header"));
        }
        Ok(data)
    }
}

/// A base-128 little-endian size at the front of `delta`.
fn delta_size(delta: &[u8], pos: &mut usize) -> io::Result<usize> {
    let mut size = 0usize;
    let mut shift = 0;
    loop {
        let b = *delta.get(*pos).ok_or_else(|| corrupt("delta size"))?;
        *pos += 1;
        if shift > 56 {
            return Err(corrupt("delta size"));
        }
        size |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(size);
        }
    }
}

/// Rebuilds an object from its base and a delta: the base's size, the
/// result's, then instructions to copy a range of the base or insert the
/// bytes that follow.
fn apply_delta(base: &[u8], delta: &[u8]) -> io::Result<Vec<u8>> {
    let mut pos = 0;
    if delta_size(delta, &mut pos)? != base.len() {
        return Err(corrupt("delta base size"));
    }
    let size = delta_size(delta, &mut pos)?;
    if size > READ_LIMIT {
        return Err(corrupt("delta result too large to read here"));
    }
    let mut out = Vec::with_capacity(size);
    while pos < delta.len() {
        let cmd = delta[pos];
        pos += 1;
        if cmd & 0x80 != 0 {
            // Copy: which of 4 offset and 3 size bytes follow, by bit.
            let mut field = |bits: std::ops::Range<u32>| -> io::Result<usize> {
                let mut value = 0usize;
                for (i, bit) in bits.enumerate() {
                    if cmd & (1 << bit) != 0 {
                        let b = *delta.get(pos).ok_or_else(|| corrupt("delta copy"))?;
                        pos += 1;
                        value |= usize::from(b) << (8 * i);
                    }
                }
                Ok(value)
            };
            let from = field(0..4)?;
            let len = match field(4..7)? {
                0 => 0x10000,
                n => n,
            };
            let range = base
                .get(from..from.checked_add(len).ok_or_else(|| corrupt("delta copy"))?)
                .ok_or_else(|| corrupt("delta copy outside its base"))?;
            out.extend_from_slice(range);
        } else if cmd != 0 {
            let bytes = delta
                .get(pos..pos + usize::from(cmd))
                .ok_or_else(|| corrupt("delta insert"))?;
            out.extend_from_slice(bytes);
            pos += usize::from(cmd);
        } else {
            return Err(corrupt("delta instruction 0"));
        }
        if out.len() > size {
            return Err(corrupt("delta result longer than stated"));
        }
    }
    if out.len() != size {
        return Err(corrupt("delta result shorter than stated"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_tree_and_a_blob_get_gits_names() {
        assert_eq!(
            to_hex(&id_of(Kind::Tree, b"")),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        assert_eq!(
            to_hex(&id_of(Kind::Blob, b"hello\n")),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let id = id_of(Kind::Blob, b"x");
        assert_eq!(from_hex(&to_hex(&id)), Some(id));
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn deltas_copy_and_insert_and_refuse_what_does_not_fit() {
        let base = b"0123456789";
        // base 10, result 7: copy 4 bytes from offset 2, insert "ab", copy 1 from 0.
        let delta = [
            10,
            7,
            0x80 | 0x01 | 0x10,
            2,
            4,
            2,
            b'a',
            b'b',
            0x80 | 0x10,
            1,
        ];
        assert_eq!(apply_delta(base, &delta).unwrap(), b"2345ab0");
        // A copy of size 0 means 0x10000, past this base.
        assert!(apply_delta(base, &[10, 1, 0x80]).is_err());
        // The wrong base size, an instruction 0, a short result.
        assert!(apply_delta(base, &[9, 1, 1, b'x']).is_err());
        assert!(apply_delta(base, &[10, 1, 0]).is_err());
        assert!(apply_delta(base, &[10, 2, 1, b'x']).is_err());
    }
}
