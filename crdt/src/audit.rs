//! Independent recount of one or more exports (the verifier's logic).
//!
//! Feed every line of every export file to an [`Audit`], then call
//! [`Audit::finish`]. Each check below is numbered; every failure names the
//! check, the file and line, and the entry where there is one. All failures
//! are collected rather than stopping at the first.
//!
//! | # | check |
//! |---|-------|
//! | 1 | the first line is a header of a supported format and version |
//! | 2 | the poll decodes, its organizer signature verifies, and it is the poll the header (and every other file) names |
//! | 3 | every line decodes as a record |
//! | 4 | no entry appears twice in one file |
//! | 5 | every entry is for this poll, for an option, cast inside the window, and eligible |
//! | 6 | every entry's signature, and its credential's, passes the acceptance rule |
//! | 7 | every file carries at least one attestation |
//! | 8 | every attestation is signed by its node and names this poll |
//! | 9 | every attestation's digest and entry count equal those recomputed from its file |
//!
//! The recount is the tally of the union of all admitted entries of all files.

use serde::Serialize;

use crate::admit::admit_batch;
use crate::digest::digest_sorted;
use crate::error::Rejection;
use crate::export::{Header, Record, RecordError, FORMAT, VERSION};
use crate::ids::{Digest, EntryHash, PollId, PublicKey};
use crate::poll::Poll;
use crate::statement::Attestation;
use crate::tally::{Equivocation, Tally, TallyState};
use crate::vote::Vote;

/// The numbered checks, as `(number, name)`.
pub const CHECKS: [(u8, &str); 9] = [
    (1, "header names a supported format and version"),
    (
        2,
        "poll is signed by its organizer and is the poll named everywhere",
    ),
    (3, "every line decodes as a record"),
    (4, "no entry appears twice in one file"),
    (
        5,
        "every entry is for an option, inside the window, and eligible",
    ),
    (
        6,
        "every entry signature and credential passes the acceptance rule",
    ),
    (7, "every file carries at least one attestation"),
    (8, "every attestation is signed by its node for this poll"),
    (
        9,
        "every attestation matches the digest and count of its file",
    ),
];

/// Failures kept per check; the rest are counted only, so a hostile file
/// cannot make the report arbitrarily large.
pub const MAX_FAILURES_KEPT: u64 = 1_000;

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The check's number in [`CHECKS`].
    pub check: u8,
    /// The file.
    pub file: String,
    /// The 1-based line, where one line is at fault.
    pub line: Option<u64>,
    /// The entry, where one entry is at fault.
    pub entry: Option<EntryHash>,
    /// A stable code for the failure.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// How one check went over all inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckSummary {
    /// The check's number.
    pub number: u8,
    /// What it checks.
    pub name: &'static str,
    /// Items that passed it.
    pub passed: u64,
    /// Items that failed it.
    pub failed: u64,
}

/// What one file contributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The file's name as given.
    pub name: String,
    /// The node that wrote it, from its header.
    pub node: Option<PublicKey>,
    /// Distinct entries decoded from it.
    pub entries: u64,
    /// The digest recomputed over those entries.
    pub digest: Digest,
    /// Attestations it carries.
    pub attestations: u64,
}

/// The verifier's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The poll, if one was found.
    pub poll: Option<PollId>,
    /// Its title.
    pub title: Option<String>,
    /// Its option labels.
    pub options: Vec<String>,
    /// Every check with its pass and fail counts.
    pub checks: Vec<CheckSummary>,
    /// The failures, in input order within each check: every one, up to
    /// [`MAX_FAILURES_KEPT`] per check (the counts in `checks` are complete).
    pub failures: Vec<Failure>,
    /// Failures counted but not kept, past [`MAX_FAILURES_KEPT`] per check.
    pub failures_omitted: u64,
    /// Per-file summaries.
    pub files: Vec<FileSummary>,
    /// The recount over the union of admitted entries.
    pub tally: Option<Tally>,
    /// The digest over the union of admitted entries.
    pub digest: Option<Digest>,
    /// Equivocations among the admitted entries (reported, not failures).
    pub equivocations: Vec<Equivocation>,
}

