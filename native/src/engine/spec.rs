//! What the native engine runs, as `streams/engine/native_engine.py` hands it over from a Python
//! `TagEngine`: the features in the engine's order (`TagEngine.runtimes`), the names tags read them
//! by, the tags in rule order with their compiled conditions, and the time-since plans (`SinceDue`).

use crate::expr::eval::Node;
use crate::features::feature::Feature;
use crate::fxhash::{FxMap, FxSet};

pub struct FeatureSpec {
    pub key: String,
    pub feature: Feature,
    pub sources: Vec<String>,
    /// the `where` filter and the event fields (slots of `Spec.event_fields`) its names read
    pub filter: Option<(Node, Vec<usize>)>,
    /// its field's slot in `Spec.event_fields`
    pub field_slot: Option<usize>,
    /// features with the same filter text share one evaluation per event (`FoldPlans`' slot)
    pub filter_slot: Option<usize>,
    /// the names tags read it by (indexes into `Spec.names`)
    pub names: Vec<usize>,
    pub since: Option<SincePlan>,
}

/// `since_due._Plan`: per threshold, whether it always matters, or for which tags (indexes in
/// rule order) held or not held.
pub struct SincePlan {
    pub thresholds: Vec<i64>,
    pub always: Vec<bool>,
    pub if_held: Vec<Vec<usize>>,
    pub if_not_held: Vec<Vec<usize>>,
}

impl SincePlan {
    /// `_Plan.next_ms`: the first threshold after `now_ms` that matters for the `held` tags.
    pub fn next_ms(&self, ts: i64, now_ms: i64, held: &[bool]) -> Option<i64> {
        for (i, t) in self.thresholds.iter().enumerate() {
            let at = ts + t;
            if at > now_ms
                && (self.always[i] || self.if_held[i].iter().any(|&j| held[j]) || self.if_not_held[i].iter().any(|&j| !held[j]))
            {
                return Some(at);
            }
        }
        None
    }
}

pub struct TagSpec {
    pub name: String,
    /// its condition, reading the engine's name indexes
    pub when: Node,
    /// the names (indexes into `Spec.names`) `when` reads
    pub slots: Vec<usize>,
    /// `tag.features`, in its order: the change record's `features`
    pub features: Vec<usize>,
    /// its condition holds for a customer with no data (`orders_30d == 0`)
    pub true_when_blank: bool,
}

pub struct Spec {
    pub version: String,
    pub lateness_ms: Option<i64>,
    pub dedup_horizon_ms: i64,
    pub dedup_max_ids: i64,
    pub features: Vec<FeatureSpec>,
    pub by_key: FxMap<String, usize>,
    pub names: Vec<String>,
    pub tags: Vec<TagSpec>,
    pub tag_names: FxSet<String>,
    /// tag name -> index in rule order
    pub tag_index: FxMap<String, usize>,
    pub filter_slots: usize,
    /// the event fields the engine reads: `type` (0), `source` (1), every feature's field and
    /// filter's names; an event is read once into these slots
    pub event_fields: Vec<String>,
    pub event_slot: FxMap<String, usize>,
    /// every name's value for a customer with no data (no feature's blank value moves with time)
    pub blank: Vec<crate::expr::value::EV>,
    /// per name, the tags (indexes) whose conditions read it
    pub tags_of_name: Vec<Vec<usize>>,
}
