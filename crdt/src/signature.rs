//! The one ed25519 acceptance rule, shared by node, browser and verifier.
//!
//! A signature `(R, S)` by public key `A` on message `M` is accepted iff:
//!
//! 1. `S` is canonical: `S < L` (the prime group order);
//! 2. `A` and `R` are canonical point encodings (they decompress, and
//!    re-compress to the same 32 bytes);
//! 3. neither `A` nor `R` is a small-order point;
//! 4. the cofactored equation holds: `[8]([S]B - R - [k]A)` is the identity,
//!    where `k = SHA-512(R || A || M) mod L` over the bytes as given.
//!
//! Step 4 is cofactored on purpose: a randomized batch check can only agree
//! with single verification on every input when both multiply by the cofactor
//! (Chalkias, Garillot, Nikolaenko, "Taming the many EdDSAs", 2020). With it,
//! [`verify_batch`] accepts exactly what [`verify`] accepts.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::Signer;
use sha2::{Digest as _, Sha512};

use crate::error::SignatureError;
use crate::ids::{PublicKey, Signature};

/// One signature to check: who signed, what, and the signature.
#[derive(Debug, Clone, Copy)]
pub struct SignedMessage<'a> {
    /// The signer's public key.
    pub key: &'a PublicKey,
    /// The signed bytes.
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a Signature,
}

/// A signing key. Holds the 32-byte ed25519 seed; zeroed on drop.
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// The key for a 32-byte seed. Callers supply the randomness (or a
    /// deterministic derivation for tests and demos): this crate has no RNG.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The seed, to store the key.
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (RFC 8032 Ed25519, deterministic).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public().short())
    }
}

/// A signature that has passed steps 1 to 3 and is ready for the equation.
struct Prepared<'a> {
    minus_a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
    a_bytes: &'a [u8; 32],
    r_bytes: &'a [u8; 32],
}

/// Whether 32 bytes are the canonical encoding of a curve point, if they
/// encode one: `y < p`, and no sign bit on `x = 0` (which happens only for
/// `y = 1` and `y = p - 1`). The same answer as decompressing and comparing
/// the re-compression with the input, without the field inversion that costs.
fn is_canonical_encoding(bytes: &[u8; 32]) -> bool {
    const ONE: [u8; 32] = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    const P_MINUS_ONE: [u8; 32] = {
        let mut b = [0xffu8; 32];
        b[0] = 0xec;
        b[31] = 0x7f;
        b
    };
    let mut y = *bytes;
    let sign = y[31] >> 7;
    y[31] &= 0x7f;

    let at_least_p = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    let negative_zero = sign == 1 && (y == ONE || y == P_MINUS_ONE);
    !at_least_p && !negative_zero
}

fn decompress_canonical(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !is_canonical_encoding(bytes) {
        return None;
    }
    CompressedEdwardsY(*bytes).decompress()
}

fn prepare<'a>(item: &SignedMessage<'a>) -> Result<Prepared<'a>, SignatureError> {
    let sig = &item.signature.0;
    let r_bytes: &'a [u8; 32] = sig[..32].try_into().expect("64-byte signature");
    let s_bytes: [u8; 32] = sig[32..].try_into().expect("64-byte signature");

    // Step 1.
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(SignatureError::NonCanonicalScalar)?;

    // Step 2.
    let a = decompress_canonical(&item.key.0).ok_or(SignatureError::NonCanonicalKey)?;
    let r = decompress_canonical(r_bytes).ok_or(SignatureError::NonCanonicalR)?;

    // Step 3.
    if a.is_small_order() {
        return Err(SignatureError::SmallOrderKey);
    }
    if r.is_small_order() {
        return Err(SignatureError::SmallOrderR);
    }

    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(item.key.0);
    h.update(item.message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());

    Ok(Prepared {
        minus_a: -a,
        r,
        s,
        k,
        a_bytes: &item.key.0,
        r_bytes,
    })
}

