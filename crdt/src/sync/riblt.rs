//! Rateless invertible Bloom lookup tables over 64-bit keys.
//!
//! After Yang, Gilad and Alizadeh, "Practical Rateless Set Reconciliation"
//! (SIGCOMM 2024). A set is encoded into an endless sequence of coded symbols;
//! a peer that subtracts its own symbols from a prefix of the sequence can
//! peel off the symmetric difference once the prefix is about 1.35 to 1.7
//! times as long as the difference, whatever the size of the sets.
//!
//! Every element sits in symbol 0 and in a thinning random subset of the later
//! ones, with probability about `2 / (j + 2)` of being in symbol `j`. The
//! mapping depends on the key alone, so both peers derive the same one.

use std::collections::HashSet;

/// Mixed into keys before checksumming, so the checksum and the mapping's
/// random stream are unrelated (fractional bits of sqrt 2).
const CHECK_SEED: u64 = 0x6a09_e667_f3bc_c908;
/// Mixed into keys to seed the mapping's generator (fractional bits of sqrt 3).
const MAP_SEED: u64 = 0xbb67_ae85_84ca_a73b;
/// The splitmix64 increment.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 output function: a bijective 64-bit mixer.
fn finalize(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The checksum stored beside a key. A symbol holding exactly one element
/// has `check == checksum(key)`; a mixture of several matches by chance with
/// probability 2^-64.
pub fn checksum(key: u64) -> u64 {
    finalize(key ^ CHECK_SEED)
}

/// One coded symbol: the XOR of the keys and checksums of the elements mapped
/// to it, and how many there are.
///
/// Symbols a sender produces have `count >= 0`; a difference of two symbols
/// (remote minus local) may be negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Symbol {
    /// XOR of the element keys.
    pub key: u64,
    /// XOR of the element checksums.
    pub check: u64,
    /// Number of elements (or, in a difference, remote minus local).
    pub count: i64,
}

impl Symbol {
    /// Whether nothing is (left) in the symbol.
    pub fn is_zero(&self) -> bool {
        self.key == 0 && self.check == 0 && self.count == 0
    }

    /// `+1` or `-1` when exactly one element is left, with its sign.
    fn pure_sign(&self) -> Option<i64> {
        match self.count {
            1 | -1 if self.check == checksum(self.key) => Some(self.count),
            _ => None,
        }
    }

    fn apply(&mut self, key: u64, check: u64, count: i64) {
        self.key ^= key;
        self.check ^= check;
        // Wrapping: counts come from a peer and must not panic on overflow.
        self.count = self.count.wrapping_add(count);
    }
}

/// Where an element sits in the symbol sequence: its current index and the
/// state of its private generator.
///
/// Derivation of the step. We want element `e` in symbol `j` with
/// probability `rho(j) = 2 / (j + 2)`, independently per `j`. Given `e` is in
/// symbol `i`, the chance it skips `i+1 ..= j` is
/// `prod_{k=i+1..=j} (1 - rho(k)) = prod k / (k + 2) = (i+1)(i+2) / ((j+1)(j+2))`,
/// which is close to `((i + 1.5) / (j + 1.5))^2`. Drawing `u` uniform in
/// `(0, 1]` and taking the first `j` where that survival falls below `u`
/// gives `j + 1.5 > (i + 1.5) / sqrt(u)`, so
/// `j = ceil((i + 1.5) / sqrt(u) - 1.5)`, and at least `i + 1`. Symbol 0
/// holds every element. Only IEEE-754 `+ - * / sqrt ceil` on `f64` are
/// used, all correctly rounded, so every target (wasm32 included) computes
/// the same indices.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    index: u64,
    state: u64,
}

impl Mapping {
    fn new(key: u64) -> Mapping {
        Mapping {
            index: 0,
            state: key ^ MAP_SEED,
        }
    }

