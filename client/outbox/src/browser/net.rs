//! One JSON POST through the global `fetch`.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use super::js;

/// A request that takes longer than this is abandoned (and retried later).
const TIMEOUT_MS: u32 = 20_000;

/// The parts of an HTTP answer the outbox reads.
pub(crate) struct HttpReply {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: String,
}

/// Why no HTTP answer came back.
pub(crate) enum NetError {
    /// The request could not be built: a programming or configuration error.
    Build(String),
    /// Offline, refused, reset, timed out, blocked...
    Network(String),
}

/// POSTs `body` as `application/json` to `url`.
pub(crate) async fn post_json(url: &str, body: &str) -> Result<HttpReply, NetError> {
    let build = |e: JsValue| NetError::Build(js::text(&e));
    let network = |e: JsValue| NetError::Network(js::text(&e));

    let headers = Headers::new().map_err(build)?;
    headers
        .set("content-type", "application/json")
        .map_err(build)?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    // Browsers without AbortSignal.timeout wait for the network's own timeout.
    if let Ok(signal) = js::abort_after(TIMEOUT_MS) {
        init.set_signal(Some(&signal));
    }
    let request = Request::new_with_str_and_init(url, &init).map_err(build)?;

    let response: Response = JsFuture::from(js::fetch_with_request(&request))
        .await
        .map_err(network)?
        .dyn_into()
        .map_err(|_| NetError::Network("fetch resolved to something not a Response".into()))?;
    let status = response.status();
    let retry_after = response.headers().get("retry-after").ok().flatten();
    let text = response.text().map_err(network)?;
    let body = JsFuture::from(text).await.map_err(network)?;

    Ok(HttpReply {
        status,
        retry_after,
        body: body.as_string().unwrap_or_default(),
    })
}
