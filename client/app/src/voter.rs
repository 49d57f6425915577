//! The browser side of a poll page: the voter's outbox, delivery, and the
//! live counts.
//!
//! Everything runs in one task per page ([`run`]) that owns the state and
//! reacts to [`Event`]s. Browser callbacks (clicks, socket messages, timers,
//! `online`, other tabs) only send events, so no callback ever touches the
//! page's signals or outlives what it refers to.
//!
//! Delivery never depends on this page staying open: a vote is in IndexedDB
//! before any request is made, and the service worker (`sw/`) delivers it
//! through Background Sync where the browser has it. Where it does not, the
//! page retries on load, on `online`, when it becomes visible again, and on a
//! backoff timer with jitter. Every path sends the same signed bytes, and the
//! node keeps one entry per hash, so two tabs or a tab and the worker sending
//! the same vote count it once.

use std::cell::RefCell;
use std::rc::Rc;

use crdt::PublicKey;
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use outbox::{Outbox, Record, State};
use perseus::prelude::spawn_local_scoped;
use serde::Deserialize;
use sycamore::prelude::Scope;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{BroadcastChannel, EventSource, MessageEvent, WebSocket};

use crate::pages::{Board, Mine};
use crate::state::PollPage;

/// The service worker's Background Sync tag and the channel that tells pages
/// the outbox changed.
const SYNC_TAG: &str = "votemesh-outbox";
const CHANNEL: &str = "votemesh-outbox";

/// What the page's task reacts to.
enum Event {
    /// The voter pressed the button of an option.
    Cast(usize),
    /// The backoff timer ended: deliver the votes that are due.
    Flush,
    /// Something changed (page opened or shown again, network back, a new
    /// vote): try every pending vote now, backoff or not.
    FlushNow,
    /// Another tab or the service worker changed the outbox.
    OutboxChanged,
    /// A live count message (JSON text).
    Live(String),
    /// The live connection opened, over WebSocket or SSE.
    FeedOpen(&'static str),
    /// The WebSocket closed; `opened` tells whether it ever worked.
    SocketClosed { opened: bool },
    /// Time to open the live connection again.
    Reconnect,
    /// The voter asked for their receipts.
    SaveReceipts,
    /// The poll opens or closes about now: read the clock again.
    Clock,
}

/// The handle the page's buttons use.
#[derive(Clone)]
pub(crate) struct Control {
    events: UnboundedSender<Event>,
}

impl Control {
    pub(crate) fn vote(&self, choice: usize) {
        let _ = self.events.unbounded_send(Event::Cast(choice));
    }

    pub(crate) fn save_receipts(&self) {
        let _ = self.events.unbounded_send(Event::SaveReceipts);
    }
}

/// Starts the page's task. `voting` is false on the results page.
pub(crate) fn start<'a>(cx: Scope<'a>, page: &PollPage, board: Board<'a>, voting: bool) -> Control {
    let (events, inbox) = unbounded();
    let control = Control {
        events: events.clone(),
    };
    let page = page.clone();
    spawn_local_scoped(cx, async move {
        if let Err(problem) = run(page, board, voting, events, inbox).await {
            board.problem.set(problem);
        }
    });
    control
}

/// A live count message from the relay.
#[derive(Deserialize)]
struct LiveMessage {
    version: u64,
    counts: Vec<u64>,
}

