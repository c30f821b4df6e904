//! The retraining trigger policy: a TOML file of rules over monitor outputs,
//! written before launch and evaluated mechanically.
//!
//! ```toml
//! [[rules]]
//! name = "confidence-psi"
//! when = "psi.confidence > 0.2"      # metric, comparison, number or `threshold`
//! action = "shadow_eval"
//! why = "confidence distribution moved significantly"
//!
//! [[targets]]                          # steady-state targets: reported met / missed
//! name = "ood-rate"
//! when = "ood_rate < 3%"
//! ```
//!
//! A metric is `family[.qualifier]`; the qualifier names a column, class or
//! model output, and `*` matches every observed qualifier. The right-hand
//! side is a number (a trailing `%` divides by 100) or `threshold`, meaning
//! the observation's own calibrated threshold. Unknown metrics, unknown
//! comparison operators and malformed comparisons are rejected with the
//! 1-based line at fault.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{MonitorError, Result};

/// Metric families a policy may name.
pub const METRIC_FAMILIES: &[(&str, &str)] = &[
    ("psi", "PSI of a feature or score column"),
    (
        "mmd",
        "MMD^2_u of an embedding (compare with `threshold` for the calibrated bound)",
    ),
    ("ks", "KS statistic D"),
    ("ks_p_value", "KS p-value"),
    ("chi2", "chi-square statistic of a categorical column"),
    ("chi2_p_value", "chi-square p-value"),
    ("js", "Jensen-Shannon distance (base 2)"),
    ("wasserstein", "Wasserstein-1 distance"),
    (
        "label_shift_p_value",
        "chi-square p-value of the predicted-class distribution",
    ),
    (
        "accuracy_drop",
        "overall accuracy drop, in percentage points",
    ),
    (
        "per_class_accuracy_drop",
        "accuracy drop of one class, in percentage points",
    ),
    (
        "ood_rate",
        "fraction of requests flagged out-of-distribution",
    ),
    (
        "latency_ratio",
        "observed latency / profiled baseline latency",
    ),
    ("error_rate", "fraction of failed requests"),
];

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Value(f64),
    /// The observation's calibrated threshold.
    Threshold,
}

/// A parsed `metric op bound` condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub family: String,
    /// `None`: the bare metric; `Some("*")`: any qualifier.
    pub qualifier: Option<String>,
    pub op: Op,
    pub bound: Bound,
    pub text: String,
}

/// A rule: when the condition holds, take the action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub action: String,
    pub why: Option<String>,
    pub line: usize,
}

/// A steady-state target: the condition should hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub condition: Condition,
    pub line: usize,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub rules: Vec<Rule>,
    pub targets: Vec<Target>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    when: toml::Spanned<String>,
    action: toml::Spanned<String>,
    why: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Option<String>,
    when: toml::Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses `metric op bound`; errors carry no line (the caller adds it).
pub fn parse_condition(text: &str) -> std::result::Result<Condition, String> {
    let ops = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)];
    let (pos, sym, op) = ops
        .iter()
        .filter_map(|&(s, o)| text.find(s).map(|p| (p, s, o)))
        .min_by_key(|&(p, s, _)| (p, usize::MAX - s.len()))
        .ok_or_else(|| {
            format!("malformed comparison {text:?}: expected `metric OP value` with OP one of >, >=, <, <=")
        })?;
    let metric = text[..pos].trim();
    let rhs = text[pos + sym.len()..].trim();
    if metric.is_empty() || rhs.is_empty() {
        return Err(format!("malformed comparison {text:?}: a side is empty"));
    }
    if rhs.starts_with(['=', '>', '<']) {
        return Err(format!("malformed comparison {text:?}: unknown operator"));
    }
    let (family, qualifier) = match metric.split_once('.') {
        Some((f, q)) => (f.trim(), Some(q.trim().to_owned())),
        None => (metric, None),
    };
    if !METRIC_FAMILIES.iter().any(|(f, _)| *f == family) {
        let known: Vec<&str> = METRIC_FAMILIES.iter().map(|(f, _)| *f).collect();
        return Err(format!(
            "unknown metric {family:?} (known: {})",
            known.join(", ")
        ));
    }
    if qualifier.as_deref() == Some("") {
        return Err(format!(
            "malformed metric {metric:?}: empty qualifier after '.'"
        ));
    }
    let bound = if rhs == "threshold" {
        Bound::Threshold
    } else {
        let (num, scale) = match rhs.strip_suffix('%') {
            Some(n) => (n.trim(), 0.01),
            None => (rhs, 1.0),
        };
        let v: f64 = num.parse().map_err(|_| {
            format!("malformed comparison {text:?}: {rhs:?} is not a number or `threshold`")
        })?;
        if !v.is_finite() {
            return Err(format!(
                "malformed comparison {text:?}: bound must be finite"
            ));
        }
        Bound::Value(v * scale)
    };
    Ok(Condition {
        family: family.to_owned(),
        qualifier,
        op,
        bound,
        text: text.trim().to_owned(),
    })
}