impl Report {
    /// True when no check failed.
    pub fn verified(&self) -> bool {
        self.failures.is_empty() && self.failures_omitted == 0 && self.poll.is_some()
    }
}

struct FileState {
    name: String,
    header: Option<Header>,
    lines: u64,
    has_poll: bool,
    /// Every entry line as (hash, line number), in input order; sorted,
    /// checked for duplicates (check 4) and turned into `entries` at the end.
    seen: Vec<(EntryHash, u64)>,
    /// The file's distinct entries, ascending, once settled at the end.
    entries: Vec<EntryHash>,
    /// The digest of `entries`, once computed at the end.
    digest: Option<Digest>,
    attestations: Vec<(u64, Attestation)>,
}

/// Accumulates export lines; see the module docs.
pub struct Audit {
    files: Vec<FileState>,
    poll: Option<Poll>,
    /// Every entry with the place it was seen, in input order; made
    /// distinct (keeping the first place) at the end.
    votes: Vec<(Vote, usize, u64)>,
    failures: Vec<Failure>,
    passed: [u64; 10],
    failed: [u64; 10],
}

impl Default for Audit {
    fn default() -> Self {
        Self::new()
    }
}

impl Audit {
    /// An empty audit.
    pub fn new() -> Self {
        Audit {
            files: Vec::new(),
            poll: None,
            votes: Vec::new(),
            failures: Vec::new(),
            passed: [0; 10],
            failed: [0; 10],
        }
    }

    /// Starts a new input file; returns its index for [`Audit::push_line`].
    pub fn start_file(&mut self, name: impl Into<String>) -> usize {
        self.files.push(FileState {
            name: name.into(),
            header: None,
            lines: 0,
            has_poll: false,
            digest: None,
            seen: Vec::new(),
            entries: Vec::new(),
            attestations: Vec::new(),
        });
        self.files.len() - 1
    }

    fn fail(
        &mut self,
        check: u8,
        file: usize,
        line: Option<u64>,
        entry: Option<EntryHash>,
        code: &str,
        message: String,
    ) {
        let file = self.files[file].name.clone();
        self.record(Failure {
            check,
            file,
            line,
            entry,
            code: code.into(),
            message,
        });
    }

    /// Counts every failure; keeps the first [`MAX_FAILURES_KEPT`] of each check.
    fn record(&mut self, failure: Failure) {
        let check = failure.check as usize;
        self.failed[check] += 1;
        if self.failed[check] <= MAX_FAILURES_KEPT {
            self.failures.push(failure);
        }
    }

    /// Feeds the next line of file `file`. Blank lines are skipped.
    pub fn push_line(&mut self, file: usize, line: &str) {
        let decoded = (!line.trim().is_empty()).then(|| Record::from_line(line));
        self.push_decoded(file, decoded);
    }

    /// Feeds the next line of file `file` already decoded with
    /// [`Record::from_line`] (`None` for a blank line). Lets a caller decode
    /// lines on several threads and feed the results here in order.
    pub fn push_decoded(&mut self, file: usize, decoded: Option<Result<Record, RecordError>>) {
        self.files[file].lines += 1;
        let number = self.files[file].lines;
        let Some(decoded) = decoded else {
            if number == 1 {
                let message = "the first line is blank, not a header".to_string();
                self.fail(1, file, Some(number), None, "missing_header", message);
            }
            return;
        };

        let record = match decoded {
            Ok(record) => {
                self.passed[3] += 1;
                record
            }
            Err(e) => {
                let message = format!("line does not decode: {e}");
                self.fail(3, file, Some(number), None, "undecodable_line", message);
                if number == 1 {
                    let message = "the first line is not a header".to_string();
                    self.fail(1, file, Some(number), None, "missing_header", message);
                }
                return;
            }
        };

        let first = number == 1;
        match record {
            Record::Header(header) => self.header(file, number, header, first),
            _ if self.files[file].header.is_none() && first => {
                let message = "the first line is not a header".to_string();
                self.fail(1, file, Some(number), None, "missing_header", message);
                self.push_record(file, number, record);
            }
            record => self.push_record(file, number, record),
        }
    }

