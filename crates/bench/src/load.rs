//! A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next
//! request as soon as the previous answer arrives, for a fixed duration. Counts answers by
//! status and records every latency for percentiles.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, client::conn::http1};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The admin token the benchmark's servers are started with and every request sends.
pub const TOKEN: &str = "pv_benchbenchbenchbenchbenchbenchbenchbenchbenchbenchbenchbenchbench";

/// One request, sent again and again.
#[derive(Clone)]
pub struct Request {
    method: Method,
    path: String,
    body: Option<Bytes>,
}

impl Request {
    pub fn get(path: &str) -> Self {
        Request {
            method: Method::GET,
            path: path.to_string(),
            body: None,
        }
    }

    pub fn post_json(path: &str, body: Value) -> Self {
        Request {
            method: Method::POST,
            path: path.to_string(),
            body: Some(Bytes::from(body.to_string())),
        }
    }

    fn build(&self, address: SocketAddr) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let mut builder = hyper::Request::builder()
            .method(self.method.clone())
            .uri(&self.path)
            .header("host", address.to_string())
            .header("authorization", format!("Bearer {TOKEN}"));
        if self.body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        Ok(builder.body(Full::new(self.body.clone().unwrap_or_default()))?)
    }
}

/// What a run measured.
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    latencies_micros: Vec<u32>,
}

impl LoadResult {
    /// Nothing measured yet: what [`LoadResult::absorb`] starts from.
    pub fn empty() -> Self {
        LoadResult {
            ok: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            latencies_micros: Vec::new(),
        }
    }

    /// Adds `other`'s requests, time and latencies to this result, as if measured in one go.
    pub fn absorb(&mut self, other: LoadResult) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies_micros.extend(other.latencies_micros);
        self.latencies_micros.sort_unstable();
    }

    pub fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency below which `fraction` of the requests answered, in ms.
    pub fn percentile(&self, fraction: f64) -> f64 {
        if self.latencies_micros.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_micros.len() as f64 - 1.0) * fraction).round() as usize;
        f64::from(self.latencies_micros[index]) / 1000.0
    }

    pub fn header() -> String {
        format!(
            "{:<52} {:>10} {:>8} {:>8} {:>8}",
            "run", "req/s", "p50 ms", "p99 ms", "errors"
        )
    }

    pub fn row(&self, name: &str) -> String {
        format!(
            "{:<52} {:>10.0} {:>8.2} {:>8.2} {:>8}",
            name,
            self.requests_per_second(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.failed
        )
    }
}

async fn connect(address: SocketAddr) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request on a fresh connection; returns the status.
pub async fn send_once(address: SocketAddr, request: Request) -> anyhow::Result<u16> {
    Ok(exchange(address, request).await?.0)
}

/// Sends one request on a fresh connection; returns the status and the body as text.
pub async fn exchange(address: SocketAddr, request: Request) -> anyhow::Result<(u16, String)> {
    let mut sender = connect(address).await?;
    let response = sender.send_request(request.build(address)?).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Runs `connections` closed loops: connection `c` sends `make_request(c, iteration)` and stops at
/// the first `None` or once `duration` (if any) has passed. A request is ok when it answers
/// `expected`.
pub async fn run_with<F>(
    address: SocketAddr,
    connections: usize,
    duration: Option<Duration>,
    expected: u16,
    make_request: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(usize, u64) -> Option<Request> + Send + Sync + Clone + 'static,
{
    let started = Instant::now();
    let deadline = duration.map(|duration| started + duration);
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let make_request = make_request.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(address).await?;
            let (mut ok, mut failed, mut latencies) = (0u64, 0u64, Vec::with_capacity(1 << 16));
            let mut iteration = 0;
            while deadline.is_none_or(|deadline| Instant::now() < deadline) {
                let Some(request) = make_request(connection, iteration) else {
                    break;
                };
                let request = request.build(address)?;
                iteration += 1;
                let sent = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                response.into_body().collect().await?;
                latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if status == expected {
                    ok += 1
                } else {
                    failed += 1
                }
            }
            anyhow::Ok((ok, failed, latencies))
        }));
    }
    let mut result = LoadResult::empty();
    for task in tasks {
        let (ok, failed, latencies) = task.await??;
        result.ok += ok;
        result.failed += failed;
        result.latencies_micros.extend(latencies);
    }
    result.elapsed = started.elapsed();
    result.latencies_micros.sort_unstable();
    Ok(result)
}

/// Sends each of `requests` once (expects 200), over `connections` connections that each take
/// the next unsent one: fills caches before a measured run.
pub async fn sweep(
    address: SocketAddr,
    requests: Vec<Request>,
    connections: usize,
) -> anyhow::Result<LoadResult> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    run_with(address, connections, None, 200, move |_, _| {
        requests.get(next.fetch_add(1, Ordering::Relaxed)).cloned()
    })
    .await
}

/// Closed-loop load of one repeated request (expects 200).
pub async fn run(
    address: SocketAddr,
    request: Request,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    run_with(address, connections, Some(duration), 200, move |_, _| {
        Some(request.clone())
    })
    .await
}

/// `writers` clients creating versions (expects 201): each on its own prompt (`spread`) or all on
/// one prompt.
pub async fn run_writers(
    address: SocketAddr,
    writers: usize,
    duration: Duration,
    spread: bool,
) -> anyhow::Result<LoadResult> {
    let run_id = uuid_like();
    let prompt_of = move |writer: usize| {
        if spread {
            format!("bench%2Fwrite-{run_id}-{writer}")
        } else {
            format!("bench%2Fwrite-{run_id}-shared")
        }
    };
    let targets: Vec<usize> = if spread {
        (0..writers).collect()
    } else {
        vec![0]
    };
    for writer in targets {
        let name = prompt_of(writer).replace("%2F", "/");
        let status = send_once(
            address,
            Request::post_json("/api/prompts", json!({"name": name, "content": "seed"})),
        )
        .await?;
        anyhow::ensure!(status == 201, "creating {name} answered {status}");
    }
    run_with(address, writers, Some(duration), 201, move |writer, iteration| {
        Some(Request::post_json(
            &format!("/api/prompts/{}/version", prompt_of(writer)),
            json!({"content": format!("writer {writer} version {iteration}: summarize {{{{ text }}}}")}),
        ))
    })
    .await
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
