//! Which polls get pages: a publication renders all of them at once, and
//! when that fails, finds the polls that fail on their own (by halving the
//! set) and leaves them out, each with a warning naming it. One rendering
//! when all is well; a few more per failing poll, bounded.

use std::collections::BTreeMap;

use crate::publish::PublishError;

/// Most renderings one publication may run while it isolates the polls
/// that fail: one when all is well, a few more per failing poll.
const MAX_ATTEMPTS: usize = 64;

/// Tells that a poll is left out, and why: one line on stderr, which the
/// relay passes on to its log.
pub(crate) fn skip(poll: &str, reason: &str) {
    eprintln!("warning: poll {poll} is not published: {reason}");
}

/// One rendering of a set of polls (a stand-in in tests).
type Attempt<'a, V> = dyn FnMut(&BTreeMap<String, V>) -> Result<(), Failure> + 'a;

/// Why one rendering attempt failed.
pub(crate) enum Failure {
    /// The pages of these polls were refused: `(id, reason)`.
    Polls(Vec<(String, String)>),
    /// The rendering failed as a whole, for a reason no page names.
    Whole(String),
    /// A failure that is not about the polls (files, I/O).
    Fatal(PublishError),
}

/// Renders the pages of `polls` with `attempt`, leaving out each poll that
/// fails (with a warning); returns how many are published. When a rendering
/// fails as a whole, the polls that fail alone are found by halving.
pub(crate) fn render<V: Clone>(
    mut polls: BTreeMap<String, V>,
    attempt: &mut Attempt<'_, V>,
) -> Result<usize, PublishError> {
    let mut attempts = 0;
    let mut attempt = |polls: &BTreeMap<String, V>| {
        attempts += 1;
        if attempts > MAX_ATTEMPTS {
            return Err(Failure::Fatal(PublishError::Render(format!(
                "gave up after {MAX_ATTEMPTS} renderings while finding the polls that fail"
            ))));
        }
        attempt(polls)
    };
    let had_polls = !polls.is_empty();
    loop {
        match attempt(&polls) {
            Ok(()) if had_polls && polls.is_empty() => {
                return Err(PublishError::Render(
                    "no poll could be rendered (see the warnings above)".into(),
                ));
            }
            Ok(()) => return Ok(polls.len()),
            Err(Failure::Fatal(err)) => return Err(err),
            Err(Failure::Polls(refused)) => {
                for (id, reason) in refused {
                    skip(&id, &reason);
                    polls.remove(&id);
                }
            }
            Err(Failure::Whole(reason)) => {
                // A site without polls must render, or the fault is not theirs.
                if polls.is_empty() {
                    return Err(PublishError::Render(reason));
                }
                match attempt(&BTreeMap::new()) {
                    Ok(()) => {}
                    Err(Failure::Fatal(err)) => return Err(err),
                    Err(_) => return Err(PublishError::Render(reason)),
                }
                let culprits = isolate(&polls, &mut attempt)?;
                if culprits.is_empty() {
                    return Err(PublishError::Render(format!(
                        "{reason}; and no poll fails alone"
                    )));
                }
                for (id, reason) in culprits {
                    skip(&id, &reason);
                    polls.remove(&id);
                }
            }
        }
    }
}

/// The polls among `polls` (a rendering of which failed as a whole) that
/// fail to render on their own, found by halving.
fn isolate<V: Clone>(
    polls: &BTreeMap<String, V>,
    attempt: &mut Attempt<'_, V>,
) -> Result<Vec<(String, String)>, PublishError> {
    let middle = polls.len() / 2;
    let first: BTreeMap<_, _> = polls
        .iter()
        .take(middle)
        .map(|(id, page)| (id.clone(), page.clone()))
        .collect();
    let second: BTreeMap<_, _> = polls
        .iter()
        .skip(middle)
        .map(|(id, page)| (id.clone(), page.clone()))
        .collect();
    let mut found = Vec::new();
    for half in [first, second] {
        if half.is_empty() {
            continue;
        }
        match attempt(&half) {
            Ok(()) => {}
            Err(Failure::Fatal(err)) => return Err(err),
            Err(Failure::Polls(refused)) => found.extend(refused),
            Err(Failure::Whole(reason)) if half.len() == 1 => {
                found.extend(half.into_keys().map(|id| (id, reason.clone())));
            }
            Err(Failure::Whole(_)) => found.extend(isolate(&half, attempt)?),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in renderer: fails as a whole when any poll in `bad` is in
    /// the set, and refuses the pages of any poll in `refused`.
    fn fake<'a>(
        bad: &'static [&'static str],
        refused: &'static [&'static str],
        calls: &'a mut usize,
    ) -> impl FnMut(&BTreeMap<String, ()>) -> Result<(), Failure> + 'a {
        move |polls| {
            *calls += 1;
            if polls.keys().any(|id| bad.contains(&id.as_str())) {
                return Err(Failure::Whole("boom".into()));
            }
            let blamed: Vec<_> = polls
                .keys()
                .filter(|id| refused.contains(&id.as_str()))
                .map(|id| (id.clone(), "refused".to_string()))
                .collect();
            if blamed.is_empty() {
                Ok(())
            } else {
                Err(Failure::Polls(blamed))
            }
        }
    }

    fn polls(n: usize) -> BTreeMap<String, ()> {
        (0..n).map(|i| (format!("p{i:03}"), ())).collect()
    }

    #[test]
    fn polls_that_fail_are_found_and_left_out() {
        let mut calls = 0;
        let published = render(
            polls(100),
            &mut fake(&["p017", "p093"], &["p050"], &mut calls),
        );
        assert_eq!(published.unwrap(), 97);
        assert!(calls <= 30, "{calls} renderings");

        let mut calls = 0;
        assert_eq!(
            render(polls(10), &mut fake(&[], &[], &mut calls)).unwrap(),
            10
        );
        assert_eq!(calls, 1, "one rendering when all is well");

        // Every poll failing is a failure, not an empty site.
        let all: &'static [&'static str] = &["p000", "p001"];
        let mut calls = 0;
        assert!(render(polls(2), &mut fake(all, &[], &mut calls)).is_err());
    }

    #[test]
    fn a_failure_that_is_not_the_polls_fails_the_publication() {
        let mut always = |_: &BTreeMap<String, ()>| Err(Failure::Whole("no disk".into()));
        let err = render(polls(8), &mut always).unwrap_err();
        assert!(err.to_string().contains("no disk"), "{err}");
    }
}
