//! tagstream's native core (PyO3), loaded by `streams/engine/native.py` when a build of these
//! sources exists (`python -m streams.tools.build_native`).
//!
//! Today it holds ingest's fast path for a plain source record: `fast_event(source, raw, src_ts_ms)`
//! checks the record as `schemas/fast_decode.py` does and returns a `FastEvent` whose `item(...)` is
//! the internal topic's encoded canonical event (what `orjson.dumps` of `to_canonical`'s dict, with
//! the customer key and the source position stamped, gives), or None: the record is not plain enough,
//! and the Python path (the fast one, then the models) decides and writes any dead-letter reason.
//! The contract, held by tests/unit/test_core.py against the models on generated and mutated
//! records: this path only accepts, and what it accepts is exactly what the models give.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::io::Write;

use value::{get, Obj, BV};

mod engine;
mod expr;
mod features;
mod fxhash;
mod ingest;
mod ts;
mod value;

/// The core allocates and frees small vectors by the million per second (states copied, folded and
/// dropped, events parsed): glibc's malloc took 17 % of the worker's main thread there (py-spy,
/// benchmarks/README.md); mimalloc's thread-local free lists cost a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MAX_ID_CHARS: usize = 256;
const MAX_LABEL_CHARS: usize = 256;
const MAX_QUERY_CHARS: usize = 4096;
const MAX_URL_CHARS: usize = 8192;
const MAX_ITEMS: usize = 1000;
const MAX_MONEY: f64 = 1e12;
const MAX_MONEY_INT: i64 = 1_000_000_000_000;
const MAX_QTY: i64 = 1_000_000;
const MIN_TS_MS: i64 = 978_307_200_000; // 2001-01-01T00:00:00Z
const MAX_TS_MS: i64 = 7_289_654_399_999; // 2200-12-31T23:59:59.999Z
const CONTACT_HASH_CHARS: usize = 64;
const MAX_BRACKETS: usize = 128;
const CLICK_TYPES: [&str; 7] =
    ["page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_start", "login"];
const POS_TYPES: [&str; 2] = ["sale", "return"];
const ORDER_STATUSES: [&str; 5] = ["created", "paid", "shipped", "cancelled", "refunded"];
const ORDER_CHANNELS: [&str; 4] = ["web", "app", "mini_program", "marketplace"];
const CONTACT_TYPES: [&str; 2] = ["email_sha256", "phone_sha256"];
const POS_CHANNEL: &str = "store";

/// None: a value this path does not vouch for (the Python path decides).
type Sure<T> = Option<T>;

fn chars(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.chars().count() }
}

fn id<'b>(v: Option<&'b BV<'_>>) -> Sure<&'b str> {
    match v? {
        BV::Str(s) if !s.is_empty() && chars(s) <= MAX_ID_CHARS => Some(s),
        _ => None,
    }
}

/// `Some(None)`: absent or null; `Some(Some(id))`: a valid id; None: anything else.
fn opt_id<'b>(v: Option<&'b BV<'_>>) -> Sure<Option<&'b str>> {
    match v {
        None | Some(BV::Null) => Some(None),
        other => id(other).map(Some),
    }
}

fn text<'b>(v: Option<&'b BV<'_>>, limit: usize) -> Sure<&'b str> {
    match v? {
        BV::Str(s) if chars(s) <= limit => Some(s),
        _ => None,
    }
}

fn opt_text<'b>(v: Option<&'b BV<'_>>, limit: usize) -> Sure<Option<&'b str>> {
    match v {
        None | Some(BV::Null) => Some(None),
        other => text(other, limit).map(Some),
    }
}

/// A JSON number in `low`..=MAX_MONEY (`low` is 0 or -MAX_MONEY), as a double; an integer compares
/// exactly, as Python compares an int with a float.
fn money(v: Option<&BV<'_>>, low_int: i64) -> Sure<f64> {
    match *v? {
        BV::Int(i) => (low_int <= i && i <= MAX_MONEY_INT).then_some(i as f64),
        BV::Float(f) => (low_int as f64 <= f && f <= MAX_MONEY).then_some(f),
        _ => None, // past 64 bits (past MAX_MONEY too), or no number
    }
}

