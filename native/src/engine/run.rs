//! The tag engine's evaluation natively, as the Python engine evaluates every tag
//! (`TagEngine(incremental=False)`, which the incremental one equals in changes, due times and
//! state bytes: tests/unit/test_engine_incremental.py): due times walked up to now, the event's
//! de-duplication, folding, every tag evaluated, the next due time.

use super::change::{change_id, Cause, Change};
use super::plans::{FoldPlans, TYPE};
use super::spec::Spec;
use super::state::State;
use crate::expr::eval::eval;
use crate::expr::value::{same, EV};
use crate::features::feature::Data;
use crate::features::num::{Unsupported, Val, R};
use std::rc::Rc;

pub const MAX_CATCH_UP_STEPS: usize = 1000;

/// What an event carries that the engine reads (`EventView` over a parsed envelope item).
pub trait EventView {
    fn event_id(&self) -> &str;
    fn source(&self) -> &str;
    fn ts_ms(&self) -> i64;
    /// the value of the field in slot `slot` of `Spec.event_fields`; None when missing
    fn field(&self, slot: usize) -> R<Option<EV>>;
    /// `FeatureRuntime.values_of` for the field in `slot`: none when missing or null, a list's
    /// first element, or (`every`: a distinct count) all of them
    fn values_of(&self, slot: usize, every: bool) -> R<Vec<Val>>;
}

#[derive(Default)]
pub struct Outcome {
    pub changes: Vec<Change>,
    pub late: bool,
    pub duplicate: bool,
}

pub fn ev_of_val(v: &Val) -> EV {
    match v {
        Val::Null => EV::None,
        Val::Bool(b) => EV::Bool(*b),
        Val::Int(i) => EV::Int(*i),
        Val::Float(f) => EV::Float(*f),
        Val::Str(s) => EV::Str(Rc::from(s.as_str())),
    }
}

pub struct Engine {
    /// shared with the states made for it (`NativeState`), which are written with it
    pub spec: Rc<Spec>,
    /// `FoldPlans`: per (source, type), the features an event of that pair can feed, with the
    /// filters that read only `source` and `type` decided once
    plans: FoldPlans,
}

impl Engine {
    pub fn new(spec: Spec) -> Engine {
        Engine { spec: Rc::new(spec), plans: FoldPlans::default() }
    }

    pub fn process_event(&self, st: &mut State, customer_id: &str, ev: &dyn EventView, now_ms: i64) -> R<Outcome> {
        let mut out = Outcome::default();
        out.changes = self.catch_up(st, customer_id, now_ms)?;
        let (horizon, max_ids) = (self.spec.dedup_horizon_ms, self.spec.dedup_max_ids);
        if horizon > 0 && st.seen_before(ev.event_id(), now_ms, horizon, max_ids) {
            out.duplicate = true;
            return Ok(out);
        }
        if st.version != self.spec.version {
            let mut up = self.upgrade(st, customer_id, now_ms)?;
            out.changes.append(&mut up);
        }
        let fed = self.fold(st, ev, now_ms, &mut out)?;
        let (values, changed) = self.all(st, now_ms, &fed)?;
        let mut diff = self.diff(st, customer_id, values, changed.as_deref(), now_ms, Cause::Event, Some(ev))?;
        out.changes.append(&mut diff);
        st.due_ms = self.next_due_ms(st, now_ms);
        Ok(out)
    }

    /// `TagEngine.fold_only`: the event's de-duplication and folding, no tag evaluated, no due time
    /// (an anonymous visitor whose tags are not published); the state keeps its rule version, and
    /// its next evaluation is a full one.
    pub fn fold_only(&self, st: &mut State, ev: &dyn EventView, now_ms: i64) -> R<Outcome> {
        let mut out = Outcome::default();
        let (horizon, max_ids) = (self.spec.dedup_horizon_ms, self.spec.dedup_max_ids);
        if horizon > 0 && st.seen_before(ev.event_id(), now_ms, horizon, max_ids) {
            out.duplicate = true;
            return Ok(out);
        }
        self.fold(st, ev, now_ms, &mut out)?;
        st.due_ms = None;
        st.last = None;
        st.last_blank = false;
        Ok(out)
    }

    pub fn catch_up(&self, st: &mut State, customer_id: &str, now_ms: i64) -> R<Vec<Change>> {
        let mut changes = Vec::new();
        for _ in 0..MAX_CATCH_UP_STEPS {
            match st.due_ms {
                Some(due) if due <= now_ms => changes.append(&mut self.process_due(st, customer_id, due, due)?),
                _ => return Ok(changes),
            }
        }
        changes.append(&mut self.process_due(st, customer_id, now_ms, now_ms)?);
        Ok(changes)
    }

