//! Retiring versions and prompts (SPEC §6): what deprecation and archiving mean for serving at a
//! given time, the deprecation period, the prompt's overall status derived from its versions'
//! statuses, the retention of archived versions, and the periodic-review rule ("is it due?").
//!
//! Everything here is pure: the caller passes the time in.
//!
//! - A **deprecated** version is served until its sunset, with a notice (the `Deprecation`,
//!   `Sunset` and `Link: rel="successor-version"` headers of RFC 9745 / RFC 8594, and a
//!   `deprecation` field); at and after the sunset it is gone (`version_sunset`, 410).
//! - An **archived** version is never served (`version_archived`, 410); its history stays.
//! - A prompt is `archived` when every version is archived, `deprecated` when none is draft,
//!   review or approved but one is deprecated, and `active` otherwise.

use std::fmt;

use time::{Duration, OffsetDateTime, Weekday};
use uuid::Uuid;

use crate::{
    error::DomainError,
    model::{PromptStatus, VersionStatus},
};

/// The longest deprecation period accepted (ten years).
pub const MAX_PERIOD_DAYS: i64 = 3650;

/// Whether `replacement` reaches everyone `prompt` reaches, so that naming it in a deprecation
/// (in headers, bodies and 410 details shown to whoever may serve the old prompt) reveals
/// nothing they may not see: a classification no stricter, a global scope or the same
/// scope/owner/agent, and no per-prompt rules beyond the old prompt's own.
pub fn replacement_reaches_as_far(
    prompt: &crate::model::Prompt,
    replacement: &crate::model::Prompt,
) -> bool {
    use crate::model::{PromptAccess, Scope};
    let classification = replacement.classification <= prompt.classification;
    let scope = replacement.scope == Scope::Global
        || (replacement.scope == prompt.scope
            && replacement.owner_id == prompt.owner_id
            && replacement.agent_id == prompt.agent_id);
    let rules =
        replacement.access == PromptAccess::default() || replacement.access == prompt.access;
    classification && scope && rules
}

/// The longest periodic-review interval (a century): longer ones are refused wherever they are
/// given (prompt types, settings, bundles).
pub const MAX_REVIEW_INTERVAL_DAYS: u32 = 36_500;

/// A review interval as given: 1 to [`MAX_REVIEW_INTERVAL_DAYS`] days.
pub fn check_review_interval(days: u32) -> Result<u32, DomainError> {
    if (1..=MAX_REVIEW_INTERVAL_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(DomainError::InvalidField {
            field: "review_every_days",
            reason: format!(
                "must be between 1 and {MAX_REVIEW_INTERVAL_DAYS} days (leave it out for no \
                 periodic review)"
            ),
        })
    }
}

/// The prompt that replaces a deprecated version's prompt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Replacement {
    pub prompt_id: Uuid,
    /// Its name when the version was deprecated (prompt names do not change).
    pub name: String,
}

/// What a deprecation recorded on a version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deprecation {
    pub deprecated_at: OffsetDateTime,
    /// From this instant on the version is no longer served.
    pub sunset_at: OffsetDateTime,
    /// Optional: deprecating an old version in favour of a newer version of the same prompt
    /// names none.
    pub replacement: Option<Replacement>,
}

/// The lifecycle dates a version carries besides its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionLifecycle {
    /// When the version last became approved.
    pub approved_at: Option<OffsetDateTime>,
    pub deprecation: Option<Deprecation>,
    pub archived_at: Option<OffsetDateTime>,
    /// When retention dropped the version's content, config and schema (history stays).
    pub purged_at: Option<OffsetDateTime>,
}

/// How long a deprecated version keeps being served: a period from now, or a fixed sunset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SunsetSpec {
    Period(Duration),
    At(OffsetDateTime),
}

/// Parses a deprecation period: a positive number of days (`30d`), weeks (`2w`) or hours
/// (`12h`), at most [`MAX_PERIOD_DAYS`] days.
pub fn parse_period(value: &str) -> Result<Duration, DomainError> {
    let invalid = || DomainError::InvalidField {
        field: "period",
        reason: format!(
            "{value:?} is not a period like 30d, 2w or 12h (positive, at most {MAX_PERIOD_DAYS} days)"
        ),
    };
    let value = value.trim();
    let (number, hours_per_unit) = [('h', 1), ('d', 24), ('w', 24 * 7)]
        .iter()
        .find_map(|(unit, hours)| value.strip_suffix(*unit).map(|number| (number, *hours)))
        .ok_or_else(invalid)?;
    if number.is_empty() || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    let amount: i64 = number.parse().map_err(|_| invalid())?;
    let hours = amount.checked_mul(hours_per_unit).ok_or_else(invalid)?;
    if hours <= 0 || hours > MAX_PERIOD_DAYS * 24 {
        return Err(invalid());
    }
    Ok(Duration::hours(hours))
}

