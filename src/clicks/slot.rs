//! The click slot: a note the in-process worker keeps on each cached link, so that a click
//! on a link it has seen in this batch costs no lookup of the link's code. Only the worker
//! reads its meaning; the cache carries it and the edge copies it into the event.

use std::sync::atomic::{AtomicU64, Ordering};

/// The note on a cached link ([`crate::cache::CachedTarget::click_slot`]): which batch
/// numbered the link, and the number it gave.
#[derive(Debug, Default)]
pub struct ClickSlot(AtomicU64);

/// What a [`ClickSlot`] held when the edge read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClickSlotValue(u64);

impl ClickSlot {
    /// The note as it is now.
    pub fn read(&self) -> ClickSlotValue {
        ClickSlotValue(self.0.load(Ordering::Relaxed))
    }

    /// Notes that the batch marked `epoch` numbered the link `number`.
    pub(super) fn set(&self, epoch: u64, number: u32) {
        self.0
            .store(epoch << 32 | u64::from(number), Ordering::Relaxed);
    }
}

impl ClickSlotValue {
    /// The link's number in the batch marked `epoch`, if that batch numbered it.
    pub(super) fn number_in(self, epoch: u64) -> Option<u32> {
        (self.0 >> 32 == epoch).then_some(self.0 as u32)
    }
}