/// The page's task.
async fn run(
    page: PollPage,
    board: Board<'_>,
    voting: bool,
    events: UnboundedSender<Event>,
    mut inbox: UnboundedReceiver<Event>,
) -> Result<(), String> {
    let poll = crdt::Poll::from_json(&page.poll)
        .map_err(|e| format!("This page holds a poll this app cannot read: {e}"))?;
    let window = web_sys::window().ok_or("no window")?;
    let origin = window.location().origin().map_err(js_text)?;
    let trusted = trusted_nodes(&page);
    let mut clock = Timer::default();
    tick(board, &page, &window, &mut clock, &events);

    // Without IndexedDB the voter's own votes are out of reach, but the
    // live counts still work: the page goes on without an outbox.
    let outbox = match Outbox::open().await {
        Ok(outbox) => Some(outbox),
        Err(e) => {
            board.problem.set(storage_refused(voting, &e.to_string()));
            None
        }
    };
    if let Some(outbox) = &outbox {
        request_persistence(&window);
        register_worker(&window);
        if voting && !trusted.is_empty() {
            // Votes cast from an older page of this poll gain this page's nodes.
            let _ = outbox.trust(poll.id, &trusted).await;
        }
    }
    if voting && outbox.is_some() && trusted.is_empty() {
        board.problem.set(
            "This page names no regional node whose receipt it can trust, so no vote could be \
             confirmed: voting is off. Reload the page later."
                .to_string(),
        );
    }
    let channel = listen(&window, &events);

    let mut live = page.counts.clone();
    let mut live_version = page.entries;
    let mut records = read_records(outbox.as_ref(), &poll, board, Vec::new()).await;
    show(board, &page, &live, &records);
    board
        .ready
        .set(voting && outbox.is_some() && !trusted.is_empty());

    let mut socket = Some(LiveSocket::open(&origin, &page.id, &events));
    let mut sse: Option<LiveSse> = None;
    let mut retry = Timer::default();
    let _ = events.unbounded_send(Event::FlushNow);

    while let Some(event) = inbox.next().await {
        match event {
            Event::Cast(choice) => {
                let Some(outbox) = &outbox else { continue };
                let choice = u32::try_from(choice).map_err(|_| "no such option")?;
                let now = js_sys::Date::now() as u64;
                board.now.set(now);
                let (open, why) = crate::pages::window(page.opens_at, page.closes_at, now);
                if !open {
                    board.problem.set(why);
                    continue;
                }
                if page.needs_credential {
                    board
                        .problem
                        .set("Getting a voting credential (a short computation)…".to_string());
                    if let Err(e) = outbox.credential(&origin, &poll).await {
                        board.problem.set(format!(
                            "No voting credential yet: {e}. Try again when online."
                        ));
                        continue;
                    }
                    board.problem.set(String::new());
                }
                match outbox.cast(&poll, choice, now, &trusted).await {
                    Ok(_) => {
                        board.problem.set(String::new());
                        records = read_records(Some(outbox), &poll, board, records).await;
                        show(board, &page, &live, &records);
                        tell_other_tabs(channel.as_ref());
                        // Not awaited here: `ready` waits for an active worker,
                        // which never comes if its install failed offline.
                        wasm_bindgen_futures::spawn_local(ask_for_background_sync(window.clone()));
                        let _ = events.unbounded_send(Event::FlushNow);
                    }
                    Err(e) => board
                        .problem
                        .set(format!("Your vote could not be saved: {e}")),
                }
            }
            Event::Flush | Event::FlushNow => {
                if matches!(event, Event::FlushNow) {
                    // Shown again or back online: the clock may have moved on.
                    tick(board, &page, &window, &mut clock, &events);
                }
                let Some(outbox) = &outbox else { continue };
                // Votes that could not be delivered stay pending; the timer
                // retries them when their backoff ends.
                let flushed = match event {
                    Event::FlushNow => outbox.flush_now(&origin).await,
                    _ => outbox.flush(&origin).await,
                };
                let next = match flushed {
                    Ok(report) => report.next_attempt_at,
                    Err(_) => Some(js_sys::Date::now() as u64 + 5_000),
                };
                records = read_records(Some(outbox), &poll, board, records).await;
                show(board, &page, &live, &records);
                tell_other_tabs(channel.as_ref());
                match next {
                    Some(at) => {
                        let delay = at.saturating_sub(js_sys::Date::now() as u64).max(250);
                        retry.set(&window, delay, &events, || Event::Flush);
                    }
                    None => retry.clear(&window),
                }
            }
            Event::OutboxChanged => {
                records = read_records(outbox.as_ref(), &poll, board, records).await;
                show(board, &page, &live, &records);
            }
            Event::Clock => tick(board, &page, &window, &mut clock, &events),
            Event::Live(text) => {
                if let Ok(message) = serde_json::from_str::<LiveMessage>(&text) {
                    // Counts are absolute and versioned: an old or replayed
                    // message changes nothing.
                    if message.version >= live_version && message.counts.len() == live.len() {
                        live_version = message.version;
                        live = message.counts;
                        show(board, &page, &live, &records);
                    }
                }
            }
            Event::FeedOpen(how) => board.feed.set(format!("live ({how})")),
            Event::SocketClosed { opened } => {
                socket = None;
                if opened {
                    board.feed.set("reconnecting".to_string());
                    let delay = 1_000 + (js_sys::Math::random() * 2_000.0) as u64;
                    retry_live(&window, delay, &events);
                } else if sse.is_none() {
                    // WebSockets do not get through here: Server-Sent Events
                    // reconnect by themselves and resume where they left off.
                    sse = LiveSse::open(&origin, &page.id, &events);
                }
            }
            Event::Reconnect => {
                if socket.is_none() && sse.is_none() {
                    socket = Some(LiveSocket::open(&origin, &page.id, &events));
                }
            }
            Event::SaveReceipts => {
                let Some(outbox) = &outbox else { continue };
                if let Ok(json) = outbox.receipts_json(Some(poll.id)).await {
                    save_file(
                        &window,
                        &format!("votemesh-receipts-{}.json", poll.id.short()),
                        &json,
                    );
                }
            }
        }
    }
    Ok(())
}

