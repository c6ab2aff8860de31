//! Click analytics that never slow a redirect: the handler appends its event to a bounded
//! queue without waiting (see [`queue`]); a worker drains it in batches, classifies each
//! click (browser, OS, device, bot) and has the store apply the batch in one transaction.
//! When the queue is full a click is dropped and counted, never awaited. Each batch carries
//! a UUIDv7 that the store records with it, so a batch that is retried counts once; events
//! that travel through NATS carry ids of their own, so a redelivered one counts once too.

pub mod geoip;
pub mod nats;
pub mod queue;
pub mod spill;
pub mod tally;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::cache::CachedTarget;
use crate::domain::code::Code;
use crate::domain::visit::{Visit, classify};
use crate::store::{ClickFact, ClickTotals, LinkStore};
pub use queue::{ClickQueue, ClickTaker, Taken};
pub use tally::{KnownVisitors, Tally};

/// One redirect served, as the edge saw it; its strings are borrowed (the queue copies them
/// into a buffer of its own, see [`queue`]). The client's address stays in memory, in this
/// process: it is never stored or sent, only the salted visitor hash made of it (by the
/// worker, once per new visitor, or by the forwarder before an event leaves the node).
#[derive(Debug, Clone, Copy)]
pub struct ClickEvent<'a> {
    /// The link that was followed, as the cache holds it (the worker keeps its batch number
    /// of the link on it; see [`CachedTarget::click_slot`]).
    pub link: &'a Arc<CachedTarget>,
    /// The link's [`CachedTarget::click_slot`] as the edge read it (the line was in its
    /// cache; the worker's would not be), so that the worker need not touch the link.
    pub slot: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// A `HEAD` request (counted as a bot).
    pub head: bool,
    /// The client's address (after trusted proxies).
    pub ip: IpAddr,
    /// The `User-Agent` header (first 512 bytes).
    pub user_agent: Option<&'a str>,
    /// The referring host.
    pub referrer: Option<&'a str>,
    /// ISO country code, when a GeoIP database is configured.
    pub country: Option<&'a str>,
}

/// A visitor's id: the first 128 bits of the salted hash of IP and user agent. Written as
/// 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VisitorId(pub [u8; 16]);

impl std::fmt::Display for VisitorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = [0u8; 32];
        // Cannot fail: the buffer is exactly twice the bytes, and hex digits are ASCII.
        let _ = hex::encode_to_slice(self.0, &mut text);
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

/// Classifies user agents, remembering the answers: the same agents come again and again,
/// and parsing them is most of the worker's work. Each agent gets a small number, and so
/// does each profile (a browser, OS and device seen together: many agents, few profiles);
/// both stay valid until [`Classifier::trim`]. Each agent also gets a 64-bit key that stays
/// the same for as long as the classifier lives.
#[derive(Debug, Default)]
pub struct Classifier {
    ids: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
    agents: Vec<Agent>,
    profiles: Vec<Visit>,
    profile_ids: HashMap<Visit, u32, foldhash::fast::RandomState>,
    keys: foldhash::fast::RandomState,
}

/// A remembered agent.
#[derive(Debug)]
struct Agent {
    visit: Visit,
    profile: u32,
    text: Arc<str>,
    key: u64,
}

impl Classifier {
    /// Most agents remembered across batches.
    const CAPACITY: usize = 10_000;
    /// Most agents remembered within one batch.
    const MAX: usize = 50_000;

    /// Agents remembered.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The classification of a request with `user_agent`, made with `HEAD` if `head`.
    pub fn classify(&mut self, user_agent: Option<&str>, head: bool) -> Visit {
        let id = self.id(user_agent);
        let base = self.visit(id).clone();
        if head {
            Visit {
                bot: true,
                device: "bot".into(),
                ..base
            }
        } else {
            base
        }
    }

    /// The number of `user_agent`'s classification (for a `GET`).
    pub fn id(&mut self, user_agent: Option<&str>) -> u32 {
        let text = user_agent.unwrap_or("");
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.agents.len() as u32;
        let text: Arc<str> = text.into();
        let visit = classify(user_agent, false);
        let next = self.profiles.len() as u32;
        let profile = *self.profile_ids.entry(visit.clone()).or_insert(next);
        if profile == next {
            self.profiles.push(visit.clone());
        }
        self.agents.push(Agent {
            visit,
            profile,
            key: self.keys.hash_one(&*text),
            text: text.clone(),
        });
        self.ids.insert(text, id);
        id
    }

