//! The simulated filesystem: inodes, directories, open file descriptions,
//! `flock`, and a page cache, with Linux semantics call for call.
//!
//! # Durability model
//!
//! Every file inode has its visible contents (the page cache, shared by all
//! processes) and its durable contents (what the disk holds); every
//! directory has its visible entries and its durable entries.
//! `sync_all` makes a file's contents durable; `sync_dir` makes a
//! directory's entries durable. Nothing else is durable.
//!
//! - A **process crash** changes nothing here but closes the process's open
//!   descriptions (releasing their kernel locks): its writes stay visible to
//!   everyone, as the page cache outlives the process.
//! - A **machine crash** replaces every directory's entries by its durable
//!   entries, and every file whose contents were not synced by one of:
//!   its durable contents, its full visible contents (written back in time),
//!   a prefix of them that keeps at least what they share with the durable
//!   contents (a torn write: an append after an fsync tears only the
//!   append), or, for a file rewritten from its first byte, nothing
//!   (delayed allocation never ran: the empty `tasks.json` of the field).
//!   Inodes no durable entry reaches are gone; every open description is
//!   closed.
//!
//! # What is not modelled
//!
//! Symlinks, permission bits (ownership is, for an unprivileged user's
//! `fchown`), hard links to directories, and partial writes (a `write`
//! either fails or writes all of its bytes).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use baton_core::env::{FileId, Metadata};

pub type Ino = u64;
pub type OfdId = u64;

/// The device number every simulated inode reports.
const DEV: u64 = 0x5_1d;

const ROOT: Ino = 1;

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

pub const ENOENT: i32 = 2;
pub const EIO: i32 = 5;
pub const EEXIST: i32 = 17;
pub const ENOTDIR: i32 = 20;
pub const EISDIR: i32 = 21;
pub const EFBIG: i32 = 27;
pub const EINVAL: i32 = 22;
pub const ENOSPC: i32 = 28;
pub const EACCES: i32 = 13;
pub const EPERM: i32 = 1;
pub const ENOTEMPTY: i32 = 39;
pub const ENOLCK: i32 = 37;
pub const EOPNOTSUPP: i32 = 95;

#[derive(Clone, Debug)]
enum Node {
    File {
        data: Vec<u8>,
        durable: Vec<u8>,
        synced: bool,
    },
    Dir {
        entries: BTreeMap<OsString, Ino>,
        durable: BTreeMap<OsString, Ino>,
    },
}

#[derive(Clone, Debug)]
struct Inode {
    node: Node,
    mtime: SystemTime,
    nlink: u64,
    open: u64,
    /// Made by `O_TMPFILE` and never named: `link_to` may name it.
    unnamed: bool,
    /// Permission bits and owner: kept and reported, never enforced.
    mode: u32,
    uid: u32,
    gid: u32,
}

/// An open file description: `flock` locks belong to it.
#[derive(Clone, Debug)]
pub struct Ofd {
    pub ino: Ino,
    /// The process slot whose descriptor table holds it.
    pub owner: usize,
}

/// What a machine crash does to one unsynced file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashFate {
    Durable,
    Visible,
    Torn,
    Empty,
}

/// Who holds an inode's `flock` lock.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Flock {
    Exclusive(OfdId),
    /// Never empty.
    Shared(BTreeSet<OfdId>),
}

#[derive(Clone, Debug)]
pub struct SimFs {
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    ofds: BTreeMap<OfdId, Ofd>,
    next_ofd: OfdId,
    /// `flock` holders, by the host that keeps them (0 unless
    /// [`SimFs::host_local_locks`] and a [`Remote`] host) and inode.
    locks: BTreeMap<(u8, Ino), Flock>,
    /// What `statfs` reports: `None` for a local filesystem, or the name of
    /// a network one (kernel locks then still work here, as on a healthy
    /// NFS mount, but baton must treat them as unreliable).
    pub network: Option<&'static str>,
    /// With `network`: reported as mounted with host-local kernel locks
    /// (NFS `local_lock=flock`).
    pub host_local_locks: bool,
    /// A filesystem that rejects `flock` outright (EOPNOTSUPP), as some
    /// FUSE and network filesystems do.
    pub flock_unsupported: bool,
    /// A filesystem whose `flock` succeeds and excludes nothing, as some
    /// FUSE filesystems' does: every lock is granted, none is recorded.
    pub flock_noop: bool,
    /// A filesystem without `O_TMPFILE` (vfat, older NFS): baton stages
    /// files under hidden temp names instead.
    pub no_tmpfile: bool,
    /// A second host mounting this filesystem, if any.
    pub remote: Option<Remote>,
    /// Opens of one path by the processes' own `open` calls (not the
    /// simulated git's) that fail although it exists. `ENOENT` is a tool
    /// churning the file in perfect time (removed just before each open,
    /// back just after); `EACCES` for ever is a file nobody may read.
    pub open_fails: Option<(PathBuf, Failing)>,
    /// Non-blocking exclusive `flock`s that fail, whatever the file
    /// (`ENOLCK`: the kernel's lock table full, an NFS client without its
    /// lock manager).
    pub try_lock_fails: Option<Failing>,
    /// Writes into open files that fail, whatever the file (`ENOSPC`: a
    /// full disk, which copy-on-write filesystems report even for
    /// overwrites; `EIO`).
    pub write_fails: Option<Failing>,
    /// Processes run as this user and group rather than root: files they
    /// create are theirs, and giving a file to anyone else is `EPERM`.
    pub unprivileged: Option<(u32, u32)>,
}

