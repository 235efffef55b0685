//! Handlers of `/api/prompts/{id}/tests…`: read and replace a prompt's template test cases, and
//! run them now on one version. Each one extracts, calls the [`crate::vault::Vault`] and answers.

use axum::{Json, extract::State};
use promptvault_api::{
    problem::Problem,
    testcases::{RunTestsRequest, RunTestsResponse, SetTestsRequest, TestsResponse},
};

use crate::{
    error::AppResult,
    http::{
        AppState,
        extract::{ApiJson, ApiPath, CurrentActor},
    },
};

#[utoipa::path(
    get, path = "/api/prompts/{id}/tests", tag = "tests",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    responses(
        (status = 200, description = "the prompt's template test cases (empty when none)", body = TestsResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_tests(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<TestsResponse>> {
    Ok(Json(state.vault.get_tests(&actor, &id).await?))
}

#[utoipa::path(
    put, path = "/api/prompts/{id}/tests", tag = "tests",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    request_body = SetTestsRequest,
    responses(
        (status = 200, description = "the stored set; every new version runs it", body = TestsResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_tests`: one item per problem, with its JSON pointer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_tests(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<SetTestsRequest>,
) -> AppResult<Json<TestsResponse>> {
    Ok(Json(state.vault.set_tests(&actor, &id, request).await?))
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/tests/run", tag = "tests",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    request_body = RunTestsRequest,
    responses(
        (status = 200, description = "per case and per assertion: passed or why not (nothing is stored)", body = RunTestsResponse),
        (status = 404, description = "no such prompt, version or label", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_tests(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RunTestsRequest>,
) -> AppResult<Json<RunTestsResponse>> {
    Ok(Json(state.vault.run_tests(&actor, &id, request).await?))
}
