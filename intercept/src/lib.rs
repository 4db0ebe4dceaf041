//! The interception layer of `baton explore` and `baton crashes`: a shared
//! library preloaded (`LD_PRELOAD`) into the user's program, which sees its
//! file-system calls on paths under one root and holds each until the
//! controller lets it run.
//!
//! # Why `LD_PRELOAD` and not ptrace
//!
//! The programs this exists for are the field's: Node scripts, shell
//! scripts and their coreutils, Python. All of them reach the kernel
//! through glibc, so interposing glibc's functions sees every call they
//! make, at the cost of one socket round trip per intercepted call and a
//! branch on every other one. ptrace with a seccomp filter would also see
//! static binaries and raw syscalls, but costs two context switches into
//! the tracer for every filtered call of every thread, cannot see
//! `clock_gettime` at all (the vDSO answers it in user space, so a skewed
//! clock needs the vDSO disabled), and has to rewrite results in the
//! tracee's memory to skew a clock. Here the skew is an addition.
//!
//! # What it cannot see
//!
//! - Static binaries and programs that make system calls without glibc
//!   (Go's runtime; anything using `io_uring`: the controller sets
//!   `UV_USE_IO_URING=0` so libuv keeps to the thread pool).
//! - Calls glibc makes to itself (`scandir`'s `getdents`, `mkdtemp`'s
//!   `mkdir`, `freopen`'s `open`): only the outer function is seen where
//!   it is hooked (`fopen` as its open, `opendir` and `scandir` as
//!   listings), otherwise not.
//!   stdio's writes are seen where the program calls `putc`, `fputs`,
//!   `puts`, `fwrite`, `fflush` or `fclose` (see `stdio.rs`), not inside
//!   the variadic `printf` family (stable Rust cannot forward a `va_list`):
//!   a line `printf` ends is written unseen. `baton crashes` compares its
//!   rebuilt run with the real one and refuses to judge files written
//!   unseen.
//! - `mmap`ed writes, `copy_file_range`, `sendfile`, and `dup`ed
//!   descriptors' history (a write on a descriptor is attributed to the
//!   file the descriptor names when it is made, through `/proc/self/fd`).
//!
//! Calls on paths outside the root, and on descriptors that name nothing
//! under it, go straight to glibc. A program that takes the library's
//! socket number for a file of its own (`dup2` onto it, `close_range`)
//! loses nothing: the socket is checked before every call and replaced
//! (see `conn.rs`), and a `close` of it is ignored.

// Hooks take raw pointers from C callers, by the C signature of each call.
#![allow(clippy::missing_safety_doc)]

/// Exports each `name` with one signature and one body, where `glibc`
/// calls that name's own definition in glibc: the 64-bit-offset,
/// fortified and unlocked names of one call differ in nothing else.
macro_rules! variants {
    ($($name:ident),+ => fn $sig:tt -> $ret:ty; |$glibc:ident| $body:expr) => {
        $(variants!(@one $name $sig $ret; $glibc $body);)+
    };
    (@one $name:ident ($($arg:ident: $t:ty),*) $ret:ty; $glibc:ident $body:expr) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $t),*) -> $ret {
            // SAFETY: the arguments pass unchanged to glibc's definition,
            // under the caller's contract for the C function.
            let $glibc = || unsafe { crate::real::$name($($arg),*) };
            $body
        }
    };
}

mod conn;
mod fds;
mod hooks;
mod real;
mod stdio;
