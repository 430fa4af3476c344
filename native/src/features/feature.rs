//! `streams/engine/features/runtime.py`'s `FeatureRuntime` natively: one feature's data, folded
//! event by event, read, pruned, its next change, and two customers' data merged.
//!
//! The data keeps the Python engine's shapes *and orders* (a window's buckets and a distinct
//! count's values in the order they were first added), so that it encodes to the same changelog
//! bytes and sums its buckets in the same order (float addition is not associative).

use super::agg::{Acc, Agg};
use super::num::{repr, round_to, Unsupported, Val, R};

pub const MAX_DISTINCT: usize = 1000;
const EXACT_MS: i64 = 1 << 50;

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    None,
    /// lifetime count/sum/min/max/avg/first/last, since_last's newest ts
    Acc(Acc),
    /// windowed: bucket -> accumulator, in insertion order
    Buckets(Vec<(i64, Acc)>),
    /// distinct_count: value key -> newest bucket (windowed) or 0 (lifetime), in insertion order
    Keys(Vec<(String, i64)>),
}

#[derive(Clone, Debug)]
pub struct Feature {
    pub agg: Agg,
    /// (window_ms, resolution_ms); None: lifetime
    pub window: Option<(i64, i64)>,
    pub thresholds_ms: Vec<i64>,
}

/// A value's key in a distinct count (`runtime._distinct_key`).
pub fn distinct_key(v: &Val) -> R<String> {
    match v {
        Val::Str(s) => Ok(s.clone()),
        other => repr(other),
    }
}

impl Feature {
    pub fn new(agg: &str, window_ms: Option<i64>, resolution_ms: Option<i64>, thresholds_s: &[f64]) -> R<Feature> {
        let agg = Agg::parse(agg)?;
        let window = match window_ms {
            None => None,
            Some(w) if w > 0 => Some((w, resolution_ms.unwrap_or_else(|| (w / 60).max(1)))),
            Some(_) => return Err(Unsupported("a window that is not positive")),
        };
        if window.is_some() && agg == Agg::SinceLast {
            return Err(Unsupported("a windowed since_last"));
        }
        if let Some((_, res)) = window {
            if res <= 0 {
                return Err(Unsupported("a resolution that is not positive"));
            }
        }
        let mut ms: Vec<i64> = Vec::new();
        for t in thresholds_s {
            let c = (t * 1000.0).ceil();
            if !c.is_finite() || c.abs() > 1e15 {
                return Err(Unsupported("a time-since threshold out of range"));
            }
            ms.push(c as i64);
            ms.push(c as i64 + 1);
        }
        ms.sort_unstable();
        ms.dedup();
        Ok(Feature { agg, window, thresholds_ms: if agg == Agg::SinceLast { ms } else { Vec::new() } })
    }

    /// The feature with its time-since thresholds as the Python runtime holds them
    /// (`FeatureRuntime.thresholds_ms`: sorted, both `ceil(t)` and `ceil(t) + 1`).
    pub fn with_thresholds_ms(mut self, thresholds_ms: Vec<i64>) -> Feature {
        if self.agg == Agg::SinceLast {
            self.thresholds_ms = thresholds_ms;
        }
        self
    }

    pub fn windowed(&self) -> bool {
        self.window.is_some()
    }

    fn distinct(&self) -> bool {
        self.agg == Agg::DistinctCount
    }

    /// The event's bucket, or None when it already left the window at `now_ms`.
    fn live_bucket(&self, ts_ms: i64, now_ms: i64) -> Option<i64> {
        let (w, res) = self.window.expect("windowed");
        let b = ts_ms.div_euclid(res);
        if (b + 1) * res + w <= now_ms { None } else { Some(b) }
    }

    fn oldest_live(&self, now_ms: i64) -> i64 {
        let (w, res) = self.window.expect("windowed");
        (now_ms - w).div_euclid(res)
    }

