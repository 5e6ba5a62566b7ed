//! "Today" in the time zones the upstreams reason in (Lambda runs in UTC; NZ and NSW do not),
//! and the jitter every retry schedule here uses.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

pub const NEW_ZEALAND: Tz = chrono_tz::Pacific::Auckland;
pub const NEW_SOUTH_WALES: Tz = chrono_tz::Australia::Sydney;

/// The calendar date in `zone` at instant `now`.
pub fn today_in(zone: Tz, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&zone).date_naive()
}

/// Epoch milliseconds as epoch seconds, rounded up: for a deadline, which must not come early.
pub fn seconds_rounded_up(epoch_ms: i64) -> i64 {
    epoch_ms.div_euclid(1000) + i64::from(epoch_ms.rem_euclid(1000) > 0)
}

/// The current instant: the system clock, except on a thread that [`use_virtual_clock`] switched
/// to tokio's clock. Everything in the gateway that records or compares wall-clock time asks this,
/// so a seeded soak on a paused runtime is a function of its seed alone.
pub fn now() -> DateTime<Utc> {
    let millis = now_millis();
    DateTime::<Utc>::from_timestamp_millis(millis).unwrap_or_else(Utc::now)
}

/// [`now`] as epoch milliseconds.
pub fn now_millis() -> i64 {
    VIRTUAL_EPOCH.with(|clock| match clock.get() {
        Some((start, epoch_ms)) => {
            let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
            epoch_ms.saturating_add(elapsed)
        }
        None => Utc::now().timestamp_millis(),
    })
}

/// [`now`] as epoch seconds.
pub fn now_seconds() -> i64 {
    now_millis().div_euclid(1000)
}

thread_local! {
    static VIRTUAL_EPOCH: std::cell::Cell<Option<(tokio::time::Instant, i64)>> = const { std::cell::Cell::new(None) };
}

/// From now on, on this thread, [`now`] starts at `epoch_ms` and moves with tokio's clock. On a
/// runtime built with `start_paused(true)` that clock moves only when every task waits, by as
/// much as the next timer needs, so time no longer depends on the machine's speed. For the soak's
/// exact reproduction of a seed (one seed, one thread, one current-thread runtime); call it inside
/// that runtime. Never used in a function.
pub fn use_virtual_clock(epoch_ms: i64) {
    VIRTUAL_EPOCH.with(|clock| clock.set(Some((tokio::time::Instant::now(), epoch_ms))));
}

/// A source of the current instant, so date rules can be tested across the date line.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn new_zealand_is_already_tomorrow_at_utc_noon() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 30, 0).single().expect("valid instant");
        assert_eq!(today_in(NEW_ZEALAND, now), NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date"));
        assert_eq!(now.date_naive(), NaiveDate::from_ymd_opt(2026, 11, 23).expect("valid date"));
    }
}

/// "Equal jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): half the delay, plus a
/// random part of the other half, so callers that failed together do not come back together, and
/// none comes back sooner than half the schedule.
pub fn jittered(delay: std::time::Duration) -> std::time::Duration {
    let half = delay / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + std::time::Duration::from_millis(fastrand::u64(0..=spread))
}

#[cfg(test)]
mod jitter_tests {
    use super::jittered;
    use std::time::Duration;

    #[test]
    fn jitter_stays_between_half_and_the_whole_delay() {
        for _ in 0..1000 {
            let delay = jittered(Duration::from_millis(1000));
            assert!((Duration::from_millis(500)..=Duration::from_millis(1000)).contains(&delay), "{delay:?}");
        }
        assert_eq!(jittered(Duration::ZERO), Duration::ZERO);
        let _ = jittered(Duration::MAX);
    }
}

/// Serialises an instant as RFC 3339 in UTC with milliseconds (`2026-11-26T22:36:12.123Z`), the
/// form the table's records keep (`#[serde(serialize_with = "shared::time::serialize_millis")]`).
pub fn serialize_millis<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
