//! Counters of the click pipeline, read by the metrics endpoint.

use std::sync::atomic::AtomicU64;

/// How many click events met each fate, and how many batches were written.
#[derive(Debug, Default)]
pub struct ClickCounters {
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
