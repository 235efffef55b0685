//! `prompt stats <name>`: usage per version (times used, last used, success rate, mean score),
//! as a table, or the API's `MetricsResponse` with `--json`.

use promptvault_api::runs::MetricsResponse;

use crate::{args::StatsArgs, backend::Backend, error::CliResult, output};

pub async fn stats(backend: &dyn Backend, args: StatsArgs, json: bool) -> CliResult<String> {
    let metrics = backend.metrics(&args.name).await?;
    if json {
        return output::json(&metrics);
    }
    Ok(table(&metrics))
}

fn table(metrics: &MetricsResponse) -> String {
    let mut table = output::Table::new(&[
        "VERSION",
        "USED",
        "LAST USED",
        "OUTCOMES",
        "SUCCESS",
        "SCORED",
        "MEAN SCORE",
    ]);
    for version in &metrics.versions {
        table.row(vec![
            version.version_number.to_string(),
            version.times_used.to_string(),
            version
                .last_used
                .map_or_else(|| "-".to_string(), output::timestamp),
            version.outcomes.to_string(),
            version
                .success_rate
                .map_or_else(|| "-".to_string(), |rate| format!("{:.1}%", rate * 100.0)),
            version.scored.to_string(),
            version
                .mean_score
                .map_or_else(|| "-".to_string(), |score| format!("{score:.3}")),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use promptvault_api::runs::VersionMetrics;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn versions_without_outcomes_show_dashes() {
        let metrics = MetricsResponse {
            prompt_id: Uuid::nil(),
            name: "a".into(),
            versions: vec![
                VersionMetrics {
                    version_number: 2,
                    times_used: 4,
                    last_used: Some(time::OffsetDateTime::UNIX_EPOCH),
                    outcomes: 2,
                    success_rate: Some(0.5),
                    scored: 1,
                    mean_score: Some(0.75),
                },
                VersionMetrics {
                    version_number: 1,
                    times_used: 0,
                    last_used: None,
                    outcomes: 0,
                    success_rate: None,
                    scored: 0,
                    mean_score: None,
                },
            ],
        };
        let text = table(&metrics);
        assert!(text.contains("50.0%"), "{text}");
        assert!(text.contains("0.750"), "{text}");
        let last = text.lines().last().unwrap_or_default();
        assert!(last.starts_with('1') && last.contains('-'), "{text}");
    }
}