fn member<'b>(v: Option<&'b BV<'_>>, set: &[&str]) -> Sure<&'b str> {
    match v? {
        BV::Str(s) if set.contains(&s.as_ref()) => Some(s),
        _ => None,
    }
}

fn common<'b>(obj: &'b Obj<'_>) -> Sure<(&'b str, i64)> {
    let event_id = id(get(obj, "event_id"))?;
    let ts = match get(obj, "ts")? {
        BV::Int(ms) => (MIN_TS_MS..=MAX_TS_MS).contains(ms).then_some(*ms)?, // a float ts: the models decide
        BV::Str(s) => ts::rfc3339_ms(s)?,
        _ => return None,
    };
    Some((event_id, ts))
}

struct Items<'a> {
    skus: Vec<&'a str>,
    categories: Vec<&'a str>,
    quantity: i64,
}

fn items<'b>(v: &'b BV<'_>) -> Sure<Items<'b>> {
    let BV::Arr(list) = v else { return None };
    if list.len() > MAX_ITEMS {
        return None;
    }
    let mut out = Items { skus: Vec::new(), categories: Vec::new(), quantity: 0 };
    for item in list {
        let BV::Obj(item) = item else { return None };
        let sku = text(get(item, "sku"), MAX_ID_CHARS)?;
        let category = text(get(item, "category"), MAX_LABEL_CHARS)?;
        let Some(&BV::Int(qty)) = get(item, "qty") else { return None };
        if !(1..=MAX_QTY).contains(&qty) {
            return None;
        }
        money(get(item, "unit_price"), 0)?;
        if !sku.is_empty() && !out.skus.contains(&sku) {
            out.skus.push(sku);
        }
        if !category.is_empty() && !out.categories.contains(&category) {
            out.categories.push(category);
        }
        out.quantity += qty;
    }
    Some(out)
}

fn contacts(obj: &Obj<'_>, ids: &mut Vec<(&'static str, String)>) -> Sure<()> {
    for id_type in CONTACT_TYPES {
        match get(obj, id_type) {
            None | Some(BV::Null) => {}
            Some(BV::Str(s))
                if s.len() == CONTACT_HASH_CHARS && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                ids.push((id_type, s.to_string()))
            }
            _ => return None,
        }
    }
    Some(())
}

/// The canonical event's fields, in `to_canonical`'s key order.
struct Canonical<'a> {
    event_id: &'a str,
    source: &'static str,
    type_: &'a str,
    customer_id: Option<&'a str>,
    ts_ms: i64,
    src_ts_ms: i64,
    amount: Option<f64>,
    currency: Option<String>,
    skus: Vec<&'a str>,
    categories: Vec<&'a str>,
    channel: Option<&'a str>,
    store_id: Option<&'a str>,
    session_id: Option<&'a str>,
    order_id: Option<&'a str>,
    payment_method: Option<&'a str>,
    quantity: Option<i64>,
    query: Option<&'a str>,
    url: Option<&'a str>,
}

