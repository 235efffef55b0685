//! Runs and their outcomes (SPEC §1 "run"): the record of one use of a prompt, the feedback a
//! caller gives on it, the per-version usage aggregate (times used, last used, success rate over
//! runs with a known outcome, mean score) and the performance-monitoring rule (success rate below
//! a threshold over the last N runs with feedback → an alert).
//!
//! Aggregates are maintained incrementally: [`FeedbackDelta::between`] says how one feedback
//! write (a first one, or a change of an earlier one) moves the counters, so storage can keep
//! them in one row per version and `metrics` stays a cheap read.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{compliance, error::DomainError};

/// The longest feedback comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 4_000;

/// A caller's verdict on a run. Every field is optional; a later feedback on the same run
/// overwrites the fields it gives and keeps the others ([`Feedback::merged`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Whether the run achieved what it was for.
    pub success: Option<bool>,
    /// A quality score in `0.0..=1.0` (normalized, so that scores of different sources average
    /// meaningfully and a bandit can use them as rewards).
    pub score: Option<f64>,
    pub comment: Option<String>,
}

impl Feedback {
    /// Checks a feedback as given: at least one field; a finite score within `0.0..=1.0`; a
    /// comment of at most [`MAX_COMMENT_CHARS`] characters.
    pub fn validate(self) -> Result<Self, DomainError> {
        if self.success.is_none() && self.score.is_none() && self.comment.is_none() {
            return Err(DomainError::InvalidField {
                field: "feedback",
                reason: "give at least one of success, score or comment".into(),
            });
        }
        if let Some(score) = self.score
            && !(score.is_finite() && (0.0..=1.0).contains(&score))
        {
            return Err(DomainError::InvalidField {
                field: "score",
                reason: format!("must be a number from 0 to 1, got {score}"),
            });
        }
        if let Some(comment) = &self.comment
            && comment.chars().count() > MAX_COMMENT_CHARS
        {
            return Err(DomainError::InvalidField {
                field: "comment",
                reason: format!("must be at most {MAX_COMMENT_CHARS} characters"),
            });
        }
        Ok(self)
    }

    /// `newer` over `self`: the fields `newer` gives replace these, the others stay.
    pub fn merged(&self, newer: &Feedback) -> Feedback {
        Feedback {
            success: newer.success.or(self.success),
            score: newer.score.or(self.score),
            comment: newer.comment.clone().or_else(|| self.comment.clone()),
        }
    }
}

/// How one feedback write changes a version's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FeedbackDelta {
    /// Runs with a known outcome (success given).
    pub outcomes: i64,
    /// Of those, successful ones.
    pub successes: i64,
    /// Runs with a score.
    pub scored: i64,
    pub score_sum: f64,
}

impl FeedbackDelta {
    /// The change from a run's stored feedback (`before`, none for a first feedback) to `after`.
    pub fn between(before: Option<&Feedback>, after: &Feedback) -> FeedbackDelta {
        let contribution = |feedback: Option<&Feedback>| {
            let success = feedback.and_then(|feedback| feedback.success);
            let score = feedback.and_then(|feedback| feedback.score);
            FeedbackDelta {
                outcomes: i64::from(success.is_some()),
                successes: i64::from(success == Some(true)),
                scored: i64::from(score.is_some()),
                score_sum: score.unwrap_or(0.0),
            }
        };
        let old = contribution(before);
        let new = contribution(Some(after));
        FeedbackDelta {
            outcomes: new.outcomes - old.outcomes,
            successes: new.successes - old.successes,
            scored: new.scored - old.scored,
            score_sum: new.score_sum - old.score_sum,
        }
    }
}

/// A version's usage, as kept per version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub times_used: i64,
    pub last_used: Option<OffsetDateTime>,
    pub outcomes: i64,
    pub successes: i64,
    pub scored: i64,
    pub score_sum: f64,
}

impl Usage {
    /// Successful runs over runs with a known outcome; `None` without any.
    pub fn success_rate(&self) -> Option<f64> {
        (self.outcomes > 0).then(|| self.successes as f64 / self.outcomes as f64)
    }

    /// The mean score over scored runs; `None` without any.
    pub fn mean_score(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.score_sum / self.scored as f64)
    }

    /// Counts `runs` more uses, the newest at `at`.
    pub fn record_uses(&mut self, runs: i64, at: OffsetDateTime) {
        self.times_used += runs;
        self.last_used = Some(self.last_used.map_or(at, |last| last.max(at)));
    }

    pub fn apply(&mut self, delta: FeedbackDelta) {
        self.outcomes += delta.outcomes;
        self.successes += delta.successes;
        self.scored += delta.scored;
        self.score_sum += delta.score_sum;
    }
}

