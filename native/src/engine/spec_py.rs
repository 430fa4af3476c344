//! The engine's `Spec` from the dict `streams/engine/native_engine.py` builds out of a Python
//! `TagEngine` (`spec_of`): the features, the tags, and what is derived from both once.

use super::run::ev_of_val;
use super::spec::{FeatureSpec, SincePlan, Spec, TagSpec};
use crate::expr::eval::{eval, optimize, remap, Node};
use crate::expr::node_of;
use crate::expr::value::EV;
use crate::features::feature::{Data, Feature};
use crate::features::num::Unsupported;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use crate::fxhash::FxMap;
use std::collections::HashMap;

type RawPlan = (Vec<i64>, Vec<bool>, Vec<Vec<String>>, Vec<Vec<String>>);

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?.ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.to_string()))
}

fn tree(o: &Bound<'_, PyAny>) -> PyResult<(Node, Vec<String>)> {
    let mut names = Vec::new();
    let node = node_of(o, &mut names)?;
    Ok((node, names))
}

/// What the features and tags are read into: names, event fields and filter texts get their slots
/// as they come.
#[derive(Default)]
struct Builder {
    names: Vec<String>,
    event_fields: Vec<String>,
    event_slot: FxMap<String, usize>,
    filter_texts: HashMap<String, usize>,
}

impl Builder {
    fn name(&self, n: &str) -> PyResult<usize> {
        self.names.iter().position(|x| x == n).ok_or_else(|| Unsupported("a tag reads a name no feature has").into())
    }

    /// The slot of event field `name` (added when new).
    fn field(&mut self, name: &str) -> usize {
        let fields = &mut self.event_fields;
        *self.event_slot.entry(name.to_string()).or_insert_with(|| {
            fields.push(name.to_string());
            fields.len() - 1
        })
    }

    fn feature(&mut self, f: &Bound<'_, PyDict>) -> PyResult<(FeatureSpec, Option<RawPlan>)> {
        let feature = Feature::new(&item(f, "agg")?.extract::<String>()?, item(f, "window_ms")?.extract()?,
                                   item(f, "resolution_ms")?.extract()?, &[])?
            .with_thresholds_ms(item(f, "thresholds_ms")?.extract()?);
        let filter = match item(f, "where")? {
            w if w.is_none() => None,
            w => {
                let (node, fields) = tree(&w)?;
                Some((optimize(node), fields.iter().map(|n| self.field(n)).collect()))
            }
        };
        let filter_slot = match &filter {
            None => None,
            Some(_) => {
                let n = self.filter_texts.len();
                Some(*self.filter_texts.entry(item(f, "filter_key")?.extract()?).or_insert(n))
            }
        };
        let field: Option<String> = item(f, "field")?.extract()?;
        let names: Vec<String> = item(f, "names")?.extract()?;
        let spec = FeatureSpec {
            key: item(f, "key")?.extract()?,
            feature,
            field_slot: field.as_deref().map(|n| self.field(n)),
            sources: item(f, "sources")?.extract()?,
            filter,
            filter_slot,
            names: names.iter().map(|n| self.name(n)).collect::<PyResult<_>>()?,
            since: None,
        };
        let plan = item(f, "since")?;
        Ok((spec, if plan.is_none() { None } else { Some(plan.extract()?) }))
    }

    fn tag(&self, t: &Bound<'_, PyDict>) -> PyResult<TagSpec> {
        let (mut when, slots) = tree(&item(t, "when")?)?;
        let slots: Vec<usize> = slots.iter().map(|n| self.name(n)).collect::<PyResult<_>>()?;
        remap(&mut when, &slots);
        let features: Vec<String> = item(t, "features")?.extract()?;
        Ok(TagSpec {
            name: item(t, "name")?.extract()?,
            when: optimize(when),
            true_when_blank: false,
            slots,
            features: features.iter().map(|n| self.name(n)).collect::<PyResult<_>>()?,
        })
    }
}

/// A time-since plan with its tags as indexes in rule order.
fn since_plan(plan: RawPlan, tag_index: &FxMap<String, usize>) -> PyResult<SincePlan> {
    let indexes = |lists: Vec<Vec<String>>| -> PyResult<Vec<Vec<usize>>> {
        lists
            .iter()
            .map(|ns| {
                ns.iter()
                    .map(|n| tag_index.get(n).copied().ok_or_else(|| Unsupported("a time-since plan names an unknown tag").into()))
                    .collect()
            })
            .collect()
    };
    let (thresholds, always, if_held, if_not_held) = plan;
    Ok(SincePlan { thresholds, always, if_held: indexes(if_held)?, if_not_held: indexes(if_not_held)? })
}

/// Every name's value for a customer with no data, and which tags hold on it.
fn blank_values(features: &[FeatureSpec], tags: &mut [TagSpec], n_names: usize) -> PyResult<Vec<EV>> {
    let mut blank = vec![EV::None; n_names];
    for f in features {
        let v = ev_of_val(&f.feature.value(&Data::None, 0)?);
        for &n in &f.names {
            blank[n] = v.clone();
        }
    }
    for t in tags.iter_mut() {
        t.true_when_blank = eval(&t.when, &blank)?.truthy();
    }
    Ok(blank)
}

pub fn spec_from_py(spec: &Bound<'_, PyDict>) -> PyResult<Spec> {
    let mut b = Builder { names: item(spec, "names")?.extract()?, ..Builder::default() };
    b.field("type");
    b.field("source");
    let raw: Vec<(FeatureSpec, Option<RawPlan>)> = item(spec, "features")?
        .downcast::<PyList>()?
        .iter()
        .map(|f| b.feature(f.downcast::<PyDict>()?))
        .collect::<PyResult<_>>()?;
    let mut tags: Vec<TagSpec> =
        item(spec, "tags")?.downcast::<PyList>()?.iter().map(|t| b.tag(t.downcast::<PyDict>()?)).collect::<PyResult<_>>()?;
    let tag_index: FxMap<String, usize> = tags.iter().enumerate().map(|(j, t)| (t.name.clone(), j)).collect();
    let features: Vec<FeatureSpec> = raw
        .into_iter()
        .map(|(mut f, plan)| {
            f.since = plan.map(|p| since_plan(p, &tag_index)).transpose()?;
            Ok(f)
        })
        .collect::<PyResult<_>>()?;
    let blank = blank_values(&features, &mut tags, b.names.len())?;
    let mut tags_of_name = vec![Vec::new(); b.names.len()];
    for (j, t) in tags.iter().enumerate() {
        for &n in &t.slots {
            if !tags_of_name[n].contains(&j) {
                tags_of_name[n].push(j);
            }
        }
    }
    Ok(Spec {
        version: item(spec, "version")?.extract()?,
        lateness_ms: item(spec, "allowed_lateness_ms")?.extract()?,
        dedup_horizon_ms: item(spec, "dedup_horizon_ms")?.extract()?,
        dedup_max_ids: item(spec, "dedup_max_ids")?.extract()?,
        by_key: features.iter().enumerate().map(|(i, f)| (f.key.clone(), i)).collect(),
        features,
        names: b.names,
        tag_names: tags.iter().map(|t| t.name.clone()).collect(),
        tag_index,
        tags,
        filter_slots: b.filter_texts.len(),
        event_fields: b.event_fields,
        event_slot: b.event_slot,
        tags_of_name,
        blank,
    })
}