/// The sunset of a deprecation made at `now`: the period (or the default period) from now, or
/// the given time, which must lie in the future and within [`MAX_PERIOD_DAYS`].
pub fn sunset_at(
    spec: Option<SunsetSpec>,
    default_period: Duration,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, DomainError> {
    let at = match spec {
        None => now + default_period,
        Some(SunsetSpec::Period(period)) => now + period,
        Some(SunsetSpec::At(at)) => at,
    };
    if at <= now {
        return Err(DomainError::InvalidField {
            field: "sunset",
            reason: "the sunset must lie in the future".into(),
        });
    }
    if at - now > Duration::days(MAX_PERIOD_DAYS) {
        return Err(DomainError::InvalidField {
            field: "sunset",
            reason: format!("the sunset must lie within {MAX_PERIOD_DAYS} days"),
        });
    }
    Ok(at)
}

/// Why a version is not served any more. `code()` is stable (answered 410 Gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    /// Deprecated, and the sunset has passed.
    Sunset {
        version: i64,
        sunset_at: OffsetDateTime,
        replacement: Option<Replacement>,
    },
    Archived {
        version: i64,
    },
}

impl Retired {
    pub fn code(&self) -> &'static str {
        match self {
            Retired::Sunset { .. } => "version_sunset",
            Retired::Archived { .. } => "version_archived",
        }
    }
}

impl fmt::Display for Retired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retired::Sunset {
                version,
                sunset_at,
                replacement,
            } => {
                write!(
                    f,
                    "version {version} was deprecated and is no longer served since its sunset \
                     ({})",
                    rfc3339(*sunset_at)
                )?;
                match replacement {
                    Some(replacement) => write!(f, "; use prompt {:?} instead", replacement.name),
                    None => write!(f, "; use a newer version"),
                }
            }
            Retired::Archived { version } => {
                write!(f, "version {version} is archived and is no longer served")
            }
        }
    }
}

/// Whether a version in `status` with `lifecycle` may be served at `now`: `Ok(None)` normally,
/// `Ok(Some(deprecation))` while deprecated and before its sunset (serve with a notice), or why
/// not.
pub fn serving(
    version: i64,
    status: VersionStatus,
    lifecycle: &VersionLifecycle,
    now: OffsetDateTime,
) -> Result<Option<&Deprecation>, Retired> {
    match status {
        VersionStatus::Archived => Err(Retired::Archived { version }),
        VersionStatus::Deprecated => match &lifecycle.deprecation {
            Some(deprecation) if now >= deprecation.sunset_at => Err(Retired::Sunset {
                version,
                sunset_at: deprecation.sunset_at,
                replacement: deprecation.replacement.clone(),
            }),
            Some(deprecation) => Ok(Some(deprecation)),
            // Deprecated before deprecations were dated: served, without a notice.
            None => Ok(None),
        },
        VersionStatus::Draft | VersionStatus::Review | VersionStatus::Approved => Ok(None),
    }
}

/// The HTTP headers announcing a deprecation (`Deprecation: @<unix seconds>` (RFC 9745),
/// `Sunset: <HTTP-date>` (RFC 8594), and `Link: <successor>; rel="successor-version"` when a
/// replacement is named). `successor_url` turns the replacement into its URL.
pub fn notice_headers(
    deprecation: &Deprecation,
    successor_url: impl Fn(&Replacement) -> String,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (
            "deprecation",
            format!("@{}", deprecation.deprecated_at.unix_timestamp()),
        ),
        ("sunset", http_date(deprecation.sunset_at)),
    ];
    if let Some(replacement) = &deprecation.replacement {
        headers.push((
            "link",
            format!(
                "<{}>; rel=\"successor-version\"",
                successor_url(replacement)
            ),
        ));
    }
    headers
}

