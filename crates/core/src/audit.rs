//! The tamper-evident audit log's rules: each entry carries the hash of the one before it (a hash
//! chain), so editing, inserting or deleting an entry breaks the chain at that point; retention
//! purges old entries behind a signed checkpoint, so what remains still verifies.
//!
//! Storage appends entries (calling [`entry_hash`] while it holds the log's lock); verification
//! ([`verify_chain`]) and checkpoint signatures ([`sign_checkpoint`]) are pure and live here.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    hash::{canonical_json, hex},
    model::{Classification, Role, Scope},
};

/// The `prev_hash` of the first entry ever written.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether the audited thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done (a mutation, or a read of confidential/restricted text).
    Ok,
    /// Refused by the access policy.
    Denied,
    /// Authentication failed.
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ok" => Some(AuditOutcome::Ok),
            "denied" => Some(AuditOutcome::Denied),
            "failed" => Some(AuditOutcome::Failed),
            _ => None,
        }
    }
}

/// What a caller asks to append; storage assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub id: Uuid,
    pub at: OffsetDateTime,
    /// `user`, `agent`, `token`, `cli`, `anonymous`, `system`.
    pub actor_kind: String,
    /// The user id or agent id, when known.
    pub actor_id: Option<String>,
    pub actor_role: Option<Role>,
    /// e.g. `prompt.create`, `version.create`, `label.set`, `prompt.read_text`, `auth.login`.
    pub action: String,
    pub outcome: AuditOutcome,
    pub prompt_id: Option<Uuid>,
    pub prompt_name: Option<String>,
    pub prompt_scope: Option<Scope>,
    pub classification: Option<Classification>,
    /// `diff_hash` before and after a mutation of versions.
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    /// Anything else worth keeping (never secrets, never restricted text).
    pub detail: Value,
    /// Where the request came from (client address).
    pub source: Option<String>,
    pub request_id: Option<String>,
}

/// A stored entry: the new entry plus its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub entry: NewAuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of entry number `seq` whose predecessor hashed to `prev_hash`: SHA-256 (hex) of the
/// canonical JSON of every field. Times are hashed as Unix nanoseconds, so the storage format of
/// timestamps cannot change a hash.
pub fn entry_hash(seq: i64, prev_hash: &str, entry: &NewAuditEntry) -> String {
    let document = json!({
        "seq": seq,
        "prev_hash": prev_hash,
        "id": entry.id.to_string(),
        "at": entry.at.unix_timestamp_nanos().to_string(),
        "actor_kind": entry.actor_kind,
        "actor_id": entry.actor_id,
        "actor_role": entry.actor_role.map(Role::as_str),
        "action": entry.action,
        "outcome": entry.outcome.as_str(),
        "prompt_id": entry.prompt_id.map(|id| id.to_string()),
        "prompt_name": entry.prompt_name,
        "prompt_scope": entry.prompt_scope.map(Scope::as_str),
        "classification": entry.classification.map(Classification::as_str),
        "before_hash": entry.before_hash,
        "after_hash": entry.after_hash,
        "detail": entry.detail,
        "source": entry.source,
        "request_id": entry.request_id,
    });
    hex(&Sha256::digest(canonical_json(&document).as_bytes()))
}

/// A retention checkpoint: everything up to `up_to_seq` was purged; `up_to_hash` is the hash of
/// entry `up_to_seq`, so the next entry's `prev_hash` can still be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub up_to_seq: i64,
    pub up_to_hash: String,
    pub purged: i64,
    pub at: OffsetDateTime,
    /// HMAC-SHA256 (hex) of the fields above, with the audit signing key.
    pub signature: String,
}

fn checkpoint_message(up_to_seq: i64, up_to_hash: &str, purged: i64, at: OffsetDateTime) -> String {
    format!(
        "promptvault-audit-checkpoint\n{up_to_seq}\n{up_to_hash}\n{purged}\n{}",
        at.unix_timestamp_nanos()
    )
}

