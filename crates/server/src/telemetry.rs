//! Logging: one subscriber factory for text or JSON logs, filtered by `RUST_LOG` (default
//! `info`). Logs go to stderr so stdout stays for command output (`listening on …`).
//!
//! JSON logs are one object per line: `timestamp`, `level`, `target`, the fields of every span
//! the event is in (outermost first, so a request's `request_id`, `method` and `route` are on
//! every line logged while serving it), then the event's own fields (`message` …), all at the
//! top level. The access log is target `promptvault::access`, one line per answered request
//! (`status`, `latency_ms`, with the request span's fields); target `promptvault::request`
//! (debug) has a line as each request starts.
//!
//! What must never be logged — credentials, `Authorization` headers, prompt text or rendered
//! output — is never put in a span or an event: request spans carry only the method, the route
//! template and the request id.

use std::fmt;

use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter, format::JsonFields,
        format::Writer,
    },
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::settings::LogFormat;

/// The target of the access log lines.
pub const ACCESS_TARGET: &str = "promptvault::access";

/// The target of each request's first line, `started processing request` (debug, once routing
/// has matched, so it carries the route): `RUST_LOG=info,promptvault::request=debug` shows it.
pub const REQUEST_TARGET: &str = "promptvault::request";

/// Installs the global subscriber once; later calls are no-ops (tests call it many times).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = subscriber(format, filter, std::io::stderr).try_init();
}

/// The subscriber `init` installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLine)
                .finish(),
        ),
    }
}

/// One JSON object per event, span fields flattened to the top level.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(now));
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert("target".into(), Value::String(metadata.target().into()));
        if let Some(scope) = context.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // Span fields are kept as a JSON object (the `JsonFields` formatter).
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str(fields.as_str())
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.put(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.into()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}