/// The keys of the nodes the page trusts for receipts; malformed ones are
/// left out (the renderer checks them, so there are none).
fn trusted_nodes(page: &PollPage) -> Vec<PublicKey> {
    page.trusted_nodes
        .iter()
        .filter_map(|key| key.parse().ok())
        .collect()
}

/// What the page says when IndexedDB is refused (private mode, blocked
/// storage, a broken profile).
fn storage_refused(voting: bool, reason: &str) -> String {
    if voting {
        format!(
            "This browser refuses to store data here ({reason}), so a vote could not be kept \
             until it is confirmed: voting is off. The live counts still work."
        )
    } else {
        format!(
            "Your own votes are not available: this browser refuses to store data here \
             ({reason}). The live counts still work."
        )
    }
}

/// The voter's records for the poll, or `kept` (with the problem shown) if
/// the outbox cannot be read now.
async fn read_records(
    outbox: Option<&Outbox>,
    poll: &crdt::Poll,
    board: Board<'_>,
    kept: Vec<Record>,
) -> Vec<Record> {
    let Some(outbox) = outbox else {
        return kept;
    };
    match outbox.records(poll.id).await {
        Ok(records) => records,
        Err(e) => {
            board
                .problem
                .set(format!("Your votes in this browser could not be read: {e}"));
            kept
        }
    }
}

/// Reads the clock into the board and sets a timer for the poll's next
/// opening or closing, so the buttons follow the poll's window.
fn tick(
    board: Board<'_>,
    page: &PollPage,
    window: &web_sys::Window,
    timer: &mut Timer,
    events: &UnboundedSender<Event>,
) {
    let now = js_sys::Date::now() as u64;
    board.now.set(now);
    match [page.opens_at, page.closes_at]
        .into_iter()
        .find(|&at| at > now)
    {
        // A little after the moment, so the clock has passed it then.
        Some(at) => timer.set(window, at - now + 50, events, || Event::Clock),
        None => timer.clear(window),
    }
}

/// Shows the merged counts and the voter's latest vote.
fn show(board: Board<'_>, page: &PollPage, live: &[u64], records: &[Record]) {
    board.counts.set(outbox::displayed_counts(live, records));
    let standing = records
        .iter()
        .filter(|r| r.state != State::Rejected)
        .max_by_key(|r| r.seq);
    let latest = records.iter().max_by_key(|r| r.seq);
    board.mine.set(latest.map(|r| {
        let mut detail = detail(r, page);
        if let (State::Rejected, Some(earlier)) = (r.state, standing) {
            let name = page.options.get(earlier.choice as usize);
            detail.push_str(&format!(
                " Your earlier vote, for {}, still stands.",
                name.map_or("an option", String::as_str)
            ));
        }
        Mine {
            state: r.state.as_str(),
            detail,
        }
    }));
    board.chosen.set(standing.map(|r| r.choice as usize));
    board
        .receipts
        .set(records.iter().any(|r| r.state == State::Confirmed));
}