    pub fn process_due(&self, st: &mut State, customer_id: &str, due_ms: i64, now_ms: i64) -> R<Vec<Change>> {
        let at = due_ms.min(now_ms);
        let mut changes = Vec::new();
        if st.version != self.spec.version {
            changes.append(&mut self.upgrade(st, customer_id, at)?);
        }
        let (values, changed) = self.all(st, at, &[])?;
        changes.append(&mut self.diff(st, customer_id, values, changed.as_deref(), at, Cause::Expiry, None)?);
        st.due_ms = self.next_due_ms(st, at);
        Ok(changes)
    }

    fn upgrade(&self, st: &mut State, customer_id: &str, now_ms: i64) -> R<Vec<Change>> {
        if !st.version.is_empty() {
            return Err(Unsupported("a state of other rules (the Python engine upgrades it)"));
        }
        let fresh = st.tags.is_empty();
        st.version = self.spec.version.clone();
        if fresh {
            return Ok(Vec::new());
        }
        let (values, changed) = self.all(st, now_ms, &[])?;
        self.diff(st, customer_id, values, changed.as_deref(), now_ms, Cause::RuleChange, None)
    }

    /// Folds the event into the features it feeds; returns them.
    fn fold(&self, st: &mut State, ev: &dyn EventView, now_ms: i64, out: &mut Outcome) -> R<Vec<usize>> {
        let mut fed = Vec::new();
        let ts = ev.ts_ms();
        let too_late = self.spec.lateness_ms.is_some_and(|l| now_ms - ts > l);
        out.late |= too_late;
        let type_ = match ev.field(TYPE)? {
            Some(EV::Str(t)) => Some(t),
            None | Some(EV::None) => None,
            Some(_) => return Err(Unsupported("an event type that is not a string")),
        };
        let plan = self.plans.get(&self.spec, ev.source(), type_.as_deref())?;
        let mut decided: Vec<Option<bool>> = Vec::new();
        for &(i, slot) in plan.iter() {
            let f = &self.spec.features[i];
            if too_late && f.feature.windowed() {
                continue;
            }
            if let Some(slot) = slot {
                if decided.is_empty() {
                    decided = vec![None; self.spec.filter_slots];
                }
                let ok = match decided[slot] {
                    Some(ok) => ok,
                    None => {
                        let (node, slots) = f.filter.as_ref().expect("a slot has a filter");
                        let env = slots.iter().map(|&n| Ok(ev.field(n)?.unwrap_or(EV::None))).collect::<R<Vec<_>>>()?;
                        let ok = eval(node, &env)?.truthy();
                        decided[slot] = Some(ok);
                        ok
                    }
                };
                if !ok {
                    continue;
                }
            }
            let values: Vec<Val> = match f.field_slot {
                None => vec![Val::Null],
                Some(slot) => ev.values_of(slot, f.feature.agg == crate::features::agg::Agg::DistinctCount)?,
            };
            let old = st.data[i].take().unwrap_or(Data::None);
            let had = !matches!(old, Data::None);
            let (data, late) = f.feature.fold(old, &values, ts, now_ms)?;
            out.late |= late;
            fed.push(i);
            match data {
                Data::None => {
                    if had {
                        st.order.retain(|&j| j != i); // cannot happen: a fold never empties data
                    }
                }
                d => {
                    if !had {
                        st.order.push(i);
                    }
                    st.data[i] = Some(d);
                }
            }
        }
        Ok(fed)
    }

    /// Every feature's value at `at` (`FeatureReads.all`), by name index, dropping what left its
    /// window; and the names whose value moved since the last evaluation (None: all may have).
    /// With that evaluation's values at hand (`State.last`), only the features that can have moved
    /// are read again: the ones `fed` since, the time-since ones, and the windowed ones whose next
    /// change has come (the others have nothing to prune either: it was all pruned then).
    fn all(&self, st: &mut State, at: i64, fed: &[usize]) -> R<(Vec<EV>, Option<Vec<usize>>)> {
        let Some(mut values) = st.last.take() else {
            let mut values = vec![EV::None; self.spec.names.len()];
            for i in 0..self.spec.features.len() {
                let v = self.read(st, i, at)?;
                for &n in &self.spec.features[i].names {
                    values[n] = v.clone();
                }
            }
            return Ok((values, None));
        };
        let mut changed = Vec::new();
        for (i, f) in self.spec.features.iter().enumerate() {
            let moved = f.since.is_some()
                || fed.contains(&i)
                || (f.feature.windowed() && st.next[i].is_some_and(|t| t <= at));
            if !moved {
                continue;
            }
            let v = self.read(st, i, at)?;
            for &n in &f.names {
                if !same(&values[n], &v) {
                    values[n] = v.clone();
                    changed.push(n);
                }
            }
        }
        Ok((values, Some(changed)))
    }

