//! The bounded queue between the redirect edge and whoever takes the clicks (the in-process
//! worker, or the NATS forwarder). A redirect only appends its event to a buffer, and its
//! strings to the buffer's text, under a lock that nobody holds for longer than that or a
//! swap of two buffers; the taker swaps each buffer for an empty one every few milliseconds
//! and goes through the events in order. A send never waits: a buffer that is busy is passed
//! over for the next, and a click that finds every buffer full (or the queue closed) is
//! dropped and counted.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use chrono::{DateTime, Utc};

use super::{ClickCounters, ClickEvent, ClickSlotValue, ClickedLink};

/// Buffers, at most: threads that send at once mostly find different ones free.
const SHARDS: usize = 8;
/// Room a buffer keeps when it is emptied, in events and bytes of text: far more than a
/// busy node queues between two takes; what a burst made a buffer grow beyond is given back.
const KEEP_EVENTS: usize = 1_024;
const KEEP_TEXT: usize = 256 * 1024;

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
    counters: Arc<ClickCounters>,
}

struct Shard {
    buffer: EventBuffer,
    /// Most events this buffer holds (the buffers' bounds add up to the queue's).
    bound: usize,
    closed: bool,
}

/// Queued events and the text they name: an event's strings are copied into one shared
/// buffer, so that a click costs no allocation (once the buffers are as big as the
/// traffic makes them) and the taker frees nothing per click.
#[derive(Debug, Default)]
struct EventBuffer {
    events: Vec<Queued>,
    text: String,
}

/// A queued event; its strings are ranges of its buffer's text.
#[derive(Debug)]
struct Queued {
    link: Arc<dyn ClickedLink>,
    slot: ClickSlotValue,
    at: DateTime<Utc>,
    head: bool,
    ip: std::net::IpAddr,
    user_agent: Option<Range<u32>>,
    referrer: Option<Range<u32>>,
    country: Option<Range<u32>>,
}

impl EventBuffer {
    fn push(&mut self, e: &ClickEvent<'_>) {
        let mut keep = |s: Option<&str>| {
            s.map(|s| {
                let start = self.text.len() as u32;
                self.text.push_str(s);
                start..self.text.len() as u32
            })
        };
        let (user_agent, referrer, country) =
            (keep(e.user_agent), keep(e.referrer), keep(e.country));
        self.events.push(Queued {
            link: e.link.clone(),
            slot: e.slot,
            at: e.at,
            head: e.head,
            ip: e.ip,
            user_agent,
            referrer,
            country,
        });
    }

    /// Moves `other`'s events to the end of these.
    fn append(&mut self, other: &mut EventBuffer) {
        let shift = self.text.len() as u32;
        let moved = |r: &mut Option<Range<u32>>| {
            if let Some(r) = r {
                *r = r.start + shift..r.end + shift;
            }
        };
        for mut e in other.events.drain(..) {
            moved(&mut e.user_agent);
            moved(&mut e.referrer);
            moved(&mut e.country);
            self.events.push(e);
        }
        self.text.push_str(&other.text);
        other.text.clear();
    }

    fn clear(&mut self) {
        self.events.clear();
        self.text.clear();
        self.events.shrink_to(KEEP_EVENTS);
        self.text.shrink_to(KEEP_TEXT);
    }

    fn event<'a>(&'a self, q: &'a Queued) -> ClickEvent<'a> {
        let text = |r: &Option<Range<u32>>| {
            r.as_ref().map(|r| {
                self.text
                    .get(r.start as usize..r.end as usize)
                    .unwrap_or_default()
            })
        };
        ClickEvent {
            link: &q.link,
            slot: q.slot,
            at: q.at,
            head: q.head,
            ip: q.ip,
            user_agent: text(&q.user_agent),
            referrer: text(&q.referrer),
            country: text(&q.country),
        }
    }
}

/// Events taken from the queue, in one [`EventBuffer`] per buffer of the queue. Take into the
/// same one each time, cleared, and the queue's buffers stop allocating once they are as big
/// as the traffic makes them.
#[derive(Debug, Default)]
pub struct TakenEvents {
    buffers: Vec<EventBuffer>,
}

impl TakenEvents {
    /// Events held.
    pub fn len(&self) -> usize {
        self.buffers.iter().map(|b| b.events.len()).sum()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.buffers.iter().all(|b| b.events.is_empty())
    }

