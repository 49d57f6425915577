//! The signature acceptance rule against the edge cases of "Taming the many
//! EdDSAs" (ed25519-speccheck), and batch verification against single
//! verification on those vectors and on random mixes of valid, invalid and
//! mixed-order signatures.

use std::sync::OnceLock;

use crdt::{verify, verify_batch, PublicKey, SecretKey, Signature, SignatureError, SignedMessage};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use proptest::prelude::*;
use sha2::{Digest as _, Sha512};

/// One vector of `fixtures/taming-eddsa-vectors.json`, decoded.
struct Vector {
    message: Vec<u8>,
    key: PublicKey,
    signature: Signature,
    expected: Result<(), SignatureError>,
}

impl Vector {
    fn item(&self) -> SignedMessage<'_> {
        SignedMessage {
            key: &self.key,
            message: &self.message,
            signature: &self.signature,
        }
    }
}

fn expected_error(name: &str) -> SignatureError {
    match name {
        "non_canonical_scalar" => SignatureError::NonCanonicalScalar,
        "non_canonical_key" => SignatureError::NonCanonicalKey,
        "non_canonical_r" => SignatureError::NonCanonicalR,
        "small_order_key" => SignatureError::SmallOrderKey,
        "small_order_r" => SignatureError::SmallOrderR,
        "equation" => SignatureError::Equation,
        other => panic!("fixture names an unknown error {other:?}"),
    }
}

fn vectors() -> &'static [Vector] {
    static VECTORS: OnceLock<Vec<Vector>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let text = include_str!("fixtures/taming-eddsa-vectors.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        doc["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let expected = match v["verdict"].as_str().unwrap() {
                    "accept" => Ok(()),
                    "reject" => Err(expected_error(v["error"].as_str().unwrap())),
                    other => panic!("unknown verdict {other:?}"),
                };
                Vector {
                    message: hex::decode(v["message"].as_str().unwrap()).unwrap(),
                    key: v["pub_key"].as_str().unwrap().parse().unwrap(),
                    signature: v["signature"].as_str().unwrap().parse().unwrap(),
                    expected,
                }
            })
            .collect()
    })
}

#[test]
fn fixture_holds_the_twelve_vectors_and_accepts_exactly_3_4_5() {
    let accepted: Vec<usize> = vectors()
        .iter()
        .enumerate()
        .filter(|(_, v)| v.expected.is_ok())
        .map(|(i, _)| i)
        .collect();

    assert_eq!(vectors().len(), 12);
    assert_eq!(accepted, vec![3, 4, 5]);
}

#[test]
fn each_vector_gets_its_exact_verdict() {
    use SignatureError::*;
    let expected = [
        Err(SmallOrderKey),
        Err(SmallOrderKey),
        Err(SmallOrderR),
        Ok(()),
        Ok(()),
        Ok(()),
        Err(NonCanonicalScalar),
        Err(NonCanonicalScalar),
        Err(NonCanonicalR),
        Err(NonCanonicalR),
        Err(NonCanonicalKey),
        Err(NonCanonicalKey),
    ];

    for (i, v) in vectors().iter().enumerate() {
        assert_eq!(v.expected, expected[i], "fixture verdict of vector {i}");
        assert_eq!(verify(&v.item()), expected[i], "vector {i}");
    }
}

/// `[S]B == R + [k]A` without the cofactor, to show which vectors need it.
fn cofactorless_holds(v: &Vector) -> bool {
    let a = CompressedEdwardsY(v.key.0).decompress().unwrap();
    let r = CompressedEdwardsY(v.signature.0[..32].try_into().unwrap())
        .decompress()
        .unwrap();
    let s = Scalar::from_canonical_bytes(v.signature.0[32..].try_into().unwrap()).unwrap();
    let k = challenge(&v.signature.0[..32], &v.key.0, &v.message);
    (EdwardsPoint::mul_base(&s) - r - k * a).is_identity()
}

#[test]
fn accepted_vectors_4_and_5_need_the_cofactor() {
    let v = vectors();

    assert!(cofactorless_holds(&v[3]));
    assert!(!cofactorless_holds(&v[4]));
    assert!(!cofactorless_holds(&v[5]));
}

