//! What the in-process worker counts between two writes, kept compact: a click costs a few
//! lookups of small integer keys, and the strings it names (link, agent, referrer, country)
//! are stored once per batch. Written, it becomes [`ClickTotals`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Classifier, ClickEvent, VisitorId};
use crate::cache::CachedTarget;
use crate::clock::to_millis;
use crate::domain::code::Code;
use crate::store::{ClickTotals, Names};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The agent index of every bot's click (their dimensions are not counted).
const BOT: u32 = u32::MAX;

/// One counter: clicks on a link in an hour, by one kind of agent, from one referrer and
/// country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    link: u32,
    hour: i64,
    agent: u32,
    referrer: u32,
    country: u32,
}

/// Clicks counted since the last write.
#[derive(Debug)]
pub struct Tally {
    links: Names<Code>,
    /// Each link's key in [`KnownVisitors`], by number.
    link_keys: Vec<u64>,
    /// This batch's mark on the links it numbered: a link's
    /// [`CachedTarget::click_slot`] holds `epoch << 32 | number` (see [`Self::link`]).
    epoch: u64,
    names: Names<String>,
    counts: Map<Key, i64>,
    /// People new to a link today: (link, day start ms, visitor hash).
    visitors: Vec<(u32, i64, VisitorId)>,
    known: KnownVisitors,
    clicks: u64,
    last_at: i64,
}

/// Batch epochs, unique in the process, so that no tally can take another's (or an earlier
/// batch's) number of a link for its own.
static EPOCHS: AtomicU64 = AtomicU64::new(1);

fn new_epoch() -> u64 {
    EPOCHS.fetch_add(1, Ordering::Relaxed)
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            links: Names::default(),
            link_keys: Vec::new(),
            epoch: new_epoch(),
            names: Names::default(),
            counts: Map::default(),
            visitors: Vec::new(),
            known: KnownVisitors::default(),
            clicks: 0,
            last_at: 0,
        }
    }
}

impl Tally {
    /// Counts one click.
    pub fn add(&mut self, e: &ClickEvent, classifier: &mut Classifier) {
        let at = to_millis(e.at);
        let hour = at - at.rem_euclid(3_600_000);
        let link = self.link(&e.link, e.slot);
        let agent = classifier.id(e.user_agent.as_deref());
        self.clicks += 1;
        self.last_at = self.last_at.max(at);
        let key = if e.head || classifier.visit(agent).bot {
            Key {
                link,
                hour,
                agent: BOT,
                referrer: 0,
                country: 0,
            }
        } else {
            if let Some(v) = &e.visitor
                && self.known.first_time(self.link_keys[link as usize], at, v)
            {
                self.visitors
                    .push((link, at - at.rem_euclid(86_400_000), *v));
            }
            Key {
                link,
                hour,
                agent,
                referrer: self.names.id(e.referrer.as_deref().unwrap_or("direct")),
                country: self.names.id(e.country.as_deref().unwrap_or("unknown")),
            }
        };
        *self.counts.entry(key).or_default() += 1;
    }

    /// The batch's number of `target`'s link, given the `slot` the edge read from it: when
    /// this batch numbered the link already, that is the number (no hashing, no comparing
    /// of codes); else the code is looked up and the number noted on the link.
    fn link(&mut self, target: &CachedTarget, slot: u64) -> u32 {
        if slot >> 32 == self.epoch {
            return slot as u32;
        }
        // Cached codes came from the store.
        let code = Code::from_trusted(target.code().to_owned());
        let id = self.links.id(&code);
        if id as usize == self.link_keys.len() {
            self.link_keys.push(self.known.key_of(code.as_str()));
        }
        target
            .click_slot()
            .store(self.epoch << 32 | u64::from(id), Ordering::Relaxed);
        id
    }

    /// Clicks counted.
    pub fn clicks(&self) -> u64 {
        self.clicks
    }

    /// Counters and visitors held: a bound on the rows the write will touch.
    pub fn rows(&self) -> usize {
        self.counts.len() + self.visitors.len()
    }

