//! Push: batches of new entries on the gossip topic.
//!
//! A message is `VMG1`, the poll id (32 bytes), a `u32` entry count, then each
//! entry's canonical encoding prefixed by its `u32` length (all big-endian).
//! Batches hold at most [`MAX_BATCH_ENTRIES`] entries and stay under
//! [`BATCH_SOFT_BYTES`], well below the gossip transmit limit.

use std::sync::Arc;

use crdt::sync::MAX_ENTRY_BYTES;
use crdt::{PollId, Vote};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use super::error::InputError;
use super::{Command, Context};
use crate::commit::Origin;

const MAGIC: &[u8; 4] = b"VMG1";
/// Most entries in one gossip message.
pub(crate) const MAX_BATCH_ENTRIES: usize = 100;
/// A batch is closed once it reaches this many bytes.
pub(crate) const BATCH_SOFT_BYTES: usize = 64 * 1024;

/// Cuts `votes` into gossip messages.
pub(crate) fn encode_batches(poll: &PollId, votes: &[Vote]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut rest = votes;
    while !rest.is_empty() {
        let mut size = MAGIC.len() + 32 + 4;
        let mut n = 0;
        while n < rest.len() && n < MAX_BATCH_ENTRIES && size < BATCH_SOFT_BYTES {
            size += 4 + rest[n].encoded().len();
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        messages.push(encode(poll, batch));
        rest = tail;
    }
    messages
}

fn encode(poll: &PollId, votes: &[Vote]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(BATCH_SOFT_BYTES);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(poll.as_bytes());
    bytes.extend_from_slice(&(votes.len() as u32).to_be_bytes());
    for vote in votes {
        bytes.extend_from_slice(&(vote.encoded().len() as u32).to_be_bytes());
        bytes.extend_from_slice(vote.encoded());
    }
    bytes
}

fn malformed(reason: impl Into<String>) -> InputError {
    InputError::Malformed {
        what: "gossip batch",
        reason: reason.into(),
    }
}

/// Decodes a gossip message. Entries are checked for form only.
pub(crate) fn decode(bytes: &[u8]) -> Result<(PollId, Vec<Vote>), InputError> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("no VMG1 header"))?;
    let (poll, rest) = split(rest, 32)?;
    let poll = PollId(poll.try_into().map_err(|_| malformed("poll id"))?);
    let (count, mut rest) = split(rest, 4)?;
    let count = u32::from_be_bytes(count.try_into().map_err(|_| malformed("count"))?) as usize;
    if count == 0 || count > MAX_BATCH_ENTRIES * 10 {
        return Err(malformed(format!("{count} entries")));
    }

    let mut votes = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = split(rest, 4)?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| malformed("length"))?) as usize;
        if len > MAX_ENTRY_BYTES {
            return Err(malformed(format!("entry of {len} bytes")));
        }
        let (entry, tail) = split(tail, len)?;
        let vote = Vote::decode(entry).map_err(|source| InputError::Decode {
            what: "gossiped entry",
            source,
        })?;
        votes.push(vote);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok((poll, votes))
}

fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), InputError> {
    if bytes.len() < n {
        return Err(malformed("truncated"));
    }
    Ok(bytes.split_at(n))
}

/// Validates a gossip message, stores what passes admission through the
/// committer, then tells gossipsub whether to relay it.
pub(crate) async fn receive(ctx: Arc<Context>, source: PeerId, id: MessageId, data: Vec<u8>) {
    let acceptance = judge(&ctx, source, &data).await;
    ctx.send(Command::Validated {
        id,
        source,
        acceptance,
    })
    .await;
}

async fn judge(ctx: &Context, source: PeerId, data: &[u8]) -> MessageAcceptance {
    let (poll, votes) = match decode(data) {
        Ok(decoded) => decoded,
        Err(error) => {
            ctx.invalid(source, &error).await;
            return MessageAcceptance::Reject;
        }
    };
    let Some(slot) = ctx.polls.get(&poll) else {
        // The poll reaches us by the poll exchange; the entries then by repair.
        tracing::debug!(peer = %source, poll = %poll.short(), "gossip for an unknown poll; fetching polls");
        ctx.send(Command::SyncNow { peer: source }).await;
        return MessageAcceptance::Ignore;
    };

    let entries = votes.len();
    match ctx.admit_and_commit(slot, votes, Origin::Gossip).await {
        Ok(admitted) => match admitted.rejected() {
            None => {
                tracing::debug!(peer = %source, poll = %poll.short(), entries, stored = admitted.stored, "gossip merged");
                MessageAcceptance::Accept
            }
            Some(error) => {
                ctx.invalid(source, &error).await;
                MessageAcceptance::Reject
            }
        },
        Err(error) => {
            tracing::warn!(peer = %source, poll = %poll.short(), %error, "gossiped entries not stored; repair will retry");
            MessageAcceptance::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use crdt::{SecretKey, VoteBody, VoteId};

    use super::*;

    fn votes(n: u32) -> (PollId, Vec<Vote>) {
        let poll = crate::fixture::poll();
        let votes = (0..n)
            .map(|i| {
                let mut seed = [3u8; 32];
                seed[..4].copy_from_slice(&i.to_be_bytes());
                let voter = SecretKey::from_seed(&seed);
                VoteBody {
                    poll: poll.id,
                    voter: voter.public(),
                    choice: 0,
                    seq: 1,
                    vote_id: VoteId::from_bytes([7; 16]),
                    cast_at: 5,
                    credential: None,
                }
                .sign(&voter)
            })
            .collect();
        (poll.id, votes)
    }

    #[test]
    fn batches_round_trip_and_respect_the_limits() {
        let (poll, votes) = votes(250);

        let messages = encode_batches(&poll, &votes);
        let decoded: Vec<Vote> = messages
            .iter()
            .flat_map(|m| {
                assert!(m.len() <= BATCH_SOFT_BYTES + MAX_ENTRY_BYTES);
                let (p, v) = decode(m).unwrap();
                assert_eq!(p, poll);
                assert!(v.len() <= MAX_BATCH_ENTRIES);
                v
            })
            .collect();

        assert_eq!(messages.len(), 3);
        assert_eq!(decoded, votes);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let (poll, votes) = votes(2);
        let good = encode_batches(&poll, &votes).remove(0);

        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = good[..40].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge).is_err());
        assert!(decode(b"garbage").is_err());
    }
}