fn equation_holds(p: &Prepared<'_>) -> bool {
    // [k](-A) + [S]B - R, times the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &p.minus_a, &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// Checks one signature under the acceptance rule.
pub fn verify(item: &SignedMessage<'_>) -> Result<(), SignatureError> {
    let prepared = prepare(item)?;
    if !equation_holds(&prepared) {
        return Err(SignatureError::Equation);
    }
    Ok(())
}

/// Checks many signatures, returning one result per input, in order.
///
/// Accepts exactly the inputs [`verify`] accepts: steps 1 to 3 run per item,
/// then one randomized cofactored equation covers all survivors; if it fails,
/// each survivor is checked alone to find the culprits. The random weights are
/// derived by hashing the whole batch, so the result is deterministic and an
/// attacker cannot choose inputs after seeing the weights.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Vec<Result<(), SignatureError>> {
    let mut results: Vec<Result<(), SignatureError>> = Vec::with_capacity(items.len());
    let mut prepared = Vec::with_capacity(items.len());
    for item in items {
        match prepare(item) {
            Ok(p) => {
                prepared.push((results.len(), p));
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }

    if prepared.len() <= 1 || !batch_equation_holds(&prepared) {
        for (index, p) in &prepared {
            if !equation_holds(p) {
                results[*index] = Err(SignatureError::Equation);
            }
        }
    }
    results
}

fn batch_equation_holds(prepared: &[(usize, Prepared<'_>)]) -> bool {
    // Weights z_i: 128 bits each, from a hash over every (R, A, S, k) in the batch.
    let mut transcript = Sha512::new();
    transcript.update(b"votemesh/batch-weights/v1\0");
    for (_, p) in prepared {
        transcript.update(p.r_bytes);
        transcript.update(p.a_bytes);
        transcript.update(p.s.as_bytes());
        transcript.update(p.k.as_bytes());
    }
    let seed = transcript.finalize();

    let mut scalars = Vec::with_capacity(2 * prepared.len() + 1);
    let mut points = Vec::with_capacity(2 * prepared.len() + 1);
    let mut s_sum = Scalar::ZERO;
    for (i, (_, p)) in prepared.iter().enumerate() {
        let mut h = Sha512::new();
        h.update(seed);
        h.update((i as u64).to_be_bytes());
        let mut z_bytes = [0u8; 32];
        z_bytes[..16].copy_from_slice(&h.finalize()[..16]);
        let z = Scalar::from_bytes_mod_order(z_bytes);

        s_sum += z * p.s;
        scalars.push(z);
        points.push(p.r);
        scalars.push(z * p.k);
        points.push(-p.minus_a);
    }
    scalars.push(-s_sum);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);

    // sum z_i (R_i + k_i A_i - S_i B), times the cofactor.
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    /// The check it replaces: decompress, re-compress, compare.
    fn canonical_by_recompression(bytes: &[u8; 32]) -> Option<bool> {
        let point = CompressedEdwardsY(*bytes).decompress()?;
        Some(point.compress().as_bytes() == bytes)
    }

    #[test]
    fn byte_level_canonical_check_agrees_with_recompression() {
        let mut cases: Vec<[u8; 32]> = Vec::new();
        // Every y >= p (19 values) and the negative zeros, with both sign bits.
        for low in 0xec..=0xffu8 {
            for top in [0x7f, 0xff] {
                let mut b = [0xff; 32];
                b[0] = low;
                b[31] = top;
                cases.push(b);
            }
        }
        for top in [0x00, 0x80] {
            let mut one = [0; 32];
            one[0] = 1;
            one[31] = top;
            cases.push(one);
        }
        // Real points, and pseudo-random strings (mostly not on the curve).
        let mut state = [7u8; 32];
        for i in 0..2000u32 {
            state = Sha512::digest([&state[..], &i.to_be_bytes()].concat())[..32]
                .try_into()
                .unwrap();
            cases.push(state);
            cases.push(key(i as u8).public().0);
        }

        for bytes in &cases {
            if let Some(expected) = canonical_by_recompression(bytes) {
                assert_eq!(
                    is_canonical_encoding(bytes),
                    expected,
                    "{}",
                    hex::encode(bytes)
                );
            }
        }
    }

    #[test]
    fn rfc8032_test_1_verifies() {
        // RFC 8032 section 7.1, TEST 1 (empty message).
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let sk = SecretKey::from_seed(&seed);
        let sig = sk.sign(b"");

        assert_eq!(
            sk.public().to_string(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            sig.to_string(),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        verify(&SignedMessage {
            key: &sk.public(),
            message: b"",
            signature: &sig,
        })
        .unwrap();
    }

    #[test]
    fn wrong_message_or_key_fails_the_equation() {
        let sig = key(1).sign(b"yes");

        let wrong_msg = SignedMessage {
            key: &key(1).public(),
            message: b"no",
            signature: &sig,
        };
        let wrong_key = SignedMessage {
            key: &key(2).public(),
            message: b"yes",
            signature: &sig,
        };
        assert_eq!(verify(&wrong_msg), Err(SignatureError::Equation));
        assert_eq!(verify(&wrong_key), Err(SignatureError::Equation));
    }

    #[test]
    fn batch_of_valid_signatures_all_pass_and_one_bad_is_found() {
        let keys: Vec<_> = (0..20).map(key).collect();
        let publics: Vec<_> = keys.iter().map(SecretKey::public).collect();
        let msgs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize]).collect();
        let mut sigs: Vec<_> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        sigs[7].0[40] ^= 1;

        let items: Vec<_> = (0..20)
            .map(|i| SignedMessage {
                key: &publics[i],
                message: &msgs[i],
                signature: &sigs[i],
            })
            .collect();
        let results = verify_batch(&items);

        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_ok(), i != 7, "item {i}");
            assert_eq!(*r, verify(&items[i]));
        }
    }
}
