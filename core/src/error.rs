//! The one shape every failed environment call takes in baton's errors.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// An environment call that failed: which operation, on which path, and the
/// OS's reason (with its errno). Displays as `<op>: <path>: <cause>`.
#[derive(Debug, thiserror::Error)]
pub struct IoFailure {
    pub op: &'static str,
    pub path: PathBuf,
    /// The OS's reason; part of the message, so not also a `source()`.
    pub cause: io::Error,
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.op, self.path.display(), self.cause)
    }
}

impl IoFailure {
    /// A `map_err` adapter: `env.open(p, true).map_err(IoFailure::at("open lock file", p))`.
    pub fn at<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> IoFailure + 'p {
        move |cause| IoFailure {
            op,
            path: path.to_owned(),
            cause,
        }
    }

    pub fn kind(&self) -> io::ErrorKind {
        self.cause.kind()
    }
}
