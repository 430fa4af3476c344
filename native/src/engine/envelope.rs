//! A customer-topic record (`streams/app/envelope.py`: a JSON array of items, or one item) split
//! into its items without decoding them: each item's customer key, its bytes, and whether it is a
//! plain event (no tick, re-evaluation, backfill replay, forward or identity order), which the
//! engine folds straight from the bytes (`NativeEngine.fold_events`).

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What `decode_envelope` says of a record that is not a list of items.
pub const NOT_ITEMS: &str = "customer topic record is not a canonical event, tick or list of them";

/// Keys of an item that is not a plain event.
const NOT_PLAIN: [&str; 7] = ["tick", "reeval", "bf", "via", "erase", "absorb", "merge"];

pub struct Item<'a> {
    pub customer_id: Cow<'a, str>,
    pub raw: &'a [u8],
    pub plain: bool,
}

struct Head<'a> {
    customer_id: Option<Cow<'a, str>>,
    plain: bool,
}

struct HeadVisitor;

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an item")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head<'de>, A::Error> {
        let mut head = Head { customer_id: None, plain: true };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "customer_id" {
                // not a string (null, a number): no customer id, as `decode_envelope` sees it
                head.customer_id = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(Cow::Owned(s)),
                    _ => None,
                };
            } else {
                if NOT_PLAIN.contains(&key.as_ref()) {
                    head.plain = false;
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(head)
    }
}

fn item(raw: &RawValue) -> Result<Item<'_>, String> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(NOT_ITEMS.to_string());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let head = de.deserialize_map(HeadVisitor).map_err(|e| e.to_string())?;
    let customer_id = head.customer_id.ok_or_else(|| NOT_ITEMS.to_string())?;
    Ok(Item { customer_id, raw: text.as_bytes(), plain: head.plain })
}

/// The items of one customer-topic record, in order; Err says why it is not an envelope.
pub fn split(value: &[u8]) -> Result<Vec<Item<'_>>, String> {
    if value.is_empty() {
        return Err("empty record on the customer topic".to_string());
    }
    let first = value.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        items.into_iter().map(item).collect()
    } else {
        let one: &RawValue = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        Ok(vec![item(one)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_an_envelope_and_an_old_single_item() {
        let v = br#"[{"customer_id":"c1","event_id":"e"},{"customer_id":"c\u00e9","tick":5},{"x":{"customer_id":1},"customer_id":"c3","via":"a"}]"#;
        let items = split(v).unwrap();
        let got: Vec<(&str, bool)> = items.iter().map(|i| (i.customer_id.as_ref(), i.plain)).collect();
        assert_eq!(got, vec![("c1", true), ("cé", false), ("c3", false)]);
        assert_eq!(items[0].raw, br#"{"customer_id":"c1","event_id":"e"}"#);
        assert_eq!(split(br#"{"customer_id":"c1"}"#).unwrap().len(), 1);
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        assert_eq!(split(b"").err().unwrap(), "empty record on the customer topic");
        assert_eq!(split(b"[1]").err().unwrap(), NOT_ITEMS);
        assert_eq!(split(br#"[{"customer_id":null}]"#).err().unwrap(), NOT_ITEMS);
        assert_eq!(split(br#"{"event_id":"e"}"#).err().unwrap(), NOT_ITEMS);
        assert!(split(b"[{").is_err());
        assert!(split(b"5").is_err());
    }
}
