//! The counts a voter sees: the live tally plus their own vote still in flight.

use crate::record::{Record, State};

/// The live counts merged with the voter's own records for the same poll.
///
/// Only the voter's latest vote counts (the highest `seq` not rejected). If it
/// is confirmed, the live counts already include it and nothing changes. If it
/// is pending, it is added to its choice, and the vote it replaces (the
/// latest confirmed one, which the live counts do include) is taken off its
/// choice, never below zero. Choices outside `live_counts` are ignored.
pub fn displayed_counts(live_counts: &[u64], own: &[Record]) -> Vec<u64> {
    let mut counts = live_counts.to_vec();
    let latest = own
        .iter()
        .filter(|r| r.state != State::Rejected)
        .max_by_key(|r| r.seq);
    let Some(latest) = latest.filter(|r| r.state == State::Pending) else {
        return counts;
    };

    if let Some(slot) = counts.get_mut(latest.choice as usize) {
        *slot = slot.saturating_add(1);
    }
    let replaced = own
        .iter()
        .filter(|r| r.state == State::Confirmed && r.seq < latest.seq)
        .max_by_key(|r| r.seq);
    if let Some(slot) = replaced.and_then(|r| counts.get_mut(r.choice as usize)) {
        *slot = slot.saturating_sub(1);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::{PollId, SecretKey, VoteBody, VoteId};

    fn own(choice: u32, seq: u64, state: State) -> Record {
        let voter = SecretKey::from_seed(&[1; 32]);
        let vote = VoteBody {
            poll: PollId([7; 32]),
            voter: voter.public(),
            choice,
            seq,
            vote_id: VoteId::from_bytes([seq as u8; 16]),
            cast_at: 1_000,
            credential: None,
        }
        .sign(&voter);
        Record {
            state,
            ..Record::pending(vote, &[])
        }
    }

    #[test]
    fn no_own_votes_shows_the_live_counts() {
        assert_eq!(displayed_counts(&[3, 4], &[]), vec![3, 4]);
    }

    #[test]
    fn a_pending_first_vote_is_added() {
        let shown = displayed_counts(&[3, 4], &[own(1, 1, State::Pending)]);

        assert_eq!(shown, vec![3, 5]);
    }

    #[test]
    fn a_confirmed_vote_is_never_added_again() {
        let shown = displayed_counts(&[3, 4], &[own(1, 1, State::Confirmed)]);

        assert_eq!(shown, vec![3, 4]);
    }

    #[test]
    fn a_pending_change_moves_the_confirmed_vote() {
        let records = [own(0, 1, State::Confirmed), own(1, 2, State::Pending)];

        assert_eq!(displayed_counts(&[3, 4], &records), vec![2, 5]);
    }

    #[test]
    fn only_the_latest_confirmed_vote_is_taken_off() {
        let records = [
            own(0, 1, State::Confirmed),
            own(2, 2, State::Confirmed),
            own(1, 3, State::Pending),
        ];

        assert_eq!(displayed_counts(&[5, 5, 5], &records), vec![5, 6, 4]);
    }

    #[test]
    fn pending_votes_replaced_by_a_later_one_are_not_added() {
        let records = [own(0, 1, State::Pending), own(1, 2, State::Pending)];

        assert_eq!(displayed_counts(&[0, 0], &records), vec![0, 1]);
    }

    #[test]
    fn a_rejected_latest_vote_leaves_the_earlier_one_standing() {
        let records = [own(0, 1, State::Confirmed), own(1, 2, State::Rejected)];

        assert_eq!(displayed_counts(&[3, 4], &records), vec![3, 4]);
    }

    #[test]
    fn counts_never_go_below_zero_or_out_of_range() {
        let records = [own(0, 1, State::Confirmed), own(7, 2, State::Pending)];

        assert_eq!(displayed_counts(&[0, 0], &records), vec![0, 0]);
    }
}