/// The line under the voter's vote: who confirmed it, why it was refused,
/// or why it is still waiting.
fn detail(record: &Record, page: &PollPage) -> String {
    match record.state {
        State::Confirmed => record
            .receipt
            .as_ref()
            .map(|r| format!("Receipt from node {}.", r.node.short()))
            .unwrap_or_default(),
        State::Rejected => record
            .refusal
            .as_ref()
            .map(|r| crate::pages::refusal_text(&r.code, page.opens_at, page.closes_at))
            .unwrap_or_default(),
        State::Pending if record.untrusted_receipts > 0 => {
            "A reply signed by a key that is not one of this poll's nodes did not confirm it; \
             it will be sent again."
                .to_string()
        }
        State::Pending if record.attempts > 0 => {
            "It will be sent again automatically, even if you close this page.".to_string()
        }
        State::Pending => String::new(),
    }
}

/// Asks the browser not to evict this site's storage under pressure.
fn request_persistence(window: &web_sys::Window) {
    if let Ok(promise) = window.navigator().storage().persist() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
    }
}

fn has_service_worker(window: &web_sys::Window) -> bool {
    js_sys::Reflect::has(&window.navigator(), &JsValue::from_str("serviceWorker")).unwrap_or(false)
}

/// Registers the service worker (`/sw.js`) where the browser allows one.
fn register_worker(window: &web_sys::Window) {
    if !has_service_worker(window) {
        return;
    }
    let promise = window.navigator().service_worker().register("/sw.js");
    wasm_bindgen_futures::spawn_local(async move {
        let _ = JsFuture::from(promise).await;
    });
}

/// Asks the service worker to deliver the outbox through Background Sync,
/// where the browser has it; the page's own retries cover the rest.
async fn ask_for_background_sync(window: web_sys::Window) {
    if !has_service_worker(&window) {
        return;
    }
    let Ok(ready) = window.navigator().service_worker().ready() else {
        return;
    };
    let Ok(registration) = JsFuture::from(ready).await else {
        return;
    };
    let Ok(sync) = js_sys::Reflect::get(&registration, &JsValue::from_str("sync")) else {
        return;
    };
    if sync.is_undefined() {
        return;
    }
    let Ok(register) = js_sys::Reflect::get(&sync, &JsValue::from_str("register")) else {
        return;
    };
    if let Some(register) = register.dyn_ref::<js_sys::Function>() {
        if let Ok(promise) = register.call1(&sync, &JsValue::from_str(SYNC_TAG)) {
            if let Ok(promise) = promise.dyn_into::<js_sys::Promise>() {
                let _ = JsFuture::from(promise).await;
            }
        }
    }
}

/// Flushes on `online` and when the page becomes visible again; refreshes
/// when another tab or the service worker reports a change.
fn listen(window: &web_sys::Window, events: &UnboundedSender<Event>) -> Option<BroadcastChannel> {
    let on_online = {
        let events = events.clone();
        Closure::<dyn FnMut()>::new(move || {
            let _ = events.unbounded_send(Event::FlushNow);
        })
    };
    let _ = window.add_event_listener_with_callback("online", on_online.as_ref().unchecked_ref());
    // The page lives as long as these listeners: they are never removed.
    on_online.forget();

    if let Some(document) = window.document() {
        let on_visible = {
            let events = events.clone();
            let document = document.clone();
            Closure::<dyn FnMut()>::new(move || {
                if document.visibility_state() == web_sys::VisibilityState::Visible {
                    let _ = events.unbounded_send(Event::FlushNow);
                }
            })
        };
        let _ = document.add_event_listener_with_callback(
            "visibilitychange",
            on_visible.as_ref().unchecked_ref(),
        );
        on_visible.forget();
    }

    let channel = BroadcastChannel::new(CHANNEL).ok()?;
    let on_message = {
        let events = events.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |_: MessageEvent| {
            let _ = events.unbounded_send(Event::OutboxChanged);
        })
    };
    channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    Some(channel)
}

