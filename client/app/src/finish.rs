//! The last pass over each page Perseus renders: point it at the
//! content-addressed bundle, add the preload hints, and make the page states
//! it inlines safe to sit inside `<script>` elements.
//!
//! A poll's title and options are chosen by its organizer, and Perseus puts
//! them in two places: as escaped text in the markup (`<title>`, `<h1>`, the
//! options; sycamore writes `<` as `&lt;` there) and in the page state it
//! inlines as JavaScript template literals
//! (``window.__PERSEUS_INITIAL_STATE = `...`;``), escaped for the literal
//! but not for HTML. Left alone, a title holding `</script><script>...`
//! ends the script element and runs the organizer's code on this origin,
//! where voters' keys live.
//!
//! So each page is read as HTML, structurally: tags (attribute values
//! included), comments, raw-text elements, and scripts, which are read as a
//! strict sequence of code and inline-state literals. Inside a literal
//! every `<` becomes `\x3c` (the same character once JavaScript reads the
//! literal). Outside literals a script may hold no `<` and no backtick at
//! all, so after this pass no script can hold markup, a comment opener or an
//! end tag, and the browser ends each script exactly where this reader does.
//! Anything this reader does not expect (a marker out of place, an
//! unterminated literal, an interpolation, an element whose parsing rules
//! differ) is an error for the page: it is refused, never passed on.
//!
//! Behind that, each page gets a Content-Security-Policy (a `<meta>` first
//! in its head) that lets only the scripts this reader saw run, by their
//! SHA-256, and scripts of the page's own origin: were a browser ever to read
//! a page otherwise than this reader does, what it took for a script would
//! not match and would not run; inline event handlers never run.

use sha2::Digest as _;

/// The statements that open an inlined state: each is followed by a template
/// literal and `;`.
const INLINE_STATES: [&str; 5] = [
    "window.__PERSEUS_RENDER_CFG = `",
    "window.__PERSEUS_INITIAL_STATE = `",
    "window.__PERSEUS_INITIAL_WIDGET_STATES = `",
    "window.__PERSEUS_GLOBAL_STATE = `",
    "window.__PERSEUS_TRANSLATIONS = `",
];

/// Elements whose content the HTML parser reads by other rules than the
/// ones this reader implements; the renderer never makes them.
const UNEXPECTED: [&str; 10] = [
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "template",
    "svg",
    "math",
    "textarea",
];

/// What to change in a page besides the inline states.
pub(crate) struct Edits<'a> {
    /// Inserted right after the `<head>` start tag.
    pub(crate) head: &'a str,
    /// `(from, to)`: each `from` must occur in script code (outside any
    /// inline state) at least once, and every occurrence there is replaced.
    pub(crate) script_refs: &'a [(&'a str, &'a str)],
}

/// Applies `edits` to a rendered page and hardens its inline states (see
/// the module documentation). Errors say what was unexpected, and where.
pub(crate) fn finish_page(html: &str, edits: &Edits<'_>) -> Result<String, String> {
    let mut page = Page {
        html,
        bytes: html.as_bytes(),
        out: String::with_capacity(html.len() + edits.head.len() + 256),
        copied: 0,
        edits,
        head_at: None,
        refs_found: vec![0; edits.script_refs.len()],
        script_hashes: Vec::new(),
    };
    page.run()?;
    let Some(head_at) = page.head_at else {
        return Err("the page has no <head>".into());
    };
    for ((from, _), found) in edits.script_refs.iter().zip(&page.refs_found) {
        if *found == 0 {
            return Err(format!("no script of the page refers to {from}"));
        }
    }
    page.out.push_str(&html[page.copied..]);
    let policy = content_security_policy(&page.script_hashes);
    page.out.insert_str(head_at, &policy);
    Ok(page.out)
}