    /// The classification numbered `id`.
    pub fn visit(&self, id: u32) -> &Visit {
        &self.agents[id as usize].visit
    }

    /// The number of the profile of the agent numbered `id`.
    pub fn profile(&self, id: u32) -> u32 {
        self.agents[id as usize].profile
    }

    /// The profile numbered `profile`: what every agent of it was classified as.
    pub fn profile_visit(&self, profile: u32) -> &Visit {
        &self.profiles[profile as usize]
    }

    /// The user agent numbered `id` (empty for none).
    pub fn text(&self, id: u32) -> &str {
        &self.agents[id as usize].text
    }

    /// The key of the agent numbered `id`: a hash of its text, the same whatever number the
    /// agent has.
    pub fn key(&self, id: u32) -> u64 {
        self.agents[id as usize].key
    }

    /// Forgets every agent if more than `CAPACITY` are remembered; numbers given before are
    /// then void, so call it only when nothing holds one.
    pub fn trim(&mut self) {
        if self.agents.len() > Self::CAPACITY {
            self.ids.clear();
            self.agents.clear();
            self.profiles.clear();
            self.profile_ids.clear();
        }
    }
}

impl ClickEvent<'_> {
    /// Classifies the event into what the store counts, its visitor id made with `salt`.
    pub fn fact(&self, classifier: &mut Classifier, salt: &str) -> ClickFact {
        // Cached codes came from the store.
        let code = Code::from_trusted(self.link.code().to_owned());
        let visitor = visitor_id(salt, self.ip, self.user_agent.unwrap_or(""));
        Click {
            event_id: None,
            code,
            at: self.at,
            head: self.head,
            user_agent: self.user_agent,
            referrer: self.referrer.map(str::to_owned),
            visitor: Some(visitor.to_string()),
            country: self.country.map(str::to_owned),
        }
        .fact(classifier)
    }
}

/// A click named by its code, as it comes from another node (through NATS), ready to be
/// classified into a [`ClickFact`].
#[derive(Debug)]
pub struct Click<'a> {
    /// Unique id of an event that may be delivered more than once (through NATS).
    pub event_id: Option<String>,
    /// The link.
    pub code: Code,
    /// When.
    pub at: DateTime<Utc>,
    /// A `HEAD` request.
    pub head: bool,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The referring host.
    pub referrer: Option<String>,
    /// The visitor id, in hex.
    pub visitor: Option<String>,
    /// ISO country code.
    pub country: Option<String>,
}

impl Click<'_> {
    /// Classifies the click into what the store counts.
    pub fn fact(self, classifier: &mut Classifier) -> ClickFact {
        let v = classifier.classify(self.user_agent, self.head);
        let dims = if v.bot {
            Vec::new()
        } else {
            vec![
                ("referrer", self.referrer.unwrap_or_else(|| "direct".into())),
                ("browser", v.browser),
                ("os", v.os),
                ("device", v.device),
                ("country", self.country.unwrap_or_else(|| "unknown".into())),
            ]
        };
        ClickFact {
            event_id: self.event_id,
            code: self.code,
            at: self.at,
            bot: v.bot,
            visitor: if v.bot { None } else { self.visitor },
            dims,
        }
    }
}

/// Counters of the click pipeline.
#[derive(Debug, Default)]
pub struct ClickStats {
    /// Events accepted into the queue.
    pub queued: AtomicU64,
    /// Events dropped because the queue was full or closed.
    pub dropped: AtomicU64,
    /// Events stored in NATS JetStream (scale-out mode).
    pub published: AtomicU64,
    /// Events written to the spill while NATS was away (scale-out mode).
    pub spilled: AtomicU64,
    /// Events written to the store.
    pub written: AtomicU64,
    /// Batches written to the store (each one transaction).
    pub batches: AtomicU64,
    /// Events delivered again by NATS after the store had them (an acknowledgement lost in
    /// an outage); skipped, not counted twice.
    pub redelivered: AtomicU64,
}