impl Policy {
    /// Parses and validates a policy file's text.
    pub fn parse(text: &str) -> Result<Policy> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| MonitorError::Policy {
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            reason: e.message().to_owned(),
        })?;
        let cond = |s: &toml::Spanned<String>| {
            parse_condition(s.get_ref()).map_err(|reason| MonitorError::Policy {
                line: line_of(text, s.span().start),
                reason,
            })
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let action = r.action.get_ref().trim();
            if action.is_empty()
                || !action
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(MonitorError::Policy {
                    line: line_of(text, r.action.span().start),
                    reason: format!(
                        "invalid action {:?}: use a word like shadow_eval",
                        r.action.get_ref()
                    ),
                });
            }
            rules.push(Rule {
                name: r.name.clone().unwrap_or_else(|| format!("rule-{}", i + 1)),
                condition: cond(&r.when)?,
                action: action.to_owned(),
                why: r.why.clone(),
                line: line_of(text, r.when.span().start),
            });
        }
        let mut targets = Vec::new();
        for (i, t) in raw.targets.iter().enumerate() {
            targets.push(Target {
                name: t
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("target-{}", i + 1)),
                condition: cond(&t.when)?,
                line: line_of(text, t.when.span().start),
            });
        }
        Ok(Policy { rules, targets })
    }

    /// Evaluates every rule and target against the observations.
    pub fn evaluate(&self, observations: &BTreeMap<String, Observation>) -> PolicyReport {
        let rules: Vec<RuleOutcome> = self
            .rules
            .iter()
            .map(|r| {
                let (matches, observed) = evaluate_condition(&r.condition, observations);
                RuleOutcome {
                    name: r.name.clone(),
                    when: r.condition.text.clone(),
                    action: r.action.clone(),
                    why: r.why.clone(),
                    status: if matches.iter().any(|m| m.holds) {
                        Status::Triggered
                    } else if observed {
                        Status::Quiet
                    } else {
                        Status::NotObserved
                    },
                    matches,
                }
            })
            .collect();
        let targets = self
            .targets
            .iter()
            .map(|t| {
                let (matches, observed) = evaluate_condition(&t.condition, observations);
                TargetOutcome {
                    name: t.name.clone(),
                    when: t.condition.text.clone(),
                    status: if !observed {
                        TargetStatus::NotObserved
                    } else if matches.iter().all(|m| m.holds) {
                        TargetStatus::Met
                    } else {
                        TargetStatus::Missed
                    },
                    matches,
                }
            })
            .collect();
        let mut actions: Vec<String> = Vec::new();
        for r in &rules {
            if r.status == Status::Triggered && !actions.contains(&r.action) {
                actions.push(r.action.clone());
            }
        }
        PolicyReport {
            actions,
            rules,
            targets,
        }
    }
}