    /// Starts turning the counted clicks into the totals to write, leaving the tally empty
    /// (it still knows today's visitors). See [`Taking`].
    pub fn start_take(&mut self) -> Taking {
        let names = std::mem::take(&mut self.names);
        let taking = Taking {
            totals: ClickTotals::with_codes(std::mem::take(&mut self.links)),
            counts: std::mem::take(&mut self.counts).into_iter(),
            visitors: std::mem::take(&mut self.visitors),
            name_ids: vec![None; names.len()],
            names,
            agent_ids: Map::default(),
            last_at: self.last_at,
        };
        self.epoch = new_epoch();
        self.link_keys.clear();
        self.clicks = 0;
        self.last_at = 0;
        taking
    }

    /// The totals to write, in one go (see [`Self::start_take`]).
    pub fn take(&mut self, classifier: &Classifier) -> ClickTotals {
        let mut taking = self.start_take();
        while !taking.step(classifier, usize::MAX) {}
        taking.finish()
    }
}

/// Counted clicks being turned into totals, a slice at a time, so that a big batch can be
/// taken between other work. The links keep their numbers; each name and agent is looked up
/// once, not once per counter. `classifier` must be the one the clicks were added with.
#[derive(Debug)]
pub struct Taking {
    totals: ClickTotals,
    counts: std::collections::hash_map::IntoIter<Key, i64>,
    visitors: Vec<(u32, i64, VisitorId)>,
    names: Names<String>,
    name_ids: Vec<Option<u32>>,
    agent_ids: Map<u32, [u32; 3]>,
    last_at: i64,
}

impl Taking {
    /// Adds up to `most` counters; `true` once all are in.
    pub fn step(&mut self, classifier: &Classifier, most: usize) -> bool {
        let totals = &mut self.totals;
        for (key, n) in self.counts.by_ref().take(most) {
            if key.agent == BOT {
                totals.add_hour_of(key.link, key.hour, n, n);
                continue;
            }
            totals.add_hour_of(key.link, key.hour, n, 0);
            let [browser, os, device] = *self.agent_ids.entry(key.agent).or_insert_with(|| {
                let v = classifier.visit(key.agent);
                [&v.browser, &v.os, &v.device].map(|s| totals.value_id(s))
            });
            let mut name_id = |id: u32| {
                *self.name_ids[id as usize]
                    .get_or_insert_with(|| totals.value_id(self.names.name(id)))
            };
            let (referrer, country) = (name_id(key.referrer), name_id(key.country));
            let day = key.hour - key.hour.rem_euclid(86_400_000);
            for (dim, value) in [
                ("referrer", referrer),
                ("browser", browser),
                ("os", os),
                ("device", device),
                ("country", country),
            ] {
                totals.add_dim_of(key.link, day, dim, value, n);
            }
        }
        self.counts.len() == 0
    }

    /// The totals, once [`Self::step`] said all are in.
    pub fn finish(mut self) -> ClickTotals {
        for (link, day, v) in self.visitors.drain(..) {
            let v = self.totals.value_id(&v.to_string());
            self.totals.add_visitor_of(link, day, v);
        }
        self.totals.last_at = self.last_at;
        self.totals
    }
}

/// The (link, visitor) pairs of today that this worker already wrote, so a returning visitor
/// costs no row. Only a 64-bit hash of each pair is kept, at most `CAPACITY` of them; past
/// that, or on a new day, the memory starts over (a visitor written twice is harmless: the
/// store ignores the second).
#[derive(Debug, Default)]
pub struct KnownVisitors {
    day: i64,
    hasher: foldhash::fast::RandomState,
    seen: std::collections::HashSet<u64, foldhash::fast::RandomState>,
}

impl KnownVisitors {
    const CAPACITY: usize = 500_000;

    /// The key of the link with `code` (a hash of it, the same for every batch).
    pub fn key_of(&self, code: &str) -> u64 {
        self.hasher.hash_one(code)
    }

    /// Whether `visitor` is new on the link keyed `link` ([`Self::key_of`]) on the day of
    /// `at` (ms), remembering it.
    pub fn first_time(&mut self, link: u64, at: i64, visitor: &VisitorId) -> bool {
        let day = at - at.rem_euclid(86_400_000);
        if day != self.day || self.seen.len() >= Self::CAPACITY {
            self.day = day;
            self.seen.clear();
        }
        // The visitor id is already a keyed hash: its bits need only mixing with the link's.
        let (lo, hi) = visitor.0.split_at(8);
        let v = u64::from_le_bytes(lo.try_into().unwrap_or_default())
            ^ u64::from_le_bytes(hi.try_into().unwrap_or_default()).rotate_left(29);
        self.seen
            .insert(v ^ link.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}