/// Calls a test makes fail on purpose: after `skip` of them succeed, the
/// next `times` fail with `errno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failing {
    pub errno: i32,
    pub skip: u32,
    pub times: u32,
}

impl Failing {
    /// The next `times` calls fail with `errno`.
    pub fn next(errno: i32, times: u32) -> Failing {
        Failing {
            errno,
            skip: 0,
            times,
        }
    }

    /// Counts one call: the error it fails with, if it is one that fails.
    pub fn strike(&mut self) -> Option<io::Error> {
        if self.skip > 0 {
            self.skip -= 1;
            None
        } else if self.times > 0 {
            self.times -= 1;
            Some(errno(self.errno))
        } else {
            None
        }
    }
}

/// A second host sharing the filesystem (a network mount): the processes
/// in `slots` run there. They name that host in their identities (so
/// nobody here can look their pids up), boot with it, read its clock
/// (`clock_offset_ns` from this host's), and, when the mount keeps kernel
/// locks per host ([`SimFs::host_local_locks`]), their `flock`s exclude
/// only each other.
#[derive(Clone, Debug, Default)]
pub struct Remote {
    pub slots: Vec<usize>,
    pub clock_offset_ns: i64,
}

impl SimFs {
    pub fn new(epoch: SystemTime) -> SimFs {
        let mut inodes = BTreeMap::new();
        inodes.insert(
            ROOT,
            Inode {
                node: Node::Dir {
                    entries: BTreeMap::new(),
                    durable: BTreeMap::new(),
                },
                mtime: epoch,
                nlink: 2,
                open: 0,
                unnamed: false,
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        SimFs {
            inodes,
            next_ino: ROOT + 1,
            ofds: BTreeMap::new(),
            next_ofd: 1,
            locks: BTreeMap::new(),
            network: None,
            flock_unsupported: false,
            flock_noop: false,
            no_tmpfile: false,
            host_local_locks: false,
            remote: None,
            open_fails: None,
            try_lock_fails: None,
            write_fails: None,
            unprivileged: None,
        }
    }

    // ----- path resolution -------------------------------------------------

    /// Normalised components of an absolute path (`.` dropped, `..` popped).
    fn components(path: &Path) -> io::Result<Vec<OsString>> {
        let mut out: Vec<OsString> = Vec::new();
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => out.push(n.to_owned()),
                Component::Prefix(_) => return Err(errno(EINVAL)),
            }
        }
        if !path.has_root() {
            return Err(errno(EINVAL));
        }
        Ok(out)
    }

    fn entries(&self, dir: Ino) -> io::Result<&BTreeMap<OsString, Ino>> {
        match &self.inodes[&dir].node {
            Node::Dir { entries, .. } => Ok(entries),
            Node::File { .. } => Err(errno(ENOTDIR)),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> &mut BTreeMap<OsString, Ino> {
        match &mut self.inodes.get_mut(&dir).expect("live inode").node {
            Node::Dir { entries, .. } => entries,
            Node::File { .. } => unreachable!("checked to be a directory"),
        }
    }

    fn walk(&self, parts: &[OsString]) -> io::Result<Ino> {
        let mut ino = ROOT;
        for part in parts {
            ino = *self.entries(ino)?.get(part).ok_or_else(|| errno(ENOENT))?;
        }
        Ok(ino)
    }

    /// The inode a path names.
    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        self.walk(&Self::components(path)?)
    }

    /// The directory holding the last component of `path`, and that name.
    fn parent_of(&self, path: &Path) -> io::Result<(Ino, OsString)> {
        let mut parts = Self::components(path)?;
        let name = parts.pop().ok_or_else(|| errno(EEXIST))?;
        let dir = self.walk(&parts)?;
        self.entries(dir)?;
        Ok((dir, name))
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.inodes[&ino].node, Node::Dir { .. })
    }

    // ----- inode lifetime --------------------------------------------------

