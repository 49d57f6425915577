//! `votemesh-client publish`: renders the pages of a set of polls into a
//! directory the edge relay serves.
//!
//! Input: a site file (JSON) holding each poll as the node serves it
//! (`GET /v1/polls/{id}`) with its tally (`GET /v1/polls/{id}/tally`), and the
//! browser assets (`client/build.sh` makes them). Every poll's signature is
//! checked before a page is made for it. Output: `poll/<id>/index.html`,
//! `results/<id>/index.html`, `index.html`, the page app under
//! content-addressed names in `.perseus/`, the service worker, and
//! `precache.json`, the app shell the service worker keeps for offline use.
//! The directory is replaced whole, so a relay serving it never sees half a
//! site.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::state::PollPage;

/// Renders the pages of published polls.
#[derive(Parser, Debug)]
#[command(name = "votemesh-client", version, about)]
enum Command {
    /// Render the site for the polls in a site file.
    Publish(PublishArgs),
    /// Write FILE.br (brotli, quality 11) and FILE.gz (gzip, level 9) beside
    /// each file, for the relay to serve instead of compressing on the fly.
    Compress {
        /// The files to compress.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct PublishArgs {
    /// The site file: `{"published_at": ms, "node_keys": [hex, ...], "polls": [{"poll": {...}, "tally": {...}}]}`.
    #[arg(long)]
    site: PathBuf,
    /// The browser assets: `bundle.js`, `bundle.wasm` and `sw/` (from `client/build.sh`).
    #[arg(long)]
    assets: PathBuf,
    /// The directory to write (replaced whole).
    #[arg(long)]
    out: PathBuf,
}

/// Why a site could not be published.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("site file {path} is not valid: {source}")]
    SiteJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("poll #{index} in the site file is not a valid signed poll: {reason}")]
    BadPoll { index: usize, reason: String },
    #[error("the tally given for poll {id} does not fit it: {reason}")]
    BadTally { id: String, reason: String },
    #[error("no poll {0} in the site being published")]
    UnknownPoll(String),
    #[error("the site file names no node key: the pages would trust no receipt")]
    NoNodeKeys,
    #[error("node key {key:?} in the site file is not a public key (64 hex characters)")]
    BadNodeKey { key: String },
    #[error("rendering failed (exit code {0}); Perseus printed the reason above")]
    Render(i32),
}

/// The polls being published, by id.
pub(crate) struct Site {
    pub(crate) polls: BTreeMap<String, PollPage>,
    /// The keys (hex) of the nodes whose receipts every page trusts.
    pub(crate) node_keys: Vec<String>,
}

static SITE: OnceLock<Site> = OnceLock::new();

/// The site being published. Set before rendering starts.
pub(crate) fn site() -> &'static Site {
    SITE.get().expect("the site is loaded before rendering")
}

#[derive(Deserialize)]
struct SiteFile {
    published_at: u64,
    #[serde(default)]
    node_keys: Vec<String>,
    polls: Vec<SitePoll>,
}

#[derive(Deserialize)]
struct SitePoll {
    poll: serde_json::Value,
    tally: serde_json::Value,
}

