//! Interoception (API.md §4) without a server: the factor rule, outcome parsing, decay,
//! the summary's entropy and the bounded score list of a buffered edge.
use crate::ParamError;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Rejected,
    Partial,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Partial => "partial",
        }
    }

    pub fn parse(arg: &str, s: &str) -> Result<Outcome, ParamError> {
        match s {
            "accepted" => Ok(Outcome::Accepted),
            "rejected" => Ok(Outcome::Rejected),
            "partial" => Ok(Outcome::Partial),
            _ => Err(ParamError::new(
                arg,
                format!("must be 'accepted', 'rejected' or 'partial', got {s:?}"),
            )),
        }
    }
}

/// Steps and bounds of factor updates (the settings `qortex.feedback_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorRule {
    pub accepted: f64,
    pub rejected: f64,
    pub partial: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for FactorRule {
    fn default() -> Self {
        FactorRule {
            accepted: 0.1,
            rejected: -0.05,
            partial: 0.03,
            min: 0.1,
            max: 5.0,
        }
    }
}

/// One applied update: the new weight, the change actually made, whether a bound cut it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    pub weight: f64,
    pub delta: f64,
    pub clamped: bool,
}

impl FactorRule {
    pub fn step(&self, o: Outcome) -> f64 {
        match o {
            Outcome::Accepted => self.accepted,
            Outcome::Rejected => self.rejected,
            Outcome::Partial => self.partial,
        }
    }

    /// Apply one outcome to a weight. Results are rounded to 12 decimals so that steps
    /// add up exactly as written (1.0 + 0.1 is 1.1).
    pub fn apply(&self, weight: f64, o: Outcome) -> Update {
        self.apply_step(weight, self.step(o))
    }

    /// The step of an outcome given for a query that already gave `before` for the same
    /// node: nothing if it is the same, the difference if it changed.
    pub fn step_after(&self, before: Option<Outcome>, o: Outcome) -> f64 {
        match before {
            None => self.step(o),
            Some(b) => self.step(o) - self.step(b),
        }
    }

    pub fn apply_step(&self, weight: f64, step: f64) -> Update {
        let raw = round12(weight + step);
        let new = raw.clamp(self.min, self.max);
        Update {
            weight: new,
            delta: round12(new - weight),
            clamped: new != raw,
        }
    }
}

fn round12(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// `{"<id>": "<outcome>", ...}` → (id, outcome) pairs, all checked before any is applied.
pub fn parse_outcome_map(v: &Value) -> Result<Vec<(String, Outcome)>, ParamError> {
    let obj = v.as_object().ok_or_else(|| {
        ParamError::new(
            "outcomes",
            format!("must be a JSON object {{\"<id>\": \"accepted\" | \"rejected\" | \"partial\"}}, got {v}"),
        )
    })?;
    if obj.is_empty() {
        return Err(ParamError::new("outcomes", "must name at least one id"));
    }
    obj.iter()
        .map(|(id, o)| {
            let arg = format!("outcomes.{id}");
            if id.is_empty() {
                return Err(ParamError::new("outcomes", "has an empty id"));
            }
            let s = o
                .as_str()
                .ok_or_else(|| ParamError::new(&arg, format!("must be text, got {o}")))?;
            Ok((id.clone(), Outcome::parse(&arg, s)?))
        })
        .collect()
}

/// Shannon entropy (base 2) of the weights as a distribution `w / Σw`.
pub fn entropy(weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    -weights
        .iter()
        .filter(|w| **w > 0.0)
        .map(|w| {
            let p = w / total;
            p * p.log2()
        })
        .sum::<f64>()
}

/// How many recent similarity scores a buffered edge keeps.
pub const EDGE_SCORES_KEPT: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pinned_factor_updates() {
        let r = FactorRule::default();
        assert_eq!(r.apply(1.0, Outcome::Accepted).weight, 1.1);
        assert_eq!(r.apply(1.0, Outcome::Rejected).weight, 0.95);
        assert_eq!(r.apply(1.0, Outcome::Partial).weight, 1.03);
        let top = r.apply(4.95, Outcome::Accepted);
        assert_eq!((top.weight, top.clamped), (5.0, true));
        assert!((top.delta - 0.05).abs() < 1e-12);
        let bottom = r.apply(0.12, Outcome::Rejected);
        assert_eq!((bottom.weight, bottom.clamped), (0.1, true));
        let free = r.apply(1.0, Outcome::Accepted);
        assert_eq!((free.delta, free.clamped), (0.1, false));
    }

    #[test]
    fn feedback_per_query_counts_once() {
        let r = FactorRule::default();
        assert_eq!(r.step_after(None, Outcome::Rejected), -0.05);
        assert_eq!(
            r.step_after(Some(Outcome::Rejected), Outcome::Rejected),
            0.0
        );
        let changed = r.step_after(Some(Outcome::Rejected), Outcome::Accepted);
        assert!((changed - 0.15).abs() < 1e-12);
        assert_eq!(
            r.apply_step(1.0, 0.0),
            Update {
                weight: 1.0,
                delta: 0.0,
                clamped: false
            }
        );
    }

    #[test]
    fn order_does_not_matter_away_from_the_bounds() {
        let r = FactorRule::default();
        let seq = [
            Outcome::Accepted,
            Outcome::Rejected,
            Outcome::Partial,
            Outcome::Rejected,
        ];
        let fwd = seq.iter().fold(1.0, |w, o| r.apply(w, *o).weight);
        let back = seq.iter().rev().fold(1.0, |w, o| r.apply(w, *o).weight);
        assert_eq!(fwd, back);
        assert_eq!(fwd, 1.03);
    }

    #[test]
    fn outcome_maps_are_checked_whole() {
        let ok = parse_outcome_map(&json!({"a": "accepted", "b": "partial"})).unwrap();
        assert_eq!(ok.len(), 2);
        for (bad, arg) in [
            (json!({"a": "accepted", "b": "great"}), "outcomes.b"),
            (json!({"a": 1}), "outcomes.a"),
            (json!({}), "outcomes"),
            (json!(["a"]), "outcomes"),
            (json!({"": "accepted"}), "outcomes"),
        ] {
            assert_eq!(parse_outcome_map(&bad).unwrap_err().arg, arg, "{bad}");
        }
    }

    #[test]
    fn entropy_of_weights() {
        assert_eq!(entropy(&[1.0, 1.0, 1.0, 1.0]), 2.0);
        assert_eq!(entropy(&[2.0]), 0.0);
        assert_eq!(entropy(&[]), 0.0);
        let e = entropy(&[1.0, 3.0]);
        assert!((e - (-(0.25f64 * 0.25f64.log2() + 0.75 * 0.75f64.log2()))).abs() < 1e-12);
    }
}
