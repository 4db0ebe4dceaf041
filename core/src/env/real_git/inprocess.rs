//! The scoped commit's tree and commit written in-process, where doing so
//! cannot differ from what git's plumbing would write.
//!
//! git's `read-tree` + `update-index` + `write-tree` + `diff-index` +
//! `commit-tree` are five processes in a chain of four, about half of a
//! commit's time (`reports/commit.md`). For the common repository they
//! amount to little: hash the few files named, rewrite the trees on their
//! paths, write a commit. This module does that, and hands the step back
//! to git ([`Defer`]) whenever git could have done anything else:
//!
//! - staging is `git add` only where nothing transforms content: no
//!   attributes could apply (no `.gitattributes` in the work tree or the
//!   base tree in any directory on the path, no `info/attributes`, no
//!   system or global attributes file, no `attr.tree`), `core.autocrlf`
//!   off, and `core.fileMode`, `core.symlinks` on and `core.ignoreCase`,
//!   `core.precomposeUnicode` off (each changes what git stages);
//! - only regular files, symlinks and absent paths; a path meeting a
//!   directory, a submodule, or a tree entry in a form `read-tree` +
//!   `write-tree` would rewrite (a non-canonical mode) is git's;
//! - a `pre-commit` hook needs the private index file, which only git's
//!   staging writes;
//! - commits are written here only unsigned, in UTF-8, with the author and
//!   committer idents `git var` computed (config, `GIT_AUTHOR_*` and
//!   `GIT_COMMITTER_*`, dates included);
//! - SHA-1 repositories only, objects in the repository's own directory,
//!   no `core.sharedRepository` (git would set other permissions).
//!
//! Every failure here, including I/O errors and objects this reader does
//! not find, is a [`Defer`]: git then does the whole step, and reports
//! whatever is really wrong. `core/tests/git_inprocess.rs` checks the two
//! ways against each other on random repositories, packed and loose.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::is_executable;
use super::objects::{self, Id, Kind, Objects};
use crate::env::git::{Change, Entry, Oid, Staged};

/// Why a step goes to git instead.
#[derive(Debug)]
pub struct Defer(pub String);

impl From<io::Error> for Defer {
    fn from(e: io::Error) -> Defer {
        Defer(format!("I/O: {e}"))
    }
}

pub(super) fn defer<T>(why: impl Into<String>) -> Result<T, Defer> {
    Err(Defer(why.into()))
}

/// What `git var -l` said that this module needs.
#[derive(Debug)]
pub struct Settings {
    /// `commit.gpgSign`.
    pub sign: bool,
    /// `gc.autoPackLimit` (git's default 50; 0: never).
    pub auto_pack_limit: usize,
    /// `core.logAllRefUpdates`: whether a missing reflog is created.
    pub(super) create_reflogs: bool,
    /// Why refs must be moved by git, if they must.
    pub(super) ref_blocked: Option<String>,
    author: Option<String>,
    pub(super) committer: Option<String>,
    /// Why staging must go to git in this repository, if it must.
    staging_blocked: Option<String>,
    /// Why commits must be written by git, if they must.
    commit_blocked: Option<String>,
}

/// git's boolean spellings; `None` for anything else.
fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

