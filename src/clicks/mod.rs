//! Click counting that never slows a redirect: the handler does a non-blocking `try_send`
//! into a bounded queue; a worker drains it in batches and adds the counts to the store.
//! When the queue is full a click is dropped and counted, never awaited.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::code::Code;
use crate::store::LinkStore;

/// One redirect served.
#[derive(Debug, Clone)]
pub struct ClickEvent {
    /// The code that was followed.
    pub code: Code,
    /// When.
    pub at: DateTime<Utc>,
}

/// Counters of the click pipeline.
#[derive(Debug, Default)]
pub struct ClickStats {
    /// Events accepted into the queue.
    pub queued: AtomicU64,
    /// Events dropped because the queue was full or closed.
    pub dropped: AtomicU64,
    /// Events written to the store.
    pub written: AtomicU64,
}

/// The sending side, held by the redirect handler.
#[derive(Debug, Clone)]
pub struct ClickQueue {
    tx: mpsc::Sender<ClickEvent>,
    stats: Arc<ClickStats>,
}

impl ClickQueue {
    /// Enqueues a click without waiting; a full queue drops it (counted).
    pub fn record(&self, event: ClickEvent) {
        match self.tx.try_send(event) {
            Ok(()) => self.stats.queued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &ClickStats {
        &self.stats
    }
}

/// Settings of the in-process queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Queue capacity, in events.
    pub capacity: usize,
    /// Largest batch written at once.
    pub batch_size: usize,
    /// Longest a click waits in a partial batch.
    pub flush_every: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            batch_size: 4_096,
            flush_every: Duration::from_millis(500),
        }
    }
}

/// Creates the queue and its worker. The worker runs until `shutdown` is cancelled, then
/// drains what is queued and returns.
pub fn start(
    settings: QueueSettings,
    store: Arc<dyn LinkStore>,
    shutdown: CancellationToken,
) -> (ClickQueue, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.capacity);
    let stats = Arc::new(ClickStats::default());
    let queue = ClickQueue {
        tx,
        stats: stats.clone(),
    };
    let worker = tokio::spawn(run_worker(settings, rx, store, stats, shutdown));
    (queue, worker)
}

async fn run_worker(
    settings: QueueSettings,
    mut rx: mpsc::Receiver<ClickEvent>,
    store: Arc<dyn LinkStore>,
    stats: Arc<ClickStats>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(settings.batch_size);
    let mut tick = tokio::time::interval(settings.flush_every);
    loop {
        let room = settings.batch_size - batch.len();
        tokio::select! {
            n = rx.recv_many(&mut batch, room) => {
                if n == 0 {
                    break;
                }
                if batch.len() >= settings.batch_size {
                    flush(&*store, &stats, &mut batch).await;
                }
            }
            _ = tick.tick() => flush(&*store, &stats, &mut batch).await,
            () = shutdown.cancelled() => break,
        }
    }
    // Shutdown: take whatever is still queued without waiting for new events.
    rx.close();
    while let Some(ev) = rx.recv().await {
        batch.push(ev);
        if batch.len() >= settings.batch_size {
            flush(&*store, &stats, &mut batch).await;
        }
    }
    flush(&*store, &stats, &mut batch).await;
}

/// Writes a batch as per-(code, hour) counts. A failed write is retried a few times; after
/// that the batch is dropped and counted, so a dead store cannot grow memory without bound.
async fn flush(store: &dyn LinkStore, stats: &ClickStats, batch: &mut Vec<ClickEvent>) {
    if batch.is_empty() {
        return;
    }
    let mut counts: HashMap<(Code, DateTime<Utc>), i64> = HashMap::new();
    for ev in batch.iter() {
        let hour = ev.at.duration_trunc(TimeDelta::hours(1)).unwrap_or(ev.at);
        *counts.entry((ev.code.clone(), hour)).or_default() += 1;
    }
    let rows: Vec<_> = counts.into_iter().map(|((c, h), n)| (c, h, n)).collect();
    let n = batch.len() as u64;
    for attempt in 0..3u32 {
        match store.add_clicks(&rows).await {
            Ok(()) => {
                stats.written.fetch_add(n, Ordering::Relaxed);
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "writing clicks failed");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    stats.dropped.fetch_add(n, Ordering::Relaxed);
    batch.clear();
}
