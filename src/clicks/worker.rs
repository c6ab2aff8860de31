//! The worker loop: starts the queue and whoever takes from it, and (in process) adds the
//! clicks up and writes them to the store in batches.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::queue::{self, ClickTaker, TakenEvents};
use super::{Classifier, ClickCounters, ClickQueue, Tally, VisitorIds, nats, new_id, spill};
use crate::store::{ClickTotals, LinkStore};

/// How often the in-process worker takes what is queued at a busy node: often enough that
/// the events it takes (a few hundred) were written recently and are still in the CPU's
/// cache.
const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// The longest the in-process worker waits between two looks at a queue it found empty.
const IDLE_DRAIN: Duration = Duration::from_millis(160);
/// Events the worker takes between two yields to the runtime.
const DRAIN_SLICE: usize = 64;
/// Counters turned into a batch's totals between two yields to the runtime.
const TAKE_SLICE: usize = 512;

/// Settings of the in-process queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// Queue capacity, in events.
    pub capacity: usize,
    /// Most clicks taken from the stream at once (NATS).
    pub batch_size: usize,
    /// Most rows a batch of added-up clicks may hold before it is written.
    pub batch_rows: usize,
    /// Longest a click waits in a partial batch.
    pub flush_every: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            capacity: 65_536,
            batch_size: 4_096,
            batch_rows: 250_000,
            flush_every: Duration::from_secs(10),
        }
    }
}

/// Creates the queue and its workers: in process, or through NATS JetStream when `nats` is
/// given (then this node also applies events from the stream if `consume`). They run until
/// `shutdown` is cancelled, then drain what is queued and return. Visitor ids are made with
/// the salts of `visitors`. With NATS, `spill` keeps on disk what cannot be published.
pub fn start(
    settings: QueueSettings,
    store: Arc<dyn LinkStore>,
    visitors: Arc<VisitorIds>,
    nats: Option<Arc<nats::Nats>>,
    spill: Option<spill::Spill>,
    consume: bool,
    shutdown: CancellationToken,
) -> (ClickQueue, tokio::task::JoinHandle<()>) {
    let counters = Arc::new(ClickCounters::default());
    let (queue, taker) = queue::bounded(settings.capacity, counters.clone());
    let worker = match nats {
        None => {
            let worker = Worker {
                store,
                visitors,
                counters,
                tally: Tally::default(),
                classifier: Classifier::default(),
                writer: BatchWriter::default(),
            };
            tokio::spawn(worker.run(settings, taker, shutdown))
        }
        Some(nats) => {
            // The consumer stops on shutdown like the rest; the forwarder then publishes
            // what is still queued, and the task ends when both have.
            let consumer = consume.then(|| {
                tokio::spawn(nats::consume(
                    nats.clone(),
                    store,
                    counters.clone(),
                    settings.batch_size,
                    shutdown.child_token(),
                ))
            });
            let forwarder = nats::forward(
                nats,
                taker,
                visitors,
                counters,
                spill,
                shutdown,
                Duration::from_secs(5),
            );
            tokio::spawn(async move {
                forwarder.await;
                if let Some(consumer) = consumer {
                    let _ = consumer.await;
                }
            })
        }
    };
    (queue, worker)
}

/// The in-process worker: adds clicks up as they arrive, so a batch writes one row per link,
/// hour and dimension value however many clicks it holds.
struct Worker {
    store: Arc<dyn LinkStore>,
    visitors: Arc<VisitorIds>,
    counters: Arc<ClickCounters>,
    tally: Tally,
    classifier: Classifier,
    /// Writes the batches, one at a time: the queue keeps draining meanwhile.
    writer: BatchWriter,
}

