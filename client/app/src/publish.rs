//! `votemesh-client publish`: renders the pages of a set of polls into a
//! directory the edge relay serves.
//!
//! Input: a site file (JSON) holding each poll as the node serves it
//! (`GET /v1/polls/{id}`) with its tally (`GET /v1/polls/{id}/tally`), and the
//! browser assets (`client/build.sh` makes them). Every poll's signature is
//! checked before a page is made for it. Output: `poll/<id>/index.html`,
//! `results/<id>/index.html`, `index.html`, the page app under
//! content-addressed names in `.perseus/`, the service worker,
//! `precache.json`, the app shell the service worker keeps for offline use,
//! and `.votemesh-site`, the mark of a directory this command made.
//!
//! Each poll stands alone: one that is not valid, or whose pages fail to
//! render or to pass the check of their inline state (see `finish`), is left
//! out with a warning naming it, and the others are published.
//!
//! The directory is replaced whole (swapped atomically where the file system
//! can), so a relay serving it never sees half a site. A directory that is
//! not empty is replaced only if it holds `.votemesh-site`: pointed at a
//! directory of something else by mistake, the command refuses rather than
//! deleting it. Its scratch files (`.publish-<pid>`, `.replaced-<pid>`,
//! beside the output) are removed on every way out but a kill.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use clap::Parser;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::finish::{finish_page, Edits};
use crate::isolate::{render, skip, Failure};
use crate::state::PollPage;

/// The file that marks a directory this command made (and may replace).
pub(crate) const SITE_MARKER: &str = ".votemesh-site";

/// The element Perseus fills with each page's content, found by text.
const PERSEUS_ROOT: [&str; 2] = ["<div id=\"root\">", "<div id='root'>"];

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
    /// The directory to write, replaced whole: missing, empty, or made by an
    /// earlier run (it holds a `.votemesh-site` file); any other directory is
    /// refused, never deleted.
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
    #[error("no poll {0} in the site being published")]
    UnknownPoll(String),
    #[error("the site file names no node key: the pages would trust no receipt")]
    NoNodeKeys,
    #[error("node key {key:?} in the site file is not a public key (64 hex characters)")]
    BadNodeKey { key: String },
    #[error("{} is not empty and holds no {SITE_MARKER}: it was not made by `votemesh-client publish`, so it is not replaced; give an empty or new directory", path.display())]
    NotASite { path: PathBuf },
    #[error("{} has no parent directory to work in", path.display())]
    NoParent { path: PathBuf },
    #[error("rendering failed: {0}")]
    Render(String),
}

/// The polls being published, by id.
pub(crate) struct Site {
    pub(crate) polls: BTreeMap<String, PollPage>,
    /// The keys (hex) of the nodes whose receipts every page trusts.
    pub(crate) node_keys: Vec<String>,
}

/// The polls of the rendering under way (each attempt may render a subset).
static SITE: RwLock<Option<Arc<Site>>> = RwLock::new(None);

/// The site being rendered. Set before each rendering starts.
pub(crate) fn site() -> Arc<Site> {
    SITE.read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .expect("the site is set before rendering")
}

fn set_site(polls: BTreeMap<String, PollPage>, node_keys: &[String]) {
    let site = Site {
        polls,
        node_keys: node_keys.to_vec(),
    };
    *SITE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(site));
}

/// What [`load_site`] finds: the valid polls, the node keys, how many polls
/// were left out.
type SiteContents = (BTreeMap<String, PollPage>, Vec<String>, usize);

