//! Mutations of a seed input: the byte-level ones a fuzzer uses (bit flips,
//! truncation, splicing, random bytes) plus, for text formats, insertion of
//! tokens from the target's dictionary, so a JSON or TOML parser sees
//! inputs that still parse but carry extreme values.
//!
//! Everything draws from the `SmallRng` passed in, so one seed replays one
//! run exactly.

use rand::rngs::SmallRng;
use rand::Rng;

/// Values that often sit on a boundary.
const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'0', b'-', b'"', b'\\', b'\n'];

/// Returns a mutated copy of `seed`: 1..=4 mutations in a row. `others`
/// are the target's other seeds (for splicing), `dict` its tokens.
pub fn mutate(rng: &mut SmallRng, seed: &[u8], others: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        mutate_once(rng, &mut out, others, dict);
    }
    out
}

fn mutate_once(rng: &mut SmallRng, out: &mut Vec<u8>, others: &[Vec<u8>], dict: &[&str]) {
    let len = out.len();
    match rng.gen_range(0..10) {
        // Flip one bit.
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            out[i] ^= 1 << rng.gen_range(0..8);
        }
        // Set one byte to a boundary value or a random one.
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            out[i] = if rng.gen_bool(0.5) {
                INTERESTING[rng.gen_range(0..INTERESTING.len())]
            } else {
                rng.gen()
            };
        }
        // Truncate.
        2 if len > 0 => out.truncate(rng.gen_range(0..len)),
        // Delete a range.
        3 if len > 1 => {
            let a = rng.gen_range(0..len);
            let b = rng.gen_range(a..=len.min(a + 64));
            out.drain(a..b);
        }
        // Duplicate a range in place.
        4 if len > 1 => {
            let a = rng.gen_range(0..len);
            let b = rng.gen_range(a..=len.min(a + 64));
            let piece = out[a..b].to_vec();
            let at = rng.gen_range(0..=out.len());
            out.splice(at..at, piece);
        }
        // Splice: our head, another seed's tail.
        5 if !others.is_empty() => {
            let other = &others[rng.gen_range(0..others.len())];
            let cut = rng.gen_range(0..=len);
            let from = rng.gen_range(0..=other.len());
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        // Insert a few random bytes.
        6 => {
            let at = rng.gen_range(0..=len);
            let n = rng.gen_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            out.splice(at..at, bytes);
        }
        // Overwrite an 8-byte window with an extreme little-endian word
        // (lengths, counters and positions in binary formats).
        7 if len >= 8 => {
            let at = rng.gen_range(0..=len - 8);
            let word: u64 = match rng.gen_range(0..4) {
                0 => 0,
                1 => u64::MAX,
                2 => 1 << rng.gen_range(0..64),
                _ => rng.gen(),
            };
            out[at..at + 8].copy_from_slice(&word.to_le_bytes());
        }
        // Put a dictionary token in place of a run of digits or letters, or
        // insert it anywhere.
        8 | 9 if !dict.is_empty() => {
            let token = dict[rng.gen_range(0..dict.len())].as_bytes();
            let at = rng.gen_range(0..=len);
            let end = out[at..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric() && *b != b'.')
                .map_or(len, |p| at + p);
            let end = if rng.gen_bool(0.5) { end } else { at };
            out.splice(at..end, token.iter().copied());
        }
        // Nothing applied above: a fresh random input now and then.
        _ => {
            if rng.gen_ratio(1, 8) {
                let n = rng.gen_range(0..256);
                *out = (0..n).map(|_| rng.gen()).collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn one_seed_replays_one_run() {
        let seed = b"{\"v\":2,\"msg\":{\"type\":\"ping\",\"nonce\":7}}".to_vec();
        let run = |s: u64| {
            let mut rng = SmallRng::seed_from_u64(s);
            (0..200)
                .map(|_| {
                    mutate(
                        &mut rng,
                        &seed,
                        std::slice::from_ref(&seed),
                        &["null", "-1"],
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        assert!(
            run(42).iter().any(|m| m != &seed),
            "mutations change inputs"
        );
    }
}
