//! The service worker's wasm half. `sw.js` (beside this crate) handles
//! install, activate and fetch in plain JavaScript, and calls [`flush`] from
//! this module, built with `wasm-bindgen --target no-modules`, on the
//! `sync` event tagged `votemesh-outbox` and on a page's `{type: "flush"}`
//! message.
//!
//! The outbox code is the page's own ([`outbox::Outbox`]), on the same
//! IndexedDB database: a flush here and one in a tab may overlap safely.
//! Each vote carries the node keys its page trusted, so the worker accepts
//! a receipt only from those nodes, exactly as the page does, with no page
//! open.

#[cfg(target_arch = "wasm32")]
pub use worker::flush;

#[cfg(target_arch = "wasm32")]
mod worker {
    use wasm_bindgen::prelude::*;

    /// Sends the outbox's pending votes (all of them: a sync or a page's
    /// request means now is the time, so only a relay's `Retry-After` holds
    /// one back) to `{origin}/v1/polls/{id}/votes`
    /// and resolves to the report `{type: "flushed", sent, confirmed,
    /// rejected, retrying, untrusted, pending, next_attempt_at}`, which is also posted
    /// on the `votemesh-outbox` BroadcastChannel. Rejects only when the
    /// outbox cannot be opened, read or written.
    #[wasm_bindgen]
    pub async fn flush(origin: String) -> Result<JsValue, JsError> {
        let outbox = outbox::Outbox::open().await?;
        let report = outbox.flush_now(&origin).await;
        outbox.close();
        Ok(report?.into())
    }
}