fn clickstream<'a>(obj: &'a Obj<'_>, src_ts_ms: i64, ids: &mut Vec<(&'static str, String)>) -> Sure<Canonical<'a>> {
    let (event_id, ts_ms) = common(obj)?;
    let user_id = opt_id(get(obj, "user_id"))?;
    let anonymous_id = opt_id(get(obj, "anonymous_id"))?;
    if user_id.is_none() && anonymous_id.is_none() {
        return None; // the models say why (missing_identity)
    }
    let session_id = text(get(obj, "session_id"), MAX_ID_CHARS)?;
    let type_ = member(get(obj, "type"), &CLICK_TYPES)?;
    let sku = opt_text(get(obj, "sku"), MAX_ID_CHARS)?;
    let category = opt_text(get(obj, "category"), MAX_LABEL_CHARS)?;
    let amount = match get(obj, "price") {
        None | Some(BV::Null) => None,
        price => Some(money(price, 0)? + 0.0),
    };
    let url = opt_text(get(obj, "url"), MAX_URL_CHARS)?;
    let query = opt_text(get(obj, "query"), MAX_QUERY_CHARS)?;
    let channel = opt_text(get(obj, "channel"), MAX_LABEL_CHARS)?;
    if let Some(u) = user_id {
        ids.push(("user", u.to_owned()));
    }
    if let Some(a) = anonymous_id {
        ids.push(("anonymous", a.to_owned()));
    }
    Some(Canonical {
        event_id, source: "clickstream", type_, customer_id: user_id, ts_ms, src_ts_ms, amount, currency: None,
        skus: sku.filter(|s| !s.is_empty()).into_iter().collect(),
        categories: category.filter(|c| !c.is_empty()).into_iter().collect(),
        channel, store_id: None, session_id: Some(session_id), order_id: None, payment_method: None,
        quantity: None, query, url,
    })
}

fn pos<'a>(obj: &'a Obj<'_>, src_ts_ms: i64, ids: &mut Vec<(&'static str, String)>) -> Sure<Canonical<'a>> {
    let (event_id, ts_ms) = common(obj)?;
    let store_id = id(get(obj, "store_id"))?;
    let member_id = opt_id(get(obj, "member_id"))?;
    let type_ = member(get(obj, "type"), &POS_TYPES)?;
    let list = get(obj, "items")?;
    if !matches!(list, BV::Arr(a) if !a.is_empty()) {
        return None;
    }
    let Items { skus, categories, quantity } = items(list)?;
    let total = money(get(obj, "total"), -MAX_MONEY_INT)?;
    let payment_method = text(get(obj, "payment_method"), MAX_LABEL_CHARS)?;
    if let Some(m) = member_id {
        ids.push(("member", m.to_owned()));
    }
    contacts(obj, ids)?;
    Some(Canonical {
        event_id, source: "pos", type_, customer_id: member_id, ts_ms, src_ts_ms, amount: Some(total.abs() + 0.0),
        currency: None, skus, categories, channel: Some(POS_CHANNEL), store_id: Some(store_id), session_id: None,
        order_id: None, payment_method: Some(payment_method), quantity: Some(quantity), query: None, url: None,
    })
}

fn orders<'a>(obj: &'a Obj<'_>, src_ts_ms: i64, ids: &mut Vec<(&'static str, String)>) -> Sure<Canonical<'a>> {
    let (event_id, ts_ms) = common(obj)?;
    let order_id = id(get(obj, "order_id"))?;
    let user_id = id(get(obj, "user_id"))?;
    let status = member(get(obj, "status"), &ORDER_STATUSES)?;
    let amount = money(get(obj, "amount"), 0)? + 0.0;
    let currency = match get(obj, "currency")? {
        BV::Str(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
        _ => return None,
    };
    let channel = member(get(obj, "channel"), &ORDER_CHANNELS)?;
    let Items { skus, categories, quantity } = items(get(obj, "items")?)?;
    ids.push(("user", user_id.to_owned()));
    contacts(obj, ids)?;
    Some(Canonical {
        event_id, source: "orders", type_: status, customer_id: Some(user_id), ts_ms, src_ts_ms, amount: Some(amount),
        currency: Some(currency), skus, categories, channel: Some(channel), store_id: None, session_id: None,
        order_id: Some(order_id), payment_method: None, quantity: Some(quantity), query: None, url: None,
    })
}

// -- encoding ------------------------------------------------------------------------------------

fn put_str(buf: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *buf, s).expect("writing to a Vec");
}

fn put_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

fn put_list(buf: &mut Vec<u8>, list: &[&str]) {
    buf.push(b'[');
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        put_str(buf, s);
    }
    buf.push(b']');
}