    fn header(&mut self, file: usize, number: u64, header: Header, first: bool) {
        if !first || self.files[file].header.is_some() {
            let message = "a header appears after line 1".to_string();
            return self.fail(1, file, Some(number), None, "misplaced_header", message);
        }
        if header.format != FORMAT || header.version != VERSION {
            let message = format!(
                "format {:?} version {} is not supported (this verifier reads {FORMAT:?} version {VERSION})",
                header.format, header.version
            );
            self.fail(1, file, Some(number), None, "unsupported_format", message);
        } else {
            self.passed[1] += 1;
        }
        self.files[file].header = Some(header);
    }

    fn push_record(&mut self, file: usize, number: u64, record: Record) {
        match record {
            Record::Header(_) => unreachable!("handled by push_line"),
            Record::Poll(poll) => self.poll_record(file, number, poll),
            Record::Entry(vote) => {
                // Duplicates (check 4) are found when the file is settled.
                self.files[file].seen.push((vote.hash(), number));
                self.votes.push((vote, file, number));
            }
            Record::Attestation(a) => self.files[file].attestations.push((number, a)),
        }
    }

    fn poll_record(&mut self, file: usize, number: u64, poll: Poll) {
        self.files[file].has_poll = true;
        if let Err(e) = poll.verify() {
            return self.fail(
                2,
                file,
                Some(number),
                None,
                "bad_poll_signature",
                e.to_string(),
            );
        }
        if let Some(header) = &self.files[file].header {
            if header.poll != poll.id {
                let message = format!(
                    "poll {} is not the poll {} the header names",
                    poll.id, header.poll
                );
                return self.fail(2, file, Some(number), None, "poll_mismatch", message);
            }
        }
        match &self.poll {
            Some(known) if known.id != poll.id => {
                let message = format!(
                    "poll {} differs from poll {} of the other files",
                    poll.id, known.id
                );
                self.fail(2, file, Some(number), None, "poll_mismatch", message);
            }
            Some(_) => self.passed[2] += 1,
            None => {
                self.passed[2] += 1;
                self.poll = Some(poll);
            }
        }
    }

    /// Check 4 for every file, in file then line order: sorts each file's
    /// entries, keeps the first line of each hash and fails the others.
    fn settle_files(&mut self) {
        for file in 0..self.files.len() {
            let mut seen = std::mem::take(&mut self.files[file].seen);
            // Stable: the lines of one hash stay in input order.
            seen.sort_by_key(|e| e.0);
            let mut entries: Vec<EntryHash> = Vec::with_capacity(seen.len());
            let mut repeated: Vec<(u64, EntryHash)> = Vec::new();
            for (hash, line) in seen {
                if entries.last() == Some(&hash) {
                    repeated.push((line, hash));
                } else {
                    entries.push(hash);
                }
            }
            self.passed[4] += entries.len() as u64;
            self.files[file].entries = entries;
            repeated.sort_unstable();
            for (line, hash) in repeated {
                let message = format!("entry {hash} appears more than once");
                self.fail(4, file, Some(line), Some(hash), "duplicate_entry", message);
            }
        }
    }

    /// The distinct entries of all files, ascending, each with the first
    /// place it was seen (file, then line order).
    fn distinct_votes(&mut self) -> Vec<(Vote, usize, u64)> {
        let mut votes = std::mem::take(&mut self.votes);
        // Stable: of equal hashes, the first place seen comes first.
        votes.sort_by_key(|v| v.0.hash());
        votes.dedup_by(|later, first| later.0.hash() == first.0.hash());
        votes
    }

