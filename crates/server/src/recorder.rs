//! Recording runs off the hot path. [`RunRecorder::record`] puts a run on a bounded queue with
//! `try_send` and returns at once: when the queue is full the run is dropped and counted, so
//! serving never waits for the database. One background task drains the queue in batches (as
//! many runs as are waiting, up to `runs.batch_size`) and writes each batch in one transaction
//! (`Store::insert_runs`). Batches form by themselves under load: while one is written, the next
//! one accumulates.
//!
//! [`RunRecorder::flush`] waits until everything queued before it is written: feedback on a run
//! still queued calls it before looking the run up, and `prompt serve` calls it on shutdown.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use promptvault_store::{Store, types::NewRun};
use tokio::sync::{mpsc, oneshot};

enum Message {
    Run(Box<NewRun>),
    Flush(oneshot::Sender<()>),
}

/// How many runs were recorded, dropped (queue full) and lost (a failed write).
#[derive(Debug, Default)]
pub struct RecorderCounters {
    pub recorded: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// The queue in front of the store's run table, and its counters.
pub struct RunRecorder {
    sender: mpsc::Sender<Message>,
    counters: Arc<RecorderCounters>,
}

impl RunRecorder {
    /// Starts the background writer on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, capacity: usize, batch_size: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(RecorderCounters::default());
        tokio::spawn(drain(store, receiver, batch_size.max(1), counters.clone()));
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

async fn drain(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Message>,
    batch_size: usize,
    counters: Arc<RecorderCounters>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut waiters = Vec::new();
    while let Some(first) = receiver.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Run(run) => batch.push(*run),
                Message::Flush(done) => waiters.push(done),
            }
            if batch.len() < batch_size {
                next = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let runs = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
            let count = runs.len() as u64;
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
        assert!(recorder.record(run()));
        let started = std::time::Instant::now();
        assert!(!recorder.record(run()));
        assert!(!recorder.record(run()));
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        assert_eq!(recorder.counters().dropped.load(Ordering::Relaxed), 2);
    }
}