/// A deterministic shuffle (xorshift), so every subset is also tried out of order.
fn shuffled<T: Copy>(items: &[T], mut seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    out
}

#[test]
fn batch_equals_single_on_every_subset_of_the_vectors_in_two_orders() {
    let all = vectors();

    for mask in 1u32..(1 << all.len()) {
        let chosen: Vec<usize> = (0..all.len()).filter(|i| mask & (1 << i) != 0).collect();

        for order in [
            chosen.clone(),
            shuffled(&chosen, u64::from(mask) * 0x9e37_79b9 + 1),
        ] {
            let items: Vec<_> = order.iter().map(|&i| all[i].item()).collect();
            let results = verify_batch(&items);
            let expected: Vec<_> = order.iter().map(|&i| all[i].expected).collect();
            assert_eq!(results, expected, "subset {mask:#05x} in order {order:?}");
        }
    }
}

#[test]
fn batch_equals_single_on_all_vectors_with_repeats() {
    let all = vectors();
    let order: Vec<usize> = (0..12).chain((0..12).rev()).chain([4, 4, 5, 3]).collect();

    let items: Vec<_> = order.iter().map(|&i| all[i].item()).collect();
    let expected: Vec<_> = order.iter().map(|&i| all[i].expected).collect();

    assert_eq!(verify_batch(&items), expected);
}

// Random mixes.

/// The prime group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The order-8 point that vector 0's public key decompresses to.
fn torsion(multiple: u8) -> EdwardsPoint {
    let bytes: [u8; 32] = vectors()[0].key.0;
    let t8 = CompressedEdwardsY(bytes).decompress().unwrap();
    assert!(!(t8 * Scalar::from(4u8)).is_identity() && (t8 * Scalar::from(8u8)).is_identity());
    t8 * Scalar::from(multiple)
}

fn challenge(r: &[u8], a: &[u8], message: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Signs with a raw secret scalar `a` for the public point `public` (which may
/// be `aB` plus torsion) and nonce point `[r]B + torsion_r`: the result passes
/// the cofactored equation whatever the torsion parts are.
fn sign_raw(
    a: Scalar,
    public: EdwardsPoint,
    r: Scalar,
    torsion_r: EdwardsPoint,
    msg: &[u8],
) -> Case {
    let big_r = (EdwardsPoint::mul_base(&r) + torsion_r).compress();
    let key = public.compress();
    let k = challenge(big_r.as_bytes(), key.as_bytes(), msg);
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(s.as_bytes());
    Case {
        key: PublicKey(key.0),
        message: msg.to_vec(),
        signature: Signature(sig),
    }
}

#[derive(Debug, Clone)]
struct Case {
    key: PublicKey,
    message: Vec<u8>,
    signature: Signature,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Valid,
    FlippedMessageBit(usize),
    FlippedSignatureBit(usize),
    ScalarPlusL,
    SmallOrderKey(u8),
    TorsionAddedToR(u8),
    TorsionAddedToKey(u8),
    MixedOrderKeyValid(u8),
    MixedOrderRValid(u8),
    Vector(usize),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Valid),
        1 => (0usize..8 * 40).prop_map(Kind::FlippedMessageBit),
        1 => (0usize..512).prop_map(Kind::FlippedSignatureBit),
        1 => Just(Kind::ScalarPlusL),
        1 => (0u8..8).prop_map(Kind::SmallOrderKey),
        1 => (1u8..8).prop_map(Kind::TorsionAddedToR),
        1 => (1u8..8).prop_map(Kind::TorsionAddedToKey),
        2 => (1u8..8).prop_map(Kind::MixedOrderKeyValid),
        2 => (1u8..8).prop_map(Kind::MixedOrderRValid),
        1 => (0usize..12).prop_map(Kind::Vector),
    ]
}