    /// Folds the values an event contributes (`values_of`: already taken from the event) into
    /// `data`; returns the new data and whether the event was late for this window.
    pub fn fold(&self, data: Data, values: &[Val], ts_ms: i64, now_ms: i64) -> R<(Data, bool)> {
        if values.is_empty() {
            return Ok((data, false));
        }
        match (self.window.is_some(), self.distinct()) {
            (false, false) => {
                let mut acc = match data {
                    Data::None => None,
                    Data::Acc(a) => Some(a),
                    _ => return Err(Unsupported("data of another shape")),
                };
                for v in values {
                    acc = Some(match acc {
                        None => self.agg.initialize(v, ts_ms)?,
                        Some(a) => self.agg.update(a, v, ts_ms)?,
                    });
                }
                Ok((acc.map_or(Data::None, Data::Acc), false))
            }
            (false, true) => {
                let mut keys = keys_of(data)?;
                for v in values {
                    let k = distinct_key(v)?;
                    match keys.iter_mut().find(|(key, _)| *key == k) {
                        Some(e) => e.1 = 0,
                        None => keys.push((k, 0)),
                    }
                }
                cap(&mut keys);
                Ok((Data::Keys(keys), false))
            }
            (true, false) => {
                let Some(bucket) = self.live_bucket(ts_ms, now_ms) else { return Ok((data, true)) };
                let mut buckets = buckets_of(data)?;
                let at = buckets.iter().position(|(b, _)| *b == bucket);
                let mut acc = at.map(|i| buckets[i].1.clone());
                for v in values {
                    acc = Some(match acc {
                        None => self.agg.initialize(v, ts_ms)?,
                        Some(a) => self.agg.update(a, v, ts_ms)?,
                    });
                }
                let acc = acc.expect("values is not empty");
                match at {
                    Some(i) => buckets[i].1 = acc,
                    None => buckets.push((bucket, acc)),
                }
                Ok((Data::Buckets(buckets), false))
            }
            (true, true) => {
                let Some(bucket) = self.live_bucket(ts_ms, now_ms) else { return Ok((data, true)) };
                let mut keys = keys_of(data)?;
                for v in values {
                    seen_in(&mut keys, distinct_key(v)?, bucket);
                }
                cap(&mut keys);
                Ok((Data::Keys(keys), false))
            }
        }
    }

    /// The feature's value at `now_ms` (the data pruned to `now_ms` first, as the engine does).
    pub fn value(&self, data: &Data, now_ms: i64) -> R<Val> {
        if self.agg == Agg::SinceLast {
            return match data {
                Data::None => Ok(Val::Null),
                Data::Acc(Acc::One(Val::Int(ts))) => {
                    let m = now_ms - ts;
                    Ok(Val::Float(if -EXACT_MS < m && m < EXACT_MS { m as f64 / 1000.0 } else { round_to(m as f64 / 1000.0, 3) }))
                }
                _ => Err(Unsupported("since_last data that is not an integer instant")),
            };
        }
        match data {
            Data::None => Ok(self.agg.empty()),
            Data::Acc(a) => self.agg.finish(a),
            Data::Buckets(b) if b.is_empty() => Ok(self.agg.empty()),
            Data::Buckets(b) => self.agg.result(b.iter().map(|(_, a)| a)),
            Data::Keys(k) if k.is_empty() => Ok(self.agg.empty()),
            Data::Keys(k) => Ok(Val::Int(k.len() as i64)),
        }
    }

    /// Drops the buckets (or distinct values) that left the window; None when nothing is left.
    pub fn prune(&self, data: Data, now_ms: i64) -> Data {
        if self.window.is_none() {
            return data;
        }
        let lo = self.oldest_live(now_ms);
        match data {
            Data::Buckets(mut b) => {
                b.retain(|(bucket, _)| *bucket >= lo);
                if b.is_empty() { Data::None } else { Data::Buckets(b) }
            }
            Data::Keys(mut k) => {
                k.retain(|(_, bucket)| *bucket >= lo);
                if k.is_empty() { Data::None } else { Data::Keys(k) }
            }
            other => other,
        }
    }

