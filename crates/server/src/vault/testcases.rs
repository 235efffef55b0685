//! A prompt's template test cases (still methods of `Vault`): read them (`Read`; a read of
//! confidential or restricted text is audited), replace them (`Write`; validated by
//! `core::testcase::validate`, audited as `tests.set` with the hash of the new set, never its
//! content), and run them now on a version picked by number or label (`Read`, audited like a
//! render for confidential prompts; nothing is stored). The store runs them on every new version
//! by itself (failures become `test_failed` findings).

use promptvault_api::{
    problem::ProblemItem,
    testcases::{RunTestsRequest, RunTestsResponse, SetTestsRequest, TestsResponse},
};
use promptvault_core::{access::Action, ident::LabelName, model::Prompt, testcase};
use promptvault_store::types::{PromptKey, VersionSelector};

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    vault::{Vault, guard::Audited},
};

impl Vault {
    /// The prompt's test cases.
    pub async fn get_tests(&self, actor: &Actor, key: &str) -> AppResult<TestsResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let cases = self.store.get_tests(prompt.id).await?;
        self.audit_text_read(actor, &prompt, "tests").await?;
        Ok(tests_response(&prompt, cases))
    }

    /// Replaces the prompt's test cases (an empty list removes them). 422 `invalid_tests` with
    /// one item per problem (its JSON pointer into the body) when a case is wrong.
    pub async fn set_tests(
        &self,
        actor: &Actor,
        key: &str,
        request: SetTestsRequest,
    ) -> AppResult<TestsResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        check_cases(&request.cases)?;
        let before = self.store.get_tests(prompt.id).await?;
        let updated = self
            .store
            .replace_tests(prompt.id, request.cases.clone())
            .await?;
        let audited = Audited::ok("tests.set", Some(&updated))
            .hashes(
                Some(testcase::cases_hash(&before)),
                Some(testcase::cases_hash(&request.cases)),
            )
            .detail(serde_json::json!({"cases": request.cases.len()}));
        self.audit(actor, audited).await?;
        Ok(tests_response(&updated, request.cases))
    }

    /// Runs the prompt's tests on one version (default `latest`) and answers the results.
    pub async fn run_tests(
        &self,
        actor: &Actor,
        key: &str,
        request: RunTestsRequest,
    ) -> AppResult<RunTestsResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let selector = match (request.version, request.label.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(AppError::unprocessable(
                    "invalid_field",
                    "give either version or label, not both",
                ));
            }
            (Some(number), None) => VersionSelector::Number(number),
            (None, Some(label)) => VersionSelector::Label(LabelName::parse(label)?),
            (None, None) => VersionSelector::Label(LabelName::latest()),
        };
        let (_, version) = self
            .store
            .resolve_version(&PromptKey::Id(prompt.id), &selector)
            .await?;
        let version_number = version.version_number;
        let cases = self.store.get_tests(prompt.id).await?;
        self.audit_text_read(actor, &prompt, "tests.run").await?;
        let limits = self.limits;
        let results = self
            .on_render_pool(move || {
                testcase::run(
                    &version.content,
                    version.parameter_schema.as_ref(),
                    &cases,
                    limits,
                )
            })
            .await?;
        let failed = results.iter().filter(|result| !result.passed).count();
        Ok(RunTestsResponse {
            prompt_id: prompt.id,
            prompt_name: prompt.name.to_string(),
            version_number,
            passed: failed == 0,
            total: results.len(),
            failed,
            results,
        })
    }
}

/// Validates a set of cases: 422 `invalid_tests`, one problem item per mistake.
pub(crate) fn check_cases(cases: &[testcase::TestCase]) -> AppResult<()> {
    testcase::validate(cases).map_err(|errors| {
        AppError::unprocessable(
            "invalid_tests",
            format!("{} problem(s) in the test cases", errors.len()),
        )
        .with_errors(
            errors
                .into_iter()
                .map(|error| ProblemItem {
                    pointer: error.pointer,
                    message: error.message,
                })
                .collect(),
        )
    })
}

fn tests_response(prompt: &Prompt, cases: Vec<testcase::TestCase>) -> TestsResponse {
    TestsResponse {
        prompt_id: prompt.id,
        prompt_name: prompt.name.to_string(),
        cases,
    }
}