/// The `<meta>` that lets only these inline scripts (by the base64 of their
/// SHA-256) and the origin's own script files run. `'unsafe-eval'` is there
/// for WebAssembly in browsers that predate `'wasm-unsafe-eval'`.
fn content_security_policy(hashes: &[String]) -> String {
    let mut sources = String::from("'self' 'unsafe-eval'");
    for hash in hashes {
        sources.push_str(&format!(" 'sha256-{hash}'"));
    }
    format!(
        "<meta http-equiv=Content-Security-Policy content=\"script-src {sources}; object-src 'none'; base-uri 'self'\">"
    )
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Page<'a> {
    html: &'a str,
    bytes: &'a [u8],
    out: String,
    /// `html[..copied]` has been written to `out`.
    copied: usize,
    edits: &'a Edits<'a>,
    /// Where in `out` the policy goes: right after `<head>`.
    head_at: Option<usize>,
    refs_found: Vec<usize>,
    /// The base64 SHA-256 of each script's content, as written.
    script_hashes: Vec<String>,
}

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn starts_with_ci(bytes: &[u8], at: usize, prefix: &str) -> bool {
    bytes
        .get(at..at + prefix.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(prefix.as_bytes()))
}

impl Page<'_> {
    /// Writes `html[copied..upto]` and then `text` in place of
    /// `html[upto..resume]`.
    fn replace(&mut self, upto: usize, text: &str, resume: usize) {
        self.out.push_str(&self.html[self.copied..upto]);
        self.out.push_str(text);
        self.copied = resume;
    }

    fn run(&mut self) -> Result<(), String> {
        let b = self.bytes;
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'<' {
                i += 1;
                continue;
            }
            let next = b.get(i + 1).copied().unwrap_or(0);
            if starts_with_ci(b, i + 1, "!--") {
                i = self.comment(i)?;
            } else if next == b'!' {
                if !starts_with_ci(b, i + 2, "doctype") {
                    return Err(format!("unexpected markup declaration at byte {i}"));
                }
                i = find(b, i, b">").ok_or("unterminated doctype")? + 1;
            } else if next == b'?' {
                return Err(format!("unexpected processing instruction at byte {i}"));
            } else if next == b'/' && b.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
                let (_, end) = self.tag(i + 2)?;
                i = end;
            } else if next == b'/' {
                // `</` not followed by a name hides what follows up to `>`.
                return Err(format!("malformed end tag at byte {i}"));
            } else if next.is_ascii_alphabetic() {
                i = self.start_tag(i)?;
            } else {
                // A `<` that opens nothing is text.
                i += 1;
            }
        }
        Ok(())
    }

    /// A comment from `<!--` at `at`; returns the index after it.
    fn comment(&self, at: usize) -> Result<usize, String> {
        let b = self.bytes;
        let body = at + 4;
        // `<!-->` and `<!--->` end at once in a browser.
        if b.get(body) == Some(&b'>') || b.get(body..body + 2) == Some(b"->") {
            return Err(format!("abruptly closed comment at byte {at}"));
        }
        let end = find(b, body, b"-->").ok_or("unterminated comment")?;
        if find(&b[..end], body, b"--!").is_some() || find(&b[..end], body, b"<").is_some() {
            return Err(format!("unexpected comment content at byte {at}"));
        }
        Ok(end + 3)
    }

    /// Reads a tag name and its attributes from `at` (just after `<` or
    /// `</`); returns the lowercase name and the index after the `>`.
    fn tag(&self, at: usize) -> Result<(String, usize), String> {
        let b = self.bytes;
        let unterminated = || format!("unterminated tag at byte {at}");
        let mut i = at;
        while i < b.len() && !is_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        let name = self.html[at..i].to_ascii_lowercase();
        loop {
            while i < b.len() && (is_space(b[i]) || b[i] == b'/') {
                i += 1;
            }
            match b.get(i) {
                None => return Err(unterminated()),
                Some(b'>') => return Ok((name, i + 1)),
                Some(_) => {}
            }
            // An attribute name (it may begin with `=`).
            i += 1;
            while i < b.len() && !is_space(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                continue;
            }
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            match b.get(i) {
                None => return Err(unterminated()),
                Some(&quote @ (b'"' | b'\'')) => {
                    i = find(b, i + 1, &[quote]).ok_or_else(unterminated)? + 1;
                }
                Some(b'>') => {}
                Some(_) => {
                    while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                        i += 1;
                    }
                }
            }
        }
    }

    /// A start tag at `at`; returns where reading goes on.
    fn start_tag(&mut self, at: usize) -> Result<usize, String> {
        let (name, end) = self.tag(at + 1)?;
        match name.as_str() {
            "head" if self.head_at.is_none() => {
                self.out.push_str(&self.html[self.copied..end]);
                self.head_at = Some(self.out.len());
                self.out.push_str(self.edits.head);
                self.copied = end;
                Ok(end)
            }
            "script" => {
                if self.head_at.is_none() {
                    return Err(format!("a script before <head> at byte {at}"));
                }
                self.out.push_str(&self.html[self.copied..end]);
                self.copied = end;
                let start = self.out.len();
                let close = self.script(end)?;
                self.out.push_str(&self.html[self.copied..close]);
                self.copied = close;
                let digest = sha2::Sha256::digest(&self.out.as_bytes()[start..]);
                self.script_hashes.push(base64(&digest));
                Ok(close)
            }
            "style" | "title" => end_tag(self.bytes, end, &name)
                .ok_or_else(|| format!("unterminated <{name}> at byte {at}")),
            _ if UNEXPECTED.contains(&name.as_str()) => {
                Err(format!("unexpected <{name}> element at byte {at}"))
            }
            _ => Ok(end),
        }
    }

    /// A script's content from `at`; returns the index of its end tag.
    fn script(&mut self, at: usize) -> Result<usize, String> {
        let b = self.bytes;
        let mut i = at;
        // Whether `i` is where a statement may begin.
        let mut statement = true;
        loop {
            if i >= b.len() {
                return Err(format!("unterminated script at byte {at}"));
            }
            if starts_with_ci(b, i, "</script")
                && b.get(i + 8)
                    .is_some_and(|&c| is_space(c) || c == b'/' || c == b'>')
            {
                return Ok(i);
            }
            if let Some(marker) = INLINE_STATES
                .iter()
                .find(|m| b[i..].starts_with(m.as_bytes()))
            {
                if !statement {
                    return Err(format!("inline state out of place at byte {i}"));
                }
                i = self.literal(i + marker.len())?;
                if b.get(i) != Some(&b';') {
                    return Err(format!("inline state not followed by `;` at byte {i}"));
                }
                i += 1;
                continue;
            }
            if let Some(k) = self
                .edits
                .script_refs
                .iter()
                .position(|(from, _)| b[i..].starts_with(from.as_bytes()))
            {
                let (from, to) = self.edits.script_refs[k];
                self.refs_found[k] += 1;
                self.replace(i, to, i + from.len());
                i += from.len();
                statement = false;
                continue;
            }
            match b[i] {
                b'<' => return Err(format!("`<` in script code at byte {i}")),
                // A browser reads CR and NUL otherwise, and hashes what it read.
                b'\r' | b'\0' => return Err(format!("CR or NUL in a script at byte {i}")),
                b'`' => return Err(format!("template literal in script code at byte {i}")),
                b';' | b'{' | b'}' => statement = true,
                c if is_space(c) => {}
                _ => statement = false,
            }
            i += 1;
        }
    }

    /// An inline state's template literal, from just after its opening
    /// backtick: writes it with every `<` as `\x3c`; returns the index after
    /// the closing backtick.
    fn literal(&mut self, at: usize) -> Result<usize, String> {
        let b = self.bytes;
        let mut i = at;
        loop {
            match b.get(i) {
                None => return Err(format!("unterminated inline state at byte {at}")),
                // An escape: the next character is taken as it is.
                Some(b'\\') => match b.get(i + 1) {
                    // `\<` is `<` too; written `\x3c` like the others.
                    Some(b'<') => {
                        self.replace(i, "\\x3c", i + 2);
                        i += 2;
                    }
                    None | Some(b'\r' | b'\0') => {
                        return Err(format!("a bad escape in an inline state at byte {i}"))
                    }
                    Some(_) => i += 2,
                },
                Some(b'`') => return Ok(i + 1),
                Some(b'\r' | b'\0') => {
                    return Err(format!("CR or NUL in an inline state at byte {i}"))
                }
                Some(b'$') if b.get(i + 1) == Some(&b'{') => {
                    return Err(format!("interpolation in an inline state at byte {i}"));
                }
                Some(b'<') => {
                    self.replace(i, "\\x3c", i + 1);
                    i += 1;
                }
                Some(_) => i += 1,
            }
        }
    }
}

