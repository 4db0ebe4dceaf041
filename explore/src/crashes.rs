//! `baton crashes`: record one run's file-system calls, rebuild the run on
//! the simulator's filesystem, and at every point where the disk changed,
//! check each state a machine crash could leave there.
//!
//! # The crash states
//!
//! The simulator's durability model ([`baton_sim::fs`]): what `fsync`ed a
//! file or a directory is on disk; at a crash every file written since its
//! last `fsync` comes back as it was on disk, whole, torn (half of what was
//! at risk), or (rewritten from its first byte) empty; every directory
//! changed since its last `fsync` comes back with its old entries, or with
//! its new ones written back in time. Each combination is a state; a point
//! with more combinations than `per_point` is sampled, always keeping the
//! all-old and all-new states and each state where exactly one item
//! deviates from the new. States are deduplicated across points by their
//! contents.
//!
//! What the model does not reorder: one directory's changes are written
//! back together or not at all, and a file's bytes only as a prefix.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use baton_sim::fs::{CrashFate, Ino, OfdId, SimFs};
use baton_sim::rng::Rng;
use baton_trace::{Call, Op};

use crate::scratch::copy_tree;
use crate::session::{self, Launch, Pick, Step};

/// Where the run's root sits in the simulated filesystem.
const ROOT: &str = "/root";

/// One state a crash could leave.
#[derive(Clone, Debug)]
pub struct CrashState {
    /// The crash came after this call (index into the recorded steps), or
    /// before the first one.
    pub after: Option<usize>,
    /// What differs from "everything the program did reached the disk",
    /// each with the last call that changed it.
    pub deviations: Vec<Deviation>,
    /// The files and directories the state holds, by path under the root.
    pub tree: BTreeMap<PathBuf, Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deviation {
    pub path: PathBuf,
    pub what: &'static str,
    /// The last call that changed it since it was last made durable.
    pub by: Option<usize>,
}

/// Calls everything in order of arrival: one copy, no choices.
struct InOrder;

impl Pick for InOrder {
    fn pick(&mut self, waiting: &[usize], _: Option<usize>, _: u64) -> usize {
        waiting[0]
    }
}

/// Runs `argv` once in a copy of `dir` (at `run_dir/work`), recording
/// every call with its bytes.
/// The calls are listed in `run_dir/calls.txt`.
pub fn record(launch: &Launch) -> io::Result<session::Outcome> {
    let outcome = session::run(launch, &mut InOrder)?;
    std::fs::write(
        launch.run_dir.join("calls.txt"),
        crate::explore::listing(&outcome),
    )?;
    Ok(outcome)
}

/// The run rebuilt on the simulated filesystem, call by call.
struct Replay {
    fs: SimFs,
    /// Open descriptors by (pid, fd).
    fds: BTreeMap<(u32, i32), Handle>,
    /// Per inode: the last call that changed it since it was made durable.
    dirty: BTreeMap<Ino, usize>,
}

#[derive(Clone, Debug)]
enum Handle {
    File(OfdId),
    Dir(PathBuf),
}

fn sim_path(rel: &[u8]) -> PathBuf {
    let rel = String::from_utf8_lossy(rel);
    if rel == "." || rel.is_empty() {
        PathBuf::from(ROOT)
    } else {
        Path::new(ROOT).join(rel.as_ref())
    }
}

impl Replay {
    /// Loads the tree at `dir` (regular files and directories), all of it
    /// on disk.
    fn load(dir: &Path) -> io::Result<Replay> {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut fs = SimFs::new(now);
        fs.create_dir(Path::new(ROOT), now)?;
        let mut todo = vec![(dir.to_path_buf(), PathBuf::from(ROOT))];
        while let Some((real, sim)) = todo.pop() {
            for entry in std::fs::read_dir(&real)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                let (r, s) = (entry.path(), sim.join(entry.file_name()));
                if kind.is_dir() {
                    fs.create_dir(&s, now)?;
                    todo.push((r, s));
                } else if kind.is_file() {
                    use std::os::unix::fs::PermissionsExt;
                    fs.put(&s, &std::fs::read(&r)?, now)?;
                    let ofd = fs.open(&s, false, usize::MAX, now)?;
                    fs.set_permissions(ofd, entry.metadata()?.permissions().mode());
                    fs.close(ofd);
                }
            }
        }
        fs.sync_everything();
        Ok(Replay {
            fs,
            fds: BTreeMap::new(),
            dirty: BTreeMap::new(),
        })
    }

