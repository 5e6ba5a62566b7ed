//! When a queued notification or document is tried again, and when to stop: exponential backoff
//! with equal jitter (`shared::time::jittered`) from `ICARE_RETRY_FIRST_SECONDS`, each step capped
//! at three hours, until `ICARE_RETRY_HORIZON_SECONDS` after it was first queued (48 hours: the
//! window in which NSW expects an initial notification). The last attempt is timed to land on
//! the horizon; only after it fails is the record given up, which raises an alarm.

use std::time::Duration;

/// The longest wait between two attempts: an iCare outage ending is noticed within this.
pub const MAX_STEP: Duration = Duration::from_secs(3 * 3600);
/// The default horizon: the statutory 48 hours.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(48 * 3600);
pub const DEFAULT_FIRST_STEP: Duration = Duration::from_secs(30);

/// The wait before the next attempt, after attempt `attempt` (1-based) failed `elapsed` after the
/// record was first queued; `None` once the horizon is reached: give up.
pub fn next_delay(attempt: u32, elapsed: Duration, first: Duration, horizon: Duration) -> Option<Duration> {
    let left = horizon.checked_sub(elapsed).filter(|left| !left.is_zero())?;
    let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    let step = first.saturating_mul(factor).min(MAX_STEP);
    Some(shared::time::jittered(step).min(left).max(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attempts of one record through an outage that outlasts the horizon, on a fake clock:
    /// each wait is half to all of its step, the steps double up to the cap, the last attempt
    /// lands on the horizon, and no attempt is made after it.
    #[test]
    fn retries_back_off_to_the_horizon_and_stop_there() {
        for seed in 0..200 {
            fastrand::seed(seed);
            let mut elapsed = Duration::ZERO;
            let mut attempt = 1u32;
            let mut waits = Vec::new();
            while let Some(wait) = next_delay(attempt, elapsed, DEFAULT_FIRST_STEP, DEFAULT_HORIZON) {
                let step = DEFAULT_FIRST_STEP.saturating_mul(1 << (attempt - 1).min(20)).min(MAX_STEP);
                let last = elapsed + wait == DEFAULT_HORIZON;
                assert!(wait <= step, "attempt {attempt}: {wait:?} over its step {step:?}");
                assert!(last || wait >= step / 2, "attempt {attempt}: {wait:?} under half its step {step:?}");
                waits.push(wait);
                elapsed += wait;
                attempt += 1;
            }
            assert_eq!(elapsed, DEFAULT_HORIZON, "seed {seed}: stops only at the horizon");
            assert_eq!(
                next_delay(attempt, elapsed + Duration::from_secs(1), DEFAULT_FIRST_STEP, DEFAULT_HORIZON),
                None
            );
            // The queue's redrive (maxReceiveCount 50 in the template) must not come first.
            assert!(waits.len() < 50, "seed {seed}: {} attempts", waits.len());
            assert!(waits.len() >= 16, "seed {seed}: only {} attempts in 48 hours", waits.len());
            assert!(waits.iter().all(|wait| *wait <= MAX_STEP));
        }
    }

    #[test]
    fn a_horizon_of_zero_gives_up_at_once_and_nothing_overflows() {
        assert_eq!(next_delay(1, Duration::ZERO, DEFAULT_FIRST_STEP, Duration::ZERO), None);
        assert!(next_delay(u32::MAX, Duration::ZERO, Duration::MAX, Duration::MAX).is_some_and(|d| d <= MAX_STEP));
    }
}