/// The index of the first `</name` (any case) from `at` that ends a tag
/// name, as a browser ends raw text.
fn end_tag(b: &[u8], at: usize, name: &str) -> Option<usize> {
    let mut i = at;
    while let Some(lt) = find(b, i, b"</") {
        if starts_with_ci(b, lt + 2, name)
            && b.get(lt + 2 + name.len())
                .is_some_and(|&c| is_space(c) || c == b'/' || c == b'>')
        {
            return Some(lt);
        }
        i = lt + 2;
    }
    None
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Perseus does to a state before inlining it.
    fn escape_for_literal(state: &str) -> String {
        state
            .replace('\\', "\\\\")
            .replace('`', "\\`")
            .replace("${", "\\${")
    }

    /// What sycamore does to text.
    fn escape_text(text: &str) -> String {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }

    fn escape_attribute(text: &str) -> String {
        escape_text(text).replace('"', "&quot;")
    }

    /// A page shaped like the ones Perseus renders, for a poll with this
    /// title and options.
    fn page(title: &str, options: &[&str]) -> String {
        let state = serde_json::json!({ "title": title, "options": options }).to_string();
        let rows: String = options
            .iter()
            .map(|o| {
                format!(
                    "<li><span class=name>{}</span><button aria-label=\"Vote for {}\">Vote</button></li>",
                    escape_text(o),
                    escape_attribute(o)
                )
            })
            .collect();
        format!(
            "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><style>*{{box-sizing:border-box}}</style>\
             <script type=module>window.__PERSEUS_RENDER_CFG = `{{\"poll/1\":\"poll\"}}`;\n\
             import init from \"/.perseus/bundle.js\";\n\
             async function main() {{ await init(\"/.perseus/bundle.wasm\"); }}\n\
             main();\n\
             window.__PERSEUS_GLOBAL_STATE = `None`;</script>\
             <meta itemprop=__perseus_head_boundary content><title>{} · vote</title>\
             <script>window.__PERSEUS_INITIAL_STATE = `{}`;\n\
             window.__PERSEUS_TRANSLATIONS = ``;</script>\
             <meta itemprop=__perseus_head_end content><script>//</script></head>\
             <body><div id=root><main><h1>{}</h1><ol>{rows}</ol></main></div></body></html>",
            escape_text(title),
            escape_for_literal(&state),
            escape_text(title),
        )
    }

    const EDITS: Edits<'static> = Edits {
        head: "<link rel=modulepreload href=/.perseus/bundle.abc.js>",
        script_refs: &[
            ("\"/.perseus/bundle.js\"", "\"/.perseus/bundle.abc.js\""),
            ("\"/.perseus/bundle.wasm\"", "\"/.perseus/bundle.abc.wasm\""),
        ],
    };

    /// The value a template literal stands for, for the escapes Perseus and
    /// `finish_page` write.
    fn cooked(literal: &str) -> String {
        let mut out = String::new();
        let mut chars = literal.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    out.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                }
                Some(other) => out.push(other),
                None => panic!("a literal ends in a backslash"),
            }
        }
        out
    }

    /// The initial state as the browser would read it from a finished page.
    fn state_of(finished: &str) -> serde_json::Value {
        let marker = INLINE_STATES[1];
        let start = finished.find(&format!("<script>{marker}")).unwrap() + 8 + marker.len();
        let body = &finished[start..];
        let mut end = 0;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '`' => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        serde_json::from_str(&cooked(&body[..end])).unwrap()
    }

    fn count_ci(haystack: &str, needle: &str) -> usize {
        haystack
            .to_ascii_lowercase()
            .matches(&needle.to_ascii_lowercase())
            .count()
    }

    /// Titles and options an organizer might pick to get out of the page's
    /// text or state (at most 200 and 100 bytes).
    const HOSTILE: [&str; 16] = [
        "window.__PERSEUS_INITIAL_STATE = `x",
        "window.__PERSEUS_INITIAL_STATE = `</script><script>alert(1)</script>",
        "</script><script>alert(1)</script>",
        "</SCRIPT ><script>alert(1)</script >",
        "`;alert(1);`",
        "${alert(1)}",
        "\\`${alert(1)}\\",
        "\\",
        "<!--<script>",
        "<!-- </script> -->",
        "\u{2028}\u{2029}alert(1)//",
        "\"/.perseus/bundle.js\"",
        "window.__PERSEUS_GLOBAL_STATE = `None`;",
        "<svg><script>alert(1)</script></svg>",
        "<img src=x onerror=alert(1)>",
        "\" onmouseover=\"alert(1)",
    ];

    #[test]
    fn hostile_titles_and_options_stay_text_and_state() {
        for title in HOSTILE {
            let options = [HOSTILE[2], title, "Pie `${1 + 1}`"];
            let html = page(title, &options);

            let finished = finish_page(&html, &EDITS).unwrap_or_else(|e| panic!("{title:?}: {e}"));

            // Three scripts and no more: no script, end tag or comment came
            // from the poll, wherever its text went.
            assert_eq!(count_ci(&finished, "<script"), 3, "{title:?}: {finished}");
            assert_eq!(count_ci(&finished, "</script"), 3, "{title:?}: {finished}");
            assert_eq!(count_ci(&finished, "<!--"), 0, "{title:?}: {finished}");
            assert_eq!(count_ci(&finished, "<svg"), 0, "{title:?}: {finished}");
            // The browser reads back exactly the poll's text.
            let state = state_of(&finished);
            assert_eq!(state["title"], title);
            assert_eq!(state["options"], serde_json::json!(options));
            // The edits, in the scripts only.
            assert_eq!(finished.matches("\"/.perseus/bundle.abc.js\"").count(), 1);
            assert_eq!(finished.matches("\"/.perseus/bundle.abc.wasm\"").count(), 1);
            assert!(finished.contains(EDITS.head));
            // The policy comes first, and names each script the browser will
            // see (read here the simple way: no `<` is left in any script).
            assert!(finished.contains("<head><meta http-equiv=Content-Security-Policy"));
            let policy = &finished[finished.find("script-src").unwrap()..];
            let policy = &policy[..policy.find('"').unwrap()];
            assert_eq!(policy.matches("'sha256-").count(), 3, "{policy}");
            for piece in finished.split("</script>") {
                let Some(tag) = piece.rfind("<script") else {
                    continue;
                };
                let body = &piece[tag + piece[tag..].find('>').unwrap() + 1..];
                let hash = base64(&sha2::Sha256::digest(body.as_bytes()));
                assert!(policy.contains(&format!("'sha256-{hash}'")), "{body:?}");
            }
        }
    }

    #[test]
    fn a_marker_in_the_title_does_not_hide_the_real_state() {
        // The title holds a marker and markup: an early reader matched the
        // marker in <title> and left the real state as it was.
        let title = "window.__PERSEUS_INITIAL_STATE = `x` </script><script>alert(1)</script>";
        let html = page(title, &["a", "b"]);
        assert!(html.contains(
            "\"title\":\"window.__PERSEUS_INITIAL_STATE = \\`x\\` </script><script>alert(1)</script>\""
        ));

        let finished = finish_page(&html, &EDITS).unwrap();

        assert!(finished.contains("\\`x\\` \\x3c/script>\\x3cscript>alert(1)\\x3c/script>"));
        assert_eq!(count_ci(&finished, "<script"), 3);
        assert_eq!(state_of(&finished)["title"], title);
    }

    #[test]
    fn markup_in_attributes_and_text_is_left_as_it_is() {
        let html = "<html><head><title>a &lt;/title> b</title></head><body>\
                    <p data-x='<script>' title=\"</script>\" y=<x>z</p>\
                    <p>1 < 2</p><script>go(\"/.perseus/bundle.js\", \"/.perseus/bundle.wasm\");</script></body></html>";

        let finished = finish_page(html, &EDITS).unwrap();

        let script = "go(\"/.perseus/bundle.abc.js\", \"/.perseus/bundle.abc.wasm\");";
        let policy = content_security_policy(&[base64(&sha2::Sha256::digest(script))]);
        assert_eq!(
            finished,
            html.replacen("<head>", &format!("<head>{policy}{}", EDITS.head), 1)
                .replace("/.perseus/bundle.js", "/.perseus/bundle.abc.js")
                .replace("/.perseus/bundle.wasm", "/.perseus/bundle.abc.wasm")
        );
    }

    #[test]
    fn base64_is_the_standard_one() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\xfd", "//79"),
        ] {
            assert_eq!(base64(bytes), text);
        }
    }

    #[test]
    fn pages_that_do_not_read_as_expected_are_refused() {
        let ok = "<html><head></head><body><script>go(\"/.perseus/bundle.js\",\"/.perseus/bundle.wasm\");</script>";
        assert!(finish_page(ok, &EDITS).is_ok());
        let refused = [
            // An unterminated state, or an unterminated script.
            "<head><script>window.__PERSEUS_INITIAL_STATE = `{",
            "<head><script>x = 1;",
            // A marker that is not where a statement begins.
            "<head><script>f(window.__PERSEUS_INITIAL_STATE = `{}`);</script>",
            // An interpolation in a state.
            "<head><script>window.__PERSEUS_INITIAL_STATE = `${x}`;</script>",
            // A state not followed by `;`.
            "<head><script>window.__PERSEUS_INITIAL_STATE = `{}` + x;</script>",
            // Markup, or a literal, in script code.
            "<head><script>if (a <!--b) {}</script>",
            "<head><script>x = `a`;</script>",
            // Elements parsed by other rules.
            "<head></head><body><svg><script>x</script></svg>",
            "<head></head><body><noscript><p></noscript>",
            // Comments a browser ends early, or that hide markup.
            "<head></head><body><!--><script>x</script>-->",
            "<head></head><body><!-- <script> -->",
            // No head to put the hints in.
            "<html><body><script>go(\"/.perseus/bundle.js\",\"/.perseus/bundle.wasm\");</script>",
            // No reference to the bundle.
            "<html><head></head><body><script>go();</script>",
            // `</` with no name.
            "<html><head></head><body></ x>",
            // What a browser would read otherwise, and hash otherwise.
            "<head><script>x = 1;\r\n</script>",
            "<head><script>window.__PERSEUS_INITIAL_STATE = `\\\r`;</script>",
        ];
        for html in refused {
            let html = if html.contains("bundle.js") || !html.contains("<script>go") {
                format!(
                    "{html}<script>go(\"/.perseus/bundle.js\",\"/.perseus/bundle.wasm\");</script>"
                )
            } else {
                html.to_string()
            };
            assert!(finish_page(&html, &EDITS).is_err(), "{html}");
        }
        assert!(finish_page("<html><head></head><body><script>go();</script>", &EDITS).is_err());
    }
}
