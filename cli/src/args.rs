//! Argument values checked at parse time, so bad input is a usage error
//! (exit 2, clap's one message) before anything is touched: durations that
//! are not finite, positive and sane, counts of zero, ids that could not be
//! file names.

use std::time::Duration;

/// The longest duration any flag takes: a year. Anything longer is a typo
/// (or an attempt to overflow a deadline), not a wish.
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

fn secs(s: &str, zero_ok: bool) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() {
        return Err(format!("{s} is not a finite number of seconds"));
    }
    if secs < 0.0 || (!zero_ok && secs == 0.0) {
        let least = if zero_ok { "0 or more" } else { "more than 0" };
        return Err(format!("{s} seconds: must be {least}"));
    }
    if secs > MAX_SECS {
        return Err(format!("{s} seconds: more than a year"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s}: {e}"))
}

/// Seconds, more than zero (`--stale`, `--ttl`).
pub fn positive_secs(s: &str) -> Result<Duration, String> {
    secs(s, false)
}

/// Seconds, zero allowed (`-w 0` is `-n`).
pub fn wait_secs(s: &str) -> Result<Duration, String> {
    secs(s, true)
}

/// A count of at least one (`--seeds`).
pub fn positive_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1: zero seeds would prove nothing".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// An instance id (`--id`): it may become a file name.
pub fn instance_id(s: &str) -> Result<String, String> {
    baton_core::election::check_id(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// How long to wait for a lock: `-w SECS`, `-n`, or for ever.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Wait at most SECS seconds for the lock (default: wait forever).
    #[arg(
        short = 'w',
        long = "wait",
        visible_alias = "timeout",
        value_name = "SECS",
        conflicts_with = "nonblock",
        value_parser = wait_secs
    )]
    pub wait: Option<Duration>,
    /// Do not wait: exit 75 at once if the lock is held.
    #[arg(short = 'n', long = "nonblock")]
    pub nonblock: bool,
}

impl WaitArgs {
    pub fn wait(&self) -> baton_core::lock::Wait {
        use baton_core::lock::Wait;
        match (self.nonblock, self.wait) {
            (true, _) => Wait::No,
            (false, Some(d)) => Wait::For(d),
            (false, None) => Wait::Forever,
        }
    }
}

/// A bad combination of arguments found after parsing: reported on one
/// line and mapped to the usage exit code (2) by `main`.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_finite_positive_and_sane() {
        for bad in [
            "0", "-1", "NaN", "inf", "-inf", "1e300", "31536001", "x", "",
        ] {
            assert!(positive_secs(bad).is_err(), "{bad}");
        }
        assert_eq!(positive_secs("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(wait_secs("0"), Ok(Duration::ZERO));
        assert!(wait_secs("-0.1").is_err());
    }

    #[test]
    fn ids_that_could_escape_a_directory_are_refused() {
        for bad in ["../../victim", "a/b", ".hidden", "-x", "", "a\nb", "a b"] {
            assert!(instance_id(bad).is_err(), "{bad:?}");
        }
        assert!(instance_id("plugin-1@host:42").is_ok());
    }

    #[test]
    fn zero_seeds_is_refused() {
        assert!(positive_count("0").is_err());
        assert_eq!(positive_count("12"), Ok(12));
    }
}