fn put_int(buf: &mut Vec<u8>, v: i64) {
    write!(buf, "{v}").expect("writing to a Vec");
}

impl Canonical<'_> {
    /// The encoded event in two parts: up to the customer id's value, and after it (no closing brace).
    fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let mut head = Vec::with_capacity(96);
        head.extend_from_slice(b"{\"event_id\":");
        put_str(&mut head, self.event_id);
        head.extend_from_slice(b",\"source\":");
        put_str(&mut head, self.source);
        head.extend_from_slice(b",\"type\":");
        put_str(&mut head, self.type_);
        head.extend_from_slice(b",\"customer_id\":");
        let mut t = Vec::with_capacity(320);
        t.extend_from_slice(b",\"ts_ms\":");
        put_int(&mut t, self.ts_ms);
        t.extend_from_slice(b",\"src_ts_ms\":");
        put_int(&mut t, self.src_ts_ms);
        t.extend_from_slice(b",\"amount\":");
        match self.amount {
            Some(a) => serde_json::to_writer(&mut t, &a).expect("writing to a Vec"),
            None => t.extend_from_slice(b"null"),
        }
        t.extend_from_slice(b",\"currency\":");
        put_opt_str(&mut t, self.currency.as_deref());
        t.extend_from_slice(b",\"skus\":");
        put_list(&mut t, &self.skus);
        t.extend_from_slice(b",\"categories\":");
        put_list(&mut t, &self.categories);
        t.extend_from_slice(b",\"channel\":");
        put_opt_str(&mut t, self.channel);
        t.extend_from_slice(b",\"store_id\":");
        put_opt_str(&mut t, self.store_id);
        t.extend_from_slice(b",\"session_id\":");
        put_opt_str(&mut t, self.session_id);
        t.extend_from_slice(b",\"order_id\":");
        put_opt_str(&mut t, self.order_id);
        t.extend_from_slice(b",\"payment_method\":");
        put_opt_str(&mut t, self.payment_method);
        t.extend_from_slice(b",\"quantity\":");
        match self.quantity {
            Some(q) => put_int(&mut t, q),
            None => t.extend_from_slice(b"null"),
        }
        t.extend_from_slice(b",\"query\":");
        put_opt_str(&mut t, self.query);
        t.extend_from_slice(b",\"url\":");
        put_opt_str(&mut t, self.url);
        (head, t)
    }
}

/// A plain source record, checked and half encoded: `item` finishes it with the customer key and
/// the source position.
#[pyclass(frozen, module = "tagstream_core")]
struct FastEvent {
    #[pyo3(get)]
    event_id: String,
    #[pyo3(get)]
    ts_ms: i64,
    /// The customer id without identity resolution (user or member id; None: anonymous or walk-in).
    #[pyo3(get)]
    customer_id: Option<String>,
    ids: Vec<(&'static str, String)>,
    head: Vec<u8>,
    tail: Vec<u8>,
}

#[pymethods]
impl FastEvent {
    /// The typed ids the record carries, as `schemas.identity.event_id_values` gives them.
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(py, self.ids.iter().map(|(t, v)| PyTuple::new_bound(py, [t.to_object(py), v.to_object(py)])))
    }

    /// The encoded canonical event with `customer_id` and the source position (`sp`, `so`: see
    /// `streams.app.ingest.stamp_position`).
    #[pyo3(signature = (customer_id, sp, so))]
    fn item<'py>(&self, py: Python<'py>, customer_id: Option<&str>, sp: &str, so: i64) -> Bound<'py, PyBytes> {
        PyBytes::new_bound(py, &self.encode_item(customer_id, sp, so))
    }
}

impl FastEvent {
    fn encode_item(&self, customer_id: Option<&str>, sp: &str, so: i64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.head.len() + self.tail.len() + 64);
        buf.extend_from_slice(&self.head);
        put_opt_str(&mut buf, customer_id);
        buf.extend_from_slice(&self.tail);
        buf.extend_from_slice(b",\"sp\":");
        put_str(&mut buf, sp);
        buf.extend_from_slice(b",\"so\":");
        put_int(&mut buf, so);
        buf.push(b'}');
        buf
    }
}

