//! Wire types of a prompt's template test cases: `GET`/`PUT /api/prompts/{id}/tests` and
//! `POST /api/prompts/{id}/tests/run`. The cases and results themselves are the core's types
//! (`promptvault_core::testcase`), serialized as they are.

use promptvault_core::testcase::{CaseResult, TestCase};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `PUT /api/prompts/{id}/tests`: the whole set, replacing the stored one (`[]` removes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTestsRequest {
    pub cases: Vec<TestCase>,
}

/// A prompt's test cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestsResponse {
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub cases: Vec<TestCase>,
}

/// `POST /api/prompts/{id}/tests/run`: which version to run the tests on (a number or a label;
/// default `latest`). Nothing is stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunTestsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The results of running a prompt's tests on one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunTestsResponse {
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub version_number: i64,
    /// Every case passed (also true when there are no cases).
    pub passed: bool,
    pub total: usize,
    pub failed: usize,
    pub results: Vec<CaseResult>,
}