/// Signs a checkpoint with `key`.
pub fn sign_checkpoint(
    key: &[u8],
    up_to_seq: i64,
    up_to_hash: &str,
    purged: i64,
    at: OffsetDateTime,
) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(checkpoint_message(up_to_seq, up_to_hash, purged, at).as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Checks a checkpoint's signature in constant time.
pub fn checkpoint_is_authentic(key: &[u8], checkpoint: &Checkpoint) -> bool {
    let expected = sign_checkpoint(
        key,
        checkpoint.up_to_seq,
        &checkpoint.up_to_hash,
        checkpoint.purged,
        checkpoint.at,
    );
    crate::secret::constant_time_eq(expected.as_bytes(), checkpoint.signature.as_bytes())
        && !expected.is_empty()
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyReport {
    pub ok: bool,
    /// Entries checked.
    pub checked: i64,
    /// The first entry that does not verify (`seq`), with why.
    pub first_broken: Option<BrokenEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BrokenEntry {
    pub seq: i64,
    pub reason: String,
}

/// Checks entries one at a time, in `seq` order, so a long log can be verified page by page.
pub struct ChainVerifier {
    expected_seq: i64,
    expected_prev: String,
    checkpoint_forged: bool,
    checked: i64,
    broken: Option<BrokenEntry>,
}

impl ChainVerifier {
    /// Starts after `checkpoint` (or from the genesis); a checkpoint whose signature does not
    /// verify with `key` breaks the chain at the first entry after it.
    pub fn new(key: &[u8], checkpoint: Option<&Checkpoint>) -> Self {
        let (expected_seq, expected_prev) = match checkpoint {
            Some(checkpoint) => (checkpoint.up_to_seq + 1, checkpoint.up_to_hash.clone()),
            None => (1, GENESIS_HASH.to_string()),
        };
        ChainVerifier {
            expected_seq,
            expected_prev,
            checkpoint_forged: checkpoint
                .is_some_and(|checkpoint| !checkpoint_is_authentic(key, checkpoint)),
            checked: 0,
            broken: None,
        }
    }

    /// Checks the next entry; after the first broken one, nothing more is checked.
    pub fn push(&mut self, entry: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        let fail = |seq: i64, reason: String| Some(BrokenEntry { seq, reason });
        self.broken = if self.checkpoint_forged && self.checked == 0 {
            fail(
                entry.seq,
                "the retention checkpoint before this entry is not authentic".into(),
            )
        } else if entry.seq != self.expected_seq {
            fail(
                self.expected_seq.min(entry.seq),
                format!(
                    "expected entry {} but found {}: an entry was deleted or inserted",
                    self.expected_seq, entry.seq
                ),
            )
        } else if entry.prev_hash != self.expected_prev {
            fail(
                entry.seq,
                "prev_hash does not match the previous entry: an entry was deleted or inserted"
                    .into(),
            )
        } else if entry_hash(entry.seq, &entry.prev_hash, &entry.entry) != entry.hash {
            fail(
                entry.seq,
                "the entry's content does not match its hash: it was edited".into(),
            )
        } else {
            None
        };
        if self.broken.is_none() {
            self.checked += 1;
            self.expected_seq += 1;
            self.expected_prev = entry.hash.clone();
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            ok: self.broken.is_none(),
            checked: self.checked,
            first_broken: self.broken,
        }
    }
}

/// Verifies entries in `seq` order, starting after `checkpoint` (or from the genesis), and names
/// the first broken one: an edited entry (its hash no longer matches its content), a deleted one
/// (a gap in `seq`, or a `prev_hash` that does not match), an inserted one (a `prev_hash` or
/// hash that does not chain). A checkpoint whose signature does not verify breaks the chain at
/// the first entry after it.
pub fn verify_chain<'a>(
    key: &[u8],
    checkpoint: Option<&Checkpoint>,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> VerifyReport {
    let mut verifier = ChainVerifier::new(key, checkpoint);
    for entry in entries {
        verifier.push(entry);
        if verifier.is_broken() {
            break;
        }
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test signing key";

    fn entry(action: &str) -> NewAuditEntry {
        NewAuditEntry {
            id: Uuid::now_v7(),
            at: OffsetDateTime::UNIX_EPOCH,
            actor_kind: "user".into(),
            actor_id: Some("u1".into()),
            actor_role: Some(Role::User),
            action: action.into(),
            outcome: AuditOutcome::Ok,
            prompt_id: None,
            prompt_name: Some("a/b".into()),
            prompt_scope: Some(Scope::Global),
            classification: Some(Classification::Internal),
            before_hash: None,
            after_hash: None,
            detail: json!({}),
            source: None,
            request_id: None,
        }
    }

    fn chain(actions: &[&str]) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        actions
            .iter()
            .enumerate()
            .map(|(index, action)| {
                let seq = index as i64 + 1;
                let entry = entry(action);
                let hash = entry_hash(seq, &prev, &entry);
                let stored = AuditEntry {
                    seq,
                    entry,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                stored
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let entries = chain(&["a", "b", "c"]);
        assert_eq!(
            verify_chain(KEY, None, &entries),
            VerifyReport {
                ok: true,
                checked: 3,
                first_broken: None
            }
        );
    }

    /// (what, how the log is tampered with, the seq verification must name).
    type Tampering = (&'static str, Box<dyn Fn(&mut Vec<AuditEntry>)>, i64);

    #[test]
    fn tampering_is_reported_at_the_first_broken_entry() {
        let cases: Vec<Tampering> = vec![
            (
                "edited",
                Box::new(|entries| entries[1].entry.action = "forged".into()),
                2,
            ),
            (
                "deleted",
                Box::new(|entries| {
                    entries.remove(1);
                }),
                2,
            ),
            (
                "deleted last but one and renumbered",
                Box::new(|entries| {
                    entries.remove(1);
                    entries[1].seq = 2;
                }),
                2,
            ),
            (
                "inserted",
                Box::new(|entries| {
                    let mut forged = entries[1].clone();
                    forged.entry.action = "inserted".into();
                    entries.insert(1, forged);
                }),
                2,
            ),
        ];
        for (label, tamper, seq) in cases {
            let mut entries = chain(&["a", "b", "c", "d"]);
            tamper(&mut entries);
            let report = verify_chain(KEY, None, &entries);
            assert!(!report.ok, "{label}");
            assert_eq!(
                report.first_broken.map(|broken| broken.seq),
                Some(seq),
                "{label}"
            );
        }
    }

    #[test]
    fn entries_after_a_signed_checkpoint_still_verify() {
        let entries = chain(&["a", "b", "c", "d"]);
        let at = OffsetDateTime::UNIX_EPOCH;
        let signature = sign_checkpoint(KEY, 2, &entries[1].hash, 2, at);
        let checkpoint = Checkpoint {
            up_to_seq: 2,
            up_to_hash: entries[1].hash.clone(),
            purged: 2,
            at,
            signature,
        };
        assert!(verify_chain(KEY, Some(&checkpoint), &entries[2..]).ok);

        let forged = Checkpoint {
            signature: "00".repeat(32),
            ..checkpoint.clone()
        };
        let report = verify_chain(KEY, Some(&forged), &entries[2..]);
        assert_eq!(report.first_broken.map(|broken| broken.seq), Some(3));
        assert!(!verify_chain(b"another key", Some(&checkpoint), &entries[2..]).ok);
    }
}
