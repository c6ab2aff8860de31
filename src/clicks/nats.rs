//! NATS JetStream between the redirect edge and the workers, for more than one node.
//!
//! Each node's redirect handler still only appends to its bounded local queue, never waiting. A
//! forwarder publishes from that queue to the stream (subject `snip.clicks` by default) with
//! the event id as `Nats-Msg-Id`, so a publish retried after a lost acknowledgement is stored
//! once (JetStream's duplicate window). While NATS is unreachable the events wait in the
//! local queue, and what does not fit is dropped and counted. Workers on every node share a
//! durable pull consumer; a batch is acknowledged only after the store committed it, and a
//! redelivered event counts once because the store skips event ids it has applied.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer::PullConsumer};
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::spill::Spill;
use super::{Classifier, Click, ClickCounters, ClickEvent, ClickTaker, TakenEvents, VisitorIds};
use crate::domain::code::Code;
use crate::resilience::{Breaker, BreakerSettings, BreakerState};
use crate::store::{ClickFact, LinkStore};

/// Seconds before an unacknowledged event is delivered again.
pub const ACK_WAIT_SECS: u64 = 10;

/// Where the events go.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:port`.
    pub url: String,
    /// Stream name (created when missing).
    pub stream: String,
    /// Subject the events are published on.
    pub subject: String,
    /// Durable consumer the workers share.
    pub durable: String,
}

/// The wire form of an event.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    id: String,
    code: String,
    at: DateTime<Utc>,
    head: bool,
    ua: Option<String>,
    referrer: Option<String>,
    visitor: Option<String>,
    country: Option<String>,
}

/// An event waiting to be published: its wire form, given its id once (so that a publish
/// retried after a lost acknowledgement is known), and the client's address, from which its
/// visitor id is made before it is first published.
#[derive(Debug)]
struct Outgoing {
    wire: Wire,
    /// `None` for an event read back from the spill, whose visitor id is made already.
    ip: Option<IpAddr>,
}

impl Outgoing {
    fn new(e: &ClickEvent<'_>) -> Self {
        Outgoing {
            wire: Wire {
                id: super::new_id(),
                code: e.link.code().to_owned(),
                at: e.at,
                head: e.head,
                ua: e.user_agent.map(str::to_owned),
                referrer: e.referrer.map(str::to_owned),
                visitor: None,
                country: e.country.map(str::to_owned),
            },
            ip: Some(e.ip),
        }
    }

    /// Gives the event its visitor id, once (unless the day's salt could not be had: then
    /// it is tried again next time).
    async fn identify(&mut self, visitors: &VisitorIds) {
        if let (None, Some(ip)) = (&self.wire.visitor, self.ip) {
            let ua = self.wire.ua.as_deref().unwrap_or("");
            self.wire.visitor = visitors
                .id(ip, ua, self.wire.at)
                .await
                .map(|v| v.to_string());
        }
    }
}

impl Wire {
    fn click(&self) -> Option<Click<'_>> {
        Some(Click {
            event_id: Some(self.id.clone()),
            code: Code::from_path(&self.code)?,
            at: self.at,
            head: self.head,
            user_agent: self.ua.as_deref(),
            referrer: self.referrer.clone(),
            visitor: self.visitor.clone(),
            country: self.country.clone(),
        })
    }
}

/// A JetStream context with the stream made sure of.
pub struct Nats {
    client: async_nats::Client,
    /// Opens when publishing fails, so a dead NATS is probed, not hammered.
    breaker: Breaker,
    js: jetstream::Context,
    settings: NatsSettings,
}

impl Nats {
    /// Connects (retrying in the background if NATS is down, so snip starts anyway).
    pub async fn connect(settings: NatsSettings) -> anyhow::Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(settings.url.as_str())
            .await
            .context("connecting to NATS")?;
        Ok(Self {
            js: jetstream::new(client.clone()),
            client,
            breaker: Breaker::new(
                "nats",
                BreakerSettings {
                    failures_to_open: 1,
                    open_for: Duration::from_millis(100),
                    max_open_for: Duration::from_secs(2),
                },
            ),
            settings,
        })
    }

    /// The breaker of publishing, for metrics and readiness.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn consumer(&self) -> anyhow::Result<PullConsumer> {
        let stream = self
            .js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.settings.stream.clone(),
                subjects: vec![self.settings.subject.clone()],
                duplicate_window: Duration::from_secs(120),
                max_age: Duration::from_secs(7 * 86_400),
                ..Default::default()
            })
            .await?;
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(self.settings.durable.clone()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            // A batch is applied in well under a second; an event delivered to a worker that
            // died (or over a connection NATS lost) is delivered again after this long, and
            // counted once.
            ack_wait: Duration::from_secs(ACK_WAIT_SECS),
            max_ack_pending: 100_000,
            ..Default::default()
        };
        // Create, or bring a consumer made by an older version up to these settings (the
        // ack wait is one NATS lets change). If the server refuses the change, the workers
        // carry on with the consumer as it is.
        match stream.create_consumer(config).await {
            Ok(consumer) => Ok(consumer),
            Err(e) => {
                tracing::warn!(error = %e, durable = %self.settings.durable,
                    "the click consumer's settings could not be updated; using it as it is");
                stream
                    .get_consumer(&self.settings.durable)
                    .await
                    .map_err(|e| anyhow::anyhow!("getting the click consumer: {e}"))
            }
        }
    }
}

