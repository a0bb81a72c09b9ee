//! Reconnection delays: exponential, capped, jittered (sans I/O: the caller supplies the randomness).

use std::time::Duration;

/// Doubling delays from `min` to `max`, each multiplied by a factor in `[1 - jitter, 1 + jitter)`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            jitter: jitter.clamp(0.0, 1.0),
            next: min,
        }
    }

    /// The delay before the next attempt; `random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * random.clamp(0.0, 1.0);
        base.mul_f64(factor)
    }

    /// After a stable connection, start again from `min`.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_jitters_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(500), ms(30_000), 0.2);
        let mid: Vec<_> = (0..9).map(|_| b.next_delay(0.5)).collect();
        assert_eq!(
            mid,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000].map(ms)
        );
        b.reset();
        assert_eq!(b.next_delay(0.0), ms(400));
        assert!(b.next_delay(0.999).as_millis() < 1200);
    }
}