    /// Runs the entry and attestation checks and recounts. `admit` decides
    /// admission for a batch of votes: pass [`crate::admit_batch`], or a
    /// function that spreads the same call over threads.
    pub fn finish(
        mut self,
        admit: impl Fn(&Poll, &[Vote]) -> Vec<Result<(), Rejection>>,
    ) -> Report {
        self.settle_files();
        // A file with no line at all has no first line for check 1 to fail on.
        for file in 0..self.files.len() {
            if self.files[file].lines == 0 {
                let message = "file is empty: it has no header".to_string();
                self.fail(1, file, None, None, "missing_header", message);
            }
        }

        let Some(poll) = self.poll.clone() else {
            let message = "no valid poll definition in any file".to_string();
            self.fail_global(2, "missing_poll", message);
            return self.report(None, None, None, Vec::new());
        };

        // Votes and where each was first seen, apart, so the votes need no copy.
        let (places, batch): (Vec<(EntryHash, usize, u64)>, Vec<Vote>) = self
            .distinct_votes()
            .into_iter()
            .map(|(vote, file, line)| ((vote.hash(), file, line), vote))
            .unzip();
        let union: Vec<EntryHash> = places.iter().map(|p| p.0).collect();

        // While the signatures are checked (on every core), the digests and
        // the count as if every entry passes, the usual case; the count and
        // digest are redone below if one does not. A file that holds every
        // entry of the union holds exactly the union: same digest.
        let files: Vec<&[EntryHash]> = self.files.iter().map(|f| f.entries.as_slice()).collect();
        let (verdicts, (hopeful, union_digest, file_digests)) = concurrently(
            || admit(&poll, &batch),
            || {
                let mut tally = TallyState::new(poll.option_count());
                for vote in &batch {
                    tally.add(vote);
                }
                let digest = digest_sorted(&union).expect("distinct_votes sorts");
                let per_file: Vec<Digest> = files
                    .iter()
                    .map(|entries| {
                        if entries.len() == union.len() {
                            digest
                        } else {
                            digest_sorted(*entries).expect("settled files are sorted")
                        }
                    })
                    .collect();
                (tally, digest, per_file)
            },
        );

        if verdicts.iter().all(Result::is_ok) {
            self.passed[5] += batch.len() as u64;
            self.passed[6] += batch.len() as u64;
            self.check_attestations(&poll, file_digests);
            let equivocations = hopeful.equivocations();
            return self.report(
                Some(&poll),
                Some(hopeful.tally()),
                Some(union_digest),
                equivocations,
            );
        }
        drop(hopeful);

        let mut tally = TallyState::new(poll.option_count());
        let mut admitted = Vec::with_capacity(batch.len());
        for ((hash, file, line), (vote, verdict)) in places.iter().zip(batch.iter().zip(verdicts)) {
            match verdict {
                Ok(()) => {
                    self.passed[5] += 1;
                    self.passed[6] += 1;
                    tally.add(vote);
                    admitted.push(*hash);
                }
                Err(rejection) => {
                    let check = match rejection {
                        Rejection::Signature(_) | Rejection::CredentialSignature(_) => {
                            self.passed[5] += 1;
                            6
                        }
                        _ => 5,
                    };
                    let message = format!("entry {hash} rejected: {rejection}");
                    self.fail(
                        check,
                        *file,
                        Some(*line),
                        Some(*hash),
                        rejection.code(),
                        message,
                    );
                }
            }
        }

        let digest = digest_sorted(&admitted).expect("distinct_votes sorts");
        self.check_attestations(&poll, file_digests);
        let equivocations = tally.equivocations();
        self.report(
            Some(&poll),
            Some(tally.tally()),
            Some(digest),
            equivocations,
        )
    }

    fn fail_global(&mut self, check: u8, code: &str, message: String) {
        self.record(Failure {
            check,
            file: String::new(),
            line: None,
            entry: None,
            code: code.into(),
            message,
        });
    }

