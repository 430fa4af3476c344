//! A source record parsed without copying: strings borrow from the record's bytes unless they hold
//! escapes, objects keep their keys in order (a key given twice: the last one counts, as orjson and
//! the models read it). serde_json does the parsing (strict JSON, UTF-8 checked, numbers as
//! `float_roundtrip` reads them); only the tree is ours. `serde_json::Value` allocates a map and a
//! string for every field: `fast_event` took 1.80-1.84 us per record of the generator's traffic with it,
//! 1.35-1.52 with this tree (a Python loop of calls, best of 5, alternating builds).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

pub enum BV<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// an integer past i64 (JSON allows it; orjson and the models' ranges do not)
    Big,
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<BV<'a>>),
    Obj(Obj<'a>),
}

pub type Obj<'a> = Vec<(Cow<'a, str>, BV<'a>)>;

/// The value of `key` in an object (the last one, for a key given twice).
pub fn get<'b, 'a>(obj: &'b [(Cow<'a, str>, BV<'a>)], key: &str) -> Option<&'b BV<'a>> {
    obj.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// One JSON document (whitespace around it only), or None.
pub fn parse(raw: &[u8]) -> Option<BV<'_>> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let v = BV::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(v)
}

struct BVVisitor;

impl<'de> Visitor<'de> for BVVisitor {
    type Value = BV<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<BV<'de>, E> {
        Ok(BV::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<BV<'de>, E> {
        Ok(BV::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<BV<'de>, E> {
        Ok(i64::try_from(v).map_or(BV::Big, BV::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<BV<'de>, E> {
        Ok(BV::Float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<BV<'de>, E> {
        Ok(BV::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<BV<'de>, E> {
        Ok(BV::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<BV<'de>, E> {
        Ok(BV::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<BV<'de>, E> {
        Ok(BV::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<BV<'de>, E> {
        Ok(BV::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BV<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(BV::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BV<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<BV<'de>>()? {
            let BV::Str(key) = key else { return Err(de::Error::custom("a key that is no string")) };
            out.push((key, map.next_value()?));
        }
        Ok(BV::Obj(out))
    }
}

impl<'de> Deserialize<'de> for BV<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BVVisitor)
    }
}
