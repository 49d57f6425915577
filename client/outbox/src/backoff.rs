//! When to try a pending vote again: exponential backoff with full jitter.
//!
//! After the `n`-th failed attempt the next one waits a uniformly drawn time in
//! `[0, min(MAX_DELAY_MS, BASE_DELAY_MS * 2^n)]`, raised to `MIN_DELAY_MS` and to
//! the server's `Retry-After`. Full jitter spreads the retries of many voters
//! that lost the network at the same moment.

/// The backoff window after the first failure is twice this.
pub const BASE_DELAY_MS: u64 = 1_000;
/// The window never grows past this (five minutes).
pub const MAX_DELAY_MS: u64 = 5 * 60 * 1_000;
/// The shortest wait, so that tabs flushing in a loop cannot spin.
pub const MIN_DELAY_MS: u64 = 500;
/// A `Retry-After` longer than this (one hour) is cut to it.
pub const MAX_RETRY_AFTER_MS: u64 = 60 * 60 * 1_000;

/// Milliseconds to wait after `attempts` failed attempts (1 after the first).
/// `jitter` is a uniform draw from `[0, 1)`; values outside are clamped.
pub fn retry_delay_ms(attempts: u32, jitter: f64, retry_after_ms: Option<u64>) -> u64 {
    let window = BASE_DELAY_MS
        .saturating_mul(1u64 << attempts.min(32))
        .min(MAX_DELAY_MS);
    let jitter = if jitter.is_nan() {
        1.0
    } else {
        jitter.clamp(0.0, 1.0)
    };

    // Exact: window <= 300_000 fits an f64 mantissa.
    let drawn = (window as f64 * jitter) as u64;
    let floor = retry_after_ms.map_or(0, |ms| ms.min(MAX_RETRY_AFTER_MS));
    drawn.max(MIN_DELAY_MS).max(floor)
}

/// Parses a `Retry-After` header given in seconds. The HTTP-date form is not
/// read (the relay sends seconds); it falls back to plain backoff.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_doubles_then_stops_at_the_cap() {
        assert_eq!(retry_delay_ms(1, 1.0, None), 2_000);
        assert_eq!(retry_delay_ms(2, 1.0, None), 4_000);
        assert_eq!(retry_delay_ms(8, 1.0, None), 256_000);
        assert_eq!(retry_delay_ms(9, 1.0, None), MAX_DELAY_MS);
        assert_eq!(retry_delay_ms(u32::MAX, 1.0, None), MAX_DELAY_MS);
    }

    #[test]
    fn jitter_spreads_over_the_whole_window_above_the_floor() {
        assert_eq!(retry_delay_ms(4, 0.5, None), 8_000);
        assert_eq!(retry_delay_ms(4, 0.0, None), MIN_DELAY_MS);
        assert_eq!(retry_delay_ms(4, -3.0, None), MIN_DELAY_MS);
        assert_eq!(retry_delay_ms(4, f64::NAN, None), 16_000);
    }

    #[test]
    fn retry_after_is_honoured_up_to_an_hour() {
        assert_eq!(retry_delay_ms(1, 0.0, Some(120_000)), 120_000);
        assert_eq!(retry_delay_ms(1, 0.0, Some(u64::MAX)), MAX_RETRY_AFTER_MS);
        assert_eq!(retry_delay_ms(9, 1.0, Some(1_000)), MAX_DELAY_MS);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(7_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
