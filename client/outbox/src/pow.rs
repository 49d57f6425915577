//! The relay's proof of work, from the client's side, and the check of the
//! credential it buys.
//!
//! A solution is an 8-byte little-endian counter such that
//! SHA-256(nonce || voter key || solution) starts with `bits` zero bits.

use crdt::{Credential, Eligibility, Poll, PublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::CredentialError;

/// Most zero bits this client will work for (about 2^28 hashes, minutes on a
/// phone): a relay asking more is refused rather than freezing the page.
pub const MAX_BITS: u8 = 28;

/// A challenge as the relay hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce to hash.
    pub nonce: [u8; 16],
    /// Leading zero bits required.
    pub bits: u8,
    /// How long the relay keeps the nonce.
    pub expires_in_ms: u64,
}

impl Challenge {
    /// Parses the relay's `{nonce, bits, expires_in_ms}`.
    pub fn parse(body: &str) -> Result<Challenge, CredentialError> {
        #[derive(Deserialize)]
        struct Wire {
            nonce: String,
            bits: u8,
            expires_in_ms: u64,
        }
        let malformed = |reason: String| CredentialError::Malformed {
            step: "challenge",
            reason,
        };

        let wire: Wire = serde_json::from_str(body).map_err(|e| malformed(e.to_string()))?;
        let mut nonce = [0u8; 16];
        hex::decode_to_slice(&wire.nonce, &mut nonce)
            .map_err(|_| malformed(format!("nonce {:?} is not 16 bytes of hex", wire.nonce)))?;
        if wire.bits > MAX_BITS {
            return Err(CredentialError::TooHard {
                bits: wire.bits,
                max: MAX_BITS,
            });
        }
        Ok(Challenge {
            nonce,
            bits: wire.bits,
            expires_in_ms: wire.expires_in_ms,
        })
    }

    /// Searches the counters `from..from + count` for a solution. Searching in
    /// slices lets a caller yield to the event loop between them.
    pub fn solve_range(&self, voter: &PublicKey, from: u64, count: u64) -> Option<[u8; 8]> {
        let mut prefix = Sha256::new();
        prefix.update(self.nonce);
        prefix.update(voter.as_bytes());

        (from..from.saturating_add(count))
            .map(u64::to_le_bytes)
            .find(|s| leading_zero_bits(&prefix.clone().chain_update(s).finalize(), self.bits))
    }
}

/// Whether `hash` starts with `bits` zero bits.
pub fn leading_zero_bits(hash: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if hash.len() < full + usize::from(rest > 0) {
        return false;
    }
    hash[..full].iter().all(|&b| b == 0) && (rest == 0 || hash[full] >> (8 - rest) == 0)
}

/// Parses the relay's `{"credential": ...}` and checks it is a valid
/// credential of `poll`'s registrar for `voter`.
pub fn accept_credential(
    body: &str,
    poll: &Poll,
    voter: &PublicKey,
) -> Result<Credential, CredentialError> {
    #[derive(Deserialize)]
    struct Wire {
        credential: Credential,
    }

    let credential = serde_json::from_str::<Wire>(body)
        .map_err(|e| CredentialError::Malformed {
            step: "credential",
            reason: e.to_string(),
        })?
        .credential;
    check_credential(&credential, poll, voter)?;
    Ok(credential)
}

/// Checks a credential against the poll's registrar and the voter.
pub fn check_credential(
    credential: &Credential,
    poll: &Poll,
    voter: &PublicKey,
) -> Result<(), CredentialError> {
    let Eligibility::Credential { registrar } = &poll.draft.eligibility else {
        return Err(CredentialError::NotNeeded { poll: poll.id });
    };
    if credential.poll != poll.id {
        return Err(CredentialError::Invalid(format!(
            "issued for poll {}, not {}",
            credential.poll, poll.id
        )));
    }
    if credential.voter != *voter {
        return Err(CredentialError::Invalid(format!(
            "issued to voter {}, not {voter}",
            credential.voter
        )));
    }
    if credential.registrar != *registrar {
        return Err(CredentialError::Invalid(format!(
            "signed by {}, the poll's registrar is {registrar}",
            credential.registrar
        )));
    }
    credential
        .verify()
        .map_err(|e| CredentialError::Invalid(format!("signature: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{PollDraft, SecretKey};

    fn poll(registrar: &SecretKey) -> Poll {
        let organizer = SecretKey::from_seed(&[1; 32]);
        PollDraft {
            organizer: organizer.public(),
            created_at: 0,
            opens_at: 0,
            closes_at: 10,
            title: "t".into(),
            options: vec!["a".into(), "b".into()],
            eligibility: Eligibility::Credential {
                registrar: registrar.public(),
            },
        }
        .sign(&organizer)
        .expect("valid poll")
    }

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert!(leading_zero_bits(&[0, 0x0f, 0xff], 12));
        assert!(!leading_zero_bits(&[0, 0x1f, 0xff], 12));
        assert!(leading_zero_bits(&[0xff], 0));
        assert!(leading_zero_bits(&[0, 0], 16));
        assert!(!leading_zero_bits(&[0], 9));
    }

    #[test]
    fn a_solution_found_meets_the_difficulty() {
        let challenge = Challenge {
            nonce: [4; 16],
            bits: 10,
            expires_in_ms: 1,
        };
        let voter = SecretKey::from_seed(&[2; 32]).public();

        let solution = challenge.solve_range(&voter, 0, 1 << 20).expect("solvable");

        let hash = Sha256::new()
            .chain_update(challenge.nonce)
            .chain_update(voter.as_bytes())
            .chain_update(solution)
            .finalize();
        assert!(leading_zero_bits(&hash, 10));
    }

    #[test]
    fn a_challenge_too_hard_or_malformed_is_refused() {
        let nonce = "00".repeat(16);

        assert!(Challenge::parse(&format!(
            r#"{{"nonce":"{nonce}","bits":8,"expires_in_ms":5}}"#
        ))
        .is_ok());
        assert!(matches!(
            Challenge::parse(&format!(
                r#"{{"nonce":"{nonce}","bits":40,"expires_in_ms":5}}"#
            )),
            Err(CredentialError::TooHard { bits: 40, .. })
        ));
        assert!(matches!(
            Challenge::parse(r#"{"nonce":"00","bits":8,"expires_in_ms":5}"#),
            Err(CredentialError::Malformed { .. })
        ));
    }

    #[test]
    fn only_the_registrars_credential_for_this_voter_is_accepted() {
        let registrar = SecretKey::from_seed(&[9; 32]);
        let poll = poll(&registrar);
        let voter = SecretKey::from_seed(&[2; 32]).public();
        let good = Credential::issue(&registrar, poll.id, voter);
        let body = serde_json::json!({ "credential": good }).to_string();

        assert_eq!(accept_credential(&body, &poll, &voter), Ok(good.clone()));

        let other_voter = SecretKey::from_seed(&[3; 32]).public();
        let stranger = Credential::issue(&SecretKey::from_seed(&[8; 32]), poll.id, voter);
        let mut forged = good.clone();
        forged.signature.0[0] ^= 1;
        for bad in [stranger, forged] {
            assert!(matches!(
                check_credential(&bad, &poll, &voter),
                Err(CredentialError::Invalid(_))
            ));
        }
        assert!(check_credential(&good, &poll, &other_voter).is_err());
    }
}