    /// The events, oldest first within each of the queue's buffers.
    pub fn iter(&self) -> impl Iterator<Item = ClickEvent<'_>> {
        self.buffers
            .iter()
            .flat_map(|b| b.events.iter().map(move |q| b.event(q)))
    }

    /// Forgets the events, keeping the room they took.
    pub fn clear(&mut self) {
        self.buffers.iter_mut().for_each(EventBuffer::clear);
    }
}

/// Creates a queue of at most `capacity` events (at least one).
pub fn bounded(capacity: usize, counters: Arc<ClickCounters>) -> (ClickQueue, ClickTaker) {
    let capacity = capacity.max(1);
    let n = SHARDS.min(capacity);
    let shards = (0..n)
        .map(|i| {
            Mutex::new(Shard {
                buffer: EventBuffer::default(),
                bound: capacity / n + usize::from(i < capacity % n),
                closed: false,
            })
        })
        .collect();
    let inner = Arc::new(Inner { shards, counters });
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
    /// Enqueues a click without waiting (copying its strings); a full or closed queue drops
    /// it (counted).
    pub fn record(&self, event: &ClickEvent<'_>) {
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
            if shard.buffer.events.len() < shard.bound {
                shard.buffer.push(event);
                drop(shard);
                self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &ClickCounters {
        &self.inner.counters
    }

    /// Events waiting in the queue.
    pub fn depth(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| lock(s).buffer.events.len())
            .sum()
    }
}

impl ClickTaker {
    /// Moves every queued event into `into`, after what it holds. A buffer whose place in
    /// `into` is empty is swapped with it rather than copied, and keeps that place's room.
    pub fn take(&self, into: &mut TakenEvents) {
        let shards = &self.inner.shards;
        into.buffers.resize_with(shards.len(), EventBuffer::default);
        for (shard, buffer) in shards.iter().zip(&mut into.buffers) {
            let mut shard = lock(shard);
            if buffer.events.is_empty() {
                buffer.text.clear();
                std::mem::swap(buffer, &mut shard.buffer);
            } else {
                buffer.append(&mut shard.buffer);
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

    fn link() -> Arc<dyn ClickedLink> {
        Arc::new(CachedTarget::plain("aa"))
    }

    fn event(link: &Arc<dyn ClickedLink>, n: u8) -> ClickEvent<'_> {
        ClickEvent {
            link,
            slot: ClickSlotValue::default(),
            at: chrono::DateTime::from_timestamp_millis(1_800_000_000_000).unwrap(),
            head: false,
            ip: IpAddr::from([10, 0, 0, n]),
            user_agent: None,
            referrer: None,
            country: None,
        }
    }

    fn ips(taken: &TakenEvents) -> Vec<IpAddr> {
        taken.iter().map(|e| e.ip).collect()
    }

    #[test]
    fn holds_its_capacity_and_drops_the_rest() {
        let counters = Arc::new(ClickCounters::default());
        let (queue, taker) = bounded(20, counters.clone());
        let link = link();
        for n in 0..25 {
            queue.record(&event(&link, n));
        }
        assert_eq!(queue.depth(), 20);
        assert_eq!(counters.queued.load(Relaxed), 20);
        assert_eq!(counters.dropped.load(Relaxed), 5);
        let mut taken = TakenEvents::default();
        taker.take(&mut taken);
        // One thread fills its buffer first, then the next ones, in turn: every event is
        // there once, though not in the order sent across buffers.
        let mut expected: Vec<_> = (0..20).map(|n| IpAddr::from([10, 0, 0, n])).collect();
        let mut got = ips(&taken);
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(queue.depth(), 0);
        // Once taken, the queue has room again; a second take appends to what it is given, in the
        // order sent within a buffer.
        queue.record(&event(&link, 30));
        queue.record(&event(&link, 31));
        taker.take(&mut taken);
        assert_eq!(taken.len(), 22);
        let got = ips(&taken);
        let later: Vec<_> = got
            .into_iter()
            .filter(|ip| *ip >= IpAddr::from([10, 0, 0, 30]))
            .collect();
        assert_eq!(
            later,
            [IpAddr::from([10, 0, 0, 30]), IpAddr::from([10, 0, 0, 31])]
        );
        taken.clear();
        assert!(taken.is_empty());
    }

    #[test]
    fn a_burst_does_not_keep_its_room() {
        let counters = Arc::new(ClickCounters::default());
        let (queue, taker) = bounded(50_000, counters);
        let link = link();
        let agent = "a".repeat(512);
        let mut taken = TakenEvents::default();
        for round in 0..2 {
            for _ in 0..20_000 {
                let mut e = event(&link, 1);
                e.user_agent = Some(&agent);
                queue.record(&e);
            }
            taker.take(&mut taken);
            assert_eq!(taken.len(), 20_000, "round {round}");
            taken.clear();
            let (events, text) = taken.buffers.iter().fold((0, 0), |(e, t), b| {
                (e + b.events.capacity(), t + b.text.capacity())
            });
            assert!(
                events <= SHARDS * KEEP_EVENTS,
                "{events} events of room kept"
            );
            assert!(text <= SHARDS * KEEP_TEXT, "{text} bytes of room kept");
        }
    }

    #[test]
    fn strings_come_back_as_recorded_across_takes_and_appends() {
        let counters = Arc::new(ClickCounters::default());
        let (queue, taker) = bounded(1_000, counters);
        let link = link();
        // Event `i` (its number in its address): which strings it has, and what they say.
        let strings = |i: usize| {
            (
                (!i.is_multiple_of(3)).then(|| format!("agent {i}")),
                (!i.is_multiple_of(4)).then(|| {
                    if i.is_multiple_of(5) {
                        String::new()
                    } else {
                        format!("host{i}.example")
                    }
                }),
                i.is_multiple_of(2).then(|| "DE".to_owned()),
            )
        };
        let mut taken = TakenEvents::default();
        for round in 0..3u8 {
            for n in 0..100u8 {
                let (ua, referrer, country) = strings(usize::from(round) * 100 + usize::from(n));
                let mut e = event(&link, n);
                e.ip = IpAddr::from([10, 0, round, n]);
                // Some strings missing, some empty.
                e.user_agent = ua.as_deref();
                e.referrer = referrer.as_deref();
                e.country = country.as_deref();
                queue.record(&e);
            }
            // The first round is taken into an empty `taken`, the others appended to it.
            taker.take(&mut taken);
        }
        assert_eq!(taken.len(), 300);
        let mut seen = std::collections::HashSet::new();
        for e in taken.iter() {
            let IpAddr::V4(ip) = e.ip else {
                panic!("{}", e.ip)
            };
            let [_, _, round, n] = ip.octets();
            let i = usize::from(round) * 100 + usize::from(n);
            let (ua, referrer, country) = strings(i);
            assert_eq!(e.user_agent, ua.as_deref(), "{i}");
            assert_eq!(e.referrer, referrer.as_deref(), "{i}");
            assert_eq!(e.country, country.as_deref(), "{i}");
            assert!(seen.insert(i), "{i} twice");
        }
        assert_eq!(seen.len(), 300);
    }

    #[test]
    fn a_closed_queue_keeps_what_it_holds_and_drops_new_clicks() {
        let counters = Arc::new(ClickCounters::default());
        let (queue, taker) = bounded(100, counters.clone());
        let link = link();
        queue.record(&event(&link, 1));
        taker.close();
        queue.record(&event(&link, 2));
        assert_eq!(counters.dropped.load(Relaxed), 1);
        let mut taken = TakenEvents::default();
        taker.take(&mut taken);
        assert_eq!(ips(&taken), [IpAddr::from([10, 0, 0, 1])]);
    }

    #[test]
    fn senders_on_many_threads_account_for_every_event() {
        let counters = Arc::new(ClickCounters::default());
        let (queue, taker) = bounded(4_000, counters.clone());
        let mut taken = TakenEvents::default();
        let link = link();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let queue = queue.clone();
                let link = &link;
                s.spawn(move || {
                    for n in 0..1_000 {
                        queue.record(&event(link, (n % 256) as u8));
                    }
                });
            }
            // Taking while they send.
            for _ in 0..100 {
                taker.take(&mut taken);
            }
        });
        taker.take(&mut taken);
        // Four threads send 4,000 events into a queue of 4,000 that is being emptied. A
        // sender never waits: one that finds every buffer locked at that instant drops its
        // event and counts it (rare, and only under contention, so not asserted to be 0).
        // Every event is either queued or dropped, and every queued one is taken.
        let (queued, dropped) = (
            counters.queued.load(Relaxed),
            counters.dropped.load(Relaxed),
        );
        assert_eq!(queued + dropped, 4_000);
        assert_eq!(taken.len() as u64, queued);
    }
}
