//! The voter's pages.
//!
//! Two page templates over the same published state: `poll/<id>`, where a
//! voter casts a vote, and `results/<id>`, the live counts. Both are rendered
//! to HTML when a poll is published (`votemesh-client publish`, the engine
//! side of this crate) with the poll's definition and its counts at that
//! moment, so they show something useful before any script runs; the wasm
//! side (`--cfg client`) hydrates them, keeps the voter's key and outbox in
//! IndexedDB and follows the live counts from the edge relay.

mod hooks;
mod pages;
mod state;

#[cfg(engine)]
mod finish;
#[cfg(engine)]
mod isolate;
#[cfg(engine)]
mod publish;
#[cfg(client)]
mod voter;

use perseus::prelude::*;
use sycamore::prelude::*;

/// The app: templates, error views and the HTML shell.
pub fn app<G: Html>() -> PerseusApp<G> {
    PerseusApp::new()
        .template(pages::index_template())
        .template(pages::poll_template())
        .template(pages::results_template())
        .error_views(pages::error_views())
        .index_view(|cx| {
            view! { cx,
                html(lang = "en") {
                    head {
                        meta(charset = "utf-8")
                        meta(name = "viewport", content = "width=device-width, initial-scale=1")
                        meta(name = "color-scheme", content = "light")
                        link(rel = "icon", href = "data:,")
                        style { (pages::STYLE) }
                    }
                    body {
                        PerseusRoot()
                    }
                }
            }
        })
}

#[cfg(engine)]
fn main() {
    std::process::exit(publish::main());
}

#[cfg(client)]
fn main() -> perseus::client::ClientReturn {
    perseus::client::run_client(app);
    Ok(())
}