    /// Checks 7 to 9, with each file's digest (of its own entries) given.
    fn check_attestations(&mut self, poll: &Poll, digests: Vec<Digest>) {
        for (file, digest) in digests.into_iter().enumerate() {
            self.files[file].digest = Some(digest);
            let count = self.files[file].entries.len() as u64;
            let attestations = std::mem::take(&mut self.files[file].attestations);

            if !self.files[file].has_poll {
                let message = "file carries no poll definition".to_string();
                self.fail(2, file, None, None, "missing_poll", message);
            }
            if attestations.is_empty() {
                let message = "file carries no attestation".to_string();
                self.fail(7, file, None, None, "missing_attestation", message);
            } else {
                self.passed[7] += 1;
            }

            for (line, a) in &attestations {
                if let Err(e) = a.verify() {
                    self.fail(
                        8,
                        file,
                        Some(*line),
                        None,
                        "bad_attestation_signature",
                        e.to_string(),
                    );
                    continue;
                }
                if a.poll != poll.id {
                    let message = format!("attestation is for poll {}, not {}", a.poll, poll.id);
                    self.fail(
                        8,
                        file,
                        Some(*line),
                        None,
                        "attestation_poll_mismatch",
                        message,
                    );
                    continue;
                }
                self.passed[8] += 1;

                if a.digest != digest || a.entries != count {
                    let message = format!(
                        "node {} attested {} entries with digest {}, the file holds {} entries with digest {}",
                        a.node.short(), a.entries, a.digest, count, digest
                    );
                    self.fail(9, file, Some(*line), None, "attestation_mismatch", message);
                } else {
                    self.passed[9] += 1;
                }
            }
            self.files[file].attestations = attestations;
        }
    }

    fn report(
        mut self,
        poll: Option<&Poll>,
        tally: Option<Tally>,
        digest: Option<Digest>,
        equivocations: Vec<Equivocation>,
    ) -> Report {
        self.failures.sort_by_key(|f| f.check);
        let checks = CHECKS
            .iter()
            .map(|&(number, name)| CheckSummary {
                number,
                name,
                passed: self.passed[number as usize],
                failed: self.failed[number as usize],
            })
            .collect();
        let files = self
            .files
            .iter()
            .map(|f| FileSummary {
                name: f.name.clone(),
                node: f.header.as_ref().map(|h| h.node),
                entries: f.entries.len() as u64,
                digest: f.digest.unwrap_or_else(|| {
                    digest_sorted(&f.entries).expect("settled files are sorted")
                }),
                attestations: f.attestations.len() as u64,
            })
            .collect();
        Report {
            poll: poll.map(|p| p.id),
            title: poll.map(|p| p.draft.title.clone()),
            options: poll.map(|p| p.draft.options.clone()).unwrap_or_default(),
            checks,
            failures_omitted: self.failed.iter().sum::<u64>() - self.failures.len() as u64,
            failures: self.failures,
            files,
            tally,
            digest,
            equivocations,
        }
    }
}

/// Runs `main` here and `aside` on a second thread at the same time (one
/// after the other on wasm32, which has no threads).
fn concurrently<A, B>(main: impl FnOnce() -> A, aside: impl FnOnce() -> B + Send) -> (A, B)
where
    B: Send,
{
    if cfg!(target_arch = "wasm32") {
        return (main(), aside());
    }
    std::thread::scope(|s| {
        let other = s.spawn(aside);
        let a = main();
        (a, other.join().expect("audit worker panicked"))
    })
}

/// Convenience: audits files given as `(name, text)` with [`admit_batch`].
pub fn audit_texts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Report {
    let mut audit = Audit::new();
    for (name, text) in files {
        let file = audit.start_file(name);
        for line in text.lines() {
            audit.push_line(file, line);
        }
    }
    audit.finish(admit_batch)
}
