//! What the in-process worker counts between two writes, kept compact: a click costs a few
//! lookups of small integer keys, and the strings it names (link, agent, referrer, country)
//! are stored once per batch. Written, it becomes [`ClickTotals`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Classifier, ClickEvent, Salts, visitor_id};
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
    /// People new to a link today; their visitor ids are made when the batch is taken.
    visitors: Vec<NewVisitor>,
    known: KnownVisitors,
    clicks: u64,
    last_at: i64,
}

/// A person new to a link on a day: the link's number, the day's start (ms), and who.
#[derive(Debug, Clone, Copy)]
struct NewVisitor {
    link: u32,
    day: i64,
    ip: IpAddr,
    agent: u32,
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
    pub fn add(&mut self, e: &ClickEvent<'_>, classifier: &mut Classifier) {
        let at = to_millis(e.at);
        let hour = at - at.rem_euclid(3_600_000);
        let link = self.link(e.link, e.slot);
        let agent = classifier.id(e.user_agent);
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
            let link_key = self.link_keys[link as usize];
            if self
                .known
                .first_time(link_key, at, e.ip, classifier.key(agent))
            {
                self.visitors.push(NewVisitor {
                    link,
                    day: at - at.rem_euclid(86_400_000),
                    ip: e.ip,
                    agent,
                });
            }
            Key {
                link,
                hour,
                agent,
                referrer: self.names.id(e.referrer.unwrap_or("direct")),
                country: self.names.id(e.country.unwrap_or("unknown")),
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

    /// The days (starts, ms) that new visitors were counted on: the salts [`Self::start_take`]
    /// needs.
    pub fn visitor_days(&self) -> Vec<i64> {
        let mut days: Vec<i64> = Vec::new();
        for v in &self.visitors {
            if !days.contains(&v.day) {
                days.push(v.day);
            }
        }
        days
    }

    /// Starts turning the counted clicks into the totals to write, leaving the tally empty
    /// (it still knows today's visitors). New visitors get their ids under `salts`; one whose
    /// day has no salt is not counted. See [`Taking`].
    pub fn start_take(&mut self, salts: Salts) -> Taking {
        let names = std::mem::take(&mut self.names);
        let taking = Taking {
            totals: ClickTotals::with_codes(std::mem::take(&mut self.links)),
            counts: std::mem::take(&mut self.counts).into_iter(),
            visitors: std::mem::take(&mut self.visitors),
            salts,
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
    pub fn take(&mut self, classifier: &Classifier, salts: Salts) -> ClickTotals {
        let mut taking = self.start_take(salts);
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
    visitors: Vec<NewVisitor>,
    salts: Salts,
    names: Names<String>,
    name_ids: Vec<Option<u32>>,
    agent_ids: Map<u32, [u32; 3]>,
    last_at: i64,
}

impl Taking {
    /// Adds up to `most` counters, or makes up to `most` visitor ids once the counters are
    /// in; `true` once all are.
    pub fn step(&mut self, classifier: &Classifier, most: usize) -> bool {
        if self.counts.len() == 0 {
            let from = self.visitors.len().saturating_sub(most);
            for v in self.visitors.drain(from..) {
                let Some(salt) = self.salts.get(v.day) else {
                    continue;
                };
                let id = visitor_id(salt, v.ip, classifier.text(v.agent));
                let id = self.totals.value_id(&id.to_string());
                self.totals.add_visitor_of(v.link, v.day, id);
            }
            return self.visitors.is_empty();
        }
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
        false
    }

    /// The totals, once [`Self::step`] said all are in.
    pub fn finish(mut self) -> ClickTotals {
        self.totals.last_at = self.last_at;
        self.totals
    }
}

/// The (link, visitor) pairs of today that this worker already counted, so a returning
/// visitor costs neither a visitor id nor a row. Only a 64-bit keyed hash of link, address
/// and agent is kept (in memory, for the day), at most `CAPACITY` of them; past that, or on a
/// new day, the memory starts over (a visitor written twice is harmless: the store ignores
/// the second).
///
/// The hashes are kept in a table of their own (open addressing, linear probing, at most
/// half full): they are already hashes, so each is looked up where its bits say, and a
/// lookup usually reads one cache line, where a general set reads its control bytes, then
/// its entry.
#[derive(Debug, Default)]
pub struct KnownVisitors {
    day: i64,
    hasher: foldhash::fast::RandomState,
    /// The hashes; 0 marks a free slot (a hash of 0 is kept as 1). The length is 0 or a
    /// power of two.
    slots: Vec<u64>,
    len: usize,
}

impl KnownVisitors {
    const CAPACITY: usize = 500_000;
    const FIRST_SLOTS: usize = 1 << 12;

    /// The key of the link with `code` (a hash of it, the same for every batch).
    pub fn key_of(&self, code: &str) -> u64 {
        self.hasher.hash_one(code)
    }

    /// Whether the visitor at `ip` with the agent keyed `agent` ([`Classifier::key`]) is new
    /// on the link keyed `link` ([`Self::key_of`]) on the day of `at` (ms), remembering it.
    pub fn first_time(&mut self, link: u64, at: i64, ip: IpAddr, agent: u64) -> bool {
        let day = at - at.rem_euclid(86_400_000);
        if day != self.day || self.len >= Self::CAPACITY {
            self.day = day;
            self.slots = Vec::new();
            self.len = 0;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let hash = self.hasher.hash_one((link, ip, agent)).max(1);
        if self.insert(hash) {
            self.len += 1;
            true
        } else {
            false
        }
    }

    /// Puts `hash` (not 0) in its slot; `false` if it was there.
    fn insert(&mut self, hash: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = hash;
                    return true;
                }
                h if h == hash => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Doubles the table.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(Self::FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        for hash in old.into_iter().filter(|h| *h != 0) {
            self.insert(hash);
        }
    }

    /// Visitors remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_visitors_are_told_apart_across_growth_days_and_the_bound() {
        let mut known = KnownVisitors::default();
        let (day, next_day) = (1_800_000_000_000, 1_800_000_000_000 + 86_400_000);
        let ip = |n: u32| IpAddr::from(n.to_be_bytes());
        // Far past the first table's size: every pair is new once, and then known.
        for n in 0..20_000 {
            assert!(known.first_time(7, day, ip(n), 1), "{n}");
        }
        for n in 0..20_000 {
            assert!(!known.first_time(7, day, ip(n), 1), "{n}");
            // Another link, or another agent, is another pair.
            assert!(known.first_time(8, day, ip(n), 1), "{n}");
            assert!(known.first_time(7, day, ip(n), 2), "{n}");
        }
        assert_eq!(known.len(), 60_000);
        // A new day starts over.
        assert!(known.first_time(7, next_day, ip(0), 1));
        assert!(!known.first_time(7, next_day, ip(0), 1));
        assert_eq!(known.len(), 1);
        // So does reaching the bound, and nothing is forgotten before it.
        let mut n = 0;
        while known.len() < KnownVisitors::CAPACITY - 1 {
            n += 1;
            assert!(known.first_time(9, next_day, ip(n), 1));
        }
        assert!(!known.first_time(9, next_day, ip(1), 1));
        assert!(known.first_time(9, next_day, ip(n + 1), 1));
        assert_eq!(known.len(), KnownVisitors::CAPACITY);
        assert!(known.first_time(9, next_day, ip(1), 1));
        assert_eq!(known.len(), 1);
    }
}
