//! Click analytics that never slow a redirect.
//!
//! How a click travels:
//! 1. The redirect handler makes a [`ClickEvent`] and appends it to this node's bounded
//!    [`ClickQueue`] without waiting. When the queue is full the click is dropped and
//!    counted ([`ClickCounters`]), never awaited.
//! 2. On one node, the in-process worker ([`worker`]) takes what is queued every few
//!    milliseconds and adds it up in a [`Tally`]: one counter per link, hour and dimension
//!    value. With NATS, a forwarder publishes the queued events to JetStream instead, and
//!    the workers of every node consume them from there ([`nats`]).
//! 3. A batch is written to the store's aggregate tables in one transaction. Each batch
//!    carries a UUIDv7 that the store records with it, so a batch that is retried counts
//!    once; events that travel through NATS carry ids of their own, so a redelivered one
//!    counts once too.
//!
//! There are two ways of adding clicks up, one per path. The in-process worker owns its
//! clicks from the edge to the store, so it adds them up as they come ([`Tally`], which
//! numbers each link once per batch through its [`ClickSlot`]) and writes totals. Events
//! from NATS may be delivered twice, so the consumer hands the store each event with its
//! id ([`crate::store::ClickFact`]), and the store skips the ids it has applied before;
//! totals would have lost those ids.

pub mod geoip;
pub mod nats;
pub mod queue;
pub mod spill;
pub mod tally;

mod classifier;
mod counters;
mod event;
mod slot;
mod visitors;
mod worker;

pub use classifier::Classifier;
pub use counters::ClickCounters;
pub use event::{Click, ClickEvent, new_id};
pub use queue::{ClickQueue, ClickTaker, TakenEvents};
pub use slot::{ClickSlot, ClickSlotValue};
pub use tally::{KnownVisitors, Tally};
pub use visitors::{Salts, VisitorId, VisitorIds, visitor_id};
pub use worker::{QueueSettings, start};
