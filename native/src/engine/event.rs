//! A canonical event as the internal topic carries it (JSON bytes), parsed for the fields the
//! engine reads only: each in its slot of `Spec.event_fields`, the others skipped by the parser.

use super::run::EventView;
use super::spec::Spec as EngineSpec;
use super::state;
use crate::expr::value::EV;
use crate::features::num::{Unsupported, R};
use crate::value::BV;
use std::borrow::Cow;
use std::rc::Rc;

fn ev_of_bv(v: &BV<'_>) -> R<EV> {
    Ok(match v {
        BV::Null => EV::None,
        BV::Bool(b) => EV::Bool(*b),
        BV::Int(i) => EV::Int(*i),
        BV::Float(f) => EV::Float(*f),
        BV::Str(s) => EV::Str(Rc::from(s.as_ref())),
        BV::Arr(items) => EV::List(Rc::new(items.iter().map(ev_of_bv).collect::<R<Vec<_>>>()?)),
        BV::Big => return Err(Unsupported("an integer past 64 bits")),
        BV::Obj(_) => return Err(Unsupported("an object where a rule reads a value")),
    })
}

/// A JSON string, borrowed from the event's bytes when it has no escapes (serde's own `Cow<str>`
/// always copies: an allocation per key and per id of every event).
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

/// A canonical event parsed from its JSON bytes: only the fields the engine reads are kept (the
/// others are skipped by the parser), each in its slot of `Spec.event_fields`.
pub struct JsonEvent<'a> {
    fields: Vec<Option<BV<'a>>>,
    pub customer_id: Option<Cow<'a, str>>,
    /// the source record's Kafka timestamp (the latency of the changes the event causes)
    pub src_ts_ms: Option<i64>,
    event_id: Cow<'a, str>,
    source: Cow<'a, str>,
    ts_ms: i64,
}

struct EventSeed<'s> {
    spec: &'s EngineSpec,
}

struct Parsed<'a> {
    fields: Vec<Option<BV<'a>>>,
    customer_id: Option<Cow<'a, str>>,
    event_id: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    ts_ms: Option<i64>,
    src_ts_ms: Option<i64>,
}

impl<'de> serde::de::DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Parsed<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Parsed<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for EventSeed<'_> {
    type Value = Parsed<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a canonical event")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'de>, A::Error> {
        let mut out = Parsed { fields: Vec::new(), customer_id: None, event_id: None, source: None, ts_ms: None, src_ts_ms: None };
        out.fields.resize_with(self.spec.event_fields.len(), || None);
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let slot = self.spec.event_slot.get(key.as_ref()).copied();
            match key.as_ref() {
                "event_id" => out.event_id = Some(map.next_value::<Text<'de>>()?.0),
                "ts_ms" => out.ts_ms = Some(map.next_value::<i64>()?),
                "customer_id" => out.customer_id = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0),
                "src_ts_ms" if slot.is_none() => out.src_ts_ms = map.next_value::<Option<i64>>()?,
                _ if slot.is_some() => {
                    let v: BV<'de> = map.next_value()?;
                    match (key.as_ref(), &v) {
                        ("source", BV::Str(s)) => out.source = Some(s.clone()),
                        ("src_ts_ms", BV::Int(t)) => out.src_ts_ms = Some(*t),
                        _ => {}
                    }
                    out.fields[slot.expect("a slot")] = Some(v); // a key given twice: the last one counts
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

impl<'a> JsonEvent<'a> {
    pub fn parse(raw: &'a [u8], spec: &EngineSpec) -> R<JsonEvent<'a>> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_slice(raw);
        let parsed = EventSeed { spec }.deserialize(&mut de).map_err(|_| Unsupported("an event that is not a canonical event"))?;
        de.end().map_err(|_| Unsupported("an event that is not a canonical event"))?;
        Ok(JsonEvent {
            fields: parsed.fields,
            customer_id: parsed.customer_id,
            src_ts_ms: parsed.src_ts_ms,
            event_id: parsed.event_id.ok_or(Unsupported("an event without event_id"))?,
            source: parsed.source.ok_or(Unsupported("an event without source"))?,
            ts_ms: parsed.ts_ms.ok_or(Unsupported("an event without ts_ms"))?,
        })
    }
}

impl EventView for JsonEvent<'_> {
    fn event_id(&self) -> &str {
        &self.event_id
    }
    fn source(&self) -> &str {
        &self.source
    }
    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }
    fn field(&self, slot: usize) -> R<Option<EV>> {
        self.fields[slot].as_ref().map(ev_of_bv).transpose()
    }
    fn values_of(&self, slot: usize, every: bool) -> R<Vec<crate::features::num::Val>> {
        match &self.fields[slot] {
            None | Some(BV::Null) => Ok(Vec::new()),
            Some(BV::Arr(items)) if every => items.iter().map(state::val_of_bv).collect(),
            Some(BV::Arr(items)) => items.first().map(state::val_of_bv).transpose().map(|v| v.into_iter().collect()),
            Some(v) => Ok(vec![state::val_of_bv(v)?]),
        }
    }
}