    fn ino(&self, path: &Path) -> Option<Ino> {
        self.fs.inode_of(path)
    }

    fn touch(&mut self, path: &Path, at: usize) {
        if let Some(ino) = self.ino(path) {
            self.dirty.insert(ino, at);
        }
    }

    fn touch_parent(&mut self, path: &Path, at: usize) {
        if let Some(parent) = path.parent() {
            self.touch(parent, at);
        }
    }

    /// The open file a descriptor call acts on. The recorded path (what
    /// the descriptor named when the call was made) wins over the mapping
    /// when they disagree: descriptors change files in ways not recorded
    /// (`dup2` of a shell's redirection, a descriptor inherited across
    /// `exec`). A path that names nothing (an unlinked or unnamed file)
    /// leaves the mapping alone.
    fn file(&mut self, pid: u32, call: &Call) -> Option<OfdId> {
        let named = (!call.path.is_empty())
            .then(|| sim_path(&call.path))
            .and_then(|p| self.fs.inode_of(&p).map(|ino| (p, ino)));
        match (self.fds.get(&(pid, call.fd)).cloned(), named) {
            (Some(Handle::Dir(_)), _) => None,
            (Some(Handle::File(ofd)), Some((_, ino))) if self.fs.fstat(ofd).id.ino == ino => {
                Some(ofd)
            }
            (Some(Handle::File(ofd)), None) => Some(ofd),
            (old, Some((path, _))) => {
                let ofd = self.fs.open(&path, false, 0, UNIX_EPOCH).ok()?;
                if let Some(Handle::File(old)) = old {
                    self.fs.close(old);
                }
                self.fds.insert((pid, call.fd), Handle::File(ofd));
                Some(ofd)
            }
            (None, None) => None,
        }
    }