/// The fast path's answer for one source record: a `FastEvent`, or None (the Python path decides).
#[pyfunction]
fn fast_event(source: &str, raw: &[u8], src_ts_ms: i64) -> Option<FastEvent> {
    decode(source, raw, src_ts_ms)
}

fn decode(source: &str, raw: &[u8], src_ts_ms: i64) -> Option<FastEvent> {
    if raw.iter().filter(|&&c| c == b'[' || c == b'{').count() > MAX_BRACKETS {
        return None; // maybe nested deeper than the models' parser allows
    }
    let Some(BV::Obj(obj)) = value::parse(raw) else { return None };
    let mut ids = Vec::with_capacity(2);
    let canonical = match source {
        "clickstream" => clickstream(&obj, src_ts_ms, &mut ids)?,
        "pos" => pos(&obj, src_ts_ms, &mut ids)?,
        "orders" => orders(&obj, src_ts_ms, &mut ids)?,
        _ => return None,
    };
    let (head, tail) = canonical.encode();
    Some(FastEvent {
        event_id: canonical.event_id.to_owned(),
        ts_ms: canonical.ts_ms,
        customer_id: canonical.customer_id.map(str::to_owned),
        ids,
        head,
        tail,
    })
}

/// `ts::rfc3339_ms`, for the tests to hold to `schemas.events.rfc3339_ms`.
#[pyfunction]
fn rfc3339_ms(value: &str) -> Option<i64> {
    ts::rfc3339_ms(value)
}

/// The limits this build checks, for a test to compare with `schemas.events`.
#[pyfunction]
fn limits(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new_bound(py);
    d.set_item("MAX_ID_CHARS", MAX_ID_CHARS)?;
    d.set_item("MAX_LABEL_CHARS", MAX_LABEL_CHARS)?;
    d.set_item("MAX_QUERY_CHARS", MAX_QUERY_CHARS)?;
    d.set_item("MAX_URL_CHARS", MAX_URL_CHARS)?;
    d.set_item("MAX_ITEMS", MAX_ITEMS)?;
    d.set_item("MAX_MONEY", MAX_MONEY)?;
    d.set_item("MAX_QTY", MAX_QTY)?;
    d.set_item("MIN_TS_MS", MIN_TS_MS)?;
    d.set_item("MAX_TS_MS", MAX_TS_MS)?;
    d.set_item("MAX_TS_CHARS", ts::MAX_TS_CHARS)?;
    d.set_item("CONTACT_HASH_CHARS", CONTACT_HASH_CHARS)?;
    d.set_item("CLICK_TYPES", CLICK_TYPES.to_vec())?;
    d.set_item("POS_TYPES", POS_TYPES.to_vec())?;
    d.set_item("ORDER_STATUSES", ORDER_STATUSES.to_vec())?;
    d.set_item("ORDER_CHANNELS", ORDER_CHANNELS.to_vec())?;
    d.set_item("CONTACT_TYPES", CONTACT_TYPES.to_vec())?;
    d.set_item("POS_CHANNEL", POS_CHANNEL)?;
    Ok(d)
}

#[pymodule]
fn tagstream_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FastEvent>()?;
    m.add_class::<ingest::Ingest>()?;
    m.add_class::<features::NativeFeature>()?;
    m.add_class::<expr::NativeExpr>()?;
    m.add_class::<engine::NativeEngine>()?;
    m.add_class::<engine::NativeState>()?;
    m.add_function(wrap_pyfunction!(ingest::murmur2, m)?)?;
    m.add_function(wrap_pyfunction!(fast_event, m)?)?;
    m.add_function(wrap_pyfunction!(limits, m)?)?;
    m.add_function(wrap_pyfunction!(rfc3339_ms, m)?)?;
    Ok(())
}