fn tell_other_tabs(channel: Option<&BroadcastChannel>) {
    if let Some(channel) = channel {
        let _ = channel.post_message(&JsValue::from_str("changed"));
    }
}

/// One pending `setTimeout`, replaced when set again.
#[derive(Default)]
struct Timer {
    handle: Option<i32>,
}

impl Timer {
    fn set(
        &mut self,
        window: &web_sys::Window,
        delay_ms: u64,
        events: &UnboundedSender<Event>,
        event: impl FnOnce() -> Event + 'static,
    ) {
        self.clear(window);
        let events = events.clone();
        let callback = Closure::once_into_js(move || {
            let _ = events.unbounded_send(event());
        });
        let delay = i32::try_from(delay_ms).unwrap_or(i32::MAX);
        self.handle = window
            .set_timeout_with_callback_and_timeout_and_arguments_0(callback.unchecked_ref(), delay)
            .ok();
    }

    fn clear(&mut self, window: &web_sys::Window) {
        if let Some(handle) = self.handle.take() {
            window.clear_timeout_with_handle(handle);
        }
    }
}

fn retry_live(window: &web_sys::Window, delay_ms: u64, events: &UnboundedSender<Event>) {
    let mut timer = Timer::default();
    timer.set(window, delay_ms, events, || Event::Reconnect);
}

/// The live counts over a WebSocket, with the callbacks it owns.
struct LiveSocket {
    socket: Option<WebSocket>,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl LiveSocket {
    fn open(origin: &str, poll: &str, events: &UnboundedSender<Event>) -> LiveSocket {
        let url = format!("{}/v1/polls/{poll}/live", origin.replacen("http", "ws", 1));
        let Ok(socket) = WebSocket::new(&url) else {
            let _ = events.unbounded_send(Event::SocketClosed { opened: false });
            return LiveSocket {
                socket: None,
                _callbacks: Vec::new(),
            };
        };
        let opened = Rc::new(RefCell::new(false));
        let on_open = {
            let events = events.clone();
            let opened = opened.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                *opened.borrow_mut() = true;
                let _ = events.unbounded_send(Event::FeedOpen("WebSocket"));
            })
        };
        let on_message = {
            let events = events.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                if let Some(text) = event
                    .dyn_ref::<MessageEvent>()
                    .and_then(|m| m.data().as_string())
                {
                    let _ = events.unbounded_send(Event::Live(text));
                }
            })
        };
        let on_close = {
            let events = events.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                let opened = *opened.borrow();
                let _ = events.unbounded_send(Event::SocketClosed { opened });
            })
        };
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        LiveSocket {
            socket: Some(socket),
            _callbacks: vec![on_open, on_message, on_close],
        }
    }
}

impl Drop for LiveSocket {
    fn drop(&mut self) {
        if let Some(socket) = &self.socket {
            socket.set_onopen(None);
            socket.set_onmessage(None);
            socket.set_onclose(None);
            let _ = socket.close();
        }
    }
}

/// The live counts over Server-Sent Events, the fallback.
struct LiveSse {
    _source: EventSource,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl LiveSse {
    fn open(origin: &str, poll: &str, events: &UnboundedSender<Event>) -> Option<LiveSse> {
        let source = EventSource::new(&format!("{origin}/v1/polls/{poll}/events")).ok()?;
        let on_open = {
            let events = events.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| {
                let _ = events.unbounded_send(Event::FeedOpen("Server-Sent Events"));
            })
        };
        let on_message = {
            let events = events.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                if let Some(text) = event
                    .dyn_ref::<MessageEvent>()
                    .and_then(|m| m.data().as_string())
                {
                    let _ = events.unbounded_send(Event::Live(text));
                }
            })
        };
        source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(LiveSse {
            _source: source,
            _callbacks: vec![on_open, on_message],
        })
    }
}

/// Offers `text` to the voter as a file download.
fn save_file(window: &web_sys::Window, name: &str, text: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(document) = window.document() {
        if let Ok(link) = document.create_element("a") {
            if let Ok(link) = link.dyn_into::<web_sys::HtmlAnchorElement>() {
                link.set_href(&url);
                link.set_download(name);
                link.click();
            }
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

fn js_text(value: JsValue) -> String {
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
