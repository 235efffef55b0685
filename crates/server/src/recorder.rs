//! Recording runs off the hot path. [`RunRecorder::record`] puts a run on a bounded queue with
//! `try_send` and returns at once: when the queue is full the run is dropped and counted, so
//! serving never waits for the database. One background task drains the queue in batches and
//! writes each batch in one transaction (`Store::insert_runs`): after the first run of a batch
//! arrives it collects for up to `runs.batch_wait_ms`, or until `runs.batch_size` runs are in.
//! Each transaction has a fixed cost (begin, the prompts' existence check, the usage upsert,
//! commit), so under load the wait is what keeps transactions few and large: without it the
//! writer, always quicker than the next burst, would commit a handful of runs at a time.
//!
//! [`RunRecorder::flush`] waits until everything queued before it is written: feedback on a run
//! still queued calls it before looking the run up, and `prompt serve` calls it on shutdown.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use promptvault_store::{Store, types::NewRun};
use tokio::sync::{mpsc, oneshot};

enum Message {
    Run(Box<NewRun>),
    Flush(oneshot::Sender<()>),
}

/// How many runs were recorded, dropped (queue full) and lost (a failed write), and in how
/// many write transactions.
#[derive(Debug, Default)]
pub struct RecorderCounters {
    pub recorded: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub batches: AtomicU64,
}

/// The queue in front of the store's run table, and its counters.
pub struct RunRecorder {
    sender: mpsc::Sender<Message>,
    counters: Arc<RecorderCounters>,
}

impl RunRecorder {
    /// Starts the background writer on the current tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        batch_size: usize,
        batch_wait: Duration,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(RecorderCounters::default());
        let batching = Batching {
            size: batch_size.max(1),
            wait: batch_wait,
        };
        tokio::spawn(drain(store, receiver, batching, counters.clone()));
        RunRecorder { sender, counters }
    }

    /// Queues a run; never waits. `false` when it was dropped (queue full or writer gone).
    pub fn record(&self, run: NewRun) -> bool {
        match self.sender.try_send(Message::Run(Box::new(run))) {
            Ok(()) => true,
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::runs_dropped();
                false
            }
        }
    }

    /// Waits until every run queued before this call has been written (or failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn counters(&self) -> &RecorderCounters {
        &self.counters
    }
}

/// How the writer forms batches: at most `size` runs, collected for at most `wait` after the
/// first.
#[derive(Debug, Clone, Copy)]
struct Batching {
    size: usize,
    wait: Duration,
}

async fn drain(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Message>,
    batching: Batching,
    counters: Arc<RecorderCounters>,
) {
    let mut inbox = Vec::with_capacity(batching.size);
    let mut batch = Vec::with_capacity(batching.size);
    let mut waiters = Vec::new();
    let mut open = true;
    while open {
        if receiver.recv_many(&mut inbox, batching.size).await == 0 {
            break;
        }
        let deadline = tokio::time::Instant::now() + batching.wait;
        loop {
            for message in inbox.drain(..) {
                match message {
                    Message::Run(run) => batch.push(*run),
                    Message::Flush(done) => waiters.push(done),
                }
            }
            // A flush is waited on: write at once.
            if batch.len() >= batching.size || !waiters.is_empty() {
                break;
            }
            let room = batching.size - batch.len();
            match tokio::time::timeout_at(deadline, receiver.recv_many(&mut inbox, room)).await {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(_) => {}
                Err(_elapsed) => break,
            }
        }
        if !batch.is_empty() {
            let runs = std::mem::replace(&mut batch, Vec::with_capacity(batching.size));
            let count = runs.len() as u64;
            counters.batches.fetch_add(1, Ordering::Relaxed);
            match store.insert_runs(runs).await {
                Ok(written) => {
                    counters.recorded.fetch_add(written, Ordering::Relaxed);
                }
                Err(error) => {
                    counters.failed.fetch_add(count, Ordering::Relaxed);
                    tracing::warn!(error = %error, runs = count, "recording runs failed; these runs are lost");
                }
            }
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promptvault_core::model::{Classification, DeploymentModel};
    use uuid::Uuid;

    fn run() -> NewRun {
        NewRun {
            id: Uuid::now_v7(),
            prompt_id: Uuid::now_v7(),
            version_number: 1,
            classification: Classification::Internal,
            params: serde_json::json!({}),
            rendered: serde_json::json!("x"),
            sender: None,
            session_id: None,
            request_id: None,
            agent_id: None,
            deployment_model: DeploymentModel::WebApplication,
            created_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // No writer task: nothing drains the queue of one slot.
        let (sender, _receiver) = mpsc::channel(1);
        let recorder = RunRecorder {
            sender,
            counters: Arc::default(),
        };
        // `record` is synchronous and the queue is never drained, so returning at all (rather
        // than waiting for room that never comes) is what shows it does not wait.
        assert!(recorder.record(run()));
        assert!(!recorder.record(run()));
        assert!(!recorder.record(run()));
        assert_eq!(recorder.counters().dropped.load(Ordering::Relaxed), 2);
    }

    async fn memory_store() -> Arc<dyn Store> {
        Arc::new(
            promptvault_store::sqlite::SqliteStore::connect("sqlite::memory:")
                .await
                .expect("in-memory store"),
        )
    }

    #[tokio::test]
    async fn runs_arriving_within_the_batch_wait_are_written_in_one_transaction() {
        let recorder = RunRecorder::start(memory_store().await, 100, 500, Duration::from_secs(30));
        for _ in 0..3 {
            assert!(recorder.record(run()));
            // Room for the writer to take each run as it comes.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recorder.flush().await;
        assert_eq!(recorder.counters().batches.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_batch_is_written_as_soon_as_it_is_full_without_waiting_out_the_wait() {
        let recorder = RunRecorder::start(memory_store().await, 100, 2, Duration::from_secs(30));
        for _ in 0..5 {
            assert!(recorder.record(run()));
        }
        // Two full batches go without a flush; the fifth run waits for one.
        recorder.flush().await;
        assert_eq!(recorder.counters().batches.load(Ordering::Relaxed), 3);
    }
}