impl Settings {
    /// Reads `git var -l` output (config as `key=value`, keys lowercased
    /// by git, then git's logical variables). A multi-line value's later
    /// lines are ignored unless they look like a setting, which is no
    /// worse than the config file itself: whoever writes it runs hooks.
    pub fn parse(listing: &str, common_dir: &Path) -> Settings {
        let mut vars = BTreeMap::new();
        let mut attribute_files = Vec::new();
        for line in listing.lines() {
            if let Some((key, value)) = line.split_once('=') {
                if key == "GIT_ATTR_SYSTEM" || key == "GIT_ATTR_GLOBAL" {
                    attribute_files.push(PathBuf::from(value));
                }
                vars.insert(key.to_owned(), value.to_owned());
            }
        }
        let get = |key: &str| vars.get(key).map(String::as_str);
        let flag = |key: &str, default: bool| get(key).map_or(Some(default), boolean);
        let sign = flag("commit.gpgsign", false).unwrap_or(false);

        let mut staging = Vec::new();
        if flag("core.autocrlf", false) != Some(false) {
            staging.push("core.autocrlf");
        }
        for (key, wanted) in [
            ("core.filemode", true),
            ("core.symlinks", true),
            ("core.ignorecase", false),
            ("core.precomposeunicode", false),
        ] {
            if flag(key, wanted) != Some(wanted) {
                staging.push(key);
            }
        }
        if get("attr.tree").is_some() {
            staging.push("attr.tree");
        }
        attribute_files.push(common_dir.join("info").join("attributes"));
        let attributes = attribute_files.iter().any(|f| has_rules(f));
        if attributes {
            staging.push("an attributes file");
        }
        for var in [
            "GIT_ATTR_SOURCE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        ] {
            if std::env::var_os(var).is_some() {
                staging.push(var);
            }
        }
        let mut both = Vec::new();
        if get("extensions.objectformat").is_some_and(|f| !f.eq_ignore_ascii_case("sha1")) {
            both.push("extensions.objectFormat");
        }
        if get("extensions.compatobjectformat").is_some() {
            both.push("extensions.compatObjectFormat");
        }
        if get("core.sharedrepository").is_some_and(|v| boolean(v) != Some(false)) {
            both.push("core.sharedRepository");
        }
        let mut commit = both.clone();
        if let Some(enc) = get("i18n.commitencoding")
            && !matches!(enc.to_ascii_lowercase().as_str(), "utf-8" | "utf8")
        {
            commit.push("i18n.commitEncoding");
        }
        if sign {
            commit.push("commit.gpgSign");
        }
        let why = |v: Vec<&str>| (!v.is_empty()).then(|| v.join(", "));
        let ident = |key: &str| get(key).filter(|v| valid_ident(v)).map(str::to_owned);
        let (author, committer) = (ident("GIT_AUTHOR_IDENT"), ident("GIT_COMMITTER_IDENT"));
        if author.is_none() || committer.is_none() {
            commit.push("no author or committer ident");
        }
        staging.extend(both);
        let auto_pack_limit = get("gc.autopacklimit")
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        // Unset: on in a repository with a work tree, where baton runs.
        let logs = get("core.logallrefupdates").unwrap_or("true");
        let create_reflogs = logs.eq_ignore_ascii_case("always") || boolean(logs) == Some(true);
        let mut refs = Vec::new();
        if get("extensions.refstorage").is_some_and(|v| !v.eq_ignore_ascii_case("files")) {
            refs.push("extensions.refStorage");
        }
        if !logs.eq_ignore_ascii_case("always") && boolean(logs).is_none() {
            refs.push("core.logAllRefUpdates");
        }
        if committer.is_none() {
            refs.push("no committer ident");
        }
        Settings {
            sign,
            auto_pack_limit,
            create_reflogs,
            ref_blocked: why(refs),
            author,
            committer: committer.clone(),
            staging_blocked: why(staging),
            commit_blocked: why(commit),
        }
    }
}

/// `Name <email> SECONDS ±HHMM`, on one line.
fn valid_ident(ident: &str) -> bool {
    let Some((who, when)) = ident.rsplit_once("> ") else {
        return false;
    };
    let mut when = when.split(' ');
    let (Some(secs), Some(zone), None) = (when.next(), when.next(), when.next()) else {
        return false;
    };
    who.contains(" <")
        && !ident.contains('\n')
        && secs.bytes().all(|b| b.is_ascii_digit())
        && zone.len() == 5
        && matches!(zone.as_bytes()[0], b'+' | b'-')
}