    /// Applies one recorded call that succeeded.
    fn apply(&mut self, at: usize, step: &Step) {
        let Some(result) = step.result.filter(|&r| r >= 0) else {
            return;
        };
        let (call, pid) = (&step.call, step.pid);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + at as u64);
        let path = sim_path(&call.path);
        match call.op {
            Op::Open => {
                let flags = call.a as i32;
                let fd = result as i32;
                let tmpfile = rustix::fs::OFlags::TMPFILE.bits() as i32;
                if flags & tmpfile == tmpfile {
                    // A file with no name in directory `path` until linked.
                    if let Ok(ofd) = self.fs.create_unnamed(&path, 0, now) {
                        self.fds.insert((pid, fd), Handle::File(ofd));
                    }
                    return;
                }
                if self.fs.metadata(&path).is_ok_and(|m| m.is_dir) {
                    self.fds.insert((pid, fd), Handle::Dir(path));
                    return;
                }
                let creates = flags & rustix::fs::OFlags::CREATE.bits() as i32 != 0;
                let existed = self.ino(&path).is_some();
                let Ok(ofd) = self.fs.open(&path, creates, 0, now) else {
                    return;
                };
                if !existed {
                    self.touch_parent(&path, at);
                }
                let writes = flags & 0b11 != 0;
                if flags & rustix::fs::OFlags::TRUNC.bits() as i32 != 0 && writes {
                    self.fs.set_len(ofd, 0, now);
                    self.touch(&path, at);
                }
                if let Some(Handle::File(old)) = self.fds.insert((pid, fd), Handle::File(ofd)) {
                    self.fs.close(old);
                }
            }
            Op::Write => {
                let Some(ofd) = self.file(pid, call) else {
                    return;
                };
                let offset = if call.a >= 0 {
                    call.a as u64
                } else {
                    self.fs.fstat(ofd).len
                };
                let n = (result as usize).min(call.data.len());
                self.fs.write_all_at(ofd, &call.data[..n], offset, now);
                let ino = self.fs.fstat(ofd).id.ino;
                self.dirty.insert(ino, at);
            }
            Op::Truncate => {
                let ofd = if call.fd >= 0 {
                    self.file(pid, call)
                } else {
                    self.fs.open(&path, false, 0, now).ok()
                };
                if let Some(ofd) = ofd {
                    self.fs.set_len(ofd, call.a.max(0) as u64, now);
                    let ino = self.fs.fstat(ofd).id.ino;
                    self.dirty.insert(ino, at);
                }
            }
            Op::Rename => {
                let to = sim_path(&call.path2);
                match (call.path.is_empty(), call.path2.is_empty()) {
                    (false, false) => {
                        if self.fs.rename(&path, &to).is_ok() {
                            self.touch_parent(&path, at);
                            self.touch_parent(&to, at);
                        }
                    }
                    // Moved out of the root: gone from it.
                    (false, true) => {
                        if self.fs.remove_file(&path).is_ok() {
                            self.touch_parent(&path, at);
                        }
                    }
                    // Moved in from outside: its bytes were never seen.
                    (true, false) => {
                        if self.fs.put(&to, b"", now).is_ok() {
                            self.touch_parent(&to, at);
                        }
                    }
                    (true, true) => {}
                }
            }
            Op::Link => {
                let to = sim_path(&call.path2);
                let linked = match self.fds.get(&(pid, call.fd)) {
                    Some(Handle::File(ofd)) if call.fd >= 0 => self.fs.link_to(*ofd, &to),
                    _ => self.fs.hard_link(&path, &to),
                };
                if linked.is_ok() {
                    self.touch_parent(&to, at);
                }
            }
            Op::Unlink => {
                if self.fs.remove_file(&path).is_ok() {
                    self.touch_parent(&path, at);
                }
            }
            Op::Mkdir => {
                if self.fs.create_dir(&path, now).is_ok() {
                    self.touch_parent(&path, at);
                }
            }
            Op::Rmdir => {
                if self.fs.remove_dir(&path).is_ok() {
                    self.touch_parent(&path, at);
                }
            }
            Op::Sync => match call.a {
                // sync_file_range: write-back started, nothing promised.
                2 => {}
                3 => {
                    self.fs.sync_everything();
                    self.dirty.clear();
                }
                _ => match self.fds.get(&(pid, call.fd)).cloned() {
                    Some(Handle::Dir(dir)) => {
                        if self.fs.sync_dir(&dir).is_ok()
                            && let Some(ino) = self.ino(&dir)
                        {
                            self.dirty.remove(&ino);
                        }
                    }
                    _ => {
                        if let Some(ofd) = self.file(pid, call) {
                            self.fs.sync_all(ofd);
                            let ino = self.fs.fstat(ofd).id.ino;
                            self.dirty.remove(&ino);
                        }
                    }
                },
            },
            Op::Close => {
                if let Some(Handle::File(ofd)) = self.fds.remove(&(pid, call.fd)) {
                    self.fs.close(ofd);
                }
            }
            Op::Read | Op::Stat | Op::Lock | Op::SetTimes => {}
        }
    }
}

/// Every path under the root, by inode (for naming what a crash lost).
fn names(fs: &SimFs) -> BTreeMap<Ino, PathBuf> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::from(ROOT)];
    while let Some(dir) = todo.pop() {
        if let Some(ino) = fs.inode_of(&dir) {
            out.entry(ino).or_insert_with(|| rel(&dir));
        }
        for name in fs.read_dir(&dir).unwrap_or_default() {
            let p = dir.join(name);
            match fs.metadata(&p) {
                Ok(m) if m.is_dir => todo.push(p),
                Ok(m) => {
                    out.entry(m.id.ino).or_insert_with(|| rel(&p));
                }
                Err(_) => {}
            }
        }
    }
    out
}

fn rel(sim: &Path) -> PathBuf {
    let r = sim.strip_prefix(ROOT).unwrap_or(sim);
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r.to_path_buf()
    }
}