    fn advance(&mut self) {
        self.state = self.state.wrapping_add(GOLDEN);
        let r = finalize(self.state);
        // 53 random bits plus one: u in (0, 1], exactly representable.
        let u = ((r >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let i = self.index as f64;
        // `as` saturates; an element pushed to u64::MAX never shows up again.
        let next = ((i + 1.5) / u.sqrt() - 1.5).ceil() as u64;
        self.index = next.max(self.index.saturating_add(1));
    }
}

#[derive(Debug, Clone)]
struct Element {
    key: u64,
    check: u64,
    mapping: Mapping,
}

impl Element {
    fn new(key: u64) -> Element {
        Element {
            key,
            check: checksum(key),
            mapping: Mapping::new(key),
        }
    }
}

/// Produces a set's coded symbols, range after range.
///
/// Keeps each element's place in the sequence, so producing `[a, b)` after
/// `[0, a)` costs one pass over the set plus the symbols' contents.
#[derive(Debug, Clone)]
pub struct Encoder {
    elements: Vec<Element>,
    produced: u64,
}

impl Encoder {
    /// An encoder over `keys`. A key given twice is encoded twice (and then
    /// cancels in the XOR, which decoding reports as a failure, never as a
    /// wrong difference).
    pub fn new(keys: impl IntoIterator<Item = u64>) -> Encoder {
        Encoder {
            elements: keys.into_iter().map(Element::new).collect(),
            produced: 0,
        }
    }

    /// How many symbols were produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// The next `n` symbols.
    pub fn produce(&mut self, n: usize) -> Vec<Symbol> {
        let start = self.produced;
        let end = start + n as u64;
        let mut out = vec![Symbol::default(); n];
        for e in &mut self.elements {
            while e.mapping.index < end {
                out[(e.mapping.index - start) as usize].apply(e.key, e.check, 1);
                e.mapping.advance();
            }
        }
        self.produced = end;
        out
    }
}

/// An element recovered by peeling, kept so it is also removed from later
/// ranges.
#[derive(Debug, Clone)]
struct Recovered {
    element: Element,
    sign: i64,
}

/// Recovers the difference between a remote set, given as its coded symbols,
/// and the local set, given as an [`Encoder`].
///
/// Feed the remote's symbols in order with [`Decoder::add`] until
/// [`Decoder::is_done`]. Garbage symbols never panic: at worst decoding does
/// not finish.
#[derive(Debug, Clone)]
pub struct Decoder {
    local: Encoder,
    /// Remote minus local symbols, with every recovered element removed.
    symbols: Vec<Symbol>,
    recovered: Vec<Recovered>,
    seen: HashSet<u64>,
    remote_only: Vec<u64>,
    local_only: Vec<u64>,
    /// Set when peeling met something no honest pair of sets produces.
    corrupt: bool,
    moments: Moments,
}

/// Running sums over the raw count differences `c_j`, for
/// [`Decoder::estimate`].
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    cc: f64,
    cp: f64,
    pp: f64,
    pq: f64,
}

impl Decoder {
    /// A decoder against the local set. `local` must not have produced yet.
    pub fn new(local: Encoder) -> Decoder {
        debug_assert_eq!(local.produced(), 0);
        Decoder {
            local,
            symbols: Vec::new(),
            recovered: Vec::new(),
            seen: HashSet::new(),
            remote_only: Vec::new(),
            local_only: Vec::new(),
            corrupt: false,
            moments: Moments::default(),
        }
    }

    /// How many remote symbols were added.
    pub fn received(&self) -> u64 {
        self.symbols.len() as u64
    }

    /// Adds the remote's next symbols (indices `received()..`) and peels.
    pub fn add(&mut self, remote: &[Symbol]) {
        let start = self.symbols.len();
        let end = (start + remote.len()) as u64;

        let local = self.local.produce(remote.len());
        for (offset, (r, l)) in remote.iter().zip(&local).enumerate() {
            let diff = Symbol {
                key: r.key ^ l.key,
                check: r.check ^ l.check,
                count: r.count.wrapping_sub(l.count),
            };
            self.moments.push(start + offset, diff.count);
            self.symbols.push(diff);
        }

        // Elements recovered from earlier ranges are in this one too.
        for rec in &mut self.recovered {
            let e = &mut rec.element;
            while e.mapping.index < end {
                self.symbols[e.mapping.index as usize].apply(e.key, e.check, -rec.sign);
                e.mapping.advance();
            }
        }

        self.peel((start..self.symbols.len()).collect());
    }

