//! The canonical byte encoding shared by everything that is signed.
//!
//! Specified in `docs/encoding.md`: integers are fixed-width big-endian,
//! variable-length fields carry a `u32` big-endian length, optional fields a
//! presence byte, and every signed object starts with a NUL-terminated ASCII
//! tag that names the object and the format version. Decoding is strict: one
//! object has exactly one encoding, so its hash is a sound identity.

use crate::error::DecodeError;

/// Domain-separation tags, one per signed object kind.
pub(crate) mod tag {
    pub(crate) const POLL: &str = "votemesh/poll/v1";
    pub(crate) const VOTE: &str = "votemesh/vote/v1";
    pub(crate) const CREDENTIAL: &str = "votemesh/credential/v1";
    pub(crate) const RECEIPT: &str = "votemesh/receipt/v1";
    /// A group receipt statement: the version-2 receipt.
    pub(crate) const RECEIPT_V2: &str = "votemesh/receipt/v2";
    pub(crate) const ATTESTATION: &str = "votemesh/attestation/v1";
    pub(crate) const TALLY: &str = "votemesh/tally/v1";
}

/// Appends canonical fields to a buffer.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(tag: &str) -> Self {
        let mut w = Self {
            buf: Vec::with_capacity(256),
        };
        w.buf.extend_from_slice(tag.as_bytes());
        w.buf.push(0);
        w
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// A length-prefixed byte string. Callers bound lengths well below `u32::MAX`.
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.raw(v)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Fails unless `min <= len <= max`.
pub(crate) fn check_len(
    field: &'static str,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), DecodeError> {
    if len < min || len > max {
        return Err(DecodeError::Length {
            field,
            len,
            min,
            max,
        });
    }
    Ok(())
}

/// Reads canonical fields, failing with the name of the field that is short.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8], tag: &'static str) -> Result<Self, DecodeError> {
        let mut r = Self { rest: input };
        let found = r.take(tag.len() + 1, "tag")?;
        if &found[..tag.len()] != tag.as_bytes() || found[tag.len()] != 0 {
            return Err(DecodeError::WrongTag { expected: tag });
        }
        Ok(r)
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A length-prefixed byte string whose length must lie in `min..=max`.
    pub(crate) fn bytes(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        check_len(field, len, min, max)?;
        self.take(len, field)
    }

    pub(crate) fn string(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<String, DecodeError> {
        let raw = self.bytes(field, min, max)?;
        let text = std::str::from_utf8(raw).map_err(|_| DecodeError::Utf8 { field })?;
        Ok(text.to_owned())
    }

    /// How many bytes have not been read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.rest.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }
}

/// The value of each hex digit (either case), 0xff for every other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Hex digits to bytes in one pass; `None` for an odd length or any byte
/// that is not a hex digit. Accepts exactly what `hex::decode` accepts.
pub(crate) fn unhex(digits: &[u8]) -> Option<Vec<u8>> {
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    let mut bad = 0u8;
    for pair in digits.chunks_exact(2) {
        let (high, low) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        bad |= high | low;
        out.push(high << 4 | (low & 0x0f));
    }
    // Every valid digit is below 16; 0xff marks a bad one.
    (bad & 0xf0 == 0).then_some(out)
}

/// Hex digits into `out`, which they must fill exactly; false for a wrong
/// length or any byte that is not a hex digit (nothing is promised of `out`
/// then). Accepts exactly what `hex::decode_to_slice` accepts.
pub(crate) fn unhex_to_slice(digits: &[u8], out: &mut [u8]) -> bool {
    if digits.len() != 2 * out.len() {
        return false;
    }
    let mut bad = 0u8;
    for (pair, byte) in digits.chunks_exact(2).zip(out.iter_mut()) {
        let (high, low) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        bad |= high | low;
        *byte = high << 4 | (low & 0x0f);
    }
    bad & 0xf0 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hex_readers_agree_with_the_hex_crate() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"0".to_vec(),
            b"00ff".to_vec(),
            b"00FFaB9c".to_vec(),
            b"0g".to_vec(),
            b" 0".to_vec(),
            "\u{e9}".as_bytes().to_vec(),
        ];
        // Every pair of bytes, valid or not.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                cases.push(vec![a, b]);
            }
        }
        for case in cases {
            assert_eq!(unhex(&case), hex::decode(&case).ok(), "{case:?}");
            let mut one = [0u8; 1];
            let ours = unhex_to_slice(&case, &mut one);
            let mut theirs = [0u8; 1];
            let expected = hex::decode_to_slice(&case, &mut theirs).is_ok();
            assert_eq!(ours, expected, "{case:?}");
            if ours {
                assert_eq!(one, theirs);
            }
        }
    }

    #[test]
    fn reader_reads_back_what_writer_wrote() {
        let mut w = Writer::new("t/v1");
        w.u8(7).u32(0x01020304).u64(9).bytes(b"hi").raw(&[5; 3]);
        let bytes = w.finish();

        let mut r = Reader::new(&bytes, "t/v1").unwrap();
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u32("b").unwrap(), 0x01020304);
        assert_eq!(r.u64("c").unwrap(), 9);
        assert_eq!(r.string("d", 0, 10).unwrap(), "hi");
        assert_eq!(r.array::<3>("e").unwrap(), [5; 3]);
        r.finish().unwrap();
    }

    #[test]
    fn reader_rejects_wrong_tag_short_input_and_trailing_bytes() {
        let bytes = Writer::new("t/v1").finish();

        assert!(matches!(
            Reader::new(&bytes, "t/v2"),
            Err(DecodeError::WrongTag { .. })
        ));
        let mut r = Reader::new(&bytes, "t/v1").unwrap();
        assert!(matches!(
            r.u32("n"),
            Err(DecodeError::Truncated { field: "n" })
        ));

        let mut extra = bytes.clone();
        extra.push(1);
        let r = Reader::new(&extra, "t/v1").unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn reader_bounds_lengths_before_allocating() {
        let mut w = Writer::new("t/v1");
        w.u32(u32::MAX);
        let bytes = w.finish();

        let mut r = Reader::new(&bytes, "t/v1").unwrap();
        assert!(matches!(
            r.bytes("title", 1, 200),
            Err(DecodeError::Length { .. })
        ));
    }
}
