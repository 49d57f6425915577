//! Admission and export decoding spread over threads, for verifiers and
//! nodes on native targets.

use crate::admit::admit_batch;
use crate::error::Rejection;
use crate::export::{Record, RecordError};
use crate::poll::Poll;
use crate::vote::Vote;

/// Votes per batch-verification call: large enough for the batch equation to
/// pay off, small enough to spread evenly over threads.
const CHUNK: usize = 256;

/// [`admit_batch`] over all available cores. Same results, same order.
///
/// Not for `wasm32-unknown-unknown`, which has no threads: there it runs on
/// the calling thread.
pub fn admit_parallel(poll: &Poll, votes: &[Vote]) -> Vec<Result<(), Rejection>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    admit_parallel_with(poll, votes, threads)
}

/// [`admit_parallel`] on at most `threads` threads.
pub fn admit_parallel_with(
    poll: &Poll,
    votes: &[Vote],
    threads: usize,
) -> Vec<Result<(), Rejection>> {
    if cfg!(target_arch = "wasm32") || threads == 1 || votes.len() <= CHUNK {
        return admit_batch(poll, votes);
    }

    let chunks: Vec<&[Vote]> = votes.chunks(CHUNK).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Vec<Result<(), Rejection>>> = vec![Vec::new(); chunks.len()];
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(chunks.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else {
                            break done;
                        };
                        done.push((i, admit_batch(poll, chunk)));
                    }
                })
            })
            .collect();
        for worker in workers {
            for (i, chunk_results) in worker.join().expect("admission worker panicked") {
                results[i] = chunk_results;
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// Decodes export lines with [`Record::from_line`] on at most `threads`
/// threads, results in line order (`None` for a blank line), ready for
/// [`crate::audit::Audit::push_decoded`].
pub fn decode_lines<S: AsRef<str> + Sync>(
    lines: &[S],
    threads: usize,
) -> Vec<Option<Result<Record, RecordError>>> {
    let decode = |line: &S| {
        let line = line.as_ref();
        (!line.trim().is_empty()).then(|| Record::from_line(line))
    };
    if cfg!(target_arch = "wasm32") || threads <= 1 || lines.len() < 2 * threads {
        return lines.iter().map(decode).collect();
    }
    let part = lines.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = lines
            .chunks(part)
            .map(|chunk| s.spawn(move || chunk.iter().map(decode).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("decoding worker panicked"))
            .collect()
    })
}
