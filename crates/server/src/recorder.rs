//! Recording runs and counting uses off the hot path. [`RunRecorder::record`] puts a run on a
//! bounded queue with `try_send` and returns at once: when the queue is full the run is dropped
//! and counted, so serving never waits for the database. [`RunRecorder::count_use`] adds a use
//! served without a run to an in-memory tally (a map lookup under a lock held for nanoseconds),
//! so `times_used`/`last_used` stay exact at no cost to serving.
//!
//! One background task writes both. After the first run of a round it waits
//! `runs.batch_wait_ms`, then takes everything queued and writes it in transactions of at most
//! `runs.batch_size` runs (`Store::insert_runs`). Each transaction has a fixed cost (begin, the
//! prompts' existence check, the usage upsert, commit), and waking the writer has one too, so
//! the wait is what keeps both few under load: without it the writer, always quicker than the
//! next burst, would wake and commit for a handful of runs at a time. The tally is written
//! (`Store::add_usage`) `runs.usage_flush_ms` after the first use counted into it: one row per
//! version used in that time, so with many prompts in use a shorter period would write a row
//! for nearly every request.
//!
//! [`RunRecorder::flush`] cuts the wait short and waits until everything queued or counted before
//! it is written: feedback on a run still queued and the metrics read call it, and `prompt serve`
//! calls it on shutdown.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use promptvault_store::{
    Store,
    types::{NewRun, VersionUse},
};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

enum Message {
    Run(Box<NewRun>),
    Flush(oneshot::Sender<()>),
    /// Uses were counted into an empty tally: something to write.
    Wake,
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

/// Uses served without a run, per (prompt, version).
type Tally = HashMap<(Uuid, i64), VersionUse>;

/// What the serving side and the writer share.
#[derive(Default)]
struct Shared {
    counters: RecorderCounters,
    tally: Mutex<Tally>,
    /// Cuts the writer's batch wait short: a flush is waiting.
    flush_now: Notify,
}

impl Shared {
    /// The tally, also after a panic elsewhere held its lock (counts are plain numbers: nothing
    /// is left half-updated that matters).
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        match self.tally.lock() {
            Ok(tally) => tally,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The queue in front of the store's run table, the tally of uses, and the counters.
pub struct RunRecorder {
    sender: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

impl RunRecorder {
    /// Starts the background writer on the current tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        batch_size: usize,
        batch_wait: Duration,
        usage_wait: Duration,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let batching = Batching {
            size: batch_size.max(1),
            wait: batch_wait,
            capacity: capacity.max(1),
            usage_wait,
        };
        tokio::spawn(drain(store, receiver, batching, shared.clone()));
        RunRecorder { sender, shared }
    }

    /// Queues a run; never waits. `false` when it was dropped (queue full or writer gone).
    pub fn record(&self, run: NewRun) -> bool {
        match self.sender.try_send(Message::Run(Box::new(run))) {
            Ok(()) => true,
            Err(_) => {
                self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::runs_dropped();
                false
            }
        }
    }

    /// Counts one use of a version served without a run; never waits, never drops. Uses are
    /// tallied in memory and written `runs.usage_flush_ms` after the first one (or at a flush).
    pub fn count_use(&self, prompt_id: Uuid, version_number: i64, at: OffsetDateTime) {
        let one = VersionUse::one(prompt_id, version_number, at);
        let first = {
            let mut tally = self.shared.tally();
            let first = tally.is_empty();
            match tally.entry((prompt_id, version_number)) {
                Entry::Vacant(slot) => {
                    slot.insert(one);
                }
                Entry::Occupied(mut slot) => slot.get_mut().absorb(one),
            }
            first
        };
        // A full queue wakes the writer by itself, and it checks the tally every round.
        if first {
            let _ = self.sender.try_send(Message::Wake);
        }
    }

    /// Waits until every run queued and every use counted before this call has been written
    /// (or failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            self.shared.flush_now.notify_one();
            let _ = wait.await;
        }
    }

    pub fn counters(&self) -> &RecorderCounters {
        &self.shared.counters
    }
}

/// How the writer forms batches: after the first run it waits `wait` (a flush cuts the wait
/// short), then takes everything queued and writes it in transactions of at most `size` runs.
/// `capacity` is the queue's, the most one round takes. The tally is written `usage_wait`
/// after it stopped being empty, or at a flush.
#[derive(Debug, Clone, Copy)]
struct Batching {
    size: usize,
    wait: Duration,
    capacity: usize,
    usage_wait: Duration,
}

async fn drain(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Message>,
    batching: Batching,
    shared: Arc<Shared>,
) {
    let mut inbox = Vec::with_capacity(batching.size);
    // When the tally is to be written next (set once it holds a use).
    let mut tally_due: Option<tokio::time::Instant> = None;
    loop {
        let received = match tally_due {
            // `recv_many` is cancel-safe: a message is either in `inbox` or still queued.
            Some(due) => tokio::select! {
                count = receiver.recv_many(&mut inbox, batching.size) => count,
                () = tokio::time::sleep_until(due) => usize::MAX,
            },
            None => receiver.recv_many(&mut inbox, batching.size).await,
        };
        let open = received > 0;
        let flushing = inbox
            .iter()
            .any(|message| matches!(message, Message::Flush(_)));
        let runs_came = inbox
            .iter()
            .any(|message| matches!(message, Message::Run(_)));
        if open && runs_came && !flushing && !batching.wait.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(batching.wait) => {}
                () = shared.flush_now.notified() => {}
            }
        }
        while inbox.len() < batching.capacity {
            match receiver.try_recv() {
                Ok(message) => inbox.push(message),
                Err(_) => break,
            }
        }
        let mut runs = Vec::with_capacity(inbox.len());
        let mut waiters = Vec::new();
        for message in inbox.drain(..) {
            match message {
                Message::Run(run) => runs.push(*run),
                Message::Flush(done) => waiters.push(done),
                Message::Wake => {}
            }
        }
        write_runs(store.as_ref(), runs, batching.size, &shared.counters).await;
        let now = tokio::time::Instant::now();
        if !waiters.is_empty() || !open || tally_due.is_some_and(|due| due <= now) {
            write_tally(store.as_ref(), &shared).await;
            tally_due = None;
        }
        // Also when the use's wake-up found the queue full: the tally is checked every round.
        if tally_due.is_none() && !shared.tally().is_empty() {
            tally_due = Some(now + batching.usage_wait);
        }
        for done in waiters {
            let _ = done.send(());
        }
        if !open {
            break;
        }
    }
}