/// The performance-monitoring rule: alert when the success rate over the last `window` runs with
/// a known outcome falls below `min_success_rate`. Fewer than `window` outcomes never alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub min_success_rate: f64,
    pub window: u32,
}

impl AlertRule {
    pub fn validate(self) -> Result<Self, DomainError> {
        if !(self.min_success_rate.is_finite() && (0.0..=1.0).contains(&self.min_success_rate)) {
            return Err(DomainError::InvalidField {
                field: "min_success_rate",
                reason: "must be a number from 0 to 1".into(),
            });
        }
        if self.window == 0 {
            return Err(DomainError::InvalidField {
                field: "window",
                reason: "must be at least 1".into(),
            });
        }
        Ok(self)
    }

    /// The success rate of the last `window` outcomes (`recent`, newest first; more are
    /// ignored) when it is below the threshold; `None` otherwise or with too few outcomes.
    pub fn breached(&self, recent: &[bool]) -> Option<f64> {
        let window = usize::try_from(self.window).unwrap_or(usize::MAX);
        if recent.len() < window {
            return None;
        }
        let last = &recent[..window];
        let rate = last.iter().filter(|success| **success).count() as f64 / window as f64;
        (rate < self.min_success_rate).then_some(rate)
    }
}

/// What the monitor does after an outcome, given whether the version was already alerting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlertTransition {
    /// The rule starts to hold: raise one alert with this rate.
    Raise { rate: f64 },
    /// The rule stopped holding: the next breach alerts again.
    Clear,
    /// Nothing changes (still alerting, or still fine).
    Stay,
}

/// Raise once per breach: an alert only when the rule starts to hold.
pub fn alert_transition(rule: &AlertRule, was_alerting: bool, recent: &[bool]) -> AlertTransition {
    match (rule.breached(recent), was_alerting) {
        (Some(rate), false) => AlertTransition::Raise { rate },
        (None, true) => AlertTransition::Clear,
        _ => AlertTransition::Stay,
    }
}