/// An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let weekday = match at.weekday() {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        at.day(),
        MONTHS[usize::from(u8::from(at.month())) - 1],
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// A prompt's overall status from its versions' statuses: `archived` when all are archived,
/// `deprecated` when none is draft, review or approved and one is deprecated, else `active`
/// (also for no versions).
pub fn prompt_status(statuses: &[VersionStatus]) -> PromptStatus {
    let live = statuses.iter().any(|status| {
        matches!(
            status,
            VersionStatus::Draft | VersionStatus::Review | VersionStatus::Approved
        )
    });
    if statuses.is_empty() || live {
        PromptStatus::Active
    } else if statuses.contains(&VersionStatus::Deprecated) {
        PromptStatus::Deprecated
    } else {
        PromptStatus::Archived
    }
}

/// The cutoff of archived-version retention at `now`: versions archived before it are purged.
pub fn retention_cutoff(retention_days: u32, now: OffsetDateTime) -> OffsetDateTime {
    now - Duration::days(i64::from(retention_days))
}

/// The review interval of a prompt: its prompt type's, if set, else its classification's.
pub fn review_interval(type_days: Option<u32>, classification_days: Option<u32>) -> Option<u32> {
    type_days.or(classification_days).filter(|days| *days > 0)
}

/// An overdue periodic review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewDue {
    /// When the review fell due: the last review (or, never reviewed, the prompt's creation)
    /// plus the interval.
    pub due_since: OffsetDateTime,
    /// Whole days since then (0 on the day it fell due).
    pub days_overdue: i64,
}

