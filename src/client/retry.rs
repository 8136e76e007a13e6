//! When to try a request again, and how long to wait before doing so.

use std::time::Duration;

/// Attempts, a jittered exponential backoff, and a deadline after which no attempt starts.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Counted from the first attempt: a retry that would start later is not made.
    pub deadline: Duration,
}

impl RetryPolicy {
    /// As the AWS SDKs' standard mode (three attempts, backoff from 1 s up to 20 s), and no
    /// new attempt after 30 s: a stalled server is given up on, not waited out three times.
    pub const STANDARD: RetryPolicy = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(20),
        deadline: Duration::from_secs(30),
    };

    /// The wait before the attempt after `attempt` (counted from 1), given the time spent so
    /// far and a random draw in [0, 1); `None` once no further attempt may start.
    pub fn next_delay(&self, attempt: u32, elapsed: Duration, random: f64) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        let delay = self.backoff(attempt, random);
        (elapsed + delay < self.deadline).then_some(delay)
    }

    /// A random share of an exponentially growing ceiling, so clients that failed together do
    /// not come back together ("full jitter").
    fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let doubling = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial_backoff.saturating_mul(doubling).min(self.max_backoff).mul_f64(random.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy::STANDARD;
    const NOW: Duration = Duration::ZERO;

    #[test]
    fn three_attempts_then_none() {
        let waits: Vec<_> = (1..=5).map(|attempt| POLICY.next_delay(attempt, NOW, 0.5)).collect();
        assert_eq!(waits, [Some(Duration::from_millis(500)), Some(Duration::from_secs(1)), None, None, None]);
    }

    #[test]
    fn the_waits_of_a_whole_call_stay_within_their_ceilings() {
        for random in [0.0, 0.3, 0.999_999] {
            let total: Duration = (1..POLICY.attempts).filter_map(|a| POLICY.next_delay(a, NOW, random)).sum();
            assert!(total < Duration::from_secs(3), "{total:?}");
        }
        let late = RetryPolicy { attempts: 40, ..POLICY };
        assert!(late.next_delay(39, NOW, 0.999).unwrap() < POLICY.max_backoff, "the ceiling holds for any attempt");
    }

    #[test]
    fn jitter_spreads_the_waits_over_their_range() {
        let waits: Vec<Duration> = (0..2000).map(|_| POLICY.next_delay(2, NOW, fastrand::f64()).unwrap()).collect();
        let below_half = waits.iter().filter(|w| **w < Duration::from_secs(1)).count();
        assert!((800..1200).contains(&below_half), "{below_half} of 2000 below the middle");
        assert!(
            waits.iter().any(|w| *w < Duration::from_millis(100))
                && waits.iter().any(|w| *w > Duration::from_millis(1900))
        );
    }

    #[test]
    fn no_attempt_starts_past_the_deadline() {
        assert!(POLICY.next_delay(1, Duration::from_secs(29), 0.5).is_some());
        assert_eq!(POLICY.next_delay(1, Duration::from_secs(30), 0.0), None);
        assert_eq!(POLICY.next_delay(1, Duration::from_millis(29_600), 0.5), None, "the wait would end past it");
    }
}
