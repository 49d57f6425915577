//! The state generators Perseus calls while rendering: they read the site
//! being published (see `publish`). On the browser side they are empty.

use perseus::prelude::*;

#[cfg(engine)]
use crate::state::{Index, PollPage};

#[cfg(engine)]
use crate::publish::{site, PublishError};

/// Every published poll, as `poll/<id>` and `results/<id>`.
#[engine_only_fn]
pub(crate) async fn poll_paths() -> BuildPaths {
    BuildPaths {
        paths: site().polls.keys().cloned().collect(),
        extra: perseus::state::TemplateState::empty(),
    }
}

/// The state of one poll's pages, with the keys of the nodes whose receipts
/// the page trusts.
#[engine_only_fn]
pub(crate) async fn poll_state(
    info: StateGeneratorInfo<()>,
) -> Result<PollPage, BlamedError<PublishError>> {
    site()
        .polls
        .get(&info.path)
        .map(|page| PollPage {
            trusted_nodes: site().node_keys.clone(),
            ..page.clone()
        })
        .ok_or_else(|| BlamedError {
            error: PublishError::UnknownPoll(info.path.clone()),
            blame: ErrorBlame::Server(None),
        })
}

/// The front page: the list of polls.
#[engine_only_fn]
pub(crate) async fn index_state(_info: StateGeneratorInfo<()>) -> Index {
    Index {
        polls: site()
            .polls
            .values()
            .map(|p| (p.id.clone(), p.title.clone()))
            .collect(),
    }
}
