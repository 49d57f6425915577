//! Rate limits at the edge: one token bucket (GCRA, `governor`) per client
//! IP and one per poll. A refused request gets 429 `rate_limited` with
//! `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use crdt::PollId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Config;
use crate::error::ApiError;

/// How often buckets of idle keys are dropped, bounding memory.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(60);

pub(crate) struct Limits {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    poll: DefaultKeyedRateLimiter<PollId>,
    clock: DefaultClock,
}

fn quota(rate: u32, burst: u32) -> Quota {
    // `Config::check` refuses zeros; 1 is only a fallback.
    let one = NonZeroU32::MIN;
    Quota::per_second(NonZeroU32::new(rate).unwrap_or(one))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(one))
}

impl Limits {
    pub(crate) fn new(config: &Config) -> Limits {
        Limits {
            ip: RateLimiter::keyed(quota(config.ip_rate, config.ip_burst)),
            poll: RateLimiter::keyed(quota(config.poll_rate, config.poll_burst)),
            clock: DefaultClock::default(),
        }
    }

    /// One request from `ip`.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.ip.check_key(&ip).map_err(|wait| {
            ApiError::rate_limited("address", wait.wait_time_from(self.clock.now()))
        })
    }

    /// One request for `poll`.
    pub(crate) fn check_poll(&self, poll: PollId) -> Result<(), ApiError> {
        self.poll
            .check_key(&poll)
            .map_err(|wait| ApiError::rate_limited("poll", wait.wait_time_from(self.clock.now())))
    }

    /// Drops the buckets of keys that are back to full.
    pub(crate) fn prune(&self) {
        self.ip.retain_recent();
        self.ip.shrink_to_fit();
        self.poll.retain_recent();
        self.poll.shrink_to_fit();
    }
}
