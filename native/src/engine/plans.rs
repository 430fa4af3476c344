//! `streams/engine/fold_plan.py`'s `FoldPlans` natively: per (source, type), the features an
//! event of that pair can feed, with the filters that read only `source` and `type` decided once
//! (the others keep their filter's slot, evaluated per event and shared by equal filter texts).

use super::spec::Spec;
use crate::expr::eval::eval;
use crate::expr::value::EV;
use crate::features::num::R;
use std::cell::RefCell;
use std::rc::Rc;

/// One step of a fold plan: a feature, and the slot of its filter when the event's other fields
/// decide it (None: nothing left to evaluate).
pub type Step = (usize, Option<usize>);

/// `Spec.event_fields`' first two slots
pub const TYPE: usize = 0;
pub const SOURCE: usize = 1;
/// Types are validated enums (a few dozen pairs); a bound all the same.
const MAX_PLANS: usize = 64;

#[derive(Default)]
pub struct FoldPlans {
    plans: RefCell<Vec<(String, Option<String>, Rc<Vec<Step>>)>>,
}

impl FoldPlans {
    pub fn get(&self, spec: &Spec, source: &str, type_: Option<&str>) -> R<Rc<Vec<Step>>> {
        if let Some((_, _, p)) = self.plans.borrow().iter().find(|(s, t, _)| s == source && t.as_deref() == type_) {
            return Ok(p.clone());
        }
        let mut steps = Vec::new();
        for (i, f) in spec.features.iter().enumerate() {
            if !f.sources.iter().any(|s| s == source) {
                continue;
            }
            match &f.filter {
                None => steps.push((i, None)),
                Some((node, slots)) if slots.iter().all(|&n| n == TYPE || n == SOURCE) => {
                    let env: Vec<EV> = slots
                        .iter()
                        .map(|&n| match (n, type_) {
                            (SOURCE, _) => EV::Str(Rc::from(source)),
                            (_, Some(t)) => EV::Str(Rc::from(t)),
                            (_, None) => EV::None,
                        })
                        .collect();
                    if eval(node, &env)?.truthy() {
                        steps.push((i, None));
                    }
                }
                Some(_) => steps.push((i, f.filter_slot)),
            }
        }
        let plan = Rc::new(steps);
        let mut plans = self.plans.borrow_mut();
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.push((source.to_string(), type_.map(str::to_string), plan.clone()));
        Ok(plan)
    }
}