#[derive(Deserialize)]
struct SiteFile {
    published_at: u64,
    #[serde(default)]
    node_keys: Vec<String>,
    polls: Vec<serde_json::Value>,
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
        Ok(report) => {
            println!(
                "published {} poll(s) to {}; {} left out",
                report.published,
                args.out.display(),
                report.skipped
            );
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

/// What a publication did.
struct Report {
    published: usize,
    skipped: usize,
}

/// Scratch directories removed however `publish` ends (errors and panics
/// included); the working directory is left first.
struct Scratch {
    parent: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.parent);
        for dir in &self.dirs {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn publish(args: &PublishArgs) -> Result<Report, PublishError> {
    let out = absolute(&args.out)?;
    let assets = absolute(&args.assets)?;
    check_out(&out)?;
    let (polls, node_keys, invalid) = load_site(&args.site)?;
    let parent = out
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| PublishError::NoParent { path: out.clone() })?;
    let bundle = Bundle::read(&assets)?;

    // Perseus renders into `./dist`; give it a fresh directory beside the output.
    let work = parent.join(format!(".publish-{}", std::process::id()));
    let replaced = parent.join(format!(".replaced-{}", std::process::id()));
    let _scratch = Scratch {
        parent: parent.clone(),
        dirs: vec![work.clone(), replaced.clone()],
    };
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|source| write_err(&work, source))?;
    std::env::set_current_dir(&work).map_err(|source| write_err(&work, source))?;

    let wanted = polls.len();
    let published = render(polls, &mut |polls| {
        attempt(&work, polls, &node_keys, &bundle)
    })?;

    let staged = work.join("dist/exported");
    bundle.install(&staged)?;
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
    write(
        &staged.join(SITE_MARKER),
        b"Made by `votemesh-client publish`, which replaces this directory whole at each rendering.\n",
    )?;

    swap(&staged, &out, &replaced)?;
    Ok(Report {
        published,
        skipped: invalid + wanted - published,
    })
}

/// Refuses an output directory this command did not make, unless empty.
fn check_out(out: &Path) -> Result<(), PublishError> {
    match fs::metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(read_err(out, source)),
        Ok(meta) if !meta.is_dir() => return Err(PublishError::NotASite { path: out.into() }),
        Ok(_) => {}
    }
    if out.join(SITE_MARKER).is_file() {
        return Ok(());
    }
    let mut entries = fs::read_dir(out).map_err(|source| read_err(out, source))?;
    match entries.next() {
        None => Ok(()),
        Some(_) => Err(PublishError::NotASite { path: out.into() }),
    }
}

/// Puts `staged` in place of `out` in one step where the file system can
/// exchange two names (Linux `renameat2`), so no request finds the site
/// missing; otherwise in two renames. The old site ends in `staged`'s place
/// or in `replaced`, both removed with the scratch directories.
fn swap(staged: &Path, out: &Path, replaced: &Path) -> Result<(), PublishError> {
    if !out.exists() {
        return fs::rename(staged, out).map_err(|source| write_err(out, source));
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        if renameat_with(CWD, staged, CWD, out, RenameFlags::EXCHANGE).is_ok() {
            return Ok(());
        }
    }
    fs::rename(out, replaced).map_err(|source| write_err(out, source))?;
    fs::rename(staged, out).map_err(|source| {
        // Put the old site back rather than leave none.
        let _ = fs::rename(replaced, out);
        write_err(out, source)
    })
}

