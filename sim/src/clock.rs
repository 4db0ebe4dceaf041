//! Per-process clocks, after TigerBeetle's `TimeSim`: wall time is true time
//! bent by an offset, a drift, a periodic wobble and steps (NTP jumping the
//! clock forwards or back); monotonic time only drifts, never jumps. The two
//! are never derived from each other, so code that mixes them shows up.
//!
//! Every process has its own model, and a file's mtime is stamped from the
//! clock of the process that wrote it: a waiter comparing that mtime with
//! its own clock compares two different clocks, as on a real machine whose
//! processes see a clock step at different moments.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2026-01-01T00:00:00Z: true time zero of every simulation.
pub fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockModel {
    /// Constant offset of wall time from true time.
    pub offset_ns: i64,
    /// Rate error in parts per million (both clocks).
    pub drift_ppm: i64,
    /// Amplitude and period of a triangular wobble of wall time.
    pub wobble_ns: i64,
    pub wobble_period_ns: u64,
    /// Steps of wall time: (true time at which it happens, size).
    pub jumps: Vec<(u64, i64)>,
    /// True time at which the process started (monotonic origin).
    pub started_ns: u64,
    /// Arbitrary monotonic reading at start.
    pub mono_base_ns: u64,
}

impl ClockModel {
    fn drifted(&self, ns: u64) -> i64 {
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        ns.saturating_add(ns / 1_000_000 * self.drift_ppm)
    }

    /// This process's wall clock, in ns since [`epoch`], at true time `now`.
    pub fn wall_ns(&self, now: u64) -> i64 {
        let mut t = self.drifted(now).saturating_add(self.offset_ns);
        if self.wobble_period_ns > 0 {
            let phase = (now % self.wobble_period_ns) as i64;
            let half = (self.wobble_period_ns / 2) as i64;
            let tri = if phase < half {
                phase
            } else {
                2 * half - phase
            };
            let bend = i128::from(self.wobble_ns) * 2 * i128::from(tri) / i128::from(half.max(1));
            t = t.saturating_add(bend as i64 - self.wobble_ns);
        }
        for &(at, delta) in &self.jumps {
            if now >= at {
                t = t.saturating_add(delta);
            }
        }
        t
    }

    pub fn wall(&self, now: u64) -> SystemTime {
        let ns = self.wall_ns(now);
        if ns >= 0 {
            epoch() + Duration::from_nanos(ns as u64)
        } else {
            epoch() - Duration::from_nanos(ns.unsigned_abs())
        }
    }

    /// This process's monotonic clock at true time `now`.
    pub fn monotonic_ns(&self, now: u64) -> u64 {
        let since = now.saturating_sub(self.started_ns);
        let drifted = self.drifted(since).max(0) as u64;
        self.mono_base_ns.saturating_add(drifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_jumps_while_wall_does() {
        let c = ClockModel {
            jumps: vec![(1_000, -5_000_000_000)],
            mono_base_ns: 7,
            ..ClockModel::default()
        };
        assert_eq!(c.wall_ns(999), 999);
        assert_eq!(c.wall_ns(1_000), 1_000 - 5_000_000_000);
        assert!(c.monotonic_ns(1_000) > c.monotonic_ns(999));
    }

    #[test]
    fn drift_bends_both_clocks() {
        let c = ClockModel {
            drift_ppm: 100,
            ..ClockModel::default()
        };
        assert_eq!(c.wall_ns(1_000_000_000), 1_000_100_000);
        assert_eq!(c.monotonic_ns(1_000_000_000), 1_000_100_000);
    }

    #[test]
    fn large_wobble_does_not_overflow() {
        let c = ClockModel {
            wobble_ns: 36_000_000_000,
            wobble_period_ns: 60_000_000_000,
            ..ClockModel::default()
        };
        let off = c.wall_ns(29_999_999_999) - 29_999_999_999;
        assert!((-36_000_000_000..=36_000_000_000).contains(&off));
    }

    #[test]
    fn wobble_stays_within_its_amplitude() {
        let c = ClockModel {
            wobble_ns: 1_000,
            wobble_period_ns: 10_000,
            ..ClockModel::default()
        };
        for now in (0..50_000).step_by(333) {
            let off = c.wall_ns(now) - now as i64;
            assert!((-1_000..=1_000).contains(&off), "{now}: {off}");
        }
    }
}