/// The tree under the root after a crash.
fn tree(fs: &SimFs) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::from(ROOT)];
    while let Some(dir) = todo.pop() {
        for name in fs.read_dir(&dir).unwrap_or_default() {
            let p = dir.join(name);
            let Ok(m) = fs.metadata(&p) else { continue };
            if m.is_dir {
                out.insert(rel(&p), Entry::Dir);
                todo.push(p);
            } else {
                let data = fs.read(&p, u64::MAX).unwrap_or_default();
                out.insert(rel(&p), Entry::File { data, mode: m.mode });
            }
        }
    }
    out
}

/// One item's fate in a crash: for files, an index into `FILE_FATES`; for
/// directories, 0 = old entries, 1 = written back.
const FILE_FATES: [(CrashFate, &str); 4] = [
    (CrashFate::Visible, "written back"),
    (
        CrashFate::Durable,
        "unsynced data lost, back to its last fsynced contents",
    ),
    (CrashFate::Torn, "torn, half of its unsynced bytes on disk"),
    (CrashFate::Empty, "empty, its blocks never allocated"),
];

/// The crash states at one point, sampled down to `cap`.
fn states_at(r: &Replay, after: Option<usize>, cap: usize, seed: u64) -> Vec<CrashState> {
    let files = r.fs.unsynced_files();
    let dirs = r.fs.unsynced_dirs();
    let items = files.len() + dirs.len();
    let choices = |i: usize| if i < files.len() { FILE_FATES.len() } else { 2 };
    // "Everything new" is index 0 for every item.
    let mut combos: Vec<Vec<usize>> = Vec::new();
    let total: f64 = (0..items).map(|i| choices(i) as f64).product();
    if total <= cap as f64 {
        let mut c = vec![0usize; items];
        loop {
            combos.push(c.clone());
            let mut i = 0;
            while i < items {
                c[i] += 1;
                if c[i] < choices(i) {
                    break;
                }
                c[i] = 0;
                i += 1;
            }
            if i == items {
                break;
            }
        }
    } else {
        combos.push(vec![0; items]);
        combos.push(vec![1; items]);
        for i in 0..items {
            for f in 1..choices(i) {
                let mut c = vec![0; items];
                c[i] = f;
                combos.push(c);
            }
        }
        let mut rng = Rng::stream(seed, after.map_or(0, |a| a as u64 + 1));
        while combos.len() < cap {
            combos.push(
                (0..items)
                    .map(|i| rng.below(choices(i) as u64) as usize)
                    .collect(),
            );
        }
        combos.truncate(cap.max(2 + items));
    }
    let names = names(&r.fs);
    let name = |ino: Ino| {
        names
            .get(&ino)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(format!("(inode {ino})")))
    };
    combos
        .into_iter()
        .map(|combo| {
            let mut fs = r.fs.clone();
            let fate_of: BTreeMap<Ino, usize> =
                files.iter().copied().zip(combo.iter().copied()).collect();
            let back: BTreeSet<Ino> = dirs
                .iter()
                .zip(&combo[files.len()..])
                .filter(|(_, c)| **c == 0)
                .map(|(d, _)| *d)
                .collect();
            fs.crash_with(
                |ino| back.contains(&ino),
                |ino, at_risk| {
                    (
                        FILE_FATES[fate_of.get(&ino).copied().unwrap_or(0)].0,
                        at_risk / 2,
                    )
                },
            );
            let mut deviations = Vec::new();
            for (&ino, &f) in &fate_of {
                if f != 0 {
                    deviations.push(Deviation {
                        path: name(ino),
                        what: FILE_FATES[f].1,
                        by: r.dirty.get(&ino).copied(),
                    });
                }
            }
            for (&ino, &c) in dirs.iter().zip(&combo[files.len()..]) {
                if c != 0 {
                    deviations.push(Deviation {
                        path: name(ino),
                        what: "directory back to its old entries, its changes never fsynced",
                        by: r.dirty.get(&ino).copied(),
                    });
                }
            }
            CrashState {
                after,
                deviations,
                tree: tree(&fs),
            }
        })
        .collect()
}

