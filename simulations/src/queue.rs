//! The event queue: events ordered by simulated time, then by the order they
//! were scheduled, so equal times never depend on heap internals.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time in microseconds since the start of the run.
pub type Micros = u64;

/// Converts seconds to [`Micros`].
pub fn secs(s: f64) -> Micros {
    (s * 1e6).round().max(0.0) as Micros
}

/// Converts milliseconds to [`Micros`].
pub fn millis(ms: f64) -> Micros {
    (ms * 1e3).round().max(0.0) as Micros
}

/// A priority queue keyed by `(time, sequence number)`.
#[derive(Debug)]
pub(crate) struct Queue<E> {
    heap: BinaryHeap<Reverse<(Micros, u64, Slot<E>)>>,
    next_seq: u64,
}

/// Wraps the event so the heap orders by the key alone.
#[derive(Debug)]
struct Slot<E>(E);

impl<E> PartialEq for Slot<E> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<E> Eq for Slot<E> {}
impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Slot<E> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<E> Queue<E> {
    /// Schedules `event` at `at`.
    pub(crate) fn push(&mut self, at: Micros, event: E) {
        self.heap.push(Reverse((at, self.next_seq, Slot(event))));
        self.next_seq += 1;
    }

    /// The earliest event, first scheduled first among equal times.
    pub(crate) fn pop(&mut self) -> Option<(Micros, E)> {
        self.heap.pop().map(|Reverse((at, _, Slot(e)))| (at, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_pop_in_schedule_order() {
        let mut queue = Queue::default();
        queue.push(5, "late");
        queue.push(1, "first");
        queue.push(1, "second");

        assert_eq!(queue.pop(), Some((1, "first")));
        assert_eq!(queue.pop(), Some((1, "second")));
        assert_eq!(queue.pop(), Some((5, "late")));
        assert_eq!(queue.pop(), None);
    }
}
