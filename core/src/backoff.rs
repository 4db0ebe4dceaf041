//! Capped exponential backoff with jitter, for the waits the kernel cannot
//! wake (exclusive-file locks, whose release no syscall reports).

use std::time::Duration;

/// Delays of `base·2^n`, capped, each drawn from the upper half of its range
/// ("equal jitter"): waiters started together spread out, and no delay falls
/// below half its step, so the count of polls stays logarithmic.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        assert!(
            !base.is_zero() && base <= cap,
            "backoff needs 0 < base <= cap"
        );
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay, jittered by `random` (any u64).
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self
            .base
            .checked_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .map_or(self.cap, |d| d.min(self.cap));
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(random % span.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_until_the_cap_and_stay_in_the_upper_half() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(1), ms(100));
        let mut ceiling = ms(1);
        for i in 0..20u64 {
            let d = b.next_delay(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "step {i}: {d:?} vs {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(ms(100));
        }
    }

    #[test]
    fn jitter_spreads_equal_attempts() {
        let ms = Duration::from_millis;
        let first: Vec<_> = (0..8u64)
            .map(|r| Backoff::new(ms(64), ms(64)).next_delay(r * 3_999_999))
            .collect();
        assert!(first.windows(2).all(|w| w[0] != w[1]));
    }
}