/// One rendering of the pages of `polls` into `work/dist/exported`, each
/// page finished (see `finish`).
fn attempt(
    work: &Path,
    polls: &BTreeMap<String, PollPage>,
    node_keys: &[String],
    bundle: &Bundle,
) -> Result<(), Failure> {
    let dist = work.join("dist");
    if dist.exists() {
        fs::remove_dir_all(&dist).map_err(|source| Failure::Fatal(write_err(&dist, source)))?;
    }
    set_site(polls.clone(), node_keys);

    // A panic while rendering (a template's bug meeting one poll's data)
    // fails this attempt, not the publication.
    let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        Ok::<_, std::io::Error>(
            runtime.block_on(perseus::engine::run_dflt_engine_export_only(
                perseus::engine::EngineOperation::Export,
                crate::app::<sycamore::web::SsrNode>,
            )),
        )
    }));
    match rendered {
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            return Err(Failure::Whole(format!("the renderer panicked: {message}")));
        }
        Ok(Err(source)) => return Err(Failure::Fatal(write_err(work, source))),
        Ok(Ok(0)) => {}
        Ok(Ok(code)) => {
            return Err(Failure::Whole(format!(
                "Perseus exited with code {code}; it printed the reason above"
            )))
        }
    }

    let site = work.join("dist/exported");
    let mut pages = Vec::new();
    html_files(&site, &mut pages).map_err(Failure::Fatal)?;
    pages.sort();
    let head = bundle.hints();
    // Perseus loads the app with `import init from "/.perseus/bundle.js"`
    // and `init("/.perseus/bundle.wasm")` in every page; wasm-bindgen now
    // takes the wasm's address in an object (a bare string still works, with
    // a deprecation warning in the console).
    let js = format!("\"{}\"", bundle.js);
    let wasm = format!("{{ module_or_path: \"{}\" }}", bundle.wasm);
    let refs = [
        ("\"/.perseus/bundle.js\"", js.as_str()),
        ("\"/.perseus/bundle.wasm\"", wasm.as_str()),
    ];
    let edits = Edits {
        head: &head,
        script_refs: &refs,
    };
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut whole = None;
    for page in pages {
        let html =
            fs::read_to_string(&page).map_err(|source| Failure::Fatal(read_err(&page, source)))?;
        let relative = page.strip_prefix(&site).unwrap_or(&page).to_path_buf();
        match finish_page(&html, &edits) {
            Ok(finished) => write(&page, finished.as_bytes()).map_err(Failure::Fatal)?,
            Err(reason) => {
                let reason = format!("page {} refused: {reason}", relative.display());
                match poll_of(&relative, polls) {
                    Some(id) if !refused.iter().any(|(known, _)| *known == id) => {
                        refused.push((id, reason));
                    }
                    Some(_) => {}
                    None => whole = whole.or(Some(reason)),
                }
            }
        }
    }
    if !refused.is_empty() {
        return Err(Failure::Polls(refused));
    }
    match whole {
        Some(reason) => Err(Failure::Whole(reason)),
        None => Ok(()),
    }
}