/// Writes `runs` in transactions of at most `size`.
async fn write_runs(
    store: &dyn Store,
    runs: Vec<NewRun>,
    size: usize,
    counters: &RecorderCounters,
) {
    let mut runs = runs.into_iter().peekable();
    while runs.peek().is_some() {
        let chunk: Vec<NewRun> = runs.by_ref().take(size).collect();
        let count = chunk.len() as u64;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        match store.insert_runs(chunk).await {
            Ok(written) => {
                counters.recorded.fetch_add(written, Ordering::Relaxed);
            }
            Err(error) => {
                counters.failed.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(error = %error, runs = count, "recording runs failed; these runs are lost");
            }
        }
    }
}

/// Writes the uses tallied so far (and empties the tally).
async fn write_tally(store: &dyn Store, shared: &Shared) {
    let tally = std::mem::take(&mut *shared.tally());
    if tally.is_empty() {
        return;
    }
    let uses: Vec<VersionUse> = tally.into_values().collect();
    if let Err(error) = store.add_usage(uses).await {
        tracing::warn!(error = %error, "counting uses failed; these uses are lost");
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
            shared: Arc::default(),
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
        let recorder = RunRecorder::start(
            memory_store().await,
            100,
            500,
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
        for _ in 0..3 {
            assert!(recorder.record(run()));
            // Room for the writer to take each run as it comes.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recorder.flush().await;
        assert_eq!(recorder.counters().batches.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn more_runs_than_a_batch_holds_are_written_in_transactions_of_the_batch_size() {
        let recorder = RunRecorder::start(
            memory_store().await,
            100,
            2,
            Duration::from_secs(30),
            Duration::from_secs(30),
        );
        for _ in 0..5 {
            assert!(recorder.record(run()));
        }
        // The flush cuts the 30 s wait short.
        recorder.flush().await;
        assert_eq!(recorder.counters().batches.load(Ordering::Relaxed), 3);
    }

    /// A stored prompt (version 1) and its id, on a fresh database.
    async fn stored_prompt() -> (promptvault_store::testing::TestDatabase, Uuid) {
        let database = promptvault_store::testing::TestDatabase::sqlite().await;
        let state = crate::state_with_store(
            database.store(),
            crate::settings::Settings::default(),
            &[7; 32],
        )
        .expect("state");
        let request = serde_json::from_value(serde_json::json!({
            "name": "uses/tallied", "content": "Hello {{ name }}"
        }))
        .expect("request");
        let created = state
            .vault
            .create_prompt(&crate::actor::Actor::local_cli(), request)
            .await
            .expect("created");
        (database, created.id)
    }

    async fn times_used(store: &dyn Store, prompt_id: Uuid) -> i64 {
        store
            .version_usage(prompt_id)
            .await
            .expect("usage")
            .iter()
            .map(|usage| usage.usage.times_used)
            .sum()
    }

    /// Polls `done` every 10 ms for up to 5 s; whether it came true.
    async fn eventually<F: std::future::Future<Output = bool>>(
        mut done: impl FnMut() -> F,
    ) -> bool {
        for _ in 0..500 {
            if done().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn counted_uses_wait_out_their_own_period_even_when_runs_are_written_then_a_flush_writes_them()
     {
        let (database, prompt_id) = stored_prompt().await;
        let store = database.store();
        // Runs are written at once; uses only after 30 s (or at a flush).
        let recorder = RunRecorder::start(
            store.clone(),
            100,
            500,
            Duration::ZERO,
            Duration::from_secs(30),
        );
        let now = OffsetDateTime::now_utc();
        recorder.count_use(prompt_id, 1, now);
        recorder.count_use(prompt_id, 1, now);
        assert!(recorder.record(NewRun { prompt_id, ..run() }));
        // The run's round comes and goes (it is written without waiting)…
        let recorded = || async { recorder.counters().recorded.load(Ordering::Relaxed) == 1 };
        assert!(eventually(recorded).await, "the run is written");
        // …and the uses are still in memory: only the run counted so far.
        assert_eq!(times_used(store.as_ref(), prompt_id).await, 1);
        recorder.flush().await;
        assert_eq!(times_used(store.as_ref(), prompt_id).await, 3);
    }

    #[tokio::test]
    async fn counted_uses_are_written_once_their_period_has_passed_without_a_flush() {
        let (database, prompt_id) = stored_prompt().await;
        let store = database.store();
        let recorder = RunRecorder::start(
            store.clone(),
            100,
            500,
            Duration::from_secs(30),
            Duration::from_millis(20),
        );
        recorder.count_use(prompt_id, 1, OffsetDateTime::now_utc());
        let written = || async { times_used(store.as_ref(), prompt_id).await == 1 };
        assert!(
            eventually(written).await,
            "written within 5 s, with no flush"
        );
    }
}
