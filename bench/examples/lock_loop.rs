//! `cargo run --release -p baton-bench --example lock_loop -- MODE N FILE`:
//! N uncontended acquire + release of FILE's lock in MODE (kernel, file),
//! for counting the syscalls one costs (`strace -c -f`): divide by N.
#![allow(clippy::disallowed_methods)]

use baton_core::env::real::RealEnv;
use baton_core::lock::{self, LockOptions, Mode, Wait};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1).map(String::as_str) {
        Some("file") => Mode::File,
        _ => Mode::Kernel,
    };
    let n: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let file = args.get(3).map_or("loop.json", String::as_str);
    let env = RealEnv::new().unwrap();
    let opts = LockOptions::new(mode, Wait::No);
    for _ in 0..n {
        let guard = lock::acquire(&env, file.as_ref(), &opts, &mut |_| {})
            .unwrap()
            .expect("uncontended");
        guard.release().unwrap();
    }
}