    fn new_file(&mut self, mtime: SystemTime) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        let (uid, gid) = self.unprivileged.unwrap_or((0, 0));
        self.inodes.insert(
            ino,
            Inode {
                node: Node::File {
                    data: Vec::new(),
                    durable: Vec::new(),
                    synced: false,
                },
                mtime,
                nlink: 0,
                open: 0,
                unnamed: false,
                mode: 0o644,
                uid,
                gid,
            },
        );
        ino
    }

    /// Frees an inode nothing refers to any more: no name, no open
    /// description, and no durable entry a machine crash could bring back.
    fn release_if_orphan(&mut self, ino: Ino) {
        let inode = &self.inodes[&ino];
        if inode.nlink > 0 || inode.open > 0 || ino == ROOT {
            return;
        }
        let durably_named = self.inodes.values().any(|i| match &i.node {
            Node::Dir { durable, .. } => durable.values().any(|&d| d == ino),
            Node::File { .. } => false,
        });
        if !durably_named {
            self.inodes.remove(&ino);
        }
    }

    fn unlink_entry(&mut self, dir: Ino, name: &OsStr) {
        let ino = self.entries_mut(dir).remove(name).expect("entry exists");
        let inode = self.inodes.get_mut(&ino).expect("linked inode");
        inode.nlink -= 1;
        self.release_if_orphan(ino);
    }

    fn open_ofd(&mut self, ino: Ino, owner: usize) -> OfdId {
        let id = self.next_ofd;
        self.next_ofd += 1;
        self.inodes.get_mut(&ino).expect("live inode").open += 1;
        self.ofds.insert(id, Ofd { ino, owner });
        id
    }

    fn metadata_of(&self, ino: Ino) -> Metadata {
        let inode = &self.inodes[&ino];
        let (len, is_dir) = match &inode.node {
            Node::File { data, .. } => (data.len() as u64, false),
            Node::Dir { .. } => (4096, true),
        };
        Metadata {
            id: FileId { dev: DEV, ino },
            len,
            modified: inode.mtime,
            is_dir,
            is_file: !is_dir,
            is_symlink: false,
            // Kept and reported, never enforced.
            mode: inode.mode,
            uid: inode.uid,
            gid: inode.gid,
            nlink: inode.nlink,
        }
    }

    // ----- path calls (the `Fs` trait) -------------------------------------

    pub fn create_new(&mut self, path: &Path, owner: usize, now: SystemTime) -> io::Result<OfdId> {
        let (dir, name) = self.parent_of(path)?;
        if self.entries(dir)?.contains_key(&name) {
            return Err(errno(EEXIST));
        }
        let ino = self.new_file(now);
        self.inodes.get_mut(&ino).expect("new").nlink = 1;
        self.entries_mut(dir).insert(name, ino);
        Ok(self.open_ofd(ino, owner))
    }

    pub fn open(
        &mut self,
        path: &Path,
        create: bool,
        owner: usize,
        now: SystemTime,
    ) -> io::Result<OfdId> {
        match self.lookup(path) {
            Ok(ino) if self.is_dir(ino) => Err(errno(EISDIR)),
            Ok(ino) => Ok(self.open_ofd(ino, owner)),
            Err(e) if e.raw_os_error() == Some(ENOENT) && create => {
                self.create_new(path, owner, now)
            }
            Err(e) => Err(e),
        }
    }

    pub fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let ino = self.lookup(path)?;
        match &self.inodes[&ino].node {
            Node::File { data, .. } if data.len() as u64 > limit => Err(errno(EFBIG)),
            Node::File { data, .. } => Ok(data.clone()),
            Node::Dir { .. } => Err(errno(EISDIR)),
        }
    }

    /// `O_TMPFILE` in `dir`: an inode with no name, open once.
    pub fn create_unnamed(
        &mut self,
        dir: &Path,
        owner: usize,
        now: SystemTime,
    ) -> io::Result<OfdId> {
        let dir = self.lookup(dir)?;
        self.entries(dir)?;
        let ino = self.new_file(now);
        self.inodes.get_mut(&ino).expect("new").unnamed = true;
        Ok(self.open_ofd(ino, owner))
    }

    /// `linkat` of an open description's inode.
    pub fn link_to(&mut self, ofd: OfdId, link: &Path) -> io::Result<()> {
        let ino = self.ofd_ino(ofd);
        let (dir, name) = self.parent_of(link)?;
        if self.entries(dir)?.contains_key(&name) {
            return Err(errno(EEXIST));
        }
        let inode = self.inodes.get_mut(&ino).expect("open inode");
        if inode.nlink == 0 && !inode.unnamed {
            return Err(errno(ENOENT));
        }
        inode.nlink += 1;
        inode.unnamed = false;
        self.entries_mut(dir).insert(name, ino);
        Ok(())
    }

    pub fn hard_link(&mut self, original: &Path, link: &Path) -> io::Result<()> {
        let ino = self.lookup(original)?;
        let (dir, name) = self.parent_of(link)?;
        if self.entries(dir)?.contains_key(&name) {
            return Err(errno(EEXIST));
        }
        if self.is_dir(ino) {
            return Err(errno(EPERM));
        }
        self.inodes.get_mut(&ino).expect("live").nlink += 1;
        self.entries_mut(dir).insert(name, ino);
        Ok(())
    }

    pub fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        // Linux resolves both parents before looking up either name.
        let (from_dir, from_name) = self.parent_of(from)?;
        let (to_dir, to_name) = self.parent_of(to)?;
        let ino = *self
            .entries(from_dir)?
            .get(&from_name)
            .ok_or_else(|| errno(ENOENT))?;
        let from_parts = Self::components(from)?;
        let to_parts = Self::components(to)?;
        // A directory may not move below itself (EINVAL), nor anything
        // onto one of its own ancestors (ENOTEMPTY), checked in that order.
        if self.is_dir(ino)
            && to_parts.len() > from_parts.len()
            && to_parts.starts_with(&from_parts)
        {
            return Err(errno(EINVAL));
        }
        if from_parts.len() > to_parts.len() && from_parts.starts_with(&to_parts) {
            return Err(errno(ENOTEMPTY));
        }
        if let Some(&existing) = self.entries(to_dir)?.get(&to_name) {
            if existing == ino {
                return Ok(()); // same inode: POSIX says do nothing
            }
            match (self.is_dir(ino), self.is_dir(existing)) {
                (false, true) => return Err(errno(EISDIR)),
                (true, false) => return Err(errno(ENOTDIR)),
                (true, true) if !self.entries(existing)?.is_empty() => {
                    return Err(errno(ENOTEMPTY));
                }
                _ => {}
            }
            self.unlink_entry(to_dir, &to_name);
        }
        self.entries_mut(from_dir).remove(&from_name);
        self.entries_mut(to_dir).insert(to_name, ino);
        Ok(())
    }

    pub fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
        let ino = *self.entries(dir)?.get(&name).ok_or_else(|| errno(ENOENT))?;
        if self.is_dir(ino) {
            return Err(errno(EISDIR));
        }
        self.unlink_entry(dir, &name);
        Ok(())
    }

    /// Removes an empty directory.
    pub fn remove_dir(&mut self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
        let ino = *self.entries(dir)?.get(&name).ok_or_else(|| errno(ENOENT))?;
        if !self.entries(ino)?.is_empty() {
            return Err(errno(ENOTEMPTY));
        }
        self.unlink_entry(dir, &name);
        Ok(())
    }

    /// Entry names in name order; the simulated environment shuffles them.
    pub fn read_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let ino = self.lookup(path)?;
        Ok(self.entries(ino)?.keys().cloned().collect())
    }

    pub fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        Ok(self.metadata_of(self.lookup(path)?))
    }

    pub fn set_modified(&mut self, path: &Path, time: SystemTime) -> io::Result<()> {
        let ino = self.lookup(path)?;
        self.inodes.get_mut(&ino).expect("live").mtime = time;
        Ok(())
    }

    pub fn create_dir(&mut self, path: &Path, now: SystemTime) -> io::Result<()> {
        let (dir, name) = self.parent_of(path)?;
        if self.entries(dir)?.contains_key(&name) {
            return Err(errno(EEXIST));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                node: Node::Dir {
                    entries: BTreeMap::new(),
                    durable: BTreeMap::new(),
                },
                mtime: now,
                nlink: 2,
                open: 0,
                unnamed: false,
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        self.entries_mut(dir).insert(name, ino);
        Ok(())
    }

    pub fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        let ino = self.lookup(path)?;
        match &mut self.inodes.get_mut(&ino).expect("live").node {
            Node::Dir { entries, durable } => {
                let dropped: Vec<Ino> = durable
                    .values()
                    .filter(|d| !entries.values().any(|e| e == *d))
                    .copied()
                    .collect();
                *durable = entries.clone();
                for ino in dropped {
                    if self.inodes.contains_key(&ino) {
                        self.release_if_orphan(ino);
                    }
                }
                Ok(())
            }
            // fsync on a file opened by path works too; std opens read-only.
            Node::File {
                data,
                durable,
                synced,
            } => {
                *durable = data.clone();
                *synced = true;
                Ok(())
            }
        }
    }

    pub fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        let parts = Self::components(path)?;
        self.walk(&parts)?;
        let mut out = PathBuf::from("/");
        out.extend(parts);
        Ok(out)
    }

    // ----- descriptor calls (the `OpenFile` trait) -------------------------

    fn ofd_ino(&self, ofd: OfdId) -> Ino {
        self.ofds[&ofd].ino
    }

    pub fn is_open(&self, ofd: OfdId) -> bool {
        self.ofds.contains_key(&ofd)
    }

    pub fn fstat(&self, ofd: OfdId) -> Metadata {
        self.metadata_of(self.ofd_ino(ofd))
    }

    fn file_mut(&mut self, ofd: OfdId) -> (&mut Vec<u8>, &mut bool, &mut SystemTime) {
        let ino = self.ofd_ino(ofd);
        let inode = self.inodes.get_mut(&ino).expect("open inode");
        match &mut inode.node {
            Node::File { data, synced, .. } => (data, synced, &mut inode.mtime),
            Node::Dir { .. } => unreachable!("directories are never opened read-write"),
        }
    }

    pub fn read_all(&self, ofd: OfdId, limit: u64) -> io::Result<Vec<u8>> {
        match &self.inodes[&self.ofd_ino(ofd)].node {
            Node::File { data, .. } if data.len() as u64 > limit => Err(errno(EFBIG)),
            Node::File { data, .. } => Ok(data.clone()),
            Node::Dir { .. } => Ok(Vec::new()),
        }
    }

    pub fn write_all_at(&mut self, ofd: OfdId, buf: &[u8], offset: u64, now: SystemTime) {
        if buf.is_empty() {
            return; // writes nothing, extends nothing
        }
        let (data, synced, mtime) = self.file_mut(ofd);
        let start = usize::try_from(offset).expect("offset fits memory");
        let end = start + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        *synced = false;
        *mtime = now;
    }

    /// `fchmod`. Permissions are kept, never enforced.
    pub fn set_permissions(&mut self, ofd: OfdId, mode: u32) {
        let ino = self.ofd_ino(ofd);
        self.inodes.get_mut(&ino).expect("open inode").mode = mode & 0o7777;
    }

    /// `fchown`: as root (ownership kept, never enforced), or as the
    /// [`SimFs::unprivileged`] user, who may not give a file away.
    pub fn set_owner(&mut self, ofd: OfdId, uid: u32, gid: u32) -> io::Result<()> {
        if let Some(me) = self.unprivileged
            && (uid, gid) != me
        {
            // One group only: any other owner or group is refused.
            return Err(errno(EPERM));
        }
        let ino = self.ofd_ino(ofd);
        let inode = self.inodes.get_mut(&ino).expect("open inode");
        (inode.uid, inode.gid) = (uid, gid);
        Ok(())
    }

    pub fn set_len(&mut self, ofd: OfdId, len: u64, now: SystemTime) {
        let (data, synced, mtime) = self.file_mut(ofd);
        data.resize(usize::try_from(len).expect("length fits memory"), 0);
        *synced = false;
        *mtime = now;
    }

    pub fn sync_all(&mut self, ofd: OfdId) {
        let ino = self.ofd_ino(ofd);
        if let Node::File {
            data,
            durable,
            synced,
        } = &mut self.inodes.get_mut(&ino).expect("open inode").node
        {
            *durable = data.clone();
            *synced = true;
        }
    }

    pub fn fset_modified(&mut self, ofd: OfdId, time: SystemTime) {
        let ino = self.ofd_ino(ofd);
        self.inodes.get_mut(&ino).expect("open inode").mtime = time;
    }

    /// Which host process `slot` runs on: 0 here, 1 the [`Remote`] one.
    pub fn host_of(&self, slot: usize) -> u8 {
        u8::from(
            self.remote
                .as_ref()
                .is_some_and(|r| r.slots.contains(&slot)),
        )
    }

    /// Where `ofd`'s `flock` is kept: per host on a mount with host-local
    /// locks, else in one table.
    fn lock_key(&self, ofd: OfdId) -> (u8, Ino) {
        let o = &self.ofds[&ofd];
        let host = if self.host_local_locks {
            self.host_of(o.owner)
        } else {
            0
        };
        (host, o.ino)
    }

    /// `flock(LOCK_EX|LOCK_NB)`: true when `ofd` now holds the lock. As on
    /// Linux, converting its own shared lock drops that lock first, so a
    /// conversion that fails leaves `ofd` holding nothing.
    pub fn try_lock(&mut self, ofd: OfdId) -> bool {
        if self.flock_noop {
            return true;
        }
        let key = self.lock_key(ofd);
        match self.locks.get_mut(&key) {
            None => {}
            Some(Flock::Exclusive(holder)) => return *holder == ofd,
            Some(Flock::Shared(holders)) => {
                holders.remove(&ofd);
                if !holders.is_empty() {
                    return false;
                }
            }
        }
        self.locks.insert(key, Flock::Exclusive(ofd));
        true
    }

    /// `flock(LOCK_SH|LOCK_NB)`: true when `ofd` now holds a shared lock
    /// (converting its own exclusive one).
    pub fn try_lock_shared(&mut self, ofd: OfdId) -> bool {
        if self.flock_noop {
            return true;
        }
        let key = self.lock_key(ofd);
        match self.locks.get_mut(&key) {
            Some(Flock::Exclusive(holder)) if *holder != ofd => false,
            Some(Flock::Shared(holders)) => {
                holders.insert(ofd);
                true
            }
            _ => {
                self.locks.insert(key, Flock::Shared(BTreeSet::from([ofd])));
                true
            }
        }
    }

    /// `flock(LOCK_UN)`. Returns the inode whose lock `ofd` gave up, if it
    /// held one (waiters may now get it).
    pub fn unlock(&mut self, ofd: OfdId) -> Option<Ino> {
        let key = self.lock_key(ofd);
        let (freed, gone) = match self.locks.get_mut(&key) {
            Some(Flock::Exclusive(holder)) => (*holder == ofd, *holder == ofd),
            Some(Flock::Shared(holders)) => (holders.remove(&ofd), holders.is_empty()),
            None => (false, false),
        };
        if gone {
            self.locks.remove(&key);
        }
        freed.then_some(key.1)
    }

    /// The descriptions holding `ino`'s exclusive lock (one per host that
    /// keeps its own).
    pub fn lock_holder(&self, ino: Ino) -> Vec<OfdId> {
        self.locks
            .iter()
            .filter(|((_, i), _)| *i == ino)
            .filter_map(|(_, l)| match l {
                Flock::Exclusive(holder) => Some(*holder),
                Flock::Shared(_) => None,
            })
            .collect()
    }

    /// The descriptions holding `ino`'s shared lock.
    pub fn shared_holders(&self, ino: Ino) -> Vec<OfdId> {
        self.locks
            .iter()
            .filter(|((_, i), _)| *i == ino)
            .flat_map(|(_, l)| match l {
                Flock::Shared(holders) => holders.iter().copied().collect(),
                Flock::Exclusive(_) => Vec::new(),
            })
            .collect()
    }

    pub fn ofd(&self, ofd: OfdId) -> &Ofd {
        &self.ofds[&ofd]
    }

    /// Closes a description; returns the inode whose lock it freed, if any.
    pub fn close(&mut self, ofd: OfdId) -> Option<Ino> {
        if !self.ofds.contains_key(&ofd) {
            return None;
        }
        let freed = self.unlock(ofd);
        let ino = self.ofds.remove(&ofd).expect("checked").ino;
        self.inodes.get_mut(&ino).expect("open inode").open -= 1;
        self.release_if_orphan(ino);
        freed
    }

    /// Closes every description a process holds (it died).
    pub fn close_all_of(&mut self, owner: usize) -> Vec<Ino> {
        let mine: Vec<OfdId> = self
            .ofds
            .iter()
            .filter(|(_, o)| o.owner == owner)
            .map(|(&id, _)| id)
            .collect();
        mine.into_iter().filter_map(|id| self.close(id)).collect()
    }

    // ----- machine crash ---------------------------------------------------

    /// Makes everything durable (a tree set up before the run starts).
    pub fn sync_everything(&mut self) {
        for inode in self.inodes.values_mut() {
            match &mut inode.node {
                Node::Dir { entries, durable } => *durable = entries.clone(),
                Node::File {
                    data,
                    durable,
                    synced,
                } => {
                    *durable = data.clone();
                    *synced = true;
                }
            }
        }
    }

    /// Writes a whole file by path (scenario setup), creating it.
    pub fn put(&mut self, path: &Path, data: &[u8], now: SystemTime) -> io::Result<()> {
        let ofd = self.open(path, true, usize::MAX, now)?;
        self.set_len(ofd, 0, now);
        self.write_all_at(ofd, data, 0, now);
        self.close(ofd);
        Ok(())
    }

    /// Truncates an existing file by path, in place (another tool's
    /// `: > file`).
    pub fn truncate(&mut self, path: &Path, now: SystemTime) -> io::Result<()> {
        let ofd = self.open(path, false, usize::MAX, now)?;
        self.set_len(ofd, 0, now);
        self.close(ofd);
        Ok(())
    }

    /// How many names inode `ino` has (0 once gone or never named).
    pub fn nlink(&self, ino: Ino) -> u64 {
        self.inodes.get(&ino).map_or(0, |i| i.nlink)
    }

    /// The inode a path names, if any (no symlinks are followed).
    pub fn inode_of(&self, path: &Path) -> Option<Ino> {
        self.lookup(path).ok()
    }

    /// Files whose visible contents differ from what is durable.
    pub fn unsynced_files(&self) -> Vec<Ino> {
        self.inodes
            .iter()
            .filter(|(_, i)| matches!(i.node, Node::File { synced: false, .. }))
            .map(|(&ino, _)| ino)
            .collect()
    }

    /// Directories whose visible entries differ from their durable ones.
    pub fn unsynced_dirs(&self) -> Vec<Ino> {
        self.inodes
            .iter()
            .filter(
                |(_, i)| matches!(&i.node, Node::Dir { entries, durable } if entries != durable),
            )
            .map(|(&ino, _)| ino)
            .collect()
    }

    /// Power loss: see the module documentation. `fate` decides each
    /// unsynced file, given how many of its bytes are at risk (past what it
    /// shares with its durable contents), and for a torn write how many of
    /// those survive.
    pub fn crash(&mut self, fate: impl FnMut(Ino, usize) -> (CrashFate, usize)) {
        self.crash_with(|_| false, fate);
    }

    /// Power loss where `written_back` also picks unsynced directories
    /// whose visible entries reached the disk in time (the journal
    /// committed them; nothing forces it to, nothing forbids it). The
    /// simulator's own crashes keep every directory's durable entries;
    /// `baton crashes` explores both.
    pub fn crash_with(
        &mut self,
        mut written_back: impl FnMut(Ino) -> bool,
        mut fate: impl FnMut(Ino, usize) -> (CrashFate, usize),
    ) {
        self.ofds.clear();
        self.locks.clear();
        for (&ino, inode) in self.inodes.iter_mut() {
            inode.open = 0;
            match &mut inode.node {
                Node::Dir { entries, durable } if entries != durable && written_back(ino) => {
                    *durable = entries.clone();
                }
                Node::Dir { entries, durable } => *entries = durable.clone(),
                Node::File { .. } => {}
            }
        }
        for ino in self.unsynced_files() {
            let inode = self.inodes.get_mut(&ino).expect("listed");
            if let Node::File {
                data,
                durable,
                synced,
            } = &mut inode.node
            {
                // Bytes the visible contents share with the durable ones
                // from the start were on disk already: a crash cannot take
                // them (an append after an fsync loses only the append).
                let kept = data
                    .iter()
                    .zip(durable.iter())
                    .take_while(|(a, b)| a == b)
                    .count();
                let (choice, cut) = fate(ino, data.len() - kept);
                *data = match choice {
                    CrashFate::Durable => durable.clone(),
                    CrashFate::Visible => data.clone(),
                    CrashFate::Torn => data[..kept + cut.min(data.len() - kept)].to_vec(),
                    // Only a file rewritten from its first byte (truncate,
                    // then write) can come back empty.
                    CrashFate::Empty if kept == 0 => Vec::new(),
                    CrashFate::Empty => durable.clone(),
                };
                *durable = data.clone();
                *synced = true;
            }
        }
        // Recount links from the surviving entries; drop unreachable inodes.
        let mut reachable = BTreeSet::from([ROOT]);
        let mut links: BTreeMap<Ino, u64> = BTreeMap::new();
        let mut todo = vec![ROOT];
        while let Some(dir) = todo.pop() {
            let children: Vec<Ino> = match &self.inodes[&dir].node {
                Node::Dir { entries, .. } => entries.values().copied().collect(),
                Node::File { .. } => Vec::new(),
            };
            for child in children {
                *links.entry(child).or_default() += 1;
                if reachable.insert(child) && self.is_dir(child) {
                    todo.push(child);
                }
            }
        }
        self.inodes.retain(|ino, _| reachable.contains(ino));
        for (ino, inode) in self.inodes.iter_mut() {
            if let Node::File { .. } = inode.node {
                inode.nlink = links.get(ino).copied().unwrap_or(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn fs() -> SimFs {
        let mut fs = SimFs::new(UNIX_EPOCH);
        fs.create_dir(Path::new("/w"), UNIX_EPOCH).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs
    }

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn exclusive_create_and_link_refuse_existing_names() {
        let mut fs = fs();
        fs.create_new(p("/w/a"), 0, UNIX_EPOCH).unwrap();
        let err = fs.create_new(p("/w/a"), 0, UNIX_EPOCH).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EEXIST));
        fs.create_new(p("/w/b"), 0, UNIX_EPOCH).unwrap();
        let err = fs.hard_link(p("/w/b"), p("/w/a")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(EEXIST));
    }

    #[test]
    fn unlinked_open_file_keeps_its_inode_and_lock() {
        let mut fs = fs();
        let a = fs.create_new(p("/w/a"), 0, UNIX_EPOCH).unwrap();
        assert!(fs.try_lock(a));
        let ino = fs.fstat(a).id.ino;
        fs.remove_file(p("/w/a")).unwrap();
        assert_eq!(fs.fstat(a).nlink, 0);
        assert_eq!(fs.lock_holder(ino), [a]);
        assert_eq!(fs.close(a), Some(ino));
        assert!(fs.lock_holder(ino).is_empty());
    }

    #[test]
    fn host_local_locks_exclude_only_on_their_host() {
        let mut fs = fs();
        fs.remote = Some(Remote {
            slots: vec![1],
            clock_offset_ns: 0,
        });
        // Slot 0 here, slot 1 on the other host, slot 2 here.
        let here = fs.open(p("/w/l"), true, 0, UNIX_EPOCH).unwrap();
        let there = fs.open(p("/w/l"), true, 1, UNIX_EPOCH).unwrap();
        let also_here = fs.open(p("/w/l"), true, 2, UNIX_EPOCH).unwrap();
        assert!(fs.try_lock(here));
        assert!(
            !fs.try_lock(there),
            "one table while the mount shares locks"
        );
        fs.unlock(here);
        fs.host_local_locks = true;
        assert!(fs.try_lock(here));
        assert!(fs.try_lock(there), "the other host keeps its own");
        assert!(
            !fs.try_lock(also_here),
            "this host's still exclude each other"
        );
        let ino = fs.fstat(here).id.ino;
        assert_eq!(fs.lock_holder(ino).len(), 2);
    }

    #[test]
    fn locks_belong_to_open_descriptions() {
        let mut fs = fs();
        let a = fs.open(p("/w/l"), true, 0, UNIX_EPOCH).unwrap();
        let b = fs.open(p("/w/l"), true, 0, UNIX_EPOCH).unwrap();
        assert!(fs.try_lock(a));
        assert!(
            !fs.try_lock(b),
            "a second description contends, same process or not"
        );
        assert!(
            fs.try_lock(a),
            "relocking the holder's description succeeds"
        );
        fs.close_all_of(0);
        let c = fs.open(p("/w/l"), false, 1, UNIX_EPOCH).unwrap();
        assert!(fs.try_lock(c), "a dead process's locks are released");
    }

    #[test]
    fn machine_crash_keeps_only_what_was_synced() {
        let mut fs = fs();
        fs.sync_dir(p("/w")).unwrap();
        let a = fs.create_new(p("/w/kept"), 0, UNIX_EPOCH).unwrap();
        fs.write_all_at(a, b"durable", 0, UNIX_EPOCH);
        fs.sync_all(a);
        fs.sync_dir(p("/w")).unwrap();
        fs.write_all_at(a, b"lost!!!", 0, UNIX_EPOCH);
        let b = fs
            .create_new(p("/w/unsynced-entry"), 0, UNIX_EPOCH)
            .unwrap();
        fs.write_all_at(b, b"x", 0, UNIX_EPOCH);
        fs.sync_all(b);
        fs.crash(|_, _| (CrashFate::Durable, 0));
        assert_eq!(fs.read(p("/w/kept"), u64::MAX).unwrap(), b"durable");
        assert_eq!(
            fs.read(p("/w/unsynced-entry"), u64::MAX)
                .unwrap_err()
                .raw_os_error(),
            Some(ENOENT)
        );
    }

    #[test]
    fn machine_crash_may_tear_or_empty_an_unsynced_file() {
        for (fate, want) in [
            (CrashFate::Torn, &b"new"[..]),
            (CrashFate::Empty, b""),
            (CrashFate::Visible, b"new contents"),
        ] {
            let mut fs = fs();
            let a = fs.create_new(p("/w/f"), 0, UNIX_EPOCH).unwrap();
            fs.sync_dir(p("/w")).unwrap();
            fs.sync_dir(p("/")).unwrap();
            fs.write_all_at(a, b"new contents", 0, UNIX_EPOCH);
            fs.crash(|_, _| (fate, 3));
            assert_eq!(fs.read(p("/w/f"), u64::MAX).unwrap(), want, "{fate:?}");
        }
    }

    #[test]
    fn machine_crash_never_tears_what_an_earlier_fsync_made_durable() {
        for fate in [CrashFate::Torn, CrashFate::Empty, CrashFate::Durable] {
            let mut fs = fs();
            let a = fs.create_new(p("/w/log"), 0, UNIX_EPOCH).unwrap();
            fs.sync_dir(p("/w")).unwrap();
            fs.write_all_at(a, b"one\n", 0, UNIX_EPOCH);
            fs.sync_all(a);
            fs.write_all_at(a, b"two\n", 4, UNIX_EPOCH);
            fs.crash(|_, at_risk| {
                assert_eq!(at_risk, 4);
                (fate, 2)
            });
            let got = fs.read(p("/w/log"), u64::MAX).unwrap();
            assert!(got.starts_with(b"one\n"), "{fate:?}: {got:?}");
        }
    }

    #[test]
    fn rename_replaces_atomically_and_frees_the_old_inode() {
        let mut fs = fs();
        let a = fs.create_new(p("/w/a"), 0, UNIX_EPOCH).unwrap();
        fs.write_all_at(a, b"new", 0, UNIX_EPOCH);
        fs.close(a);
        let b = fs.create_new(p("/w/b"), 0, UNIX_EPOCH).unwrap();
        fs.close(b);
        fs.rename(p("/w/a"), p("/w/b")).unwrap();
        assert_eq!(fs.read(p("/w/b"), u64::MAX).unwrap(), b"new");
        assert!(fs.read(p("/w/a"), u64::MAX).is_err());
        assert_eq!(fs.inodes.len(), 3, "root, /w and the renamed file");
    }
}