    /// Feature `i`'s value at `at` (`value_at`: its buckets that left the window dropped first).
    fn read(&self, st: &mut State, i: usize, at: i64) -> R<EV> {
        let f = &self.spec.features[i];
        if f.feature.windowed() {
            if let Some(d) = st.data[i].take() {
                match f.feature.prune(d, at) {
                    Data::None => st.order.retain(|&j| j != i),
                    d => st.data[i] = Some(d),
                }
            }
        }
        let v = match st.get(i) {
            Some(d) => f.feature.value(d, at)?,
            None => f.feature.value(&Data::None, at)?,
        };
        Ok(ev_of_val(&v))
    }

    /// Evaluates the tags (all of them, or with `changed` the ones reading a name whose value
    /// moved: the others keep their outcome, `State.last`) and returns their changes.
    fn diff(&self, st: &mut State, customer_id: &str, values: Vec<EV>, changed: Option<&[usize]>, at_ms: i64,
            cause: Cause, ev: Option<&dyn EventView>) -> R<Vec<Change>> {
        let mut changes = Vec::new();
        let blank = std::mem::take(&mut st.last_blank);
        let chosen: Option<Vec<bool>> = changed.map(|names| {
            let mut marks = vec![false; self.spec.tags.len()];
            for &n in names {
                for &j in &self.spec.tags_of_name[n] {
                    marks[j] = true;
                }
            }
            if blank {
                for (j, t) in self.spec.tags.iter().enumerate() {
                    marks[j] |= t.true_when_blank;
                }
            }
            marks
        });
        for (j, t) in self.spec.tags.iter().enumerate() {
            if chosen.as_ref().is_some_and(|m| !m[j]) {
                continue; // its inputs did not move: it keeps its outcome (``State.last``)
            }
            let holds = eval(&t.when, &values)?.truthy();
            if holds == st.held[j] {
                continue;
            }
            st.held[j] = holds;
            if holds {
                st.tags.push((t.name.clone(), at_ms));
            } else {
                st.tags.retain(|(n, _)| *n != t.name);
            }
            let op = if holds { "add" } else { "remove" };
            let event_id = ev.map(|e| e.event_id());
            changes.push(Change {
                change_id: change_id(customer_id, &t.name, op, cause, event_id, at_ms),
                tag: t.name.clone(),
                add: holds,
                at_ms,
                cause,
                event: ev.map(|e| (e.event_id().to_string(), e.ts_ms())),
                features: t.features.iter().map(|&n| (n, values[n].clone())).collect(),
            });
        }
        st.last = Some(values);
        // held under rules that had other tags: a full evaluation drops them
        if !std::mem::take(&mut st.foreign) {
            return Ok(changes);
        }
        let gone: Vec<String> =
            st.tags.iter().filter(|(n, _)| !self.spec.tag_names.contains(n)).map(|(n, _)| n.clone()).collect();
        for name in gone {
            st.tags.retain(|(n, _)| *n != name);
            changes.push(Change {
                change_id: change_id(customer_id, &name, "remove", Cause::RuleChange, None, at_ms),
                tag: name,
                add: false,
                at_ms,
                cause: Cause::RuleChange,
                event: None,
                features: Vec::new(),
            });
        }
        Ok(changes)
    }

    /// `DueTimes.next_due_ms`: the earliest next change of a feature with data (a time-since
    /// one's next threshold that matters for the held tags).
    fn next_due_ms(&self, st: &mut State, now_ms: i64) -> Option<i64> {
        let mut best: Option<i64> = None;
        st.next.iter_mut().for_each(|n| *n = None);
        for &i in &st.order {
            let f = &self.spec.features[i];
            let d = st.data[i].as_ref().expect("ordered data exists");
            let t = match (&f.since, d) {
                (Some(plan), Data::Acc(crate::features::agg::Acc::One(Val::Int(ts)))) => plan.next_ms(*ts, now_ms, &st.held),
                _ => f.feature.next_change_ms(d, now_ms),
            };
            st.next[i] = t;
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        best
    }
}
