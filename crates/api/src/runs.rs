//! Wire types of runs: `POST /api/runs/{id}/feedback` (an outcome for a run a render recorded)
//! and `GET /api/prompts/{id}/metrics` (usage per version).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/runs/{id}/feedback`: at least one field. A later feedback on the same run replaces
/// the fields it gives and keeps the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// Whether the run achieved what it was for; counts toward the success rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// A quality score from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// At most 4000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A run's feedback as stored (merged with earlier feedback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeedbackResponse {
    pub run_id: Uuid,
    pub prompt_id: Uuid,
    pub version_number: i64,
    pub success: Option<bool>,
    pub score: Option<f64>,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// One version's usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionMetrics {
    pub version_number: i64,
    /// Recorded runs.
    pub times_used: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used: Option<OffsetDateTime>,
    /// Runs with a known outcome (`success` given).
    pub outcomes: i64,
    /// Successful runs over runs with a known outcome; `null` without any.
    pub success_rate: Option<f64>,
    /// Runs with a score.
    pub scored: i64,
    /// The mean score; `null` without any.
    pub mean_score: Option<f64>,
}

/// `GET /api/prompts/{id}/metrics`: every version, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricsResponse {
    pub prompt_id: Uuid,
    pub name: String,
    pub versions: Vec<VersionMetrics>,
}
