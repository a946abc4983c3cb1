//! Deterministic randomness: every draw is a pure function of the fleet seed and of
//! what is being drawn (a device, a day, a boot), so any slice of history can be
//! regenerated alone and comes out identical. SplitMix64, not `rand`, so that the
//! simulated fleet does not change when a dependency is upgraded.

/// Mixes words into one well-distributed 64-bit value.
pub fn mix(words: &[u64]) -> u64 {
    let mut h = 0x9E37_79B9_7F4A_7C15u64;
    for w in words {
        h = splitmix(h ^ w.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream of draws from one seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(words: &[u64]) -> Self {
        Self(mix(words))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`; `lo` when the range is empty.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % u64::from(hi - lo)) as u32
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// A UUID-shaped hex identifier (8-4-4-4-12), like an SMBIOS product UUID or a Linux
/// boot id.
pub fn uuid_like(words: &[u64]) -> String {
    let a = mix(words);
    let b = mix(&[a, 0x5EED]);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_pure_functions_of_their_words() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(&[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
        let mut r = Rng::new(&[7]);
        for _ in 0..1000 {
            let v = r.range(10, 20);
            assert!((10..20).contains(&v));
            assert!((0.0..1.0).contains(&r.unit()));
        }
        let id = uuid_like(&[42]);
        assert_eq!(id.len(), 36);
        assert_eq!(id, uuid_like(&[42]));
        assert_ne!(id, uuid_like(&[43]));
    }
}