/// How much to explore.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub per_point: usize,
    pub max_states: usize,
    pub seed: u64,
}

/// The tree at `dir` on the real filesystem, as [`tree`] reads a
/// simulated one (symlinks and special files left out).
pub fn real_tree(dir: &Path) -> io::Result<BTreeMap<PathBuf, Entry>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let r = rel.join(entry.file_name());
            if kind.is_dir() {
                out.insert(r.clone(), Entry::Dir);
                todo.push(r);
            } else if kind.is_file() {
                let data = std::fs::read(entry.path())?;
                let mode = entry.metadata()?.permissions().mode() & 0o7777;
                out.insert(r, Entry::File { data, mode });
            }
        }
    }
    Ok(out)
}

/// What the recorded calls could not account for: paths whose contents
/// after the rebuilt run differ from what the real run left in `ended`
/// (written by calls the interception does not see).
pub fn unaccounted(start: &Path, steps: &[Step], ended: &Path) -> io::Result<Vec<PathBuf>> {
    let mut replay = Replay::load(start)?;
    for (i, step) in steps.iter().enumerate() {
        replay.apply(i, step);
    }
    let rebuilt = tree(&replay.fs);
    let real = real_tree(ended)?;
    let mut differ: Vec<PathBuf> = Vec::new();
    for (path, entry) in &real {
        let same = match (entry, rebuilt.get(path)) {
            (Entry::Dir, Some(Entry::Dir)) => true,
            // Permission bits are not the model's business.
            (Entry::File { data, .. }, Some(Entry::File { data: d, .. })) => data == d,
            _ => false,
        };
        if !same {
            differ.push(path.clone());
        }
    }
    differ.extend(rebuilt.keys().filter(|p| !real.contains_key(*p)).cloned());
    differ.sort();
    Ok(differ)
}

/// Every distinct crash state of the recorded run, in order of crash
/// point, up to `bounds`; and how many points there were.
pub fn crash_states(
    start: &Path,
    steps: &[Step],
    bounds: Bounds,
) -> io::Result<(Vec<CrashState>, usize)> {
    let mut replay = Replay::load(start)?;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut out = Vec::new();
    let mut points = 0;
    let mut add = |states: Vec<CrashState>, out: &mut Vec<CrashState>| {
        for s in states {
            let mut h = DefaultHasher::new();
            s.tree.hash(&mut h);
            if seen.insert(h.finish()) && out.len() < bounds.max_states {
                out.push(s);
            }
        }
    };
    add(
        states_at(&replay, None, bounds.per_point, bounds.seed),
        &mut out,
    );
    for (i, step) in steps.iter().enumerate() {
        replay.apply(i, step);
        if step.call.op.mutates() && step.result.is_some_and(|r| r >= 0) {
            points += 1;
            add(
                states_at(&replay, Some(i), bounds.per_point, bounds.seed),
                &mut out,
            );
        }
        if out.len() >= bounds.max_states {
            break;
        }
    }
    Ok((out, points + 1))
}

/// Writes a crash state into `to` (created), with the symlinks of the
/// starting directory `start` as they were (the model has none).
pub fn materialise(state: &CrashState, start: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to)?;
    for (path, entry) in &state.tree {
        let p = to.join(path);
        match entry {
            Entry::Dir => std::fs::create_dir(&p)?,
            Entry::File { data, mode } => {
                std::fs::write(&p, data)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode & 0o7777))?;
            }
        }
    }
    let mut todo = vec![PathBuf::new()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(start.join(&dir))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let r = dir.join(entry.file_name());
            if kind.is_symlink() && to.join(&r).parent().is_some_and(Path::is_dir) {
                let target = std::fs::read_link(entry.path())?;
                let _ = std::os::unix::fs::symlink(target, to.join(&r));
            } else if kind.is_dir() {
                todo.push(r);
            }
        }
    }
    Ok(())
}