/// A JSON value with every detected secret and PII in its strings replaced (`[REDACTED:<rule>]`),
/// for storing the params of runs of classifications whose output is filtered.
pub fn redact_value(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(compliance::redact(text).0),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), redact_value(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feedback(success: Option<bool>, score: Option<f64>) -> Feedback {
        Feedback {
            success,
            score,
            comment: None,
        }
    }

    #[test]
    fn feedback_validation_accepts_and_refuses_as_the_table_says() {
        let long = "x".repeat(MAX_COMMENT_CHARS + 1);
        let cases: &[(Feedback, Option<&str>)] = &[
            (feedback(Some(true), None), None),
            (feedback(None, Some(0.0)), None),
            (feedback(None, Some(1.0)), None),
            (
                Feedback {
                    comment: Some("fine".into()),
                    ..Feedback::default()
                },
                None,
            ),
            (Feedback::default(), Some("feedback")),
            (feedback(None, Some(1.5)), Some("score")),
            (feedback(None, Some(-0.1)), Some("score")),
            (feedback(None, Some(f64::NAN)), Some("score")),
            (
                Feedback {
                    comment: Some(long),
                    ..Feedback::default()
                },
                Some("comment"),
            ),
        ];
        for (given, refused) in cases {
            match (given.clone().validate(), refused) {
                (Ok(_), None) => {}
                (Err(DomainError::InvalidField { field, .. }), Some(expected)) => {
                    assert_eq!(field, *expected, "{given:?}")
                }
                (outcome, _) => panic!("{given:?} gave {outcome:?}"),
            }
        }
    }

    #[test]
    fn a_later_feedback_overwrites_the_fields_it_gives_and_keeps_the_others() {
        let first = Feedback {
            success: Some(false),
            score: Some(0.2),
            comment: Some("bad".into()),
        };
        let merged = first.merged(&feedback(Some(true), None));
        assert_eq!(
            merged,
            Feedback {
                success: Some(true),
                score: Some(0.2),
                comment: Some("bad".into()),
            }
        );
    }

    #[test]
    fn feedback_deltas_count_first_feedback_and_changes_once() {
        let cases: &[(Option<Feedback>, Feedback, FeedbackDelta)] = &[
            (
                None,
                feedback(Some(true), Some(0.5)),
                FeedbackDelta {
                    outcomes: 1,
                    successes: 1,
                    scored: 1,
                    score_sum: 0.5,
                },
            ),
            (
                None,
                feedback(Some(false), None),
                FeedbackDelta {
                    outcomes: 1,
                    ..FeedbackDelta::default()
                },
            ),
            (
                Some(feedback(Some(false), Some(0.25))),
                feedback(Some(true), Some(0.75)),
                FeedbackDelta {
                    outcomes: 0,
                    successes: 1,
                    scored: 0,
                    score_sum: 0.5,
                },
            ),
            (
                Some(feedback(Some(true), None)),
                feedback(Some(true), None),
                FeedbackDelta::default(),
            ),
            (
                Some(feedback(None, None)),
                feedback(None, Some(1.0)),
                FeedbackDelta {
                    scored: 1,
                    score_sum: 1.0,
                    ..FeedbackDelta::default()
                },
            ),
        ];
        for (before, after, expected) in cases {
            assert_eq!(
                FeedbackDelta::between(before.as_ref(), after),
                *expected,
                "{before:?} → {after:?}"
            );
        }
    }

    #[test]
    fn usage_gives_rates_and_means_only_when_there_is_something_to_average() {
        let mut usage = Usage::default();
        assert_eq!(usage.success_rate(), None);
        assert_eq!(usage.mean_score(), None);
        let t1 = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(10);
        let t0 = OffsetDateTime::UNIX_EPOCH;
        usage.record_uses(3, t1);
        usage.record_uses(1, t0);
        assert_eq!(usage.times_used, 4);
        assert_eq!(usage.last_used, Some(t1));
        for outcome in [
            feedback(Some(true), Some(1.0)),
            feedback(Some(false), Some(0.0)),
            feedback(Some(true), None),
            feedback(Some(true), Some(0.5)),
        ] {
            usage.apply(FeedbackDelta::between(None, &outcome));
        }
        assert_eq!(usage.success_rate(), Some(0.75));
        assert_eq!(usage.mean_score(), Some(0.5));
    }

    #[test]
    fn the_rule_fires_only_on_a_full_window_below_the_threshold() {
        let rule = AlertRule {
            min_success_rate: 0.5,
            window: 4,
        };
        let cases: &[(&[bool], Option<f64>)] = &[
            (&[], None),
            (&[false, false, false], None),
            (&[false, false, false, true], Some(0.25)),
            (&[false, true, false, true], None),
            (&[true, true, true, true], None),
            // Only the newest `window` outcomes count.
            (&[false, false, false, false, true, true, true], Some(0.0)),
            (&[true, true, false, false, false, false], None),
        ];
        for (recent, expected) in cases {
            assert_eq!(rule.breached(recent), *expected, "{recent:?}");
        }
    }

    #[test]
    fn an_alert_is_raised_once_per_breach() {
        let rule = AlertRule {
            min_success_rate: 0.5,
            window: 2,
        };
        let cases: &[(bool, &[bool], AlertTransition)] = &[
            (false, &[false, false], AlertTransition::Raise { rate: 0.0 }),
            (true, &[false, false], AlertTransition::Stay),
            (true, &[true, true], AlertTransition::Clear),
            (false, &[true, false], AlertTransition::Stay),
            (false, &[false], AlertTransition::Stay),
        ];
        for (was, recent, expected) in cases {
            assert_eq!(
                alert_transition(&rule, *was, recent),
                *expected,
                "{was} {recent:?}"
            );
        }
    }

    #[test]
    fn alert_rules_are_validated() {
        let ok = AlertRule {
            min_success_rate: 0.8,
            window: 20,
        };
        assert!(ok.validate().is_ok());
        assert!(AlertRule { window: 0, ..ok }.validate().is_err());
        assert!(
            AlertRule {
                min_success_rate: 1.2,
                ..ok
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn redacting_a_value_reaches_every_string_and_keeps_the_shape() {
        let value =
            json!({"to": "ann@example.com", "n": 3, "list": ["call 4111 1111 1111 1111", true]});
        let redacted = redact_value(&value);
        assert_eq!(redacted["n"], 3);
        assert_eq!(redacted["list"][1], true);
        let text = redacted.to_string();
        assert!(!text.contains("ann@example.com"), "{text}");
        assert!(!text.contains("4111 1111 1111 1111"), "{text}");
        assert!(text.contains("[REDACTED:"), "{text}");
    }
}