fn evaluate_condition(c: &Condition, obs: &BTreeMap<String, Observation>) -> (Vec<Match>, bool) {
    let mut out = Vec::new();
    let mut observed = false;
    for (name, o) in obs {
        let (family, qualifier) = match name.split_once('.') {
            Some((f, q)) => (f, Some(q)),
            None => (name.as_str(), None),
        };
        if family != c.family {
            continue;
        }
        let applies = match (&c.qualifier, qualifier) {
            (None, None) => true,
            (Some(q), Some(oq)) => q == "*" || q == oq,
            _ => false,
        };
        if !applies {
            continue;
        }
        observed = true;
        let (value, bound) = match (c.bound, o) {
            (Bound::Value(b), o) => (o.value(), Some(b)),
            (Bound::Threshold, Observation::WithThreshold { value, threshold }) => {
                (*value, *threshold)
            }
            (Bound::Threshold, Observation::Value(v)) => (*v, None),
        };
        let holds = match bound {
            Some(b) => c.op.apply(value, b),
            None => false,
        };
        out.push(Match {
            metric: name.clone(),
            value,
            bound,
            holds,
            explanation: match bound {
                Some(b) => format!(
                    "{name} = {value} {} {b}{}",
                    if holds { c.op.symbol() } else { "vs" },
                    if holds { "" } else { " (does not hold)" }
                ),
                None => format!("{name} = {value} has no calibrated threshold to compare with"),
            },
        });
    }
    (out, observed)
}

/// An observed metric: a number, or a value with its calibrated threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Observation {
    Value(f64),
    WithThreshold { value: f64, threshold: Option<f64> },
}

impl Observation {
    pub fn value(&self) -> f64 {
        match self {
            Observation::Value(v) => *v,
            Observation::WithThreshold { value, .. } => *value,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Triggered,
    Quiet,
    NotObserved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Met,
    Missed,
    NotObserved,
}

/// One observation a condition was checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub metric: String,
    pub value: f64,
    pub bound: Option<f64>,
    pub holds: bool,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleOutcome {
    pub name: String,
    pub when: String,
    pub action: String,
    pub why: Option<String>,
    pub status: Status,
    pub matches: Vec<Match>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetOutcome {
    pub name: String,
    pub when: String,
    pub status: TargetStatus,
    pub matches: Vec<Match>,
}

/// The policy's verdict: the actions triggered (deduplicated, in rule
/// order), and every rule's and target's outcome with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    pub actions: Vec<String>,
    pub rules: Vec<RuleOutcome>,
    pub targets: Vec<TargetOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_and_targets_are_checked() {
        let p = Policy::parse(
            "[[rules]]\nwhen = \"psi.confidence > 0.2\"\naction = \"shadow_eval\"\n\n\
             [[rules]]\nwhen = \"mmd.embedding > threshold\"\naction = \"investigate\"\n\n\
             [[rules]]\nwhen = \"per_class_accuracy_drop.* > 5\"\naction = \"urgent_review\"\n\n\
             [[targets]]\nwhen = \"ood_rate < 3%\"\n",
        )
        .unwrap();
        let mut obs = BTreeMap::new();
        obs.insert("psi.confidence".into(), Observation::Value(0.25));
        obs.insert(
            "mmd.embedding".into(),
            Observation::WithThreshold {
                value: 0.01,
                threshold: Some(0.02),
            },
        );
        obs.insert(
            "per_class_accuracy_drop.cat".into(),
            Observation::Value(2.0),
        );
        obs.insert(
            "per_class_accuracy_drop.dog".into(),
            Observation::Value(7.0),
        );
        obs.insert("ood_rate".into(), Observation::Value(0.05));
        let r = p.evaluate(&obs);
        assert_eq!(r.actions, vec!["shadow_eval", "urgent_review"]);
        assert_eq!(r.rules[1].status, Status::Quiet);
        assert_eq!(r.targets[0].status, TargetStatus::Missed);
    }

    #[test]
    fn invalid_policies_name_the_line() {
        let e = Policy::parse("[[rules]]\naction = \"x\"\nwhen = \"latency > 3\"\n").unwrap_err();
        assert!(
            matches!(e, MonitorError::Policy { line: 3, ref reason } if reason.contains("unknown metric")),
            "{e}"
        );
        let e = Policy::parse("[[rules]]\nwhen = \"psi.a >> 3\"\naction = \"x\"\n").unwrap_err();
        assert!(matches!(e, MonitorError::Policy { line: 2, .. }), "{e}");
        let e = Policy::parse("[[rules]]\nwhen = \"psi.a = 3\"\naction = \"x\"\n").unwrap_err();
        assert!(matches!(e, MonitorError::Policy { line: 2, .. }), "{e}");
        let e = Policy::parse("[[rules]]\nwhen = \"psi.a > 3\"\n\naction = 5\n").unwrap_err();
        assert!(matches!(e, MonitorError::Policy { line: 4, .. }), "{e}");
    }
}
