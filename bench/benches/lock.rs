//! Uncontended acquire + release of a sidecar lock, in each mode, against
//! the floor the kernel sets (`flock` on a descriptor kept open, and
//! open + `flock` + close of a sidecar) and the Rust peers as they are
//! used: std's `File::lock`, fs2 and fd-lock, each on a file opened per
//! acquisition and on one kept open.
#![allow(clippy::disallowed_methods)] // the floor is measured with std directly

use std::fs::OpenOptions;
use std::hint::black_box;

use baton_core::env::real::RealEnv;
use baton_core::lock::{self, LockOptions, Mode, Wait};
use criterion::{Criterion, criterion_group, criterion_main};

/// The sidecar opened as the peers open it: read-write, created if missing.
fn open(path: &std::path::Path) -> std::fs::File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let target = dir.path().join("state.json");
    let mut group = c.benchmark_group("uncontended acquire+release");

    let sidecar = dir.path().join("floor.lock");
    let kept = open(&sidecar);
    group.bench_function("floor: flock on an open fd", |b| {
        b.iter(|| {
            kept.lock().unwrap();
            kept.unlock().unwrap();
        })
    });
    group.bench_function("floor: open + flock + close", |b| {
        b.iter(|| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&sidecar)
                .unwrap();
            f.lock().unwrap();
            drop(black_box(f));
        })
    });
    // Exclusive-file mode's floor: a record published under the lock's name
    // by link (an O_TMPFILE written, linked, the name later unlinked).
    let published = dir.path().join("published.lock");
    group.bench_function("floor: link-published record + unlink", |b| {
        b.iter(|| {
            use rustix::fs::{AtFlags, CWD, Mode, OFlags};
            let fd = rustix::fs::open(
                dir.path(),
                OFlags::TMPFILE | OFlags::RDWR,
                Mode::from(0o644),
            )
            .unwrap();
            rustix::io::write(&fd, &[b' '; 512]).unwrap();
            let proc = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            rustix::fs::linkat(CWD, proc.as_str(), CWD, &published, AtFlags::SYMLINK_FOLLOW)
                .unwrap();
            rustix::fs::unlink(&published).unwrap();
            drop(black_box(fd));
        })
    });
    group.bench_function("peer: std File::lock, open per acquisition", |b| {
        b.iter(|| {
            let f = open(&sidecar);
            f.lock().unwrap();
            f.unlock().unwrap();
        })
    });
    group.bench_function("peer: fs2, fd kept open", |b| {
        b.iter(|| {
            fs2::FileExt::lock_exclusive(&kept).unwrap();
            fs2::FileExt::unlock(&kept).unwrap();
        })
    });
    group.bench_function("peer: fs2, open per acquisition", |b| {
        b.iter(|| {
            let f = open(&sidecar);
            fs2::FileExt::lock_exclusive(&f).unwrap();
            fs2::FileExt::unlock(&f).unwrap();
        })
    });
    let mut fd_lock_file = fd_lock::RwLock::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&sidecar)
            .unwrap(),
    );
    group.bench_function("peer: fd-lock, fd kept open", |b| {
        b.iter(|| {
            let guard = fd_lock_file.write().unwrap();
            drop(black_box(guard));
        })
    });
    group.bench_function("peer: fd-lock, open per acquisition", |b| {
        b.iter(|| {
            let f = open(&sidecar);
            let mut l = fd_lock::RwLock::new(f);
            let guard = l.write().unwrap();
            drop(black_box(guard));
        })
    });
    let handle_target = target.with_file_name("state-handle.json");
    let mut handle = lock::Handle::open(&env, &handle_target, "bench").unwrap();
    group.bench_function("baton kernel mode, handle kept open", |b| {
        b.iter(|| {
            let guard = handle
                .acquire(Wait::No, &mut |_| {})
                .unwrap()
                .expect("uncontended");
            guard.release().unwrap();
        })
    });
    for mode in [Mode::Kernel, Mode::File] {
        let opts = LockOptions::new(mode, Wait::No);
        // A file of its own per mode: a kernel-mode sidecar stays, and
        // exclusive-file mode rightly refuses to treat it as its own.
        let target = target.with_file_name(format!("state-{mode}.json"));
        group.bench_function(format!("baton {mode} mode"), |b| {
            b.iter(|| {
                let guard = lock::acquire(&env, &target, &opts, &mut |_| {})
                    .unwrap()
                    .expect("uncontended");
                guard.release().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, uncontended);
criterion_main!(benches);