/// Whether an attributes file holds anything but blank lines and comments.
fn has_rules(path: &Path) -> bool {
    match fs::read(path) {
        Ok(bytes) => bytes.split(|&b| b == b'\n').any(|l| {
            let l = l.trim_ascii();
            !l.is_empty() && l[0] != b'#'
        }),
        // Unreadable: git would complain or read it; either way not here.
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// One entry of a tree object.
#[derive(Clone, Debug)]
struct TreeEntry {
    mode: &'static str,
    name: Vec<u8>,
    id: Id,
}

const TREE: &str = "40000";
const MODES: [&str; 5] = ["100644", "100755", "120000", "160000", TREE];

fn parse_tree(content: &[u8]) -> Result<Vec<TreeEntry>, Defer> {
    let mut entries = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ');
        let nul = rest.iter().position(|&b| b == 0);
        let (Some(space), Some(nul)) = (space, nul) else {
            return defer("a tree entry");
        };
        if space > nul || rest.len() < nul + 21 {
            return defer("a tree entry");
        }
        // A mode write-tree would spell otherwise (100664, 040000): git's
        // read-tree + write-tree rewrites it, so the tree is git's.
        let Some(mode) = MODES.iter().find(|m| m.as_bytes() == &rest[..space]) else {
            return defer("a non-canonical mode in a tree");
        };
        entries.push(TreeEntry {
            mode,
            name: rest[space + 1..nul].to_vec(),
            id: rest[nul + 1..nul + 21].try_into().expect("20 bytes"),
        });
        rest = &rest[nul + 21..];
    }
    Ok(entries)
}

/// git's tree order: names compared as bytes, a tree's as if it ended
/// in `/`.
fn tree_order(a: &TreeEntry, b: &TreeEntry) -> std::cmp::Ordering {
    let key = |e: &TreeEntry| {
        let mut k = e.name.clone();
        if e.mode == TREE {
            k.push(b'/');
        }
        k
    };
    key(a).cmp(&key(b))
}

fn serialise_tree(entries: &[TreeEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(e.mode.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&e.name);
        out.push(0);
        out.extend_from_slice(&e.id);
    }
    out
}

/// Files past this size are staged by git, which streams them rather
/// than holding them in memory.
const BIG_FILE: u64 = 32 << 20;

/// A staged path: its new entry, or `None` for a deletion.
type Edit = Option<(&'static str, Id)>;

/// The in-process writer of one repository.
#[derive(Debug)]
pub struct InProcess {
    work_tree: PathBuf,
    pub(super) git_dir: PathBuf,
    pub(super) common_dir: PathBuf,
    pub(super) hooks: PathBuf,
    objects: Objects,
}

impl InProcess {
    pub fn new(
        work_tree: PathBuf,
        git_dir: PathBuf,
        common_dir: PathBuf,
        hooks: PathBuf,
    ) -> InProcess {
        InProcess {
            work_tree,
            git_dir,
            objects: Objects::new(common_dir.join("objects")),
            common_dir,
            hooks,
        }
    }

    /// Everything staged and committed so far written, durable, before
    /// git is handed a name of it.
    pub fn flush(&self) -> io::Result<()> {
        self.objects.flush()
    }

    /// How many packs the object store held when last looked at.
    pub fn pack_count(&self) -> usize {
        self.objects.pack_count()
    }

    /// [`crate::env::git::Git::stage`] without an index file: the tree of
    /// `base` with exactly `paths` replaced from the work tree, and how it
    /// differs from `base`'s.
    pub fn stage(
        &self,
        settings: &Settings,
        base: Option<&str>,
        paths: &[String],
    ) -> Result<Staged, Defer> {
        if let Some(why) = &settings.staging_blocked {
            return defer(why.clone());
        }
        if is_executable(&self.hooks.join("pre-commit")) {
            return defer("a pre-commit hook reads the private index");
        }
        let base_tree = match base {
            Some(commit) => Some(self.commit_tree_of(commit)?),
            None => None,
        };
        let mut edits = BTreeMap::new();
        let mut blobs = BTreeMap::new();
        for path in paths {
            if path.split('/').any(|c| c == ".gitattributes") {
                return defer("an attributes file among the paths");
            }
            let edit = self.stage_file(path)?.map(|(mode, content)| {
                let id = objects::id_of(Kind::Blob, &content);
                blobs.insert(id, content);
                (mode, id)
            });
            edits.insert(path.as_bytes().to_vec(), edit);
        }
        let mut changes = Vec::new();
        let tree = self.edit(base_tree, &edits, &[], &mut changes)?;
        let tree = match tree {
            Some(tree) => tree,
            None => self.objects.add(Kind::Tree, Vec::new()),
        };
        // Only the blobs that changed: an unchanged one is there already.
        for change in &changes {
            if let Some(new) = &change.new {
                let id = objects::from_hex(&new.oid).expect("named here");
                if let Some(content) = blobs.remove(&id) {
                    self.objects.add(Kind::Blob, content);
                }
            }
        }
        changes.sort();
        Ok(Staged {
            tree: objects::to_hex(&tree),
            changes,
        })
    }

    /// What a path would be staged as: its mode and content; `None` if
    /// it is absent.
    fn stage_file(&self, path: &str) -> Result<Option<(&'static str, Vec<u8>)>, Defer> {
        // git refuses a path beyond a symbolic link, and a file where a
        // directory should be is not ours to judge either.
        let mut dir = self.work_tree.clone();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return defer(format!("{path} is beyond a symlink or a file")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let file = self.work_tree.join(path);
        let meta = match fs::symlink_metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&file)?.as_os_str().as_bytes().to_vec();
            Ok(Some(("120000", target)))
        } else if meta.file_type().is_file() {
            if meta.len() > BIG_FILE {
                return defer(format!("{path} is big: git streams it"));
            }
            // git's executable bit is the owner's.
            let mode = if meta.permissions().mode() & 0o100 != 0 {
                "100755"
            } else {
                "100644"
            };
            Ok(Some((mode, read_regular(&file)?)))
        } else {
            defer(format!("{path} is neither a file nor a symlink"))
        }
    }

    /// The tree a commit names.
    fn commit_tree_of(&self, commit: &str) -> Result<Id, Defer> {
        let Some(id) = objects::from_hex(commit) else {
            return defer("a non-SHA-1 commit name");
        };
        let Some(content) = self.objects.read_kind(&id, Kind::Commit)? else {
            return defer("the base commit is not in this object store");
        };
        let tree = content
            .strip_prefix(b"tree ")
            .and_then(|r| r.get(..40))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(objects::from_hex);
        match tree {
            Some(tree) => Ok(tree),
            None => defer("a commit without a tree line"),
        }
    }

    fn read_tree(&self, id: &Id) -> Result<Vec<TreeEntry>, Defer> {
        match self.objects.read_kind(id, Kind::Tree)? {
            Some(content) => parse_tree(&content),
            None => defer("a tree not in this object store"),
        }
    }

    /// The tree `tree` (at directory `prefix`) with `edits` (paths relative
    /// to it) applied, written; `None` when nothing is left in it (git
    /// writes no empty trees below the top). Changed entries are added to
    /// `changes` with their full paths.
    fn edit(
        &self,
        tree: Option<Id>,
        edits: &BTreeMap<Vec<u8>, Edit>,
        prefix: &[u8],
        changes: &mut Vec<Change>,
    ) -> Result<Option<Id>, Defer> {
        let mut entries = match &tree {
            Some(id) => self.read_tree(id)?,
            None => Vec::new(),
        };
        if entries.iter().any(|e| e.name == b".gitattributes") {
            return defer("a .gitattributes file in the base tree on the path");
        }
        let dir = self.work_tree.join(std::ffi::OsStr::from_bytes(prefix));
        if fs::symlink_metadata(dir.join(".gitattributes")).is_ok() {
            return defer("a .gitattributes file in the work tree on the path");
        }
        // The edits, grouped by their first component.
        let mut leaves: BTreeMap<&[u8], Edit> = BTreeMap::new();
        let mut below: BTreeMap<&[u8], BTreeMap<Vec<u8>, Edit>> = BTreeMap::new();
        for (path, edit) in edits {
            match path.iter().position(|&b| b == b'/') {
                None => {
                    leaves.insert(path, *edit);
                }
                Some(slash) => {
                    below
                        .entry(&path[..slash])
                        .or_default()
                        .insert(path[slash + 1..].to_vec(), *edit);
                }
            }
        }
        let mut changed = false;
        for (name, edit) in leaves {
            if below.contains_key(name) {
                return defer("a path that is both a file and a directory");
            }
            let at = entries.iter().position(|e| e.name == name);
            let old = at.map(|i| entries[i].clone());
            if let Some(old) = &old
                && (old.mode == TREE || old.mode == "160000")
            {
                return defer("a path that is a directory or a submodule in the base tree");
            }
            let same = match (&old, &edit) {
                (Some(o), Some((mode, id))) => o.mode == *mode && o.id == *id,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            changed = true;
            if let Some(i) = at {
                entries.remove(i);
            }
            if let Some((mode, id)) = edit {
                entries.push(TreeEntry {
                    mode,
                    name: name.to_vec(),
                    id,
                });
            }
            let entry = |mode: &str, id: &Id| Entry {
                mode: mode.to_owned(),
                oid: objects::to_hex(id),
            };
            changes.push(Change {
                path: full_path(prefix, name)?,
                old: old.as_ref().map(|o| entry(o.mode, &o.id)),
                new: edit.as_ref().map(|(mode, id)| entry(mode, id)),
            });
        }
        for (name, sub_edits) in below {
            let at = entries.iter().position(|e| e.name == name);
            let sub = match at.map(|i| &entries[i]) {
                Some(e) if e.mode == TREE => Some(e.id),
                Some(_) => return defer("a path below a file in the base tree"),
                None => None,
            };
            let sub_prefix = full_path(prefix, name)?.into_bytes();
            let new = self.edit(sub, &sub_edits, &sub_prefix, changes)?;
            if new == sub {
                continue;
            }
            changed = true;
            if let Some(i) = at {
                entries.remove(i);
            }
            if let Some(id) = new {
                entries.push(TreeEntry {
                    mode: TREE,
                    name: name.to_vec(),
                    id,
                });
            }
        }
        if !changed {
            return Ok(tree);
        }
        if entries.is_empty() {
            return Ok(None);
        }
        entries.sort_by(tree_order);
        Ok(Some(self.objects.add(Kind::Tree, serialise_tree(&entries))))
    }

    /// [`crate::env::git::Git::commit_tree`], unsigned.
    pub fn commit_tree(
        &self,
        settings: &Settings,
        tree: &str,
        parent: Option<&str>,
        message: &str,
    ) -> Result<Oid, Defer> {
        if let Some(why) = &settings.commit_blocked {
            return defer(why.clone());
        }
        let (Some(author), Some(committer)) = (&settings.author, &settings.committer) else {
            return defer("no ident");
        };
        let hex = |s: &str| objects::from_hex(s).map(|id| objects::to_hex(&id));
        let Some(tree) = hex(tree) else {
            return defer("a non-SHA-1 tree name");
        };
        let mut content = format!("tree {tree}\n");
        if let Some(parent) = parent {
            let Some(parent) = hex(parent) else {
                return defer("a non-SHA-1 parent name");
            };
            content.push_str(&format!("parent {parent}\n"));
        }
        // commit-tree writes the message as given, after one blank line.
        content.push_str(&format!(
            "author {author}\ncommitter {committer}\n\n{message}"
        ));
        let id = self.objects.add(Kind::Commit, content.into_bytes());
        // The commit and the trees and blobs staged for it, in one pack:
        // whoever is given its name can read it.
        self.objects.flush()?;
        Ok(objects::to_hex(&id))
    }
}

fn full_path(prefix: &[u8], name: &[u8]) -> Result<String, Defer> {
    let mut path = prefix.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    String::from_utf8(path).or_else(|_| defer("a non-UTF-8 path"))
}

/// A regular file's bytes, read without following a symlink swapped in
/// after its metadata was read (git would stage the link then; so do we,
/// by deferring).
fn read_regular(file: &Path) -> Result<Vec<u8>, Defer> {
    use std::io::Read;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(file)?;
    if !f.metadata()?.is_file() {
        return defer("the file changed kind while staged");
    }
    let mut content = Vec::new();
    f.read_to_end(&mut content)?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VAR: &str = "user.name=A B\ncore.filemode=true\ncore.autocrlf=false\n\
        GIT_COMMITTER_IDENT=A B <a@b> 1796077771 +0100\nGIT_AUTHOR_IDENT=A B <a@b> 1796077771 -0030\n\
        GIT_ATTR_SYSTEM=/nonexistent/a\nGIT_ATTR_GLOBAL=/nonexistent/b\n";

    #[test]
    fn a_plain_repository_is_staged_and_committed_here() {
        let s = Settings::parse(VAR, Path::new("/nonexistent"));
        assert_eq!(s.staging_blocked, None);
        assert_eq!(s.commit_blocked, None);
        assert!(!s.sign);
    }

    #[test]
    fn each_setting_that_changes_what_git_writes_sends_the_step_to_git() {
        for (extra, staging, commit) in [
            ("core.autocrlf=input", true, false),
            ("core.autocrlf=true", true, false),
            ("core.filemode=false", true, false),
            ("core.symlinks=no", true, false),
            ("core.ignorecase=true", true, false),
            ("attr.tree=HEAD", true, false),
            ("extensions.objectformat=sha256", true, true),
            ("core.sharedrepository=group", true, true),
            ("i18n.commitencoding=ISO-8859-1", false, true),
            ("commit.gpgsign=true", false, true),
            ("GIT_AUTHOR_IDENT=nobody", false, true),
        ] {
            let s = Settings::parse(&format!("{VAR}{extra}\n"), Path::new("/nonexistent"));
            assert_eq!(s.staging_blocked.is_some(), staging, "{extra}");
            assert_eq!(s.commit_blocked.is_some(), commit, "{extra}");
        }
        let s = Settings::parse("commit.gpgsign=yes\n", Path::new("/nonexistent"));
        assert!(s.sign);
    }

    #[test]
    fn trees_sort_directories_as_if_they_ended_in_a_slash() {
        let e = |name: &str, mode| TreeEntry {
            mode,
            name: name.as_bytes().to_vec(),
            id: [0; 20],
        };
        let mut v = [e("a.b", "100644"), e("a", TREE), e("a-", "100644")];
        v.sort_by(tree_order);
        let names: Vec<_> = v
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect();
        // "a/" sorts after "a-" and "a.b" ('/' is 0x2f).
        assert_eq!(names, ["a-", "a.b", "a"]);
    }
}
