//! Version numbers stay contiguous and unique when many clients add versions to one prompt at
//! once, through the HTTP API, on both backends.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, expect_json};

crate::on_both_backends!(thirty_two_clients_adding_twenty_versions_each_get_versions_1_to_640);

async fn thirty_two_clients_adding_twenty_versions_each_get_versions_1_to_640(app: TestApp) {
    const CLIENTS: usize = 32;
    const VERSIONS_EACH: usize = 20;
    app.create_prompt("busy", "seed").await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            let mut server_errors = 0;
            for index in 0..VERSIONS_EACH {
                let body = json!({"content": format!("client {client} version {index}")});
                let response = app.add_version("busy", &body).await;
                if response.status().is_server_error() {
                    server_errors += 1;
                    continue;
                }
                let version = expect_json(response, StatusCode::CREATED).await;
                numbers.push(version["version_number"].as_i64().expect("number"));
            }
            (numbers, server_errors)
        }));
    }
    let mut all = Vec::new();
    let mut server_errors = 0;
    for task in tasks {
        let (numbers, errors) = task.await.expect("client task");
        all.extend(numbers);
        server_errors += errors;
    }
    assert_eq!(server_errors, 0, "no 5xx");
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "no duplicates");
    // Version 1 is the seed; the 640 new versions are 2..=641, so the prompt has 1..=641.
    let expected: BTreeSet<i64> = (2..=(1 + (CLIENTS * VERSIONS_EACH) as i64)).collect();
    assert_eq!(unique, expected, "no gaps");
    let prompt = expect_json(app.get("/api/prompts/busy").await, StatusCode::OK).await;
    assert_eq!(
        prompt["versions"].as_array().map(Vec::len),
        Some(CLIENTS * VERSIONS_EACH + 1)
    );
    assert_eq!(prompt["labels"]["latest"], 641);
}
