//! The admission rule: which votes count in a poll.
//!
//! A vote is admitted to a poll iff it names the poll, its choice is an
//! option, it was cast inside `[opens_at, closes_at)`, it satisfies the poll's
//! eligibility (credential from the named registrar, or key on the
//! allow-list), and its signature passes the acceptance rule. The rule looks at
//! the vote and the poll only, never at when or where it arrived, so every
//! replica admits the same entries.

use crate::error::Rejection;
use crate::poll::{Eligibility, Poll};
use crate::signature::{verify_batch, SignedMessage};
use crate::vote::Vote;

/// The checks that need no signature: poll, option, window, eligibility.
pub fn check_form(poll: &Poll, vote: &Vote) -> Result<(), Rejection> {
    let body = vote.body();
    let draft = &poll.draft;

    if body.poll != poll.id {
        return Err(Rejection::WrongPoll {
            expected: poll.id,
            found: body.poll,
        });
    }
    if body.choice as usize >= draft.options.len() {
        return Err(Rejection::UnknownOption {
            choice: body.choice,
            options: draft.options.len(),
        });
    }
    if body.cast_at < draft.opens_at || body.cast_at >= draft.closes_at {
        return Err(Rejection::OutsideWindow {
            cast_at: body.cast_at,
            opens_at: draft.opens_at,
            closes_at: draft.closes_at,
        });
    }

    match (&draft.eligibility, &body.credential) {
        (Eligibility::Credential { .. }, None) => Err(Rejection::MissingCredential),
        (Eligibility::Credential { registrar }, Some(c)) => {
            if c.poll != poll.id {
                return Err(Rejection::CredentialMismatch("poll"));
            }
            if c.voter != body.voter {
                return Err(Rejection::CredentialMismatch("voter"));
            }
            if c.registrar != *registrar {
                return Err(Rejection::CredentialMismatch("registrar"));
            }
            Ok(())
        }
        (_, Some(_)) => Err(Rejection::UnexpectedCredential),
        (Eligibility::AllowList { voters }, None) => match voters.binary_search(&body.voter) {
            Ok(_) => Ok(()),
            Err(_) => Err(Rejection::NotAllowed(body.voter)),
        },
        (Eligibility::Open, None) => Ok(()),
    }
}

/// Applies the whole admission rule to one vote.
pub fn admit(poll: &Poll, vote: &Vote) -> Result<(), Rejection> {
    admit_batch(poll, std::slice::from_ref(vote)).remove(0)
}

/// Applies the whole admission rule to many votes, one result per vote, in
/// order. Signatures (votes' and credentials') are checked in one batch; the
/// results are exactly those of [`admit`] on each vote.
pub fn admit_batch(poll: &Poll, votes: &[Vote]) -> Vec<Result<(), Rejection>> {
    let mut results: Vec<Result<(), Rejection>> =
        votes.iter().map(|v| check_form(poll, v)).collect();

    // Credential messages must outlive the batch items that borrow them.
    let credential_bytes: Vec<Option<Vec<u8>>> = votes
        .iter()
        .zip(&results)
        .map(|(v, r)| match (r, &v.body().credential) {
            (Ok(()), Some(c)) => Some(c.signing_bytes()),
            _ => None,
        })
        .collect();

    let mut items = Vec::new();
    let mut owners = Vec::new();
    for (i, vote) in votes.iter().enumerate() {
        if results[i].is_err() {
            continue;
        }
        items.push(vote.signed_message());
        owners.push((i, false));
        if let (Some(bytes), Some(c)) = (&credential_bytes[i], &vote.body().credential) {
            items.push(SignedMessage {
                key: &c.registrar,
                message: bytes,
                signature: &c.signature,
            });
            owners.push((i, true));
        }
    }

    for ((i, is_credential), outcome) in owners.into_iter().zip(verify_batch(&items)) {
        let Err(e) = outcome else { continue };
        // A credential failure is reported only when the vote's own signature passed.
        if results[i].is_ok() {
            results[i] = Err(if is_credential {
                Rejection::CredentialSignature(e)
            } else {
                Rejection::Signature(e)
            });
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SignatureError;
    use crate::poll::tests::sample_draft;
    use crate::signature::SecretKey;
    use crate::vote::tests::body;
    use crate::vote::Credential;

    fn voter() -> SecretKey {
        SecretKey::from_seed(&[1; 32])
    }

    #[test]
    fn each_rule_rejects_with_its_own_reason() {
        let poll = sample_draft()
            .sign(&SecretKey::from_seed(&[9; 32]))
            .unwrap();
        let mut late = body(poll.id, 0, 1);
        late.cast_at = poll.draft.closes_at;
        let mut forged = body(poll.id, 0, 1).sign(&voter());
        forged = Vote::new(forged.body().clone(), crate::ids::Signature([0x11; 64]));

        assert_eq!(admit(&poll, &body(poll.id, 0, 1).sign(&voter())), Ok(()));
        assert!(matches!(
            admit(
                &poll,
                &body(crate::ids::PollId([1; 32]), 0, 1).sign(&voter())
            ),
            Err(Rejection::WrongPoll { .. })
        ));
        assert!(matches!(
            admit(&poll, &body(poll.id, 3, 1).sign(&voter())),
            Err(Rejection::UnknownOption {
                choice: 3,
                options: 3
            })
        ));
        assert!(matches!(
            admit(&poll, &late.sign(&voter())),
            Err(Rejection::OutsideWindow { .. })
        ));
        assert!(matches!(
            admit(&poll, &forged),
            Err(Rejection::Signature(_))
        ));
    }

    #[test]
    fn credential_polls_need_the_named_registrars_credential() {
        let registrar = SecretKey::from_seed(&[4; 32]);
        let mut draft = sample_draft();
        draft.eligibility = Eligibility::Credential {
            registrar: registrar.public(),
        };
        let poll = draft.sign(&SecretKey::from_seed(&[9; 32])).unwrap();
        let with = |c: Option<Credential>| {
            let mut b = body(poll.id, 0, 1);
            b.credential = c;
            b.sign(&voter())
        };
        let good = Credential::issue(&registrar, poll.id, voter().public());
        let other_registrar = Credential::issue(&voter(), poll.id, voter().public());
        let mut bad_sig = good.clone();
        bad_sig.signature.0[3] ^= 1;

        assert_eq!(admit(&poll, &with(Some(good))), Ok(()));
        assert_eq!(admit(&poll, &with(None)), Err(Rejection::MissingCredential));
        assert_eq!(
            admit(&poll, &with(Some(other_registrar))),
            Err(Rejection::CredentialMismatch("registrar"))
        );
        assert!(matches!(
            admit(&poll, &with(Some(bad_sig))),
            Err(Rejection::CredentialSignature(SignatureError::Equation))
        ));
    }

    #[test]
    fn allow_list_polls_admit_only_listed_keys() {
        let mut draft = sample_draft();
        draft.eligibility = Eligibility::AllowList {
            voters: vec![voter().public()],
        };
        let poll = draft.sign(&SecretKey::from_seed(&[9; 32])).unwrap();
        let stranger = SecretKey::from_seed(&[5; 32]);

        assert_eq!(admit(&poll, &body(poll.id, 0, 1).sign(&voter())), Ok(()));
        assert_eq!(
            admit(&poll, &body(poll.id, 0, 1).sign(&stranger)),
            Err(Rejection::NotAllowed(stranger.public()))
        );
    }
}
