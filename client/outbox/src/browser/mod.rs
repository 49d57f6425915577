//! The browser half: IndexedDB, `fetch`, `crypto.getRandomValues`. Everything
//! here reaches the platform through the global scope, so the same code runs
//! in a page and in the service worker.

mod js;
mod net;
mod outbox;
mod store;

pub use outbox::{FlushReport, Outbox, CHANNEL, DATABASE};
