//! The templates and their views, shared by the engine (rendering HTML) and
//! the browser (hydrating it).

use perseus::errors::ClientError;
use perseus::prelude::*;
use sycamore::prelude::*;

use crate::state::{Index, PollPage};

/// The whole style sheet, inlined into every page: one request fewer on a
/// slow connection. Counts use tabular figures in fixed-width cells and the
/// status line keeps room for three lines (a refusal and its reason), so
/// nothing moves when numbers or answers arrive.
pub(crate) const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;background:#fff}
main{max-width:40rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}
a{color:#0b4f9c}
.meta{color:#4a4a4a;font-size:.875rem;margin:0 0 1rem}
ol.options{list-style:none;margin:0;padding:0}
.option{display:grid;grid-template-columns:1fr 6ch auto;gap:.5rem;align-items:center;padding:.5rem 0;border-bottom:1px solid #d0d0d0}
.name{overflow-wrap:anywhere}
.count{font-variant-numeric:tabular-nums;text-align:right}
.bar{grid-column:1/-1;height:.375rem;background:#e6e6e6;border-radius:.2rem;overflow:hidden}
.bar>span{display:block;height:100%;background:#0b4f9c}
button{font:inherit;min-height:2.75rem;min-width:5.5rem;padding:.25rem .75rem;border:2px solid #0b4f9c;border-radius:.375rem;background:#0b4f9c;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#0b4f9c}
button:disabled{border-color:#8a8a8a;background:#8a8a8a;color:#fff;cursor:not-allowed}
button:focus-visible,a:focus-visible{outline:3px solid #e08a00;outline-offset:2px}
.status{min-height:4.5rem;margin:1rem 0}
.status p{margin:0}
[data-vote-state=pending]{color:#7a4a00}
[data-vote-state=confirmed]{color:#0d6b2f}
[data-vote-state=rejected]{color:#a4001b}
.chosen .name{font-weight:700}
.window-shut{color:#7a4a00}
footer{color:#4a4a4a;font-size:.875rem;margin-top:1.5rem}
"#;

/// The reactive state of a poll or results page.
#[derive(Clone, Copy)]
pub(crate) struct Board<'a> {
    /// The counts shown: live counts merged with the voter's own votes.
    pub(crate) counts: &'a Signal<Vec<u64>>,
    /// The vote buttons work: the page is hydrated, the outbox is open and
    /// the page names nodes to trust. The poll's window is checked apart.
    pub(crate) ready: &'a Signal<bool>,
    /// The time the poll's window is judged at, unix ms: when the page was
    /// published until the browser takes over, then the browser's clock.
    pub(crate) now: &'a Signal<u64>,
    /// The voter's latest vote on this poll, if any.
    pub(crate) mine: &'a Signal<Option<Mine>>,
    /// The option the voter's vote stands for: their latest vote not
    /// refused, pending or confirmed. A refused vote is no choice.
    pub(crate) chosen: &'a Signal<Option<usize>>,
    /// Whether any vote on this poll is confirmed, so has a receipt to save.
    pub(crate) receipts: &'a Signal<bool>,
    /// How the page gets its counts: "as published", "live", "reconnecting".
    pub(crate) feed: &'a Signal<String>,
    /// A problem worth telling the voter (storage refused, vote refused).
    pub(crate) problem: &'a Signal<String>,
}

/// The voter's own latest vote as the page shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Mine {
    /// `pending`, `confirmed` or `rejected`.
    pub(crate) state: &'static str,
    /// A line of detail: the node that confirmed it, or why it was refused.
    pub(crate) detail: String,
}

impl<'a> Board<'a> {
    fn new(cx: Scope<'a>, page: &PollPage) -> Self {
        Board {
            counts: create_signal(cx, page.counts.clone()),
            ready: create_signal(cx, false),
            now: create_signal(cx, page.published_at),
            mine: create_signal(cx, None),
            chosen: create_signal(cx, None),
            receipts: create_signal(cx, false),
            feed: create_signal(cx, "as published".to_string()),
            problem: create_signal(cx, String::new()),
        }
    }
}

/// What the buttons drive: the voter's outbox in the browser, nothing on the
/// engine.
#[cfg(client)]
type Control = crate::voter::Control;
#[cfg(not(client))]
#[derive(Clone)]
struct Control;

#[cfg(not(client))]
impl Control {
    fn vote(&self, _choice: usize) {}
    fn save_receipts(&self) {}
}

fn start<'a>(cx: Scope<'a>, page: &PollPage, board: Board<'a>, voting: bool) -> Control {
    #[cfg(client)]
    {
        crate::voter::start(cx, page, board, voting)
    }
    #[cfg(not(client))]
    {
        let _ = (cx, page, board, voting);
        Control
    }
}

/// Where a poll stands at a moment: voting possible or not, and the line
/// that says so.
pub(crate) fn window(opens_at: u64, closes_at: u64, now: u64) -> (bool, String) {
    if now < opens_at {
        let text = format!(
            "Voting opens on {}: it is not possible yet.",
            format_time(opens_at)
        );
        (false, text)
    } else if now >= closes_at {
        let text = format!(
            "This poll closed on {}: voting is over.",
            format_time(closes_at)
        );
        (false, text)
    } else {
        (
            true,
            format!("Voting closes on {}.", format_time(closes_at)),
        )
    }
}

/// Why a node refused a vote, in words: never the node's own message, which
/// is for machines (it gives times in unix milliseconds).
// Used by the browser side only; the engine's unit tests cover it.
#[cfg_attr(not(client), allow(dead_code))]
pub(crate) fn refusal_text(code: &str, opens_at: u64, closes_at: u64) -> String {
    match code {
        "outside_window" => format!(
            "It was cast outside the voting period, from {} to {}.",
            format_time(opens_at),
            format_time(closes_at)
        ),
        "unknown_option" => "The option chosen is not one of this poll's options.".to_string(),
        "missing_credential"
        | "unexpected_credential"
        | "credential_mismatch"
        | "bad_credential_signature" => {
            "It did not carry a valid voting credential for this poll.".to_string()
        }
        "not_allowed" => {
            "This browser's voter key is not on the poll's list of voters.".to_string()
        }
        "bad_signature" | "non_canonical_signature" | "bad_voter_key" => {
            "Its signature was not accepted.".to_string()
        }
        "wrong_poll" => "It was sent for another poll.".to_string(),
        other => format!("A regional node refused it (reason: {other})."),
    }
}

fn poll_page<G: Html>(cx: Scope, page: PollPage) -> View<G> {
    let board = Board::new(cx, &page);
    let control = create_ref(cx, start(cx, &page, board, true));
    let results = format!("/results/{}", page.id);
    let (opens_at, closes_at) = (page.opens_at, page.closes_at);
    let period = create_memo(cx, move || window(opens_at, closes_at, *board.now.get()));
    let open = create_memo(cx, move || period.get().0);

    let rows = View::new_fragment(
        page.options
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, name)| {
                let label = format!("Vote for {name}");
                let chosen = create_memo(cx, move || *board.chosen.get() == Some(i));
                view! { cx,
                    li(class = if *chosen.get() { "option chosen" } else { "option" }) {
                        span(class = "name", id = format!("option-{i}")) { (name) }
                        span(class = "count", data-count = i) {
                            (board.counts.get().get(i).copied().unwrap_or(0))
                        }
                        button(
                            type = "button",
                            data-vote = i,
                            aria-label = label,
                            aria-describedby = "window",
                            disabled = !*board.ready.get() || !*open.get(),
                            on:click = move |_| control.vote(i),
                        ) { "Vote" }
                    }
                }
            })
            .collect(),
    );

    view! { cx,
        main {
            h1 { (page.title) }
            p(class = "meta") {
                span(
                    id = "window",
                    class = if *open.get() { "window" } else { "window window-shut" },
                ) { (period.get().1.clone()) }
                " "
                a(href = results) { "Live results" }
            }
            ol(class = "options") { (rows) }
            div(class = "status", aria-live = "polite") {
                (status_line(cx, board))
            }
            button(
                type = "button",
                class = "secondary",
                disabled = !*board.receipts.get(),
                on:click = move |_| control.save_receipts(),
            ) { "Save my receipts" }
            footer {
                "Counts: " (board.feed.get()) ". Your vote is signed in this browser and kept here until a regional node confirms it, even offline."
            }
        }
    }
}

fn status_line<'a, G: Html>(cx: Scope<'a>, board: Board<'a>) -> View<G> {
    view! { cx,
        (match board.mine.get().as_ref() {
            Some(mine) => {
                let state = mine.state;
                let text = match state {
                    "pending" => "Your vote is saved in this browser and waiting to be confirmed.",
                    "confirmed" => "Your vote is confirmed: a regional node has stored it.",
                    _ => "Your vote was refused.",
                };
                let detail = mine.detail.clone();
                view! { cx,
                    p(data-vote-state = state) { (text) " " (detail) }
                }
            }
            None => view! { cx, },
        })
        (if board.problem.get().is_empty() {
            view! { cx, }
        } else {
            view! { cx, p(role = "alert") { (board.problem.get()) } }
        })
    }
}

fn results_page<G: Html>(cx: Scope, page: PollPage) -> View<G> {
    let board = Board::new(cx, &page);
    let _control = create_ref(cx, start(cx, &page, board, false));
    let vote = format!("/poll/{}", page.id);
    let total = create_memo(cx, move || total_of(&board.counts.get()));

    let rows = View::new_fragment(
        page.options
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, name)| {
                let width = create_memo(cx, move || {
                    let total = *total.get();
                    let count = board.counts.get().get(i).copied().unwrap_or(0);
                    // Tenths of a percent, in integers: no float formatting
                    // code in the wasm.
                    let permille = permille(count, total);
                    format!("width:{}.{}%", permille / 10, permille % 10)
                });
                view! { cx,
                    li(class = "option") {
                        span(class = "name") { (name) }
                        span(class = "count", data-count = i) {
                            (board.counts.get().get(i).copied().unwrap_or(0))
                        }
                        span { }
                        span(class = "bar", aria-hidden = "true") { span(style = width.get()) }
                    }
                }
            })
            .collect(),
    );

    view! { cx,
        main {
            h1 { (page.title) }
            p(class = "meta") {
                "Live results. " (total.get())
                (if *total.get() == 1 { " vote counted. " } else { " votes counted. " })
                a(href = vote) { "Vote" }
            }
            ol(class = "options") { (rows) }
            footer { "Counts: " (board.feed.get()) "." }
            // Last on the page, so a notice appearing moves nothing.
            div(class = "notice", role = "status") {
                (if board.problem.get().is_empty() {
                    view! { cx, }
                } else {
                    view! { cx, p { (board.problem.get()) } }
                })
            }
        }
    }
}

fn index_page<G: Html>(cx: Scope, index: Index) -> View<G> {
    let items = View::new_fragment(
        index
            .polls
            .into_iter()
            .map(|(id, title)| {
                let href = format!("/poll/{id}");
                view! { cx, li { a(href = href) { (title) } } }
            })
            .collect(),
    );
    view! { cx,
        main {
            h1 { "Polls" }
            ul { (items) }
        }
    }
}

/// The votes counted, for display: a node's counts are not trusted to fit
/// in a `u64` together, so the sum saturates rather than overflow.
fn total_of(counts: &[u64]) -> u64 {
    counts.iter().fold(0, |sum, &c| sum.saturating_add(c))
}

/// `count` in thousandths of `total`, at most 1000; 0 when there is none.
fn permille(count: u64, total: u64) -> u64 {
    let share = (u128::from(count) * 1000)
        .checked_div(u128::from(total))
        .unwrap_or(0);
    share.min(1000) as u64
}

/// `4 December 2025, 13:05 UTC` from unix milliseconds.
pub(crate) fn format_time(ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let month = MONTHS[(month - 1).clamp(0, 11) as usize];
    format!("{day} {month} {year}, {hour:02}:{minute:02} UTC")
}

#[engine_only_fn]
fn poll_head(cx: Scope, page: PollPage) -> View<SsrNode> {
    view! { cx, title { (page.title) " · vote" } }
}

#[engine_only_fn]
fn results_head(cx: Scope, page: PollPage) -> View<SsrNode> {
    view! { cx, title { (page.title) " · live results" } }
}

#[engine_only_fn]
fn index_head(cx: Scope) -> View<SsrNode> {
    view! { cx, title { "Polls" } }
}

pub(crate) fn poll_template<G: Html>() -> Template<G> {
    Template::build("poll")
        .build_paths_fn(crate::hooks::poll_paths)
        .build_state_fn(crate::hooks::poll_state)
        .view_with_unreactive_state(poll_page)
        .head_with_state(poll_head)
        .build()
}

pub(crate) fn results_template<G: Html>() -> Template<G> {
    Template::build("results")
        .build_paths_fn(crate::hooks::poll_paths)
        .build_state_fn(crate::hooks::poll_state)
        .view_with_unreactive_state(results_page)
        .head_with_state(results_head)
        .build()
}

pub(crate) fn index_template<G: Html>() -> Template<G> {
    Template::build("index")
        .build_state_fn(crate::hooks::index_state)
        .view_with_unreactive_state(index_page)
        .head(index_head)
        .build()
}

pub(crate) fn error_views<G: Html>() -> ErrorViews<G> {
    ErrorViews::new(|cx, err, _info, _position| {
        let message = match &err {
            ClientError::ServerError { status, .. } if *status == 404 => {
                "This page does not exist.".to_string()
            }
            ClientError::FetchError(_) => {
                "The page could not be loaded: the connection seems to be down.".to_string()
            }
            other => format!("Something went wrong: {other}"),
        };
        (
            view! { cx, title { "Error" } },
            view! { cx, main { h1 { "Error" } p { (message) } } },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{format_time, permille, refusal_text, total_of, window};

    #[test]
    fn a_refusal_is_told_in_words_without_raw_times() {
        let (opens, closes) = (951_782_400_000, 1_764_806_400_000);

        let late = refusal_text("outside_window", opens, closes);

        assert_eq!(
            late,
            "It was cast outside the voting period, from 29 February 2000, 00:00 UTC to \
             4 December 2025, 00:00 UTC."
        );
        assert_eq!(
            refusal_text("bad_signature", opens, closes),
            "Its signature was not accepted."
        );
        for code in [
            "outside_window",
            "not_allowed",
            "credential_mismatch",
            "unknown_option",
        ] {
            let text = refusal_text(code, opens, closes);
            assert!(
                !text.contains(code),
                "the code is not the explanation: {text}"
            );
            assert!(!text.contains(&closes.to_string()), "{text}");
        }
    }

    #[test]
    fn totals_and_shares_of_huge_counts_do_not_overflow() {
        assert_eq!(total_of(&[u64::MAX, 1, 2]), u64::MAX);
        assert_eq!(total_of(&[3, 4]), 7);
        assert_eq!(permille(u64::MAX, u64::MAX), 1000);
        assert_eq!(permille(u64::MAX / 2, u64::MAX), 499);
        assert_eq!(permille(1, 3), 333);
        assert_eq!(permille(5, 0), 0);
    }

    #[test]
    fn times_are_civil_dates() {
        assert_eq!(format_time(0), "1 January 1970, 00:00 UTC");
        assert_eq!(format_time(951_782_400_000), "29 February 2000, 00:00 UTC");
        assert_eq!(
            format_time(1_764_806_400_000 + 13 * 3_600_000 + 5 * 60_000),
            "4 December 2025, 13:05 UTC"
        );
        assert_eq!(
            format_time(4_102_444_799_000),
            "31 December 2099, 23:59 UTC"
        );
    }

    #[test]
    fn the_window_line_says_whether_voting_is_possible_in_words() {
        let (opens, closes) = (951_782_400_000, 1_764_806_400_000);

        let before = window(opens, closes, opens - 1);
        let during = window(opens, closes, opens);
        let after = window(opens, closes, closes);

        assert_eq!(
            before,
            (
                false,
                "Voting opens on 29 February 2000, 00:00 UTC: it is not possible yet.".into()
            )
        );
        assert_eq!(
            during,
            (true, "Voting closes on 4 December 2025, 00:00 UTC.".into())
        );
        assert_eq!(
            after,
            (
                false,
                "This poll closed on 4 December 2025, 00:00 UTC: voting is over.".into()
            )
        );
        for (_, text) in [before, during, after] {
            let raw = [opens.to_string(), closes.to_string()];
            assert!(
                raw.iter().all(|ms| !text.contains(ms)),
                "raw milliseconds: {text}"
            );
        }
    }
}