    /// The next instant after `now_ms` at which the value changes with no new event (None: never).
    pub fn next_change_ms(&self, data: &Data, now_ms: i64) -> Option<i64> {
        if self.agg == Agg::SinceLast {
            let Data::Acc(Acc::One(Val::Int(ts))) = data else { return None };
            return self.thresholds_ms.iter().map(|t| ts + t).find(|at| *at > now_ms);
        }
        let (w, res) = self.window?;
        let lo = self.oldest_live(now_ms);
        let oldest = match data {
            Data::Buckets(b) => b.iter().map(|(bucket, _)| *bucket).filter(|b| *b >= lo).min(),
            Data::Keys(k) => k.iter().map(|(_, bucket)| *bucket).filter(|b| *b >= lo).min(),
            _ => None,
        }?;
        Some((oldest + 1) * res + w)
    }

    /// One customer's data made of two (identity merge): `a`'s order, then `b`'s new entries.
    pub fn merge(&self, a: Data, b: Data) -> R<Data> {
        match (emptied(a), emptied(b)) {
            (Data::None, x) | (x, Data::None) => Ok(x),
            (Data::Acc(x), Data::Acc(y)) => Ok(Data::Acc(self.agg.merge(x, y)?)),
            (Data::Buckets(mut x), Data::Buckets(y)) => {
                for (bucket, acc) in y {
                    match x.iter().position(|(b, _)| *b == bucket) {
                        Some(i) => {
                            let mine = x[i].1.clone();
                            x[i].1 = self.agg.merge(mine, acc)?;
                        }
                        None => x.push((bucket, acc)),
                    }
                }
                Ok(Data::Buckets(x))
            }
            (Data::Keys(mut x), Data::Keys(y)) => {
                for (k, bucket) in y {
                    seen_in(&mut x, k, bucket);
                }
                cap(&mut x);
                Ok(Data::Keys(x))
            }
            _ => Err(Unsupported("data of two shapes")),
        }
    }
}

/// An empty window or distinct set merges as no data (Python's `if not a or not b`).
fn emptied(data: Data) -> Data {
    match data {
        Data::Buckets(b) if b.is_empty() => Data::None,
        Data::Keys(k) if k.is_empty() => Data::None,
        other => other,
    }
}

fn keys_of(data: Data) -> R<Vec<(String, i64)>> {
    match data {
        Data::None => Ok(Vec::new()),
        Data::Keys(k) => Ok(k),
        Data::Buckets(b) if b.is_empty() => Ok(Vec::new()),
        _ => Err(Unsupported("data of another shape")),
    }
}

fn buckets_of(data: Data) -> R<Vec<(i64, Acc)>> {
    match data {
        Data::None => Ok(Vec::new()),
        Data::Buckets(b) => Ok(b),
        Data::Keys(k) if k.is_empty() => Ok(Vec::new()),
        _ => Err(Unsupported("data of another shape")),
    }
}

/// Value `k` seen in `bucket`: a distinct count keeps the newest bucket each value was seen in.
fn seen_in(keys: &mut Vec<(String, i64)>, k: String, bucket: i64) {
    match keys.iter_mut().find(|(key, _)| *key == k) {
        Some(e) => e.1 = e.1.max(bucket),
        None => keys.push((k, bucket)),
    }
}

/// At most `MAX_DISTINCT` values: the ones of the oldest buckets go first (ties: the first added).
fn cap(keys: &mut Vec<(String, i64)>) {
    if keys.len() <= MAX_DISTINCT {
        return;
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| keys[i].1); // stable: insertion order among equal buckets
    let mut drop = vec![false; keys.len()];
    for &i in &order[..keys.len() - MAX_DISTINCT] {
        drop[i] = true;
    }
    let mut i = 0;
    keys.retain(|_| {
        let keep = !drop[i];
        i += 1;
        keep
    });
}