    fn peel(&mut self, mut queue: Vec<usize>) {
        // An honest difference never needs more recoveries than this.
        let limit = 2 * self.symbols.len() + 64;
        let len = self.symbols.len() as u64;
        while let Some(i) = queue.pop() {
            if self.corrupt {
                return;
            }
            let Some(sign) = self.symbols[i].pure_sign() else {
                continue;
            };
            let key = self.symbols[i].key;
            if self.recovered.len() >= limit || !self.seen.insert(key) {
                self.corrupt = true;
                return;
            }

            let mut element = Element::new(key);
            while element.mapping.index < len {
                let j = element.mapping.index as usize;
                self.symbols[j].apply(key, element.check, -sign);
                if self.symbols[j].pure_sign().is_some() {
                    queue.push(j);
                }
                element.mapping.advance();
            }
            match sign {
                1 => self.remote_only.push(key),
                _ => self.local_only.push(key),
            }
            self.recovered.push(Recovered { element, sign });
        }
    }

    /// Whether the whole difference is recovered: symbol 0, which holds every
    /// element, is empty after peeling.
    pub fn is_done(&self) -> bool {
        !self.corrupt && self.symbols.first().is_some_and(Symbol::is_zero)
    }

    /// Keys the remote has and the local set lacks.
    pub fn remote_only(&self) -> &[u64] {
        &self.remote_only
    }

    /// Keys the local set has and the remote lacks.
    pub fn local_only(&self) -> &[u64] {
        &self.local_only
    }

