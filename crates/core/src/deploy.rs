//! Deploying versions through labels: which labels are protected and who may move them
//! ([`LabelPolicy`], [`check_move`]), and traffic splits — a label serving several versions by
//! weight, sticky per request key ([`Split`]).
//!
//! The protected-label rule (SPEC §6): a label is protected when the deployment lists it
//! (`production` by default) or when the prompt's type has `requires_approval` (then every label
//! a caller can set on that prompt is protected; `latest` never is, the system keeps it). Only
//! `approved` versions may carry a protected label, and only the deploy roles may move or remove
//! one.
//!
//! Splits: a split is two or more distinct versions with positive integer weights summing to 100;
//! the first entry is the label's primary version. A request with a `request_key` lands in bucket
//! `SHA-256(prompt id (16 bytes) ‖ label ‖ 0x00 ‖ request_key)`, first 8 bytes big-endian, modulo
//! 10,000, and the bucket picks the entry by cumulative weight (weight × 100 buckets each), so the
//! same key always gets the same version. A request without a key gets a random bucket, chosen by
//! the caller (this crate does no I/O), with the same weights.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    error::DomainError,
    ident::LabelName,
    model::{Role, VersionStatus},
};

/// Buckets a request can land in; each weight point is 100 buckets.
pub const BUCKETS: u32 = 10_000;

/// The deployment's label rules (`[labels]` in the settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPolicy {
    /// Labels only approved versions may carry.
    pub protected: Vec<LabelName>,
    /// Roles that may move or remove a protected label.
    pub deploy_roles: Vec<Role>,
}

impl Default for LabelPolicy {
    fn default() -> Self {
        LabelPolicy {
            protected: vec![LabelName::production()],
            deploy_roles: vec![Role::Admin],
        }
    }
}

impl LabelPolicy {
    /// Whether `label` is protected on a prompt whose type does (or does not) require approval.
    pub fn is_protected(&self, label: &LabelName, type_requires_approval: bool) -> bool {
        !label.is_latest() && (type_requires_approval || self.protected.contains(label))
    }

    /// Whether `role` may move or remove protected labels.
    pub fn may_deploy(&self, role: Role) -> bool {
        self.deploy_roles.contains(&role)
    }
}

/// Decides whether `role` may point `label` at `targets` (version number and status each; empty
/// for a removal). Unprotected labels: always. Protected ones: every target must be `approved`
/// (`label_requires_approval` naming the first that is not), then the role must be a deploy role
/// (`deploy_forbidden`).
pub fn check_move(
    policy: &LabelPolicy,
    label: &LabelName,
    type_requires_approval: bool,
    targets: &[(i64, VersionStatus)],
    role: Role,
) -> Result<(), DomainError> {
    if !policy.is_protected(label, type_requires_approval) {
        return Ok(());
    }
    if let Some(&(version, status)) = targets
        .iter()
        .find(|(_, status)| *status != VersionStatus::Approved)
    {
        return Err(DomainError::LabelRequiresApproval {
            label: label.to_string(),
            version,
            status: status.as_str(),
        });
    }
    if !policy.may_deploy(role) {
        return Err(DomainError::DeployForbidden {
            label: label.to_string(),
            role: role.as_str(),
        });
    }
    Ok(())
}

/// One version of a split and its share of the traffic, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitEntry {
    pub version: i64,
    pub weight: u32,
}

/// A valid traffic split: ≥ 2 distinct versions, positive weights summing to 100. The first
/// entry is the primary version (the one a label's plain `version` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Split(Vec<SplitEntry>);

impl Split {
    pub fn new(entries: Vec<SplitEntry>) -> Result<Self, DomainError> {
        let invalid = |reason: String| DomainError::InvalidField {
            field: "split",
            reason,
        };
        if entries.len() < 2 {
            return Err(invalid(
                "a split needs at least two versions (to point at one, give `version`)".into(),
            ));
        }
        // Positive weights summing to 100 allow at most 100 entries; refusing more first keeps
        // the checks below cheap whatever the request holds.
        if entries.len() > 100 {
            return Err(invalid(format!(
                "a split has at most 100 versions (positive weights summing to 100), not {}",
                entries.len()
            )));
        }
        for (index, entry) in entries.iter().enumerate() {
            if entry.version < 1 {
                return Err(invalid(format!(
                    "entry {index}: version must be at least 1"
                )));
            }
            if entry.weight == 0 {
                return Err(invalid(format!(
                    "entry {index}: weight must be a positive integer"
                )));
            }
            if entries[..index].iter().any(|e| e.version == entry.version) {
                return Err(invalid(format!(
                    "version {} appears more than once",
                    entry.version
                )));
            }
        }
        let total: u64 = entries.iter().map(|entry| u64::from(entry.weight)).sum();
        if total != 100 {
            return Err(invalid(format!("weights must sum to 100, not {total}")));
        }
        Ok(Split(entries))
    }

