//! A tag change of the native engine (`streams/engine/tag_change.py`) and its deterministic id.

use crate::expr::value::EV;
use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cause {
    Event,
    Expiry,
    RuleChange,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Event => "event",
            Cause::Expiry => "expiry",
            Cause::RuleChange => "rule_change",
        }
    }
}

/// A tag change (`streams/engine/tag_change.py`).
pub struct Change {
    pub tag: String,
    pub add: bool,
    pub at_ms: i64,
    pub cause: Cause,
    /// (event_id, event ts_ms) of the event that caused it
    pub event: Option<(String, i64)>,
    /// `{name: value}` of the tag's features
    pub features: Vec<(usize, EV)>,
    pub change_id: String,
}

/// blake2b of `parts` (hashed one after the other: the digest of their concatenation), `N` bytes.
pub fn blake2b<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut h = Blake2bVar::new(N).expect("a valid blake2b size");
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; N];
    h.finalize_variable(&mut out).expect("the size asked for");
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `tag_change._change_id`: blake2b (10 bytes, hex) of `customer\x1ftag\x1fop\x1fcause\x1f(event id or at_ms)`.
pub fn change_id(customer_id: &str, tag: &str, op: &str, cause: Cause, event_id: Option<&str>, at_ms: i64) -> String {
    let at = at_ms.to_string();
    let last = match event_id {
        Some(e) if !e.is_empty() => e,
        _ => at.as_str(),
    };
    let sep: &[u8] = b"\x1f";
    let digest: [u8; 10] = blake2b(&[customer_id.as_bytes(), sep, tag.as_bytes(), sep, op.as_bytes(), sep,
                                     cause.as_str().as_bytes(), sep, last.as_bytes()]);
    let mut hex = String::with_capacity(20);
    for b in digest {
        hex.push(HEX[(b >> 4) as usize] as char);
        hex.push(HEX[(b & 15) as usize] as char);
    }
    hex
}
