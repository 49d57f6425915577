//! `votemesh-verify`: recounts one poll from one or more export files, alone.
//!
//! The logic lives in `crdt::audit`; this binary reads files line by line,
//! spreads signature checks over all cores, and prints the report. It depends
//! on `crdt` alone among the workspace crates so it stays small enough to audit.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use crdt::admit_parallel_with;
use crdt::audit::{Audit, Report, CHECKS, MAX_FAILURES_KEPT};
use crdt::decode_lines;
use crdt::export::{RecordError, MAX_LINE_BYTES};

/// Lines decoded per block: one block is held in memory at a time.
const BLOCK_LINES: usize = 16_384;
/// Bytes of lines per block, whatever their number.
const BLOCK_BYTES: usize = 64 * 1024 * 1024;

const EXIT_VERIFIED: u8 = 0;
const EXIT_FAILED: u8 = 1;
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "votemesh-verify",
    version,
    about = "Recount a votemesh poll from its signed export files, independently of any node.",
    long_about = None,
    after_long_help = AFTER_HELP,
    after_help = "Run with --help for the checks, the output and the exit codes."
)]
struct Args {
    /// Print the report as one JSON object (crdt's audit report plus a
    /// `verified` bool) instead of text.
    #[arg(long)]
    json: bool,

    /// Worker threads for signature checks [default: one per core].
    #[arg(long, value_name = "N")]
    threads: Option<std::num::NonZeroUsize>,

    /// Export files (JSON Lines, docs/export-format.md) of the same poll. Their
    /// union is recounted; each file's attestations are checked against that
    /// file's own entries. `-` reads standard input.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

const AFTER_HELP: &str = "\
Every file is read line by line. The union of the entries of all files is
recounted under the poll's rules (docs/encoding.md); the numbered checks are:

  1  the first line is a header of a supported format and version
  2  the poll is signed by its organizer and is the poll every file names
  3  every line decodes as a record
  4  no entry appears twice in one file
  5  every entry is for this poll, for an option, inside the window, eligible
  6  every entry signature and credential passes the acceptance rule
  7  every file carries at least one attestation
  8  every attestation is signed by its node for this poll
  9  every attestation matches the digest and entry count of its own file

All failures are listed, each as `check N [file:line] entry <short>: message`.
Equivocations (one voter, one seq, two entries) are reported, not failures:
the tally rule resolves them.

Output: the poll, the check table, the recount (count and share per option),
voters, entries and digest of the union, one line per file, equivocations,
failures, and a last line `verified: yes` or `verified: NO (k failures)`.
With --json: one JSON object instead.

What this proves: the counts follow from the signed votes in the files, and
each file is what its node attested. What it cannot prove: that no node
withheld votes from every file given. Votes are signed and public to whoever
holds an export: there is no ballot secrecy and no coercion resistance.

Exit status:
  0  verified: every check passed
  1  at least one check failed
  2  usage error, or a file could not be read";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::from(EXIT_VERIFIED),
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("votemesh-verify: error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Reads, audits and prints; `Ok(verified)` unless an input or output failed.
fn run(args: &Args) -> anyhow::Result<bool> {
    if args.files.iter().filter(|f| is_stdin(f)).count() > 1 {
        bail!("`-` (standard input) can be given only once");
    }

    let threads = args
        .threads
        .map(usize::from)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);

    let mut audit = Audit::new();
    for path in &args.files {
        read_file(&mut audit, path, threads)?;
    }
    let report = audit.finish(|poll, votes| admit_parallel_with(poll, votes, threads));
    let verified = report.verified();

    let text = if args.json {
        json(&report)?
    } else {
        human(&report)
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the report")?;
    Ok(verified)
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Streams one file into the audit. Bytes that are not UTF-8 reach the audit
/// as replacement characters, so such a line fails check 3 with its number.
fn read_file(audit: &mut Audit, path: &Path, threads: usize) -> anyhow::Result<()> {
    let (name, input): (String, Box<dyn Read>) = if is_stdin(path) {
        ("<stdin>".into(), Box::new(io::stdin().lock()))
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        (path.display().to_string(), Box::new(file))
    };

    let index = audit.start_file(&name);
    let mut reader = BufReader::new(input);
    let mut block: Vec<String> = Vec::new();
    let mut too_long: Vec<usize> = Vec::new();
    let mut block_bytes = 0;
    let mut buf = Vec::new();
    loop {
        let line = read_line_bounded(&mut reader, &mut buf)
            .with_context(|| format!("cannot read {name}"))?;
        let end = line.is_none();
        match line {
            Some(true) => {
                block_bytes += buf.len();
                block.push(String::from_utf8_lossy(&buf).into_owned());
            }
            Some(false) => {
                too_long.push(block.len());
                block.push(String::new());
            }
            None => {}
        }

        // Decode in blocks bounded in lines and bytes, so memory stays bounded.
        if end || block.len() == BLOCK_LINES || block_bytes >= BLOCK_BYTES {
            let mut decoded = decode_lines(&block, threads);
            for &i in &too_long {
                decoded[i] = Some(Err(RecordError::TooLong));
            }
            for item in decoded {
                audit.push_decoded(index, item);
            }
            block.clear();
            too_long.clear();
            block_bytes = 0;
        }
        if end {
            return Ok(());
        }
    }
}

/// Reads one line into `buf` without its line ending. `None` at the end of
/// the input; `Some(false)` for a line longer than [`MAX_LINE_BYTES`], whose
/// rest is skipped without being buffered.
fn read_line_bounded(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    if reader.by_ref().take(limit).read_until(b'\n', buf)? == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') || buf.len() <= MAX_LINE_BYTES {
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        return Ok(Some(true));
    }

    buf.clear();
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Some(false));
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(Some(false));
            }
            None => {
                let len = chunk.len();
                reader.consume(len);
            }
        }
    }
}