/// Starts the recording run: a copy of `dir` in `run_dir/work`.
pub fn prepare(dir: &Path, run_dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(run_dir)?;
    let root = run_dir.join("work");
    copy_tree(dir, &root)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: i64 = (libc_flags::O_CREAT | libc_flags::O_WRONLY | libc_flags::O_TRUNC) as i64;

    /// The open flags the tests need (x86-64 Linux values).
    mod libc_flags {
        pub const O_WRONLY: i32 = 0o1;
        pub const O_CREAT: i32 = 0o100;
        pub const O_TRUNC: i32 = 0o1000;
        pub const O_DIRECTORY: i32 = 0o200000;
    }

    fn step(op: Op, fd: i32, path: &str, path2: &str, data: &[u8], a: i64, result: i64) -> Step {
        let mut call = Call::new(op);
        call.fd = fd;
        call.a = a;
        call.path = path.as_bytes().to_vec();
        call.path2 = path2.as_bytes().to_vec();
        call.data = data.to_vec();
        Step {
            copy: 0,
            pid: 1,
            call,
            result: Some(result),
        }
    }

    /// temp file, write, (fsync), rename over `state.json`, (fsync the
    /// directory).
    fn writer(fsync: bool) -> Vec<Step> {
        let new = br#"{"n":2}"#;
        let mut steps = vec![
            step(Op::Open, -1, "state.json.tmp", "", b"", CREATE, 3),
            step(Op::Write, 3, "state.json.tmp", "", new, 0, new.len() as i64),
        ];
        if fsync {
            steps.push(step(Op::Sync, 3, "state.json.tmp", "", b"", 0, 0));
        }
        steps.push(step(Op::Close, 3, "state.json.tmp", "", b"", 0, 0));
        steps.push(step(
            Op::Rename,
            -1,
            "state.json.tmp",
            "state.json",
            b"",
            0,
            0,
        ));
        if fsync {
            steps.push(step(
                Op::Open,
                -1,
                ".",
                "",
                b"",
                i64::from(libc_flags::O_DIRECTORY),
                4,
            ));
            steps.push(step(Op::Sync, 4, ".", "", b"", 0, 0));
        }
        steps
    }

    fn contents_of_state(dir: &Path, steps: &[Step]) -> BTreeSet<Vec<u8>> {
        let bounds = Bounds {
            per_point: 256,
            max_states: 10_000,
            seed: 0,
        };
        let (states, _) = crash_states(dir, steps, bounds).unwrap();
        states
            .iter()
            .filter_map(|s| match s.tree.get(Path::new("state.json")) {
                Some(Entry::File { data, .. }) => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_rename_without_fsync_can_leave_an_empty_file_and_with_fsync_cannot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), br#"{"n":1}"#).unwrap();
        let unsafe_states = contents_of_state(dir.path(), &writer(false));
        assert!(
            unsafe_states.contains(&Vec::new()),
            "empty after the rename: {unsafe_states:?}"
        );
        assert!(unsafe_states.contains(br#"{"n":1}"#.as_slice()));
        assert!(unsafe_states.contains(br#"{"n":2}"#.as_slice()));
        let safe_states = contents_of_state(dir.path(), &writer(true));
        assert_eq!(
            safe_states,
            BTreeSet::from([br#"{"n":1}"#.to_vec(), br#"{"n":2}"#.to_vec()]),
            "old or new, nothing else"
        );
    }

    #[test]
    fn a_rebuilt_run_that_matches_the_real_one_leaves_nothing_unaccounted() {
        let start = tempfile::tempdir().unwrap();
        std::fs::write(start.path().join("state.json"), br#"{"n":1}"#).unwrap();
        let ended = tempfile::tempdir().unwrap();
        std::fs::write(ended.path().join("state.json"), br#"{"n":2}"#).unwrap();
        let steps = writer(true);
        assert!(
            unaccounted(start.path(), &steps, ended.path())
                .unwrap()
                .is_empty()
        );
        // A write the interception did not see: the real file says more.
        std::fs::write(ended.path().join("state.json"), br#"{"n":3}"#).unwrap();
        assert_eq!(
            unaccounted(start.path(), &steps, ended.path()).unwrap(),
            vec![PathBuf::from("state.json")]
        );
    }
}