/// Whether a prompt with review interval `interval_days` is due for review at `now`. Its last
/// review is the latest of `last_reviewed` (attestations and approvals); never reviewed, the
/// interval counts from `created_at`. Due exactly at the end of the interval.
pub fn review_due(
    interval_days: Option<u32>,
    last_reviewed: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<ReviewDue> {
    let interval = interval_days.filter(|days| *days > 0)?;
    // An interval past the representable times is never due (intervals are capped where they
    // are given; this keeps stored ones from panicking).
    let due_since = last_reviewed
        .unwrap_or(created_at)
        .checked_add(Duration::days(i64::from(interval)))?;
    (now >= due_since).then(|| ReviewDue {
        due_since,
        days_overdue: (now - due_since).whole_days(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (replacement scope, owner, classification, owner_only) against an internal global prompt
    /// owned by user 1: may it be named as the replacement?
    #[test]
    fn a_replacement_must_reach_everyone_the_deprecated_prompt_reaches() {
        use crate::{
            ident::PromptName,
            model::{Classification, Kind, Prompt, PromptAccess, Scope, Source},
        };
        fn prompt(
            scope: Scope,
            owner: u128,
            classification: Classification,
            owner_only: bool,
        ) -> Prompt {
            Prompt {
                id: Uuid::from_u128(owner * 1000 + classification as u128),
                name: PromptName::parse("team/p").expect("name"),
                title: None,
                description: None,
                long_description_markdown: None,
                scope,
                agent_id: None,
                owner_id: Some(Uuid::from_u128(owner)),
                creator_id: None,
                prompt_type: None,
                kind: Kind::Text,
                tags: Vec::new(),
                source: Source::human(),
                classification,
                status: PromptStatus::Active,
                access: PromptAccess {
                    owner_only,
                    ..PromptAccess::default()
                },
                revision: 1,
                created_at: OffsetDateTime::UNIX_EPOCH,
                updated_at: OffsetDateTime::UNIX_EPOCH,
            }
        }
        use Classification::{Confidential, Internal, Public, Restricted};
        let old = prompt(Scope::Global, 1, Internal, false);
        let cases = [
            (Scope::Global, 2, Public, false, true),
            (Scope::Global, 2, Internal, false, true),
            (Scope::Global, 2, Confidential, false, false),
            (Scope::Global, 2, Restricted, false, false),
            (Scope::User, 2, Internal, false, false),
            (Scope::Global, 2, Internal, true, false),
        ];
        for (scope, owner, classification, owner_only, expected) in cases {
            let replacement = prompt(scope, owner, classification, owner_only);
            assert_eq!(
                replacement_reaches_as_far(&old, &replacement),
                expected,
                "{scope:?} {classification:?} owner_only={owner_only}"
            );
        }
        // A user prompt may be replaced by another of the same owner.
        let mine = prompt(Scope::User, 1, Internal, false);
        assert!(replacement_reaches_as_far(
            &mine,
            &prompt(Scope::User, 1, Internal, false)
        ));
        assert!(!replacement_reaches_as_far(
            &mine,
            &prompt(Scope::User, 2, Internal, false)
        ));
    }

    #[test]
    fn a_huge_review_interval_is_refused_when_given_and_never_due_when_stored() {
        assert!(check_review_interval(0).is_err());
        assert_eq!(check_review_interval(90).ok(), Some(90));
        assert!(check_review_interval(MAX_REVIEW_INTERVAL_DAYS + 1).is_err());
        let now = OffsetDateTime::now_utc();
        assert_eq!(review_due(Some(u32::MAX), None, now, now), None);
    }
    use VersionStatus::{Approved, Archived, Deprecated, Draft, Review};

    fn t(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(seconds)
    }

    const DAY: i64 = 86_400;

    fn deprecation(replacement: bool) -> Deprecation {
        Deprecation {
            deprecated_at: t(1_000),
            sunset_at: t(1_000 + 30 * DAY),
            replacement: replacement.then(|| Replacement {
                prompt_id: Uuid::nil(),
                name: "support/summarize-v2".into(),
            }),
        }
    }

    #[test]
    fn periods_parse_in_hours_days_and_weeks_and_refuse_the_rest() {
        let cases: &[(&str, Option<i64>)] = &[
            ("30d", Some(30 * 24)),
            ("12h", Some(12)),
            ("2w", Some(14 * 24)),
            (" 7d ", Some(7 * 24)),
            ("3650d", Some(3650 * 24)),
            ("3651d", None),
            ("0d", None),
            ("-1d", None),
            ("+1d", None),
            ("d", None),
            ("30", None),
            ("30m", None),
            ("1.5d", None),
            ("99999999999999999999d", None),
            ("", None),
        ];
        for (input, hours) in cases {
            let got = parse_period(input).ok().map(|period| period.whole_hours());
            assert_eq!(got, *hours, "{input:?}");
        }
        let error = parse_period("soon").expect_err("refused");
        assert!(error.to_string().contains("30d"), "{error}");
    }

    #[test]
    fn the_sunset_comes_from_the_period_the_default_or_a_future_time() {
        let now = t(10 * DAY);
        let default = Duration::days(30);
        let cases: &[(Option<SunsetSpec>, Option<OffsetDateTime>)] = &[
            (None, Some(t(40 * DAY))),
            (
                Some(SunsetSpec::Period(Duration::days(7))),
                Some(t(17 * DAY)),
            ),
            (Some(SunsetSpec::At(t(11 * DAY))), Some(t(11 * DAY))),
            (Some(SunsetSpec::At(now)), None),
            (Some(SunsetSpec::At(t(DAY))), None),
            (
                Some(SunsetSpec::At(now + Duration::days(MAX_PERIOD_DAYS + 1))),
                None,
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(sunset_at(*spec, default, now).ok(), *want, "{spec:?}");
        }
    }

    /// Every status, before and after a sunset, with and without a recorded deprecation.
    #[test]
    fn what_each_status_means_for_serving_at_a_time() {
        let dated = VersionLifecycle {
            deprecation: Some(deprecation(true)),
            ..Default::default()
        };
        let undated = VersionLifecycle::default();
        let before = t(1_000 + 30 * DAY - 1);
        let at_sunset = t(1_000 + 30 * DAY);
        #[derive(Debug, PartialEq)]
        enum Want {
            Plain,
            Notice,
            Gone(&'static str),
        }
        let cases: &[(VersionStatus, &VersionLifecycle, OffsetDateTime, Want)] = &[
            (Draft, &undated, before, Want::Plain),
            (Review, &undated, before, Want::Plain),
            (Approved, &undated, at_sunset, Want::Plain),
            (Deprecated, &dated, t(1_000), Want::Notice),
            (Deprecated, &dated, before, Want::Notice),
            (Deprecated, &dated, at_sunset, Want::Gone("version_sunset")),
            (
                Deprecated,
                &dated,
                t(100 * DAY),
                Want::Gone("version_sunset"),
            ),
            (Deprecated, &undated, t(100 * DAY), Want::Plain),
            (Archived, &undated, before, Want::Gone("version_archived")),
            (Archived, &dated, before, Want::Gone("version_archived")),
        ];
        for (status, lifecycle, now, want) in cases {
            let got = match serving(3, *status, lifecycle, *now) {
                Ok(None) => Want::Plain,
                Ok(Some(_)) => Want::Notice,
                Err(retired) => Want::Gone(retired.code()),
            };
            assert_eq!(&got, want, "{status} at {now}");
        }
    }

    #[test]
    fn a_sunset_names_the_replacement_or_says_to_use_a_newer_version() {
        let named = Retired::Sunset {
            version: 3,
            sunset_at: t(0),
            replacement: deprecation(true).replacement,
        };
        assert_eq!(
            named.to_string(),
            "version 3 was deprecated and is no longer served since its sunset \
             (1970-01-01T00:00:00Z); use prompt \"support/summarize-v2\" instead"
        );
        let unnamed = Retired::Sunset {
            version: 3,
            sunset_at: t(0),
            replacement: None,
        };
        assert!(unnamed.to_string().ends_with("use a newer version"));
        assert_eq!(
            Retired::Archived { version: 2 }.to_string(),
            "version 2 is archived and is no longer served"
        );
    }

    #[test]
    fn notice_headers_follow_rfc_9745_and_8594() {
        let headers = notice_headers(&deprecation(true), |r| format!("/api/prompts/{}", r.name));
        assert_eq!(
            headers,
            vec![
                ("deprecation", "@1000".to_string()),
                ("sunset", "Sat, 31 Jan 1970 00:16:40 GMT".to_string()),
                (
                    "link",
                    "</api/prompts/support/summarize-v2>; rel=\"successor-version\"".to_string()
                ),
            ]
        );
        let without = notice_headers(&deprecation(false), |_| unreachable!());
        assert_eq!(without.len(), 2);
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(http_date(t(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(t(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn a_prompts_status_follows_its_versions() {
        let cases: &[(&[VersionStatus], PromptStatus)] = &[
            (&[], PromptStatus::Active),
            (&[Draft], PromptStatus::Active),
            (&[Archived, Review], PromptStatus::Active),
            (&[Deprecated, Approved], PromptStatus::Active),
            (&[Archived, Draft], PromptStatus::Active),
            (&[Deprecated], PromptStatus::Deprecated),
            (&[Archived, Deprecated], PromptStatus::Deprecated),
            (&[Archived], PromptStatus::Archived),
            (&[Archived, Archived], PromptStatus::Archived),
        ];
        for (statuses, want) in cases {
            assert_eq!(prompt_status(statuses), *want, "{statuses:?}");
        }
    }

    #[test]
    fn the_review_interval_of_the_type_wins_over_the_classification() {
        assert_eq!(review_interval(Some(30), Some(90)), Some(30));
        assert_eq!(review_interval(None, Some(90)), Some(90));
        assert_eq!(review_interval(None, None), None);
        assert_eq!(review_interval(Some(0), Some(90)), None);
    }

    #[test]
    fn a_review_is_due_when_the_interval_since_the_last_one_has_passed() {
        let created = t(0);
        type Case = (
            Option<u32>,
            Option<OffsetDateTime>,
            OffsetDateTime,
            Option<(i64, i64)>,
        );
        let cases: &[Case] = &[
            // (interval, last reviewed, now) → (due since in days, days overdue)
            (None, None, t(1_000 * DAY), None),
            (Some(0), None, t(1_000 * DAY), None),
            (Some(30), None, t(29 * DAY), None),
            (Some(30), None, t(30 * DAY), Some((30, 0))),
            (Some(30), None, t(45 * DAY + 3_600), Some((30, 15))),
            (Some(30), Some(t(20 * DAY)), t(45 * DAY), None),
            (Some(30), Some(t(20 * DAY)), t(50 * DAY), Some((50, 0))),
            (Some(30), Some(t(20 * DAY)), t(52 * DAY - 1), Some((50, 1))),
            (Some(7), Some(t(DAY)), t(100 * DAY), Some((8, 92))),
        ];
        for (interval, last, now, want) in cases {
            let got = review_due(*interval, *last, created, *now)
                .map(|due| ((due.due_since - t(0)).whole_days(), due.days_overdue));
            assert_eq!(got, *want, "{interval:?} {last:?} {now}");
        }
    }

    #[test]
    fn retention_cuts_off_the_given_days_back() {
        assert_eq!(retention_cutoff(30, t(40 * DAY)), t(10 * DAY));
        assert_eq!(retention_cutoff(0, t(40 * DAY)), t(40 * DAY));
    }
}