fn json(report: &Report) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(report).context("serializing the report")?;
    value["verified"] = report.verified().into();
    Ok(serde_json::to_string(&value)? + "\n")
}

fn human(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_human(&mut out, report);
    out
}

fn write_human(out: &mut String, report: &Report) -> std::fmt::Result {
    match (&report.title, &report.poll) {
        (Some(title), Some(id)) => writeln!(out, "poll {title:?}\nid   {id}")?,
        _ => writeln!(out, "poll: no valid poll definition found")?,
    }

    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "\n #  {:<width$} {:>8} {:>8}",
        "check", "passed", "failed"
    )?;
    for check in &report.checks {
        let status = match (check.passed, check.failed) {
            (_, 1..) => "FAIL",
            (0, 0) => "-",
            _ => "OK",
        };
        writeln!(
            out,
            "{:>2}  {:<width$} {:>8} {:>8}  {status}",
            check.number, check.name, check.passed, check.failed
        )?;
    }
    debug_assert_eq!(report.checks.len(), CHECKS.len());

    if let Some(tally) = &report.tally {
        let width = report
            .options
            .iter()
            .map(|o| o.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        writeln!(
            out,
            "\nrecount\n  {:<width$} {:>10} {:>7}",
            "option", "count", "share"
        )?;
        for (label, count) in report.options.iter().zip(&tally.counts) {
            let share = match tally.voters {
                0 => "-".to_string(),
                voters => format!("{:.1}%", *count as f64 * 100.0 / voters as f64),
            };
            writeln!(out, "  {label:<width$} {count:>10} {share:>7}")?;
        }
        writeln!(out, "voters   {}\nentries  {}", tally.voters, tally.entries)?;
    }
    if let Some(digest) = &report.digest {
        writeln!(out, "digest   {digest}")?;
    }

    writeln!(out, "\nfiles")?;
    for file in &report.files {
        let node = file.node.map_or_else(|| "-".to_string(), |n| n.short());
        writeln!(
            out,
            "  {}  node {node}  entries {}  digest {}  attestations {}",
            file.name,
            file.entries,
            file.digest.short(),
            file.attestations
        )?;
    }

    if report.equivocations.is_empty() {
        writeln!(out, "\nequivocations: none")?;
    } else {
        writeln!(out, "\nequivocations: {}", report.equivocations.len())?;
        for e in &report.equivocations {
            let entries: Vec<String> = e.entries.iter().map(|h| h.short()).collect();
            writeln!(
                out,
                "  voter {} seq {}: entries {}",
                e.voter.short(),
                e.seq,
                entries.join(", ")
            )?;
        }
    }

    if !report.failures.is_empty() {
        writeln!(out, "\nfailures")?;
        for f in &report.failures {
            let place = match (f.file.is_empty(), f.line) {
                (true, _) => "all files".to_string(),
                (false, Some(line)) => format!("{}:{line}", f.file),
                (false, None) => f.file.clone(),
            };
            let entry = f
                .entry
                .map(|e| format!(" entry {}", e.short()))
                .unwrap_or_default();
            writeln!(out, "  check {} [{place}]{entry}: {}", f.check, f.message)?;
        }
        if report.failures_omitted > 0 {
            let omitted = report.failures_omitted;
            writeln!(
                out,
                "  ... and {omitted} more (the first {MAX_FAILURES_KEPT} of each check are listed)"
            )?;
        }
    }

    let total: u64 = report.checks.iter().map(|c| c.failed).sum();
    match total {
        _ if report.verified() => writeln!(out, "\nverified: yes"),
        0 => writeln!(out, "\nverified: NO (no poll)"),
        n => writeln!(
            out,
            "\nverified: NO ({n} failure{})",
            if n == 1 { "" } else { "s" }
        ),
    }
}
