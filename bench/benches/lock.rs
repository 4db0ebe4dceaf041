//! Uncontended acquire + release of a sidecar lock, in each mode, against
//! the floor the kernel sets: `flock` on a descriptor kept open, and
//! open + `flock` + close of a sidecar.
#![allow(clippy::disallowed_methods)] // the floor is measured with std directly

use std::fs::OpenOptions;
use std::hint::black_box;

use baton_core::env::real::RealEnv;
use baton_core::lock::{self, LockOptions, Mode, Wait};
use criterion::{Criterion, criterion_group, criterion_main};

fn uncontended(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let env = RealEnv::new().unwrap();
    let target = dir.path().join("state.json");
    let mut group = c.benchmark_group("uncontended acquire+release");

    let sidecar = dir.path().join("floor.lock");
    let kept = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&sidecar)
        .unwrap();
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
    for mode in [Mode::Kernel, Mode::File] {
        let opts = LockOptions::new(mode, Wait::No);
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