/// The poll a page belongs to: `poll/<id>/...` or `results/<id>/...`.
fn poll_of(page: &Path, polls: &BTreeMap<String, PollPage>) -> Option<String> {
    let mut parts = page.components().map(|c| c.as_os_str().to_string_lossy());
    let template = parts.next()?;
    let id = parts.next()?;
    let id = id.strip_suffix(".html").unwrap_or(&id);
    (matches!(template.as_ref(), "poll" | "results") && polls.contains_key(id))
        .then(|| id.to_string())
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

/// Reads the site file and checks each poll; returns the valid ones, the
/// trusted node keys and how many polls were left out (each with a warning).
fn load_site(path: &Path) -> Result<SiteContents, PublishError> {
    let bytes = fs::read(path).map_err(|source| read_err(path, source))?;
    let file: SiteFile =
        serde_json::from_slice(&bytes).map_err(|source| PublishError::SiteJson {
            path: path.to_path_buf(),
            source,
        })?;
    let node_keys = node_keys(&file.node_keys)?;
    let mut polls = BTreeMap::new();
    let mut invalid = 0;
    for (index, entry) in file.polls.into_iter().enumerate() {
        match poll_page(index, entry, file.published_at) {
            Ok(page) => {
                polls.insert(page.id.clone(), page);
            }
            Err((poll, reason)) => {
                skip(&poll, &reason);
                invalid += 1;
            }
        }
    }
    Ok((polls, node_keys, invalid))
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

/// One poll of the site file, checked; or the poll (its id, or its place in
/// the file) and what is wrong with it.
fn poll_page(
    index: usize,
    entry: serde_json::Value,
    published_at: u64,
) -> Result<PollPage, (String, String)> {
    let place = || format!("#{index} of the site file");
    let entry: SitePoll = serde_json::from_value(entry)
        .map_err(|e| (place(), format!("not a poll and its tally: {e}")))?;
    let poll = crdt::Poll::from_json(&entry.poll)
        .map_err(|e| (place(), format!("not a valid signed poll: {e}")))?;
    poll.verify()
        .map_err(|e| (place(), format!("not a valid signed poll: {e}")))?;
    let id = poll.id.to_string();
    let draft = &poll.draft;
    // Perseus puts each page's content after every `<div id="root">`
    // (or `'root'`) of the page by replacing text, wherever that text is:
    // in an organizer's words it would land inside the inline state or an
    // attribute.
    if let Some(text) = std::iter::once(&draft.title)
        .chain(&draft.options)
        .find(|text| PERSEUS_ROOT.iter().any(|root| text.contains(root)))
    {
        return Err((
            id,
            format!("{text:?} holds the page root marker, which Perseus would replace"),
        ));
    }
    let bad_tally = |reason: &str| (id.clone(), format!("its tally does not fit it: {reason}"));
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
    js_bytes: Vec<u8>,
    wasm_bytes: Vec<u8>,
    js_path: PathBuf,
    wasm_path: PathBuf,
}

impl Bundle {
    /// Reads the page app and names it by a hash of its content, so browsers
    /// may cache it for a year.
    fn read(assets: &Path) -> Result<Bundle, PublishError> {
        let (js_path, wasm_path) = (assets.join("bundle.js"), assets.join("bundle.wasm"));
        let js_bytes = fs::read(&js_path).map_err(|source| read_err(&js_path, source))?;
        let wasm_bytes = fs::read(&wasm_path).map_err(|source| read_err(&wasm_path, source))?;
        let mut hasher = Sha256::new();
        hasher.update((js_bytes.len() as u64).to_be_bytes());
        hasher.update(&js_bytes);
        hasher.update(&wasm_bytes);
        let hash = hex(&hasher.finalize()[..8]);
        Ok(Bundle {
            js: format!("/.perseus/bundle.{hash}.js"),
            wasm: format!("/.perseus/bundle.{hash}.wasm"),
            js_bytes,
            wasm_bytes,
            js_path,
            wasm_path,
        })
    }

    /// Fetch the script and the wasm at once, with the page, rather than the
    /// wasm only once the script has run: one round trip less before the
    /// vote buttons work on a slow connection.
    fn hints(&self) -> String {
        format!(
            "<link rel=modulepreload href={}><link rel=preload href={} as=fetch type=application/wasm crossorigin>",
            self.js, self.wasm
        )
    }

    /// Writes the app into `site` with its precompressed copies
    /// (`client/build.sh` makes them), under the same names.
    fn install(&self, site: &Path) -> Result<(), PublishError> {
        write(&site.join(&self.js[1..]), &self.js_bytes)?;
        write(&site.join(&self.wasm[1..]), &self.wasm_bytes)?;
        for (from, to) in [(&self.js_path, &self.js), (&self.wasm_path, &self.wasm)] {
            for ext in [".br", ".gz"] {
                let mut source = from.as_os_str().to_owned();
                source.push(ext);
                let source = PathBuf::from(source);
                if source.is_file() {
                    copy(&source, &site.join(format!("{}{ext}", &to[1..])))?;
                }
            }
        }
        Ok(())
    }
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
    use super::*;
    use std::sync::Mutex;

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

    /// `publish` changes the working directory and the site being rendered,
    /// both process-wide: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("votemesh-publish-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Stand-ins for the browser build: the renderer only copies them.
    fn assets(dir: &Path) -> PathBuf {
        let assets = dir.join("assets");
        fs::create_dir_all(assets.join("sw")).unwrap();
        fs::write(
            assets.join("bundle.js"),
            "export default async function init() {}\n",
        )
        .unwrap();
        fs::write(assets.join("bundle.wasm"), b"\0asm\x01\0\0\0").unwrap();
        fs::write(assets.join("sw/sw.js"), "const BUILD = 'dev';\n").unwrap();
        assets
    }

    fn signed(title: &str, options: &[&str]) -> crdt::Poll {
        let organizer = crdt::SecretKey::from_seed(&[7; 32]);
        crdt::PollDraft {
            organizer: organizer.public(),
            created_at: 1,
            opens_at: 1_000,
            closes_at: 4_102_444_800_000,
            title: title.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            eligibility: crdt::Eligibility::Open,
        }
        .sign(&organizer)
        .unwrap()
    }

    fn entry(poll: &crdt::Poll, counts: &[u64]) -> serde_json::Value {
        serde_json::json!({
            "poll": poll,
            "tally": { "poll": poll.id.to_string(), "counts": counts, "entries": 1, "digest": "00" },
        })
    }

    fn run(
        dir: &Path,
        entries: Vec<serde_json::Value>,
        out: &Path,
    ) -> Result<Report, PublishError> {
        let site = dir.join("site.json");
        let node = crdt::SecretKey::from_seed(&[3; 32]).public().to_string();
        let file = serde_json::json!({ "published_at": 5, "node_keys": [node], "polls": entries });
        fs::write(&site, file.to_string()).unwrap();
        publish(&PublishArgs {
            site,
            assets: assets(dir),
            out: out.to_path_buf(),
        })
    }

    /// Names in `dir` that `publish` uses as scratch.
    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".publish-") || n.starts_with(".replaced-"))
            .collect()
    }

    /// Occurrences of `needle` (lowercase) in markup, not counting the
    /// double-quoted attribute values, where sycamore leaves `<` as it is.
    fn count_in_markup(html: &str, needle: &str) -> usize {
        let mut markup = String::new();
        let mut rest = html;
        while let Some(at) = rest.find("=\"") {
            markup.push_str(&rest[..at]);
            let value = &rest[at + 2..];
            rest = &value[value.find('"').unwrap() + 1..];
        }
        markup.push_str(rest);
        markup.to_ascii_lowercase().matches(needle).count()
    }

    /// The page's initial state: its literal holds no `<`; what it stands for.
    fn state_of(html: &str) -> serde_json::Value {
        let marker = "window.__PERSEUS_INITIAL_STATE = `";
        let start = html.find(&format!("<script>\n{marker}")).unwrap() + 9 + marker.len();
        let mut value = String::new();
        let mut chars = html[start..].chars();
        while let Some(c) = chars.next() {
            match c {
                '`' => break,
                '<' => panic!("`<` in the state: {html}"),
                '\\' => match chars.next().unwrap() {
                    'x' => {
                        let hex: String = chars.by_ref().take(2).collect();
                        value.push(u8::from_str_radix(&hex, 16).unwrap() as char);
                    }
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        serde_json::from_str(&value).unwrap()
    }

    #[test]
    fn hostile_polls_are_rendered_as_text_and_bad_ones_left_out() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = scratch("hostile");
        let out = dir.join("site");
        let plain = signed("Lunch", &["Soup", "Salad"]);
        let hostile = [
            signed(
                "window.__PERSEUS_INITIAL_STATE = `x` </script><script>window.pwned=1</script>",
                &[
                    "</script><!--<script>",
                    "${1+1}`\\",
                    "\u{2028}<img src=x onerror=alert(1)>",
                ],
            ),
            signed(
                "</SCRIPT ><script>alert(1)</script>",
                &[
                    "window.__PERSEUS_GLOBAL_STATE = `",
                    "\"/.perseus/bundle.js\"",
                ],
            ),
        ];
        let huge = signed("Huge counts", &["a", "b", "c"]);
        let mut forged = serde_json::to_value(signed("Forged", &["a", "b"])).unwrap();
        forged["title"] = "Forged!".into();
        let mut entries = vec![
            entry(&plain, &[1, 2]),
            entry(&huge, &[u64::MAX, u64::MAX, 3]),
        ];
        entries.extend(
            hostile
                .iter()
                .map(|p| entry(p, &[0; 3][..p.option_count()])),
        );
        entries.push(serde_json::json!({ "poll": forged, "tally": {} }));
        entries.push(entry(&signed("Root", &["<div id='root'>", "b"]), &[0, 0]));
        entries.push(entry(&plain, &[1]));

        let report = run(&dir, entries, &out).unwrap();

        assert_eq!((report.published, report.skipped), (4, 3));
        let page = |kind: &str, poll: &crdt::Poll| {
            fs::read_to_string(out.join(kind).join(poll.id.to_string()).join("index.html")).unwrap()
        };
        let scripts = count_in_markup(&page("poll", &plain), "<script");
        assert!(scripts >= 2);
        for poll in hostile.iter().chain([&plain, &huge]) {
            for kind in ["poll", "results"] {
                let html = page(kind, poll);
                let title = &poll.draft.title;
                assert_eq!(
                    count_in_markup(&html, "<script"),
                    scripts,
                    "{kind} {title}: {html}"
                );
                assert_eq!(
                    count_in_markup(&html, "</script"),
                    scripts,
                    "{kind} {title}: {html}"
                );
                assert_eq!(count_in_markup(&html, "<!--"), 0, "{html}");
                assert_eq!(count_in_markup(&html, "<img"), 0, "{html}");
                let state = state_of(&html);
                assert_eq!(state["title"], title.as_str());
                assert_eq!(state["options"], serde_json::json!(poll.draft.options));
            }
        }
        // The huge counts saturate: the results page shows them.
        assert!(
            page("results", &huge).contains(&format!("Live results. {} votes counted.", u64::MAX))
        );
        assert!(out.join(SITE_MARKER).is_file());
        assert_eq!(leftovers(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_not_made_here_is_refused_and_kept() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = scratch("refuse");
        let out = dir.join("home");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("precious.txt"), "keep me").unwrap();
        let poll = signed("Lunch", &["Soup", "Salad"]);

        let refused = run(&dir, vec![entry(&poll, &[0, 0])], &out);

        assert!(
            matches!(refused, Err(PublishError::NotASite { .. })),
            "{:?}",
            refused.err()
        );
        assert_eq!(
            fs::read_to_string(out.join("precious.txt")).unwrap(),
            "keep me"
        );
        assert_eq!(leftovers(&dir), Vec::<String>::new());

        // Empty, then made here: replaced each time.
        fs::remove_file(out.join("precious.txt")).unwrap();
        run(&dir, vec![entry(&poll, &[0, 0])], &out).unwrap();
        run(&dir, vec![entry(&poll, &[1, 0])], &out).unwrap();
        assert!(out
            .join("poll")
            .join(poll.id.to_string())
            .join("index.html")
            .is_file());
        assert_eq!(leftovers(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scratch_files_are_removed_when_publishing_fails() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = scratch("fails");
        let out = dir.join("site");
        let poll = signed("Lunch", &["Soup", "Salad"]);
        run(&dir, vec![entry(&poll, &[0, 0])], &out).unwrap();
        // No service worker in the build: the publication fails after rendering.
        fs::remove_dir_all(dir.join("assets/sw")).unwrap();
        let site = dir.join("site.json");

        let failed = publish(&PublishArgs {
            site,
            assets: dir.join("assets"),
            out: out.clone(),
        });

        assert!(failed.is_err());
        assert_eq!(leftovers(&dir), Vec::<String>::new());
        assert!(
            out.join("poll")
                .join(poll.id.to_string())
                .join("index.html")
                .is_file(),
            "the old site stays"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