impl Worker {
    async fn run(
        mut self,
        settings: QueueSettings,
        taker: ClickTaker,
        shutdown: CancellationToken,
    ) {
        // The queue is drained on a short timer rather than on every event: a redirect's
        // send then wakes nobody, and the worker runs in runs of a few hundred events.
        // A queue found empty is looked at again later and later (up to `IDLE_DRAIN`), so
        // that an idle node hardly wakes; one found holding clicks, again soon.
        let busy = DRAIN_EVERY.min(settings.flush_every);
        let idle = IDLE_DRAIN.min(settings.flush_every).max(busy);
        let mut every = busy;
        let mut last_flush = tokio::time::Instant::now();
        let mut events = TakenEvents::default();
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => break,
            }
            taker.take(&mut events);
            every = if events.is_empty() {
                (every * 2).min(idle)
            } else {
                busy
            };
            // A short slice at a time: between slices the runtime serves the requests that
            // share this thread, which would otherwise wait for the whole tick's work.
            {
                let mut all = events.iter().peekable();
                let mut slice = Vec::with_capacity(DRAIN_SLICE);
                while all.peek().is_some() {
                    slice.clear();
                    slice.extend(all.by_ref().take(DRAIN_SLICE));
                    self.tally.add_all(&slice, &mut self.classifier);
                    // Many distinct user agents (say, made up by a client) also end a batch:
                    // their classifications are only forgotten between batches.
                    if self.tally.rows() >= settings.batch_rows
                        || self.classifier.len() >= Classifier::MAX
                    {
                        self.flush().await;
                        last_flush = tokio::time::Instant::now();
                    }
                    tokio::task::yield_now().await;
                }
            }
            events.clear();
            if !self.writer.busy().await
                && self.writer.due(last_flush.elapsed(), settings.flush_every)
            {
                self.flush().await;
                last_flush = tokio::time::Instant::now();
            }
        }
        // Shutdown: take whatever is still queued; later clicks are dropped (counted).
        taker.close();
        taker.take(&mut events);
        for e in events.iter() {
            self.tally.add(&e, &mut self.classifier);
        }
        self.flush().await;
        self.writer.finish().await;
    }

    /// Ends a batch: its clicks are turned into totals a slice at a time, then written by a
    /// task of its own while the worker goes on draining the queue. One batch is written at
    /// a time, in order.
    async fn flush(&mut self) {
        if self.tally.clicks() == 0 {
            return;
        }
        let started = tokio::time::Instant::now();
        let salts = self.visitors.salts(&self.tally.visitor_days()).await;
        // A slice at a time, on this task: between slices the runtime serves the requests
        // that share its threads, which a big batch taken in one go (or on a thread of its
        // own, competing for the same cores) would hold up.
        let mut builder = self
            .tally
            .start_take(salts, self.writer.spare_totals.take());
        while !builder.step(&self.classifier, TAKE_SLICE) {
            tokio::task::yield_now().await;
        }
        let (batch, spare) = builder.finish();
        self.tally.reuse_blocks(spare);
        self.classifier.trim();
        self.writer.finish().await;
        let (store, counters) = (self.store.clone(), self.counters.clone());
        self.writer.task = Some(tokio::spawn(async move {
            let rows = batch.rows();
            write_batch(&*store, &counters, &batch).await;
            let cost = started.elapsed();
            tracing::debug!(
                rows,
                cost_ms = cost.as_millis() as u64,
                "click batch written"
            );
            (cost, batch)
        }));
    }
}

/// Writes batches on a task of their own, one at a time, and paces them by what writing
/// the last one cost: a new batch is cut no sooner than `WRITE_SHARE` times that cost after
/// it, so turning counters into rows and writing them takes at most about 1/`WRITE_SHARE`
/// of the time, however busy the node. A busy node thus writes fewer, bigger batches (a
/// batch costs one row per link, hour and dimension value, whatever its clicks), and a
/// quiet one every `flush_every`; never less often than every `LONGEST` times that.
#[derive(Debug, Default)]
struct BatchWriter {
    /// The batch being written, if any.
    task: Option<tokio::task::JoinHandle<(Duration, ClickTotals)>>,
    /// What writing the last batch cost.
    last_cost: Duration,
    /// The last batch written, to be emptied and filled by the next (its memory is reused,
    /// see [`ClickTotals::reuse`]).
    spare_totals: Option<ClickTotals>,
}

impl BatchWriter {
    const WRITE_SHARE: u32 = 100;
    const LONGEST: u32 = 6;

    /// Whether a batch is being written (taking the cost of one that is done).
    async fn busy(&mut self) -> bool {
        match &self.task {
            Some(t) if t.is_finished() => {
                self.finish().await;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Whether the next batch is due, `since` the last one was cut.
    fn due(&self, since: Duration, flush_every: Duration) -> bool {
        since
            >= (self.last_cost.saturating_mul(Self::WRITE_SHARE))
                .clamp(flush_every, flush_every.saturating_mul(Self::LONGEST))
    }

    /// Waits for the batch being written, if any.
    async fn finish(&mut self) {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok((cost, written)) => {
                    self.last_cost = cost;
                    self.spare_totals = Some(written);
                }
                Err(e) => tracing::error!(error = %e, "writing a batch of clicks failed"),
            }
        }
    }
}

/// Writes a batch. A failed write is retried a few times with back-off (the batch id makes
/// a retry count once); after that the batch is dropped and counted, so a dead store cannot
/// grow memory without bound.
async fn write_batch(store: &dyn LinkStore, counters: &ClickCounters, batch: &ClickTotals) {
    let batch_id = new_id();
    for attempt in 0..3u32 {
        match store.apply_click_totals(&batch_id, batch).await {
            Ok(_) => {
                counters.written.fetch_add(batch.clicks, Ordering::Relaxed);
                counters.batches.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "writing clicks failed");
                tokio::time::sleep(crate::resilience::full_jitter(
                    Duration::from_millis(100),
                    attempt,
                ))
                .await;
            }
        }
    }
    counters.dropped.fetch_add(batch.clicks, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_paced_by_what_writing_the_last_one_cost() {
        let every = Duration::from_secs(10);
        let mut w = BatchWriter::default();
        assert!(!w.due(Duration::from_secs(9), every));
        assert!(w.due(every, every));
        // A cheap write changes nothing; a slow one spaces the batches out, up to a bound.
        w.last_cost = Duration::from_millis(100);
        assert!(w.due(every, every));
        w.last_cost = Duration::from_millis(300);
        assert!(!w.due(Duration::from_secs(29), every));
        assert!(w.due(Duration::from_secs(30), every));
        w.last_cost = Duration::from_secs(100);
        assert!(!w.due(Duration::from_secs(59), every));
        assert!(w.due(Duration::from_secs(60), every));
        // No interval, however long, overflows.
        let forever = Duration::from_millis(u64::MAX);
        assert!(!w.due(Duration::from_secs(86_400), forever));
        w.last_cost = forever;
        assert!(w.due(Duration::from_secs(60), every));
    }
}