    /// An estimate of the size of the difference from the symbols so far,
    /// given `delta` = remote count minus local count.
    ///
    /// The raw count difference of symbol `j` is a sum of independent `+1`
    /// and `-1` terms, one per differing element, each present with
    /// probability `p = 2 / (j + 2)`: its mean is `delta * p` and its variance
    /// `d * p * (1 - p)`. Method of moments over all symbols gives `d`. With
    /// `m` symbols the relative error is about `sqrt(2 / m)`.
    pub fn estimate(&self, delta: f64) -> f64 {
        let m = self.moments;
        let spread = m.cc - 2.0 * delta * m.cp + delta * delta * m.pp;
        let estimate = if m.pq > 0.0 { spread / m.pq } else { 0.0 };
        let found = (self.remote_only.len() + self.local_only.len()) as f64;
        estimate.max(delta.abs()).max(found)
    }
}

impl Moments {
    fn push(&mut self, index: usize, count: i64) {
        let p = 2.0 / (index as f64 + 2.0);
        let c = count as f64;
        self.cc += c * c;
        self.cp += c * p;
        self.pp += p * p;
        self.pq += p * (1.0 - p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct pseudo-random keys.
    fn keys(seed: u64, n: usize) -> Vec<u64> {
        (0..n as u64)
            .map(|i| finalize(seed ^ finalize(i)))
            .collect()
    }

    fn decode(remote: &[u64], local: &[u64], step: usize) -> Decoder {
        let mut sender = Encoder::new(remote.iter().copied());
        let mut decoder = Decoder::new(Encoder::new(local.iter().copied()));
        while !decoder.is_done() {
            assert!(decoder.received() < 100_000, "did not decode");
            decoder.add(&sender.produce(step));
        }
        decoder
    }

    #[test]
    fn element_is_in_symbol_j_with_probability_two_over_j_plus_two() {
        let n = 20_000;
        let mut encoder = Encoder::new(keys(1, n));
        let symbols = encoder.produce(1_000);

        assert_eq!(symbols[0].count, n as i64);
        for j in [1usize, 2, 5, 10, 100, 999] {
            let expected = 2.0 / (j as f64 + 2.0);
            let found = symbols[j].count as f64 / n as f64;
            let tolerance = 0.035 * expected + 4.0 * (expected / n as f64).sqrt();
            assert!(
                (found - expected).abs() < tolerance,
                "j={j} {found} vs {expected}"
            );
        }
    }

    #[test]
    fn producing_in_ranges_equals_producing_at_once() {
        let ks = keys(2, 500);
        let whole = Encoder::new(ks.clone()).produce(300);
        let mut parts = Encoder::new(ks);
        let mut pieces = parts.produce(1);
        pieces.extend(parts.produce(99));
        pieces.extend(parts.produce(200));

        assert_eq!(whole, pieces);
    }

    #[test]
    fn mapping_indices_are_pinned() {
        // Both peers must agree bit for bit; a change here breaks the wire.
        let mut m = Mapping::new(0x0123_4567_89ab_cdef);
        let mut seen = vec![m.index];
        for _ in 0..8 {
            m.advance();
            seen.push(m.index);
        }
        assert_eq!(seen, PINNED);
        assert_eq!(checksum(0x0123_4567_89ab_cdef), 0xbd41_03c0_d7ac_25a6);
    }

    const PINNED: [u64; 9] = [0, 2, 4, 5, 9, 12, 13, 26, 33];

    #[test]
    fn two_sided_difference_is_recovered_with_signs() {
        let common = keys(3, 2_000);
        let only_remote = keys(4, 40);
        let only_local = keys(5, 25);
        let remote: Vec<u64> = common.iter().chain(&only_remote).copied().collect();
        let local: Vec<u64> = common.iter().chain(&only_local).copied().collect();

        let decoder = decode(&remote, &local, 16);

        let mut got_remote = decoder.remote_only().to_vec();
        let mut got_local = decoder.local_only().to_vec();
        got_remote.sort_unstable();
        got_local.sort_unstable();
        let mut want_remote = only_remote;
        let mut want_local = only_local;
        want_remote.sort_unstable();
        want_local.sort_unstable();
        assert_eq!(got_remote, want_remote);
        assert_eq!(got_local, want_local);
        assert!(
            decoder.received() < 2 * 65 + 32,
            "used {}",
            decoder.received()
        );
    }

    #[test]
    fn identical_sets_decode_from_one_symbol() {
        let ks = keys(6, 1_000);
        let decoder = decode(&ks, &ks, 1);

        assert_eq!(decoder.received(), 1);
        assert!(decoder.remote_only().is_empty() && decoder.local_only().is_empty());
    }

    #[test]
    fn estimate_is_near_the_true_difference() {
        let common = keys(7, 5_000);
        let remote: Vec<u64> = common.iter().chain(&keys(8, 500)).copied().collect();
        let local: Vec<u64> = common.iter().chain(&keys(9, 500)).copied().collect();
        let mut decoder = Decoder::new(Encoder::new(local));
        decoder.add(&Encoder::new(remote).produce(64));

        let estimate = decoder.estimate(0.0);
        assert!((500.0..2_000.0).contains(&estimate), "estimate {estimate}");
    }

    #[test]
    fn garbage_symbols_never_panic_and_never_finish() {
        let mut decoder = Decoder::new(Encoder::new(keys(10, 100)));
        let garbage: Vec<Symbol> = (0..500u64)
            .map(|i| Symbol {
                key: finalize(i),
                check: checksum(finalize(i % 7)),
                count: if i % 3 == 0 { i64::MAX } else { 1 },
            })
            .collect();
        decoder.add(&garbage);
        decoder.add(&garbage);

        assert!(!decoder.is_done());
    }

    #[test]
    fn duplicate_key_in_one_set_does_not_decode_to_a_wrong_difference() {
        let common = keys(11, 100);
        let twice = finalize(12345);
        let remote: Vec<u64> = common.iter().copied().chain([twice, twice]).collect();
        let mut sender = Encoder::new(remote);
        let mut decoder = Decoder::new(Encoder::new(common));
        decoder.add(&sender.produce(400));

        assert!(!decoder.is_done());
    }
}
