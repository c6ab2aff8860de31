//! The bounded queue between the redirect edge and whoever takes the clicks (the in-process
//! worker, or the NATS forwarder). A redirect only appends its event to a buffer under a lock
//! that nobody holds for longer than a swap of two vectors; the taker swaps each buffer for
//! an empty one a few times a second and goes through the events in order. A send never
//! waits: a buffer that is busy is passed over for the next, and a click that finds every
//! buffer full (or the queue closed) is dropped and counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use super::{ClickEvent, ClickStats};

/// Buffers, at most: threads that send at once mostly find different ones free.
const SHARDS: usize = 8;

/// The sending side, held by the redirect handler.
#[derive(Clone)]
pub struct ClickQueue {
    inner: Arc<Inner>,
}

/// The taking side.
pub struct ClickTaker {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    stats: Arc<ClickStats>,
}

struct Shard {
    events: Vec<ClickEvent>,
    /// Most events this buffer holds (the buffers' bounds add up to the queue's).
    bound: usize,
    closed: bool,
}

/// Creates a queue of at most `capacity` events (at least one).
pub fn bounded(capacity: usize, stats: Arc<ClickStats>) -> (ClickQueue, ClickTaker) {
    let capacity = capacity.max(1);
    let n = SHARDS.min(capacity);
    let shards = (0..n)
        .map(|i| {
            Mutex::new(Shard {
                events: Vec::new(),
                bound: capacity / n + usize::from(i < capacity % n),
                closed: false,
            })
        })
        .collect();
    let inner = Arc::new(Inner { shards, stats });
    (
        ClickQueue {
            inner: inner.clone(),
        },
        ClickTaker { inner },
    )
}

/// The buffer this thread tries first: threads are spread over the buffers in turn.
fn first_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static FIRST: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    FIRST.with(|f| *f)
}

/// A buffer's guard, whatever a panicking holder left (a buffer of events stays valid).
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClickQueue {
    /// Enqueues a click without waiting; a full or closed queue drops it (counted).
    pub fn record(&self, event: ClickEvent) {
        let shards = &self.inner.shards;
        let first = first_shard();
        for i in 0..shards.len() {
            let mut shard = match shards[(first + i) % shards.len()].try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            if shard.closed {
                break;
            }
            if shard.events.len() < shard.bound {
                shard.events.push(event);
                drop(shard);
                self.inner.stats.queued.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &ClickStats {
        &self.inner.stats
    }

    /// Events waiting in the queue.
    pub fn depth(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).events.len()).sum()
    }
}

impl ClickTaker {
    /// Moves every queued event into `into`, oldest first within each buffer. An empty
    /// `into` is swapped with a buffer rather than copied into, and then leaves its capacity
    /// to that buffer: take into the same vector each time, emptied, and the buffers stop
    /// allocating once they are as big as the traffic makes them.
    pub fn take(&self, into: &mut Vec<ClickEvent>) {
        for shard in &self.inner.shards {
            let mut shard = lock(shard);
            if into.is_empty() {
                std::mem::swap(into, &mut shard.events);
            } else {
                into.append(&mut shard.events);
            }
        }
    }

    /// Closes the queue: from now on every click is dropped (counted). What was queued
    /// before stays to be taken.
    pub fn close(&self) {
        for shard in &self.inner.shards {
            lock(shard).closed = true;
        }
    }
}

impl std::fmt::Debug for ClickQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickQueue")
            .field("depth", &self.depth())
            .finish()
    }
}

impl std::fmt::Debug for ClickTaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickTaker").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::cache::CachedTarget;

    fn event(n: u8) -> ClickEvent {
        ClickEvent {
            event_id: None,
            link: Arc::new(CachedTarget::plain("aa")),
            slot: 0,
            at: chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap(),
            head: false,
            ip: IpAddr::from([10, 0, 0, n]),
            user_agent: None,
            referrer: None,
            country: None,
        }
    }

    fn ips(events: &[ClickEvent]) -> Vec<IpAddr> {
        events.iter().map(|e| e.ip).collect()
    }

    #[test]
    fn holds_its_capacity_and_drops_the_rest() {
        let stats = Arc::new(ClickStats::default());
        let (queue, taker) = bounded(20, stats.clone());
        for n in 0..25 {
            queue.record(event(n));
        }
        assert_eq!(queue.depth(), 20);
        assert_eq!(stats.queued.load(Relaxed), 20);
        assert_eq!(stats.dropped.load(Relaxed), 5);
        let mut taken = Vec::new();
        taker.take(&mut taken);
        // One thread fills its buffer first, then the next ones, in turn: every event is
        // there once, though not in the order sent across buffers.
        let mut expected: Vec<_> = (0..20).map(|n| IpAddr::from([10, 0, 0, n])).collect();
        let mut got = ips(&taken);
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(queue.depth(), 0);
        // Taken, the queue has room again; a second take appends to what it is given, in the
        // order sent within a buffer.
        queue.record(event(30));
        queue.record(event(31));
        taker.take(&mut taken);
        assert_eq!(taken.len(), 22);
        assert_eq!(ips(&taken[20..]), ips(&[event(30), event(31)]));
    }

    #[test]
    fn a_closed_queue_keeps_what_it_holds_and_drops_new_clicks() {
        let stats = Arc::new(ClickStats::default());
        let (queue, taker) = bounded(100, stats.clone());
        queue.record(event(1));
        taker.close();
        queue.record(event(2));
        assert_eq!(stats.dropped.load(Relaxed), 1);
        let mut taken = Vec::new();
        taker.take(&mut taken);
        assert_eq!(ips(&taken), ips(&[event(1)]));
    }

    #[test]
    fn senders_on_many_threads_lose_nothing_within_the_bound() {
        let stats = Arc::new(ClickStats::default());
        let (queue, taker) = bounded(4_000, stats.clone());
        let mut taken = Vec::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let queue = queue.clone();
                s.spawn(move || {
                    for n in 0..1_000 {
                        queue.record(event((n % 256) as u8));
                    }
                });
            }
            // Taking while they send.
            for _ in 0..100 {
                taker.take(&mut taken);
            }
        });
        taker.take(&mut taken);
        let (queued, dropped) = (stats.queued.load(Relaxed), stats.dropped.load(Relaxed));
        assert_eq!(queued + dropped, 4_000);
        assert_eq!(taken.len() as u64, queued);
    }
}