/// How often the forwarder looks for queued events when it has none.
const TAKE_EVERY: Duration = Duration::from_millis(20);
/// Most events published at once.
const PUBLISH_AT_ONCE: usize = 256;

/// Publishes from the local queue until `shutdown`; then publishes what is queued (for at
/// most `drain_for`) and returns. Events are taken from the queue only when the last ones
/// are published, so while NATS is away they wait in the bounded queue — or, with a
/// `spill`, go to disk: while NATS is away, and while the spill still holds events (so
/// that they stay in order), everything taken is appended to it, and the spill is
/// published first.
pub async fn forward(
    nats: Arc<Nats>,
    taker: ClickTaker,
    visitors: Arc<VisitorIds>,
    counters: Arc<ClickCounters>,
    mut spill: Option<Spill>,
    shutdown: CancellationToken,
    drain_for: Duration,
) {
    let mut taken = TakenEvents::default();
    let mut inbox: VecDeque<Outgoing> = VecDeque::new();
    let mut pending: Vec<Outgoing> = Vec::new();
    // Where the spill's replay stands once `pending` (read from it) is published.
    let mut replay_to: Option<u64> = None;
    let mut tick = tokio::time::interval(TAKE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let spilling = spill.as_ref().is_some_and(|s| !s.is_empty());
        if spilling || (spill.is_some() && nats.breaker.state() != BreakerState::Closed) {
            // Keep the order: what is in memory goes after what is on disk.
            take_queued(&taker, &mut taken, &mut inbox);
            if replay_to.is_none() {
                inbox.extend(pending.drain(..));
            }
            if let Some(s) = spill.as_mut() {
                to_spill(s, &mut inbox, &visitors, &counters).await;
            }
        }
        if pending.is_empty() {
            if let Some(s) = spill.as_mut().filter(|s| !s.is_empty()) {
                match s.next(PUBLISH_AT_ONCE) {
                    Ok((lines, at)) => {
                        pending.extend(lines.iter().filter_map(|l| {
                            let wire = serde_json::from_slice::<Wire>(l).ok()?;
                            Some(Outgoing { wire, ip: None })
                        }));
                        replay_to = Some(at);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reading the click spill failed; no longer spilling");
                        spill = None;
                    }
                }
            } else if inbox.is_empty() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                take_queued(&taker, &mut taken, &mut inbox);
            }
            if pending.is_empty() {
                pending.extend(inbox.drain(..inbox.len().min(PUBLISH_AT_ONCE)));
            }
            if pending.is_empty() {
                if let (Some(at), Some(s)) = (replay_to.take(), spill.as_mut()) {
                    // Only a torn line was left.
                    let _ = s.replayed_to(at);
                }
                continue;
            }
        }
        // NATS is away while the breaker is open: keep what we have, let the bounded queue
        // (or the spill) buffer the rest, and try again when it lets a probe through (its
        // open time grows from 0.1 s to 2 s, with jitter).
        let Some(permit) = nats.breaker.allow() else {
            let wait = nats
                .breaker
                .retry_after()
                .unwrap_or(Duration::from_millis(50))
                .min(SPILL_EVERY);
            tokio::select! {
                () = tokio::time::sleep(wait) => {},
                () = shutdown.cancelled() => break,
            }
            continue;
        };
        // An acknowledgement may take seconds to fail when NATS has just gone: meanwhile
        // the queue is emptied into memory, to go to the spill if the publish failed, so
        // that the bounded queue does not overflow while we wait.
        let relief = async {
            if spill.is_none() {
                return std::future::pending().await;
            }
            let mut every = tokio::time::interval(TAKE_EVERY);
            loop {
                every.tick().await;
                take_queued(&taker, &mut taken, &mut inbox);
            }
        };
        let published = tokio::select! {
            all = publish(&nats, &visitors, &mut pending, &counters) => all,
            never = relief => never,
        };
        if published {
            permit.success();
            if let (Some(at), Some(s)) = (replay_to.take(), spill.as_mut())
                && let Err(e) = s.replayed_to(at)
            {
                tracing::error!(error = %e, "recording the click spill's replay failed");
            }
        } else {
            permit.failure();
        }
    }
    taker.close();
    if replay_to.is_none() {
        inbox.extend(pending.drain(..));
    } else {
        // Still in the spill: they are published after the restart.
        pending.clear();
    }
    take_queued(&taker, &mut taken, &mut inbox);
    let mut pending: Vec<Outgoing> = inbox.drain(..).collect();
    let spilling = spill.as_ref().is_some_and(|s| !s.is_empty());
    let deadline = tokio::time::Instant::now() + drain_for;
    while !spilling && !pending.is_empty() && tokio::time::Instant::now() < deadline {
        if !publish(&nats, &visitors, &mut pending, &counters).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // What could not be published waits on disk for the next start.
    let mut left: VecDeque<Outgoing> = pending.into();
    if let Some(s) = spill.as_mut() {
        to_spill(s, &mut left, &visitors, &counters).await;
    }
    counters
        .dropped
        .fetch_add(left.len() as u64, Ordering::Relaxed);
}

