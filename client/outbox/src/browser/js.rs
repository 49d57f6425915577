//! Small bridges to the global scope of a window or a worker.

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`: `window.fetch` in a page, `self.fetch` in a worker.
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn fetch_with_request(request: &web_sys::Request) -> Promise;

    /// The global `setTimeout`.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &js_sys::Function, ms: i32) -> JsValue;

    /// `AbortSignal.timeout(ms)`; throws where the browser lacks it.
    #[wasm_bindgen(js_namespace = AbortSignal, js_name = timeout, catch)]
    pub(crate) fn abort_after(ms: u32) -> Result<web_sys::AbortSignal, JsValue>;
}

/// Writes a warning to the console of the page or the worker.
pub(crate) fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}

/// The text of a thrown JavaScript value, for error messages.
pub(crate) fn text(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", error.name(), error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// Fills `buf` from `crypto.getRandomValues` of the global scope.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), String> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|e| text(&e))?
        .dyn_into::<web_sys::Crypto>()
        .map_err(|_| "the global scope has no crypto object".to_string())?;
    crypto
        .get_random_values_with_u8_array(buf)
        .map_err(|e| text(&e))?;
    Ok(())
}

/// A uniform draw from `[0, 1)` for backoff jitter (not for keys).
pub(crate) fn jitter() -> f64 {
    js_sys::Math::random()
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// Lets the event loop run (rendering, input) before going on.
pub(crate) async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _reject| {
        set_timeout(&resolve, 0);
    });
    // A timer promise never rejects.
    let _ = JsFuture::from(promise).await;
}