fn build(kind: Kind, seed: u8, message: &[u8]) -> (Case, Option<Result<(), SignatureError>>) {
    let signer = SecretKey::from_seed(&[seed; 32]);
    let valid = Case {
        key: signer.public(),
        message: message.to_vec(),
        signature: signer.sign(message),
    };
    let a = Scalar::from_bytes_mod_order_wide(&Sha512::digest([seed, 1]).into());
    let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest([seed, 2]).into());

    match kind {
        Kind::Valid => (valid, Some(Ok(()))),
        Kind::FlippedMessageBit(bit) => {
            let mut case = valid;
            let at = (bit / 8) % case.message.len();
            case.message[at] ^= 1 << (bit % 8);
            (case, Some(Err(SignatureError::Equation)))
        }
        Kind::FlippedSignatureBit(bit) => {
            let mut case = valid;
            case.signature.0[bit / 8] ^= 1 << (bit % 8);
            (case, None)
        }
        Kind::ScalarPlusL => {
            let mut case = valid;
            let mut carry = 0u16;
            for (s, l) in case.signature.0[32..].iter_mut().zip(L) {
                let sum = u16::from(*s) + u16::from(l) + carry;
                *s = sum as u8;
                carry = sum >> 8;
            }
            (case, Some(Err(SignatureError::NonCanonicalScalar)))
        }
        Kind::SmallOrderKey(multiple) => {
            let key = PublicKey(torsion(multiple).compress().0);
            (
                Case { key, ..valid },
                Some(Err(SignatureError::SmallOrderKey)),
            )
        }
        Kind::TorsionAddedToR(multiple) => {
            let mut case = valid;
            let r_point = CompressedEdwardsY(case.signature.0[..32].try_into().unwrap());
            let moved = r_point.decompress().unwrap() + torsion(multiple);
            case.signature.0[..32].copy_from_slice(moved.compress().as_bytes());
            (case, Some(Err(SignatureError::Equation)))
        }
        Kind::TorsionAddedToKey(multiple) => {
            let mut case = valid;
            let moved = CompressedEdwardsY(case.key.0).decompress().unwrap() + torsion(multiple);
            case.key = PublicKey(moved.compress().0);
            (case, Some(Err(SignatureError::Equation)))
        }
        Kind::MixedOrderKeyValid(multiple) => {
            let public = EdwardsPoint::mul_base(&a) + torsion(multiple);
            let case = sign_raw(a, public, r, EdwardsPoint::default(), message);
            (case, Some(Ok(())))
        }
        Kind::MixedOrderRValid(multiple) => {
            let public = EdwardsPoint::mul_base(&a);
            let case = sign_raw(a, public, r, torsion(multiple), message);
            (case, Some(Ok(())))
        }
        Kind::Vector(i) => {
            let v = &vectors()[i];
            let case = Case {
                key: v.key,
                message: v.message.clone(),
                signature: v.signature,
            };
            (case, Some(v.expected))
        }
    }
}

#[test]
fn constructed_mixed_order_signatures_need_the_cofactor() {
    // Sanity for the generator: some of these fail a cofactorless check, so a
    // batch that agrees with single verification on them is a real test.
    let mut cofactorless_failures = 0;
    for multiple in 1..8 {
        let (case, _) = build(Kind::MixedOrderKeyValid(multiple), 9, b"mixed");
        let v = Vector {
            message: case.message,
            key: case.key,
            signature: case.signature,
            expected: Ok(()),
        };
        assert_eq!(verify(&v.item()), Ok(()), "multiple {multiple}");
        cofactorless_failures += usize::from(!cofactorless_holds(&v));
    }

    assert!(cofactorless_failures > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn batch_equals_single_on_random_mixes(
        specs in prop::collection::vec(
            (kind(), any::<u8>(), prop::collection::vec(any::<u8>(), 1..40)),
            1..20,
        )
    ) {
        let cases: Vec<_> = specs.iter().map(|(k, seed, msg)| build(*k, *seed, msg)).collect();
        let items: Vec<_> = cases
            .iter()
            .map(|(c, _)| SignedMessage { key: &c.key, message: &c.message, signature: &c.signature })
            .collect();

        let single: Vec<_> = items.iter().map(verify).collect();
        let batch = verify_batch(&items);

        prop_assert_eq!(&batch, &single);
        for (i, ((_, expected), got)) in cases.iter().zip(&single).enumerate() {
            if let Some(expected) = expected {
                prop_assert_eq!(got, expected, "item {} ({:?})", i, specs[i].0);
            }
        }
    }
}