/// Moves what is queued to the end of `inbox`.
fn take_queued(taker: &ClickTaker, taken: &mut TakenEvents, inbox: &mut VecDeque<Outgoing>) {
    taker.take(taken);
    inbox.extend(taken.iter().map(|e| Outgoing::new(&e)));
    taken.clear();
}

/// Longest wait between two moves of queued events to the spill while NATS is away.
const SPILL_EVERY: Duration = Duration::from_millis(100);

/// Appends `events` to the spill (emptying it); what does not fit is dropped and counted.
async fn to_spill(
    spill: &mut Spill,
    events: &mut VecDeque<Outgoing>,
    visitors: &VisitorIds,
    counters: &ClickCounters,
) {
    if events.is_empty() {
        return;
    }
    let mut lines = Vec::with_capacity(events.len());
    for ev in events.iter_mut() {
        ev.identify(visitors).await;
        lines.push(serde_json::to_vec(&ev.wire).unwrap_or_default());
    }
    let n = events.len();
    events.clear();
    let fitted = match spill.append(&lines) {
        Ok(fitted) => fitted,
        Err(e) => {
            tracing::error!(error = %e, "writing the click spill failed");
            0
        }
    };
    counters.spilled.fetch_add(fitted as u64, Ordering::Relaxed);
    counters
        .dropped
        .fetch_add((n - fitted) as u64, Ordering::Relaxed);
}

/// Publishes `pending`, keeping in it whatever was not acknowledged. `true` when all were.
async fn publish(
    nats: &Nats,
    visitors: &VisitorIds,
    pending: &mut Vec<Outgoing>,
    counters: &ClickCounters,
) -> bool {
    let mut acks = Vec::with_capacity(pending.len());
    for ev in pending.iter_mut() {
        ev.identify(visitors).await;
        let wire = &ev.wire;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", wire.id.as_str());
        let body = serde_json::to_vec(wire).unwrap_or_default();
        let ack = nats
            .js
            .publish_with_headers(nats.settings.subject.clone(), headers, Bytes::from(body))
            .await;
        acks.push(ack);
    }
    // One deadline for all the acknowledgements, which are awaited in turn.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut kept = Vec::new();
    for (ev, ack) in pending.drain(..).zip(acks) {
        let stored = match ack {
            Ok(fut) => matches!(tokio::time::timeout_at(deadline, fut).await, Ok(Ok(_))),
            Err(_) => false,
        };
        if stored {
            counters.published.fetch_add(1, Ordering::Relaxed);
        } else {
            kept.push(ev);
        }
    }
    let all = kept.is_empty();
    *pending = kept;
    all
}

/// Applies batches from the durable consumer until `shutdown`, acknowledging each batch
/// after the store committed it.
pub async fn consume(
    nats: Arc<Nats>,
    store: Arc<dyn LinkStore>,
    stats: Arc<ClickCounters>,
    batch_size: usize,
    shutdown: CancellationToken,
) {
    let mut backoff = crate::resilience::Backoff::default();
    let mut classifier = Classifier::default();
    while !shutdown.is_cancelled() {
        let consumer = match nats.consumer().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "click consumer not ready");
                if !backoff.wait(&shutdown).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        while !shutdown.is_cancelled() {
            let batch = consumer
                .fetch()
                .max_messages(batch_size)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let Ok(mut batch) = batch else { break };
            let mut messages = Vec::new();
            while let Some(Ok(m)) = batch.next().await {
                messages.push(m);
            }
            if messages.is_empty() {
                continue;
            }
            let wires: Vec<Wire> = messages
                .iter()
                .filter_map(|m| serde_json::from_slice::<Wire>(&m.payload).ok())
                .collect();
            let facts: Vec<ClickFact> = wires
                .iter()
                .filter_map(Wire::click)
                .map(|c| c.fact(&mut classifier))
                .collect();
            match store.apply_clicks(&super::new_id(), &facts).await {
                Ok(applied) => {
                    stats.written.fetch_add(applied as u64, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats.redelivered.fetch_add(
                        facts.len().saturating_sub(applied) as u64,
                        Ordering::Relaxed,
                    );
                    for m in &messages {
                        let _ = m.ack().await;
                    }
                }
                // Not acknowledged: JetStream redelivers, and the event ids make that safe.
                Err(e) => tracing::warn!(error = %e, "applying clicks from NATS failed"),
            }
        }
    }
}
