//! baton's exit codes, in one place.

/// How `baton` ends. A command run under `baton lock` passes its own status
/// through instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// An error, explained in one line on stderr.
    Error,
    /// Bad usage (clap reports it).
    Usage,
    /// `baton explore` or `baton crashes` found a run or crash state that
    /// fails the user's check.
    Violation,
    /// The lock or claim was not obtained in time (`EX_TEMPFAIL`).
    Unavailable,
    /// The command could not be executed (as in `env`, `timeout`).
    CannotExecute,
    /// The command was not found.
    NotFound,
    /// The command's own status (a signal `n` as `128 + n`, as shells do).
    Command(u8),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Violation => 3,
            Exit::Unavailable => 75,
            Exit::CannotExecute => 126,
            Exit::NotFound => 127,
            Exit::Command(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Error.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::Violation.code(), 3);
        assert_eq!(Exit::Unavailable.code(), 75);
        assert_eq!(Exit::CannotExecute.code(), 126);
        assert_eq!(Exit::NotFound.code(), 127);
        assert_eq!(Exit::Command(3).code(), 3);
    }
}
