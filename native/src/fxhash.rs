//! A fast hasher for the engine's maps keyed by rule names (features, tags, event fields).
//!
//! The standard library's SipHash resists collision floods from untrusted keys; these maps are
//! built once from the rules and only looked up with event field names, so a flood cannot grow
//! them. SipHash took ~4 % of the core's time in `fold_events` (perf, benchmarks/README.md, session 42):
//! the event fields' look-up per key per event. This is rustc's FxHash (a rotate, a xor and a
//! multiply per 8 bytes).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_holds_and_not_what_it_does_not() {
        let names = ["type", "source", "amount", "amount_eur", "sku", "skus", "", "a_rather_long_field_name_x"];
        let map: FxMap<String, usize> = names.iter().enumerate().map(|(i, n)| (n.to_string(), i)).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(*n), Some(&i));
        }
        assert_eq!(map.get("amoun"), None);
        assert_eq!(map.get("a_rather_long_field_name_y"), None);
    }
}