/// How often the in-process worker takes what is queued at a busy node: often enough that
/// the events it takes (a few hundred) were written recently and are still in the CPU's
/// cache.
const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// The longest the in-process worker waits between two looks at a queue it found empty.
const IDLE_DRAIN: Duration = Duration::from_millis(160);
/// Events the worker takes between two yields to the runtime.
const DRAIN_SLICE: usize = 64;
/// Counters a batch is added up from between two yields to the runtime.
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
    let stats = Arc::new(ClickStats::default());
    let (queue, taker) = queue::bounded(settings.capacity, stats.clone());
    let worker = match nats {
        None => {
            let worker = Worker {
                store,
                visitors,
                stats,
                tally: Tally::default(),
                classifier: Classifier::default(),
                writing: Writing::default(),
            };
            tokio::spawn(worker.run(settings, taker, shutdown))
        }
        Some(nats) => {
            // The consumer stops first-class with the rest; the forwarder then publishes
            // what is still queued.
            let consumer = consume.then(|| {
                tokio::spawn(nats::consume(
                    nats.clone(),
                    store,
                    stats.clone(),
                    settings.batch_size,
                    shutdown.child_token(),
                ))
            });
            let forwarder = nats::forward(
                nats,
                taker,
                visitors,
                stats,
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
    stats: Arc<ClickStats>,
    tally: Tally,
    classifier: Classifier,
    /// The batch being written: the queue keeps draining meanwhile.
    writing: Writing,
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
        let mut events = queue::Taken::default();
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
            if !self.writing.busy().await
                && self.writing.due(last_flush.elapsed(), settings.flush_every)
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
        self.writing.finish().await;
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
        let mut taking = self.tally.start_take(salts, self.writing.room.take());
        while !taking.step(&self.classifier, TAKE_SLICE) {
            tokio::task::yield_now().await;
        }
        let (batch, room) = taking.finish();
        self.tally.give_room(room);
        self.classifier.trim();
        self.writing.finish().await;
        let (store, stats) = (self.store.clone(), self.stats.clone());
        self.writing.task = Some(tokio::spawn(async move {
            let rows = batch.rows();
            write_batch(&*store, &stats, &batch).await;
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

/// A new event or batch id: a UUIDv7, so ids sort by time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The batch being written, and what writing the last one cost. That cost paces the
/// batches: a new one is cut no sooner than `WRITE_SHARE` times the last one's cost after
/// it, so turning counters into rows and writing them takes at most about 1/`WRITE_SHARE`
/// of the time, however busy the node. A busy node thus writes fewer, bigger batches (a
/// batch costs one row per link, hour and dimension value, whatever its clicks), and a
/// quiet one every `flush_every`; never less often than every `LONGEST` times that.
#[derive(Debug, Default)]
struct Writing {
    task: Option<tokio::task::JoinHandle<(Duration, ClickTotals)>>,
    last_cost: Duration,
    /// The last batch written, emptied by the next (its memory is reused, see
    /// [`ClickTotals::reuse`]).
    room: Option<ClickTotals>,
}

impl Writing {
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
                    self.room = Some(written);
                }
                Err(e) => tracing::error!(error = %e, "writing a batch of clicks failed"),
            }
        }
    }
}

/// Writes a batch. A failed write is retried a few times with back-off (the batch id makes
/// a retry count once); after that the batch is dropped and counted, so a dead store cannot
/// grow memory without bound.
async fn write_batch(store: &dyn LinkStore, stats: &ClickStats, batch: &ClickTotals) {
    let batch_id = new_id();
    for attempt in 0..3u32 {
        match store.apply_click_totals(&batch_id, batch).await {
            Ok(_) => {
                stats.written.fetch_add(batch.clicks, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
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
    stats.dropped.fetch_add(batch.clicks, Ordering::Relaxed);
}

/// Visitor ids: a hash of IP and user agent under the day's salt, which the store keeps (so
/// every node agrees) and deletes when the day is over (so no visitor can be followed from
/// one day to the next). The salt is fetched once a day per node.
pub struct VisitorIds {
    store: Arc<dyn LinkStore>,
    today: RwLock<Option<(i64, Arc<str>)>>,
}

/// The salts of some days (day start, ms), as [`VisitorIds::salts`] could get them.
#[derive(Debug, Clone, Default)]
pub struct Salts(Vec<(i64, Arc<str>)>);

impl Salts {
    /// The salt of the day starting at `day` (ms), if it was had.
    pub fn get(&self, day: i64) -> Option<&str> {
        self.0.iter().find(|(d, _)| *d == day).map(|(_, s)| &**s)
    }

    /// The given salt for the given days (made up for tests).
    #[cfg(test)]
    pub fn of(days: impl IntoIterator<Item = (i64, String)>) -> Self {
        Self(days.into_iter().map(|(d, s)| (d, s.into())).collect())
    }
}

impl VisitorIds {
    /// Visitor ids backed by `store`.
    pub fn new(store: Arc<dyn LinkStore>) -> Self {
        Self {
            store,
            today: RwLock::new(None),
        }
    }

    /// The visitor id of `ip` with `user_agent` at `now`; `None` if the day's salt cannot be
    /// had (the click is still counted, without its visitor).
    pub async fn id(&self, ip: IpAddr, user_agent: &str, now: DateTime<Utc>) -> Option<VisitorId> {
        let day = now.timestamp_millis() - now.timestamp_millis().rem_euclid(86_400_000);
        let salt = self.salt(day).await?;
        Some(visitor_id(&salt, ip, user_agent))
    }

    /// The salts of `days` (day starts, ms) that can be had.
    pub async fn salts(&self, days: &[i64]) -> Salts {
        let mut salts = Salts::default();
        for &day in days {
            if let Some(salt) = self.salt(day).await {
                salts.0.push((day, salt));
            }
        }
        salts
    }

    /// The salt of the day starting at `day` (ms).
    async fn salt(&self, day: i64) -> Option<Arc<str>> {
        let cached = self
            .today
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(d, _)| *d == day)
            .map(|(_, s)| s.clone());
        if cached.is_some() {
            return cached;
        }
        let candidate: [u8; 16] = rand::random();
        match self.store.daily_salt(day, &hex::encode(candidate)).await {
            Ok(s) => {
                let s: Arc<str> = s.into();
                *self.today.write().unwrap_or_else(|e| e.into_inner()) = Some((day, s.clone()));
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no visitor salt for the day");
                None
            }
        }
    }
}

/// The visitor id of `ip` with `user_agent` under `salt`: the first 128 bits of
/// SHA-256(salt | ip | user agent).
pub fn visitor_id(salt: &str, ip: IpAddr, user_agent: &str) -> VisitorId {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b"|");
    let mut text = [0u8; 64];
    h.update(ip_text(ip, &mut text));
    h.update(b"|");
    h.update(user_agent.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize()[..16]);
    VisitorId(id)
}

/// `ip` in its usual text form, written into `buf` without allocating (IPv4 by hand: it is
/// most traffic, and `fmt` costs more than the hash it feeds).
fn ip_text(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            &buf[..len]
        }
        IpAddr::V6(_) => {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{ip}"));
            let len = cursor.position() as usize;
            &buf[..len]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_paced_by_what_writing_the_last_one_cost() {
        let every = Duration::from_secs(10);
        let mut w = Writing::default();
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

    #[test]
    fn remembered_classifications_equal_fresh_ones() {
        let mut c = Classifier::default();
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
            (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        for ua in [Some(chrome), Some("Twitterbot/1.0"), None] {
            for head in [false, true, false, true] {
                assert_eq!(
                    c.classify(ua, head),
                    classify(ua, head),
                    "{ua:?} head={head}"
                );
            }
        }
        assert_eq!(c.len(), 3);
    }

    fn link(code: &str) -> Arc<CachedTarget> {
        Arc::new(CachedTarget::plain(code))
    }

    /// An event as the edge makes it: the link's slot read when the click is recorded.
    fn event<'a>(link: &'a Arc<CachedTarget>, i: usize, ua: Option<&'a str>) -> ClickEvent<'a> {
        ClickEvent {
            link,
            slot: link.click_slot().load(Ordering::Relaxed),
            at: chrono::DateTime::from_timestamp_millis(1_800_000_000_000 + i as i64 * 900_000)
                .unwrap(),
            head: i.is_multiple_of(5),
            ip: IpAddr::from([10, 0, 0, (i % 2) as u8]),
            user_agent: ua,
            referrer: i.is_multiple_of(3).then_some("t.co"),
            country: i.is_multiple_of(4).then_some("DE"),
        }
    }

    const SALT: &str = "pepper";

    /// The salt of the day of every [`event`].
    fn salts() -> Salts {
        Salts::of([(
            1_800_000_000_000 - 1_800_000_000_000 % 86_400_000,
            SALT.into(),
        )])
    }

    #[test]
    fn tallied_events_equal_added_facts() {
        let mut c = Classifier::default();
        let (mut tally, mut via_facts) = (Tally::default(), crate::store::ClickTotals::default());
        let agents = [
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
            Some("Slackbot 1.0"),
            None,
        ];
        // Two links, and a second copy of the first (as a reload of the cache makes it):
        // the copies count as one link.
        let links = [link("aa"), link("bb"), link("aa")];
        let round =
            |tally: &mut Tally, via_facts: &mut crate::store::ClickTotals, c: &mut Classifier| {
                for (i, ua) in agents.iter().cycle().take(12).enumerate() {
                    let e = event(&links[i % 3], i, *ua);
                    tally.add(&e, c);
                    via_facts.add(&e.fact(c, SALT));
                }
            };
        round(&mut tally, &mut via_facts, &mut c);
        assert_eq!(tally.clicks(), 12);
        let direct = tally.take(&c, salts());
        assert_eq!(direct.clicks, 12);
        assert_eq!(direct, via_facts);
        // Taken, the tally is empty but still knows today's visitors.
        assert_eq!((tally.clicks(), tally.rows()), (0, 0));
        // The next batch numbers the links afresh, although they carry the last one's
        // numbers (and its visitors are not new any more).
        let mut again = crate::store::ClickTotals::default();
        round(&mut tally, &mut again, &mut c);
        let second = tally.take(&c, salts());
        assert_eq!(second.clicks, 12);
        assert_eq!(second.hour_rows().count(), again.hour_rows().count());
        assert_eq!(second.dim_rows().count(), again.dim_rows().count());
        assert_eq!(second.visitor_rows().count(), 0);
        let mut hours: Vec<_> = second.hour_rows().collect();
        let mut expected: Vec<_> = again.hour_rows().collect();
        hours.sort_unstable();
        expected.sort_unstable();
        assert_eq!(hours, expected);
    }

    #[test]
    fn late_clicks_and_crowded_links_add_up_as_facts() {
        let mut c = Classifier::default();
        let (mut tally, mut via_facts) = (Tally::default(), crate::store::ClickTotals::default());
        let agents = [
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
            Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) Mobile/15E148"),
            Some("Twitterbot/1.0"),
        ];
        let links = [link("aa"), link("bb")];
        let referrers: Vec<String> = (0..40).map(|r| format!("r{r}.example")).collect();
        let mut events = Vec::new();
        // Quarter hours out of order: hours come back after later ones, and days change.
        for (k, i) in [0, 9, 2, 95, 96, 4, 97, 1, 200, 3, 96, 0, 201]
            .into_iter()
            .enumerate()
        {
            events.push(event(&links[k % 2], i, agents[k % 3]));
        }
        // One link, in one hour, sees more referrers than its block has room for.
        for (k, r) in referrers.iter().enumerate() {
            let mut e = event(&links[0], 201 + k % 2, agents[k % 2]);
            e.referrer = Some(r);
            events.push(e);
        }
        let mut salts = Vec::new();
        for e in &events {
            let at = e.at.timestamp_millis();
            let day = at - at.rem_euclid(86_400_000);
            if !salts.iter().any(|(d, _)| *d == day) {
                salts.push((day, SALT.to_owned()));
            }
        }
        assert_eq!(salts.len(), 3);
        for e in &events {
            // The edge reads the link's slot when it records the click.
            let e = ClickEvent {
                slot: e.link.click_slot().load(Ordering::Relaxed),
                ..*e
            };
            tally.add(&e, &mut c);
            via_facts.add(&e.fact(&mut c, SALT));
        }
        let direct = tally.take(&c, Salts::of(salts));
        assert_eq!(direct.clicks, events.len() as u64);
        assert_eq!(direct, via_facts);
    }

    #[test]
    fn totals_made_in_a_written_batchs_room_equal_fresh_ones() {
        let mut c = Classifier::default();
        let agents = [
            Some("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
            Some("Slackbot 1.0"),
            None,
        ];
        let (aa, bb, cc) = (link("aa"), link("bb"), link("cc"));
        // Two tallies fed the same clicks: one makes its totals in the room of the last
        // batch, the other afresh; a few counters at a time, as the worker does.
        let (mut reused, mut fresh) = (Tally::default(), Tally::default());
        fn take(
            t: &mut Tally,
            c: &Classifier,
            room: Option<crate::store::ClickTotals>,
        ) -> crate::store::ClickTotals {
            let mut taking = t.start_take(salts(), room);
            while !taking.step(c, 3) {}
            let (totals, room) = taking.finish();
            t.give_room(room);
            totals
        }
        let mut last = None;
        for (round, links) in [[&aa, &bb], [&cc, &aa], [&bb, &cc]].into_iter().enumerate() {
            for i in 0..9 {
                let link = links[i % 2];
                for t in [&mut reused, &mut fresh] {
                    t.add(&event(link, round * 9 + i, agents[i % 3]), &mut c);
                }
            }
            let made_again = take(&mut reused, &c, last.take());
            let made_fresh = take(&mut fresh, &c, None);
            assert_eq!(made_again.clicks, 9);
            assert_eq!(made_again, made_fresh, "round {round}");
            last = Some(made_again);
        }
    }

    #[test]
    fn visitors_of_a_day_without_salt_are_left_out_and_their_clicks_counted() {
        let mut c = Classifier::default();
        let mut tally = Tally::default();
        let aa = link("aa");
        for i in 1..5 {
            tally.add(&event(&aa, i, Some("Firefox/121.0")), &mut c);
        }
        assert_eq!(tally.visitor_days(), [salts().0[0].0]);
        let totals = tally.take(&c, Salts::default());
        assert_eq!(totals.clicks, 4);
        assert_eq!(totals.visitor_rows().count(), 0);
    }

    #[test]
    fn tallies_never_take_each_others_link_numbers() {
        let mut c = Classifier::default();
        let (aa, bb) = (link("aa"), link("bb"));
        let (mut first, mut second) = (Tally::default(), Tally::default());
        // `first` numbers aa 0 and bb 1; `second` sees bb first, so its numbers differ, and
        // each overwrites the other's note on the links.
        first.add(&event(&aa, 1, None), &mut c);
        first.add(&event(&bb, 2, None), &mut c);
        second.add(&event(&bb, 3, None), &mut c);
        second.add(&event(&aa, 4, None), &mut c);
        first.add(&event(&bb, 6, None), &mut c);
        first.add(&event(&bb, 7, None), &mut c);
        let codes = |t: &mut Tally| {
            let mut v: Vec<_> = t
                .take(&c, salts())
                .hour_rows()
                .map(|(code, _, n, _)| (code.to_string(), n))
                .collect();
            v.sort_unstable();
            v
        };
        let hours = codes(&mut first);
        let total = |code: &str| -> i64 {
            hours
                .iter()
                .filter(|(c, _)| c == code)
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!((total("aa"), total("bb")), (1, 3), "{hours:?}");
        let hours = codes(&mut second);
        assert_eq!(hours.iter().map(|(_, n)| n).sum::<i64>(), 2, "{hours:?}");
    }

    #[test]
    fn ipv4_text_is_the_usual_form() {
        let mut buf = [0u8; 64];
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.99.9",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(parsed, &mut buf), ip.as_bytes());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(v6, &mut buf), b"2001:db8::1");
    }

    proptest::proptest! {
        #[test]
        fn every_ipv4_is_written_as_display_writes_it(octets: [u8; 4]) {
            let ip = IpAddr::from(octets);
            let mut buf = [0u8; 64];
            let text = ip.to_string();
            proptest::prop_assert_eq!(ip_text(ip, &mut buf), text.as_bytes());
        }
    }

    #[test]
    fn visitor_ids_are_written_in_hex() {
        let mut id = [0u8; 16];
        id[0] = 0xab;
        id[15] = 0x01;
        assert_eq!(
            VisitorId(id).to_string(),
            "ab000000000000000000000000000001"
        );
    }
}