pub(crate) fn main() -> i32 {
    let args = match Command::parse() {
        Command::Publish(args) => args,
        Command::Compress { files } => {
            return match files.iter().try_for_each(|file| compress(file)) {
                Ok(()) => 0,
                Err(err) => {
                    eprintln!("error: {err}");
                    1
                }
            }
        }
    };
    match publish(&args) {
        Ok(count) => {
            println!("published {count} poll(s) to {}", args.out.display());
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

fn publish(args: &PublishArgs) -> Result<usize, PublishError> {
    let site = load_site(&args.site)?;
    let count = site.polls.len();
    SITE.set(site).ok().expect("publish runs once");

    // Perseus renders into `./dist`; give it a fresh directory beside the output.
    let out = absolute(&args.out)?;
    let assets = absolute(&args.assets)?;
    let parent = out
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let work = parent.join(format!(".publish-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|source| write_err(&work, source))?;
    std::env::set_current_dir(&work).map_err(|source| write_err(&work, source))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| write_err(&work, source))?;
    let code = runtime.block_on(perseus::engine::run_dflt_engine_export_only(
        perseus::engine::EngineOperation::Export,
        crate::app::<sycamore::web::SsrNode>,
    ));
    if code != 0 {
        return Err(PublishError::Render(code));
    }

    let staged = work.join("dist/exported");
    let bundle = install_bundle(&assets, &staged)?;
    let sw = assets.join("sw");
    let sw_files = fs::read_dir(&sw).map_err(|source| read_err(&sw, source))?;
    let mut worker_files = Vec::new();
    for entry in sw_files {
        let entry = entry.map_err(|source| read_err(&sw, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        copy(&entry.path(), &staged.join(&name))?;
        worker_files.push(name);
    }
    worker_files.sort();

    write_precache(&staged, &bundle, &worker_files)?;

    // Swap the new site in whole.
    let old = parent.join(format!(".replaced-{}", std::process::id()));
    if out.exists() {
        fs::rename(&out, &old).map_err(|source| write_err(&out, source))?;
    }
    fs::rename(&staged, &out).map_err(|source| write_err(&out, source))?;
    let _ = fs::remove_dir_all(&old);
    let _ = std::env::set_current_dir(&parent);
    let _ = fs::remove_dir_all(&work);
    Ok(count)
}

/// Writes `file.br` and `file.gz` at the strongest settings: done once per
/// build, so the time is well spent on every download after.
fn compress(file: &Path) -> Result<(), PublishError> {
    use std::io::Write as _;
    let bytes = fs::read(file).map_err(|source| read_err(file, source))?;
    let with = |ext: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };

    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 24,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut bytes.as_slice(), &mut br, &params)
        .map_err(|source| write_err(&with(".br"), source))?;
    write(&with(".br"), &br)?;

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let gz = gz
        .write_all(&bytes)
        .and_then(|()| gz.finish())
        .map_err(|source| write_err(&with(".gz"), source))?;
    write(&with(".gz"), &gz)
}

/// Reads and checks the site file.
fn load_site(path: &Path) -> Result<Site, PublishError> {
    let bytes = fs::read(path).map_err(|source| read_err(path, source))?;
    let file: SiteFile =
        serde_json::from_slice(&bytes).map_err(|source| PublishError::SiteJson {
            path: path.to_path_buf(),
            source,
        })?;
    let node_keys = node_keys(&file.node_keys)?;
    let mut polls = BTreeMap::new();
    for (index, entry) in file.polls.into_iter().enumerate() {
        let page = poll_page(index, entry, file.published_at)?;
        polls.insert(page.id.clone(), page);
    }
    Ok(Site { polls, node_keys })
}

/// The site's node keys, checked and in their canonical hex form.
fn node_keys(keys: &[String]) -> Result<Vec<String>, PublishError> {
    if keys.is_empty() {
        return Err(PublishError::NoNodeKeys);
    }
    keys.iter()
        .map(|key| {
            key.parse::<crdt::PublicKey>()
                .map(|k| k.to_string())
                .map_err(|_| PublishError::BadNodeKey { key: key.clone() })
        })
        .collect()
}

fn poll_page(index: usize, entry: SitePoll, published_at: u64) -> Result<PollPage, PublishError> {
    let bad = |reason: String| PublishError::BadPoll { index, reason };
    let poll = crdt::Poll::from_json(&entry.poll).map_err(|e| bad(e.to_string()))?;
    poll.verify().map_err(|e| bad(e.to_string()))?;
    let id = poll.id.to_string();
    let bad_tally = |reason: &str| PublishError::BadTally {
        id: id.clone(),
        reason: reason.to_string(),
    };
    if entry.tally["poll"].as_str() != Some(id.as_str()) {
        return Err(bad_tally("it names another poll"));
    }
    let counts: Vec<u64> = entry.tally["counts"]
        .as_array()
        .ok_or_else(|| bad_tally("no counts"))?
        .iter()
        .map(|c| {
            c.as_u64()
                .ok_or_else(|| bad_tally("a count is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if counts.len() != poll.option_count() {
        return Err(bad_tally(
            "the number of counts differs from the number of options",
        ));
    }
    let draft = &poll.draft;
    Ok(PollPage {
        id: id.clone(),
        poll: entry.poll,
        title: draft.title.clone(),
        options: draft.options.clone(),
        counts,
        entries: entry.tally["entries"].as_u64().unwrap_or(0),
        digest: entry.tally["digest"].as_str().unwrap_or("").to_string(),
        opens_at: draft.opens_at,
        closes_at: draft.closes_at,
        needs_credential: matches!(draft.eligibility, crdt::Eligibility::Credential { .. }),
        published_at,
        // Filled from the site's node keys when a page is rendered.
        trusted_nodes: Vec::new(),
    })
}

/// The page app under content-addressed names.
struct Bundle {
    /// `/.perseus/bundle.<hash>.js`
    js: String,
    /// `/.perseus/bundle.<hash>.wasm`
    wasm: String,
}

/// Copies the page app in under names that carry a hash of its content, so
/// browsers may cache it for a year, and points every rendered page at them.
fn install_bundle(assets: &Path, site: &Path) -> Result<Bundle, PublishError> {
    let (js_path, wasm_path) = (assets.join("bundle.js"), assets.join("bundle.wasm"));
    let js = fs::read(&js_path).map_err(|source| read_err(&js_path, source))?;
    let wasm = fs::read(&wasm_path).map_err(|source| read_err(&wasm_path, source))?;
    let mut hasher = Sha256::new();
    hasher.update((js.len() as u64).to_be_bytes());
    hasher.update(&js);
    hasher.update(&wasm);
    let hash = hex(&hasher.finalize()[..8]);
    let bundle = Bundle {
        js: format!("/.perseus/bundle.{hash}.js"),
        wasm: format!("/.perseus/bundle.{hash}.wasm"),
    };
    write(&site.join(&bundle.js[1..]), &js)?;
    write(&site.join(&bundle.wasm[1..]), &wasm)?;
    // Precompressed copies (`client/build.sh` makes them), under the same names.
    for (from, to) in [(&js_path, &bundle.js), (&wasm_path, &bundle.wasm)] {
        for ext in [".br", ".gz"] {
            let mut source = from.as_os_str().to_owned();
            source.push(ext);
            let source = PathBuf::from(source);
            if source.is_file() {
                copy(&source, &site.join(format!("{}{ext}", &to[1..])))?;
            }
        }
    }

    // Perseus loads the app with `import init from "/.perseus/bundle.js"` and
    // `init("/.perseus/bundle.wasm")` in every page.
    let mut pages = Vec::new();
    html_files(site, &mut pages)?;
    for page in pages {
        let html = fs::read_to_string(&page).map_err(|source| read_err(&page, source))?;
        let (js_ref, wasm_ref) = ("\"/.perseus/bundle.js\"", "\"/.perseus/bundle.wasm\"");
        if !html.contains(js_ref) || !html.contains(wasm_ref) {
            return Err(PublishError::Write {
                path: page,
                source: std::io::Error::other(
                    "the page does not load /.perseus/bundle.js and .wasm",
                ),
            });
        }
        let html = html
            .replace(js_ref, &format!("\"{}\"", bundle.js))
            .replace(wasm_ref, &format!("\"{}\"", bundle.wasm));
        // Fetch the script and the wasm at once, with the page, rather than
        // the wasm only once the script has run: one round trip less before
        // the vote buttons work on a slow connection.
        let hints = format!(
            "<head><link rel=modulepreload href={}><link rel=preload href={} as=fetch type=application/wasm crossorigin>",
            bundle.js, bundle.wasm
        );
        if !html.contains("<head>") {
            return Err(PublishError::Write {
                path: page,
                source: std::io::Error::other("the page has no <head>"),
            });
        }
        let html = html.replacen("<head>", &hints, 1);
        let html = harden_inline_state(&html).map_err(|reason| PublishError::Write {
            path: page.clone(),
            source: std::io::Error::other(reason),
        })?;
        write(&page, html.as_bytes())?;
    }
    Ok(bundle)
}

/// The page states Perseus inlines into each page, as JavaScript template
/// literals inside `<script>` elements.
const INLINE_STATES: [&str; 3] = [
    "window.__PERSEUS_INITIAL_STATE = `",
    "window.__PERSEUS_INITIAL_WIDGET_STATES = `",
    "window.__PERSEUS_GLOBAL_STATE = `",
];

/// Rewrites every `<` inside the inlined page states as `\x3c`.
///
/// A state holds text chosen by a poll's organizer (title, options). Perseus
/// escapes it for the template literal but not for HTML, so a title holding
/// `</script>` would end the script element and run markup of the
/// organizer's on this origin, where voters' keys live. Inside a template
/// literal `\x3c` is `<` again, so the page reads the same state.
fn harden_inline_state(html: &str) -> Result<String, String> {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some((at, marker)) = INLINE_STATES
        .iter()
        .filter_map(|m| rest.find(m).map(|at| (at, *m)))
        .min_by_key(|(at, _)| *at)
    {
        let start = at + marker.len();
        out.push_str(&rest[..start]);
        let body = &rest[start..];
        // The literal ends at the first backtick not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '`' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated inline state after {marker:?}"))?;
        out.push_str(&body[..end].replace('<', "\\x3c"));
        rest = &body[end..];
    }
    out.push_str(rest);
    Ok(out)
}

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PublishError> {
    for entry in fs::read_dir(dir).map_err(|source| read_err(dir, source))? {
        let path = entry.map_err(|source| read_err(dir, source))?.path();
        if path.is_dir() {
            html_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
    Ok(())
}

/// The app shell the service worker keeps for offline use (`precache.json`),
/// with a version that changes whenever any of the code does; the worker
/// script is stamped with that version, so a new build also installs a new
/// worker. Pages are not listed: the worker keeps each page it serves.
fn write_precache(site: &Path, bundle: &Bundle, worker: &[String]) -> Result<(), PublishError> {
    let mut hasher = Sha256::new();
    hasher.update(bundle.js.as_bytes());
    hasher.update(bundle.wasm.as_bytes());
    for name in worker {
        let path = site.join(name);
        let bytes = fs::read(&path).map_err(|source| read_err(&path, source))?;
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
    }
    let version = hex(&hasher.finalize()[..8]);

    // The worker adds its own wasm (with the version in the address).
    let manifest = serde_json::json!({
        "version": version,
        "urls": ["/", bundle.js, bundle.wasm],
        "immutable": [bundle.js, bundle.wasm],
    });
    let path = site.join("precache.json");
    write(&path, manifest.to_string().as_bytes())?;

    let script = site.join("sw.js");
    let text = fs::read_to_string(&script).map_err(|source| read_err(&script, source))?;
    const UNSTAMPED: &str = "const BUILD = 'dev';";
    if !text.contains(UNSTAMPED) {
        return Err(PublishError::Write {
            path: script,
            source: std::io::Error::other("sw.js has no `const BUILD = 'dev';` line to stamp"),
        });
    }
    let stamped = text.replacen(UNSTAMPED, &format!("const BUILD = '{version}';"), 1);
    write(&script, stamped.as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| write_err(dir, source))?;
    }
    fs::write(path, bytes).map_err(|source| write_err(path, source))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn copy(from: &Path, to: &Path) -> Result<(), PublishError> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(|source| write_err(dir, source))?;
    }
    fs::copy(from, to).map_err(|source| read_err(from, source))?;
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, PublishError> {
    std::path::absolute(path).map_err(|source| read_err(path, source))
}

fn read_err(path: &Path, source: std::io::Error) -> PublishError {
    PublishError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_err(path: &Path, source: std::io::Error) -> PublishError {
    PublishError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::{harden_inline_state, node_keys, PublishError};

    #[test]
    fn a_site_must_name_valid_node_keys() {
        let key = "ab".repeat(32);

        assert_eq!(node_keys(&[key.to_uppercase()]).unwrap(), vec![key]);
        assert!(matches!(node_keys(&[]), Err(PublishError::NoNodeKeys)));
        assert!(matches!(
            node_keys(&["abc".into()]),
            Err(PublishError::BadNodeKey { .. })
        ));
    }

    #[test]
    fn markup_in_an_inline_state_cannot_end_its_script() {
        let html = "<script>window.__PERSEUS_INITIAL_STATE = `{\"title\":\"a</script><script>x()</script>\\` <b>\"}`;\nwindow.__PERSEUS_INITIAL_WIDGET_STATES = `{}`;</script><p>kept <as is></p>";

        let hardened = harden_inline_state(html).unwrap();

        assert_eq!(
            hardened,
            "<script>window.__PERSEUS_INITIAL_STATE = `{\"title\":\"a\\x3c/script>\\x3cscript>x()\\x3c/script>\\` \\x3cb>\"}`;\nwindow.__PERSEUS_INITIAL_WIDGET_STATES = `{}`;</script><p>kept <as is></p>"
        );
        assert_eq!(hardened.matches("</script>").count(), 1);
    }

    #[test]
    fn an_unterminated_state_is_an_error() {
        assert!(harden_inline_state("window.__PERSEUS_INITIAL_STATE = `{").is_err());
    }
}
