//! Proof-of-work challenges in front of credential issuance.
//!
//! `challenge` hands out a random 16-byte nonce bound to a poll, with a
//! difficulty in bits and an expiry. `redeem` accepts a solution once: the
//! SHA-256 of `nonce || voter key || solution` must start with that many zero
//! bits. A nonce is forgotten on its first use, right or wrong, so it cannot be
//! replayed or brute-forced across requests. Only then does the relay sign a
//! `crdt::Credential` for the voter key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use crdt::{PollId, PublicKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Largest solution accepted, in bytes.
pub(crate) const MAX_SOLUTION: usize = 64;

/// A nonce handed out and not yet used.
struct Challenge {
    poll: PollId,
    expires: Instant,
}

pub(crate) struct Pow {
    bits: u8,
    ttl: Duration,
    max: usize,
    open: Mutex<HashMap<[u8; 16], Challenge>>,
}

/// A challenge as the client receives it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Issued {
    pub(crate) nonce: String,
    pub(crate) bits: u8,
    pub(crate) expires_in_ms: u64,
}

fn refused(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Whether `hash` starts with `bits` zero bits.
pub(crate) fn leading_zeros(hash: &[u8], bits: u8) -> bool {
    let mut left = u32::from(bits);
    for byte in hash {
        if left == 0 {
            return true;
        }
        let zeros = byte.leading_zeros().min(8);
        if zeros < left.min(8) {
            return false;
        }
        left = left.saturating_sub(8);
    }
    left == 0
}

/// SHA-256(nonce || voter || solution).
pub(crate) fn work(nonce: &[u8; 16], voter: &PublicKey, solution: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(voter.as_bytes());
    hasher.update(solution);
    hasher.finalize().into()
}

/// Finds a solution by counting up (8 bytes, little-endian): what a client does.
pub fn solve(nonce: &[u8; 16], voter: &PublicKey, bits: u8) -> Vec<u8> {
    (0u64..)
        .map(|n| n.to_le_bytes())
        .find(|s| leading_zeros(&work(nonce, voter, s), bits))
        .map(|s| s.to_vec())
        .unwrap_or_default()
}

impl Pow {
    pub(crate) fn new(bits: u8, ttl: Duration, max: usize) -> Pow {
        Pow {
            bits,
            ttl,
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh challenge for `poll`; 429 when too many are open.
    pub(crate) fn challenge(&self, poll: PollId) -> Result<Issued, ApiError> {
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let now = Instant::now();

        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            open.retain(|_, c| c.expires > now);
        }
        if open.len() >= self.max {
            return Err(ApiError::rate_limited("relay's open challenges", self.ttl));
        }
        open.insert(
            nonce,
            Challenge {
                poll,
                expires: now + self.ttl,
            },
        );
        Ok(Issued {
            nonce: hex::encode(nonce),
            bits: self.bits,
            expires_in_ms: self.ttl.as_millis() as u64,
        })
    }

    /// Checks a solution and uses up its nonce.
    pub(crate) fn redeem(
        &self,
        poll: PollId,
        nonce: &str,
        voter: &PublicKey,
        solution: &str,
    ) -> Result<(), ApiError> {
        let nonce: [u8; 16] = hex::decode(nonce)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                ApiError::invalid_json(format!("nonce {nonce:?} is not 16 bytes of hex"))
            })?;
        let solution = hex::decode(solution)
            .ok()
            .filter(|s| s.len() <= MAX_SOLUTION)
            .ok_or_else(|| {
                ApiError::invalid_json(format!(
                    "solution is not hex of at most {MAX_SOLUTION} bytes"
                ))
            })?;

        // Removed before checking: one try per nonce.
        let challenge = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&nonce);
        let Some(challenge) = challenge else {
            return Err(refused(
                "unknown_challenge",
                format!("challenge {} is unknown or used", hex::encode(nonce)),
            ));
        };
        if challenge.expires <= Instant::now() {
            return Err(refused(
                "challenge_expired",
                format!("challenge {} expired", hex::encode(nonce)),
            ));
        }
        if challenge.poll != poll {
            return Err(refused(
                "wrong_poll",
                format!(
                    "challenge {} was issued for poll {}",
                    hex::encode(nonce),
                    challenge.poll
                ),
            ));
        }
        if !leading_zeros(&work(&nonce, voter, &solution), self.bits) {
            return Err(refused(
                "bad_solution",
                format!("the solution does not give {} leading zero bits", self.bits),
            ));
        }
        Ok(())
    }

    /// Drops expired challenges.
    pub(crate) fn prune(&self) {
        let now = Instant::now();
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, c| c.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zero_bits_are_counted_across_bytes() {
        assert!(leading_zeros(&[0, 0x0f, 0xff], 12));
        assert!(!leading_zeros(&[0, 0x1f, 0xff], 12));
        assert!(leading_zeros(&[0xff], 0));
        assert!(!leading_zeros(&[0x00], 9));
    }

    #[test]
    fn a_solution_is_accepted_once() {
        let pow = Pow::new(8, Duration::from_secs(60), 10);
        let poll = PollId([7; 32]);
        let voter = crdt::SecretKey::from_seed(&[3; 32]).public();
        let issued = pow.challenge(poll).unwrap();
        let nonce: [u8; 16] = hex::decode(&issued.nonce).unwrap().try_into().unwrap();
        let solution = hex::encode(solve(&nonce, &voter, 8));

        pow.redeem(poll, &issued.nonce, &voter, &solution).unwrap();
        let replay = pow
            .redeem(poll, &issued.nonce, &voter, &solution)
            .unwrap_err();

        assert_eq!(replay.code, "unknown_challenge");
    }
}