    pub fn entries(&self) -> &[SplitEntry] {
        &self.0
    }

    /// The first entry's version.
    pub fn primary(&self) -> i64 {
        self.0[0].version
    }

    pub fn contains(&self, version: i64) -> bool {
        self.0.iter().any(|entry| entry.version == version)
    }

    /// The entry (and its index) bucket `bucket` (taken modulo [`BUCKETS`]) falls in.
    pub fn pick(&self, bucket: u32) -> (usize, SplitEntry) {
        let bucket = bucket % BUCKETS;
        let mut upper = 0;
        for (index, entry) in self.0.iter().enumerate() {
            upper += entry.weight * (BUCKETS / 100);
            if bucket < upper {
                return (index, *entry);
            }
        }
        // Unreachable for a valid split (weights sum to 100); the last entry is the safe answer.
        let last = self.0.len() - 1;
        (last, self.0[last])
    }
}

impl<'de> Deserialize<'de> for Split {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Split::new(Vec::<SplitEntry>::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Where a label points: one version, or a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelTarget {
    Version(i64),
    Split(Split),
}

impl LabelTarget {
    /// The version a label's plain `version` shows (a split's first entry).
    pub fn primary(&self) -> i64 {
        match self {
            LabelTarget::Version(version) => *version,
            LabelTarget::Split(split) => split.primary(),
        }
    }

    /// Every version the label may serve.
    pub fn versions(&self) -> Vec<i64> {
        match self {
            LabelTarget::Version(version) => vec![*version],
            LabelTarget::Split(split) => split.entries().iter().map(|e| e.version).collect(),
        }
    }

    pub fn split(&self) -> Option<&Split> {
        match self {
            LabelTarget::Version(_) => None,
            LabelTarget::Split(split) => Some(split),
        }
    }

    /// The target from a stored primary version and optional split.
    pub fn from_parts(version: i64, split: Option<Split>) -> Self {
        match split {
            Some(split) => LabelTarget::Split(split),
            None => LabelTarget::Version(version),
        }
    }
}

/// The sticky bucket of a request key for one prompt's label (see the module docs).
pub fn bucket(prompt_id: Uuid, label: &LabelName, request_key: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(prompt_id.as_bytes());
    hasher.update(label.as_str().as_bytes());
    hasher.update([0u8]);
    hasher.update(request_key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str) -> LabelName {
        LabelName::parse(name).expect("label")
    }

    fn split(entries: &[(i64, u32)]) -> Split {
        Split::new(
            entries
                .iter()
                .map(|&(version, weight)| SplitEntry { version, weight })
                .collect(),
        )
        .expect("valid split")
    }

    #[test]
    fn the_protected_label_rule_decides_every_case() {
        use Role::*;
        use VersionStatus::*;
        let policy = LabelPolicy::default();
        // (label, type requires approval, targets, role, expected code or None)
        type Case<'a> = (
            &'a str,
            bool,
            &'a [(i64, VersionStatus)],
            Role,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            ("staging", false, &[(1, Draft)], User, None),
            ("staging", false, &[], Agent, None),
            ("production", false, &[(1, Approved)], Admin, None),
            (
                "production",
                false,
                &[(1, Draft)],
                Admin,
                Some("label_requires_approval"),
            ),
            (
                "production",
                false,
                &[(1, Review)],
                Admin,
                Some("label_requires_approval"),
            ),
            (
                "production",
                false,
                &[(1, Deprecated)],
                Admin,
                Some("label_requires_approval"),
            ),
            (
                "production",
                false,
                &[(1, Approved)],
                User,
                Some("deploy_forbidden"),
            ),
            ("production", false, &[], User, Some("deploy_forbidden")),
            ("production", false, &[], Admin, None),
            (
                "production",
                false,
                &[(7, Approved), (8, Draft)],
                Admin,
                Some("label_requires_approval"),
            ),
            (
                "production",
                false,
                &[(7, Approved), (8, Approved)],
                Admin,
                None,
            ),
            (
                "staging",
                true,
                &[(1, Draft)],
                Admin,
                Some("label_requires_approval"),
            ),
            (
                "staging",
                true,
                &[(1, Approved)],
                User,
                Some("deploy_forbidden"),
            ),
            ("latest", true, &[(1, Draft)], User, None),
        ];
        for &(name, requires_approval, targets, role, expected) in cases {
            let outcome = check_move(&policy, &label(name), requires_approval, targets, role);
            assert_eq!(
                outcome.as_ref().err().map(DomainError::code),
                expected,
                "{name} requires_approval={requires_approval} {targets:?} {role}: {outcome:?}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_version_and_its_status() {
        let error = check_move(
            &LabelPolicy::default(),
            &LabelName::production(),
            false,
            &[(3, VersionStatus::Review)],
            Role::Admin,
        )
        .expect_err("refused");
        let message = error.to_string();
        assert!(
            message.contains("version 3") && message.contains("review"),
            "{message}"
        );
    }

    #[test]
    fn the_deployment_configures_protected_labels_and_deploy_roles() {
        let policy = LabelPolicy {
            protected: vec![label("prod-eu")],
            deploy_roles: vec![Role::Admin, Role::User],
        };
        assert!(!policy.is_protected(&LabelName::production(), false));
        assert!(policy.is_protected(&label("prod-eu"), false));
        let approved = [(1, VersionStatus::Approved)];
        assert!(check_move(&policy, &label("prod-eu"), false, &approved, Role::User).is_ok());
        assert!(check_move(&policy, &label("prod-eu"), false, &approved, Role::Agent).is_err());
    }

    #[test]
    fn splits_need_two_distinct_versions_with_positive_weights_summing_to_100() {
        let invalid: &[&[(i64, u32)]] = &[
            &[],
            &[(1, 100)],
            &[(1, 50), (1, 50)],
            &[(1, 90), (2, 0), (3, 10)],
            &[(1, 90), (2, 20)],
            &[(1, 40), (2, 50)],
            &[(0, 50), (2, 50)],
        ];
        for entries in invalid {
            let entries = entries
                .iter()
                .map(|&(version, weight)| SplitEntry { version, weight })
                .collect();
            let error = Split::new(entries).expect_err("invalid split");
            assert_eq!(error.code(), "invalid_field");
        }
        assert_eq!(split(&[(7, 90), (8, 10)]).primary(), 7);
        // More than 100 entries can never sum to 100 with positive weights: refused by count.
        let many = (1..=101)
            .map(|version| SplitEntry { version, weight: 1 })
            .collect();
        let error = Split::new(many).expect_err("too many entries");
        assert!(error.to_string().contains("at most 100"), "{error}");
    }

    #[test]
    fn a_split_deserializes_only_when_valid() {
        let ok: Result<Split, _> =
            serde_json::from_str(r#"[{"version": 7, "weight": 90}, {"version": 8, "weight": 10}]"#);
        assert!(ok.is_ok());
        let bad: Result<Split, _> =
            serde_json::from_str(r#"[{"version": 7, "weight": 90}, {"version": 8, "weight": 9}]"#);
        assert!(bad.is_err());
    }

    #[test]
    fn buckets_map_to_entries_by_cumulative_weight() {
        let split = split(&[(7, 90), (8, 10)]);
        assert_eq!(split.pick(0).1.version, 7);
        assert_eq!(split.pick(8_999).1.version, 7);
        assert_eq!(split.pick(9_000).1.version, 8);
        assert_eq!(
            split.pick(9_999),
            (
                1,
                SplitEntry {
                    version: 8,
                    weight: 10
                }
            )
        );
    }

    #[test]
    fn sticky_picks_follow_the_weights_within_two_points_over_10000_keys() {
        let prompt_id = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        let production = LabelName::production();
        let splits: &[&[(i64, u32)]] = &[
            &[(7, 90), (8, 10)],
            &[(1, 50), (2, 50)],
            &[(3, 70), (4, 20), (5, 10)],
        ];
        for entries in splits {
            let split = split(entries);
            let mut counts = vec![0u32; entries.len()];
            for n in 0..10_000 {
                let key = format!("user-{n}");
                let (index, entry) = split.pick(bucket(prompt_id, &production, &key));
                counts[index] += 1;
                // The same key always gets the same version.
                let again = split.pick(bucket(prompt_id, &production, &key)).1;
                assert_eq!(entry, again, "{key}");
            }
            for (index, &(version, weight)) in entries.iter().enumerate() {
                let share = f64::from(counts[index]) / 100.0;
                assert!(
                    (share - f64::from(weight)).abs() <= 2.0,
                    "version {version}: {share}% for weight {weight} in {entries:?}"
                );
            }
        }
    }

    #[test]
    fn buckets_depend_on_the_prompt_the_label_and_the_key() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let keys: Vec<String> = (0..20).map(|n| format!("k{n}")).collect();
        let spread = |id: Uuid, label: &LabelName| -> Vec<u32> {
            keys.iter().map(|key| bucket(id, label, key)).collect()
        };
        assert_eq!(
            spread(a, &LabelName::production()),
            spread(a, &LabelName::production())
        );
        assert_ne!(
            spread(a, &LabelName::production()),
            spread(b, &LabelName::production())
        );
        assert_ne!(
            spread(a, &LabelName::production()),
            spread(a, &label("staging"))
        );
        assert!(
            spread(a, &label("staging"))
                .iter()
                .all(|&bucket| bucket < BUCKETS)
        );
    }
}
