//! What the in-process worker counts between two writes, kept compact: a click costs a few
//! lookups of small integer keys, and the strings it names (link, agent, referrer, country)
//! are stored once per batch. Written, it becomes [`ClickTotals`].

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use super::{Classifier, ClickEvent};
use crate::clock::to_millis;
use crate::domain::code::Code;
use crate::store::ClickTotals;

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

/// Strings numbered in the order they were first seen.
#[derive(Debug)]
struct Names<T: Hash + Eq> {
    index: Map<T, u32>,
    list: Vec<T>,
}

impl<T: Hash + Eq> Default for Names<T> {
    fn default() -> Self {
        Self {
            index: Map::default(),
            list: Vec::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Names<T> {
    fn id<Q>(&mut self, name: &Q) -> u32
    where
        T: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = T> + ?Sized,
    {
        if let Some(id) = self.index.get(name) {
            return *id;
        }
        let id = self.list.len() as u32;
        self.list.push(name.to_owned());
        self.index.insert(name.to_owned(), id);
        id
    }

    fn clear(&mut self) {
        self.index.clear();
        self.list.clear();
    }
}

/// Clicks counted since the last write.
#[derive(Debug, Default)]
pub struct Tally {
    links: Names<Code>,
    names: Names<String>,
    counts: Map<Key, i64>,
    /// People new to a link today: (link, day start ms, visitor hash).
    visitors: Vec<(u32, i64, String)>,
    known: KnownVisitors,
    clicks: u64,
    last_at: i64,
}

impl Tally {
    /// Counts one click.
    pub fn add(&mut self, e: &ClickEvent, classifier: &mut Classifier) {
        let at = to_millis(e.at);
        let hour = at - at.rem_euclid(3_600_000);
        let link = self.links.id(&e.code);
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
                && self.known.first_time(&e.code, at, v)
            {
                self.visitors
                    .push((link, at - at.rem_euclid(86_400_000), v.clone()));
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

    /// Clicks counted.
    pub fn clicks(&self) -> u64 {
        self.clicks
    }

    /// Counters and visitors held: a bound on the rows the write will touch.
    pub fn rows(&self) -> usize {
        self.counts.len() + self.visitors.len()
    }

    /// The totals to write, leaving the tally empty (it still knows today's visitors).
    /// `classifier` must be the one the clicks were added with.
    pub fn take(&mut self, classifier: &Classifier) -> ClickTotals {
        let mut totals = ClickTotals::default();
        for (key, n) in self.counts.drain() {
            let code = &self.links.list[key.link as usize];
            if key.agent == BOT {
                totals.add_count(code, key.hour, true, n, &[]);
                continue;
            }
            let v = classifier.visit(key.agent);
            let dims = [
                ("referrer", self.names.list[key.referrer as usize].as_str()),
                ("browser", v.browser.as_str()),
                ("os", v.os.as_str()),
                ("device", v.device.as_str()),
                ("country", self.names.list[key.country as usize].as_str()),
            ];
            totals.add_count(code, key.hour, false, n, &dims);
        }
        for (link, day, v) in self.visitors.drain(..) {
            totals.add_visitor(&self.links.list[link as usize], day, &v);
        }
        totals.last_at = self.last_at;
        self.links.clear();
        self.names.clear();
        self.clicks = 0;
        self.last_at = 0;
        totals
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

    /// Whether `visitor` is new on `code` on the day of `at` (ms), remembering it.
    pub fn first_time(&mut self, code: &Code, at: i64, visitor: &str) -> bool {
        let day = at - at.rem_euclid(86_400_000);
        if day != self.day || self.seen.len() >= Self::CAPACITY {
            self.day = day;
            self.seen.clear();
        }
        let mut h = self.hasher.build_hasher();
        code.as_str().hash(&mut h);
        visitor.hash(&mut h);
        self.seen.insert(h.finish())
    }
}
