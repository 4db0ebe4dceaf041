//! One scoped commit of one file, three ways, in a 10-file and a
//! 5,000-file repository: `git add` + `git commit` (the reference the
//! issue's 1.3× target is against), `baton_core::commit::commit` on
//! `CliGit` as `baton commit` runs it (settings read, tree and commit
//! written in-process where nothing could transform them), and the same
//! through git's plumbing only (`CliGit::plumbing_only`, the design before
//! session 8). Each iteration edits the file first, the same for all three.
//! Whole-process figures, baton's own start included, are
//! `scripts/commit-bench.sh`'s; reports/commit.md has both.

#![allow(clippy::disallowed_methods)] // benchmarks set the stage with std::fs

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use baton_core::commit::{self, ATTEMPTS, Request};
use baton_core::env::git::Git;
use baton_core::env::real::RealEnv;
use baton_core::env::real_git::CliGit;
use criterion::{Criterion, criterion_group, criterion_main};

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn repository(files: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    git(d, &["config", "user.name", "bench"]);
    git(d, &["config", "user.email", "bench@example.com"]);
    git(d, &["config", "commit.gpgSign", "false"]);
    for i in 0..files {
        let sub = d.join(format!("f/d{}", i / 100));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
    }
    std::fs::write(d.join("a.txt"), "0\n").unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "init"]);
    dir
}

fn edit(d: &Path, n: &mut u64) {
    *n += 1;
    let mut text = std::fs::read_to_string(d.join("a.txt")).unwrap();
    text.push_str(&format!("{n}\n"));
    std::fs::write(d.join("a.txt"), text).unwrap();
}

fn scoped(env: &RealEnv, git: CliGit) {
    let repo = git.repo().unwrap();
    let paths = ["a.txt".to_owned()];
    let req = Request {
        paths: &paths,
        message: "bench",
        allow_empty: false,
        detach_ok: false,
        verify: true,
        attempts: ATTEMPTS,
    };
    commit::commit(env, &git, &repo, &req).unwrap();
}

fn one_file(c: &mut Criterion) {
    let env = RealEnv::new().unwrap();
    for files in [10, 5_000] {
        let dir = repository(files);
        let d = dir.path();
        let mut n = 0;
        let mut group = c.benchmark_group(format!("one-file commit, {files}-file repository"));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(10));
        group.bench_function("git add + git commit", |b| {
            b.iter(|| {
                edit(d, &mut n);
                git(d, &["add", "a.txt"]);
                git(d, &["commit", "-qm", "bench"]);
            })
        });
        group.bench_function("baton commit (in-process where it can)", |b| {
            b.iter(|| {
                edit(d, &mut n);
                scoped(&env, CliGit::new(d));
            })
        });
        group.bench_function("baton commit (git's plumbing only)", |b| {
            b.iter(|| {
                edit(d, &mut n);
                scoped(&env, CliGit::plumbing_only(d));
            })
        });
        group.finish();
    }
}

criterion_group!(benches, one_file);
criterion_main!(benches);
