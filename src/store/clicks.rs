//! Clicks added up before they are written: what one batch changes in the aggregate tables
//! (`clicks_by_hour`, `clicks_by_dim`, `visitors`). Writing totals instead of events makes a
//! batch cost one row per link, hour and dimension value, however many clicks it holds.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::domain::code::Code;
use crate::store::rows::day_of;

/// Maps and sets with a fast hash: every click is looked up in several.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<T> = HashSet<T, foldhash::fast::RandomState>;

/// One click, classified, ready to be counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickFact {
    /// Unique id (UUIDv7) of an event that may be delivered more than once (through NATS);
    /// `None` for events that only travel in their batch.
    pub event_id: Option<String>,
    /// The link.
    pub code: Code,
    /// When.
    pub at: DateTime<Utc>,
    /// Counted apart from people.
    pub bot: bool,
    /// Salted hash of IP and user agent (people only).
    pub visitor: Option<String>,
    /// `(dimension, value)` pairs: referrer, browser, os, device, country (people only).
    pub dims: Vec<(&'static str, String)>,
}

/// Strings (or codes) numbered in the order they were first seen, so that counters can be
/// keyed by small integers and each string is stored once.
#[derive(Debug, Clone)]
pub struct Names<T: Hash + Eq> {
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
    /// The number of `name`, given it if new.
    pub fn id<Q>(&mut self, name: &Q) -> u32
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

    /// The name numbered `id`.
    pub fn name(&self, id: u32) -> &T {
        &self.list[id as usize]
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Forgets every name, keeping the room.
    pub fn clear(&mut self) {
        self.index.clear();
        self.list.clear();
    }
}

/// A counter of people's clicks on a link, on a day, for one value of one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DimKey {
    link: u32,
    day: i64,
    dim: &'static str,
    value: u32,
}

/// The clicks of a batch, added up: one counter per row the batch will write. Links and
/// strings are numbered ([`Names`]), so counting costs lookups of small integer keys, and
/// writing or dropping a batch of many links is a walk over three flat maps.
#[derive(Debug, Clone, Default)]
pub struct ClickTotals {
    codes: Names<Code>,
    values: Names<String>,
    /// (link, hour start ms) → (all clicks, bot clicks).
    hours: Map<(u32, i64), (i64, i64)>,
    /// People's clicks per link, day, dimension and value.
    dims: Map<DimKey, i64>,
    /// (link, day start ms, visitor): people seen.
    visitors: Set<(u32, i64, u32)>,
    /// Clicks added.
    pub clicks: u64,
    /// The latest click (ms), 0 when empty.
    pub last_at: i64,
}

impl ClickTotals {
    /// Adds the clicks of `facts`.
    pub fn of(facts: &[ClickFact]) -> Self {
        let mut totals = Self::default();
        for f in facts {
            totals.add(f);
        }
        totals
    }

    /// Totals whose links are numbered by `codes` (the link ids given to
    /// [`Self::add_hour_of`] and the like).
    pub(crate) fn with_codes(codes: Names<Code>) -> Self {
        Self {
            codes,
            ..Self::default()
        }
    }

    /// Whether no click was added.
    pub fn is_empty(&self) -> bool {
        self.clicks == 0
    }

    /// Empties the totals for another batch, keeping their room (a node's batches are
    /// much alike, and memory handed back would be faulted in again, zeroed, by the next):
    /// links are numbered by `codes` from now on, and the old numbering is handed back, empty.
    pub(crate) fn reuse(&mut self, codes: Names<Code>) -> Names<Code> {
        let mut old = std::mem::replace(&mut self.codes, codes);
        old.clear();
        self.values.clear();
        self.hours.clear();
        self.dims.clear();
        self.visitors.clear();
        self.clicks = 0;
        self.last_at = 0;
        old
    }

    /// Rows the batch will write (one per link and hour, dimension value, visitor).
    pub fn rows(&self) -> usize {
        self.hours.len() + self.dims.len() + self.visitors.len()
    }

    /// The number of a dimension value or visitor hash, for [`Self::add_dim_of`] and
    /// [`Self::add_visitor_of`].
    pub(crate) fn value_id(&mut self, value: &str) -> u32 {
        self.values.id(value)
    }

    /// Adds one click.
    pub fn add(&mut self, f: &ClickFact) {
        let dims: Vec<(&'static str, &str)> =
            f.dims.iter().map(|(d, v)| (*d, v.as_str())).collect();
        self.add_click(&f.code, to_millis(f.at), f.bot, f.visitor.as_deref(), &dims);
    }

    /// Adds one click on `code` at `at` (ms): a bot's, or a person's with their `visitor`
    /// hash and `(dimension, value)` pairs.
    pub fn add_click(
        &mut self,
        code: &Code,
        at: i64,
        bot: bool,
        visitor: Option<&str>,
        dims: &[(&'static str, &str)],
    ) {
        self.add_count(code, at, bot, 1, dims);
        if let (false, Some(v)) = (bot, visitor) {
            self.add_visitor(code, day_of(at), v);
        }
    }

    /// Adds `n` clicks on `code` in the hour of `at` (ms), bots' or people's with
    /// `(dimension, value)` pairs.
    pub fn add_count(
        &mut self,
        code: &Code,
        at: i64,
        bot: bool,
        n: i64,
        dims: &[(&'static str, &str)],
    ) {
        let link = self.codes.id(code);
        self.add_hour_of(link, at, n, if bot { n } else { 0 });
        if bot {
            return;
        }
        for (dim, value) in dims {
            let value = self.values.id(*value);
            self.add_dim_of(link, day_of(at), dim, value, n);
        }
    }

    /// Adds a visitor of `code` on the day starting at `day` (ms).
    pub fn add_visitor(&mut self, code: &Code, day: i64, visitor: &str) {
        let (link, visitor) = (self.codes.id(code), self.values.id(visitor));
        self.add_visitor_of(link, day, visitor);
    }

    /// Adds `n` clicks, `bots` of them by bots, on link number `link` in the hour of `at`.
    pub(crate) fn add_hour_of(&mut self, link: u32, at: i64, n: i64, bots: i64) {
        self.clicks += n as u64;
        self.last_at = self.last_at.max(at);
        let hour = self
            .hours
            .entry((link, at - at.rem_euclid(3_600_000)))
            .or_default();
        hour.0 += n;
        hour.1 += bots;
    }

    /// Adds `n` people's clicks on link number `link` on `day` with value number `value` of
    /// `dim` (not counted in [`Self::clicks`]: [`Self::add_hour_of`] counts them).
    pub(crate) fn add_dim_of(
        &mut self,
        link: u32,
        day: i64,
        dim: &'static str,
        value: u32,
        n: i64,
    ) {
        *self
            .dims
            .entry(DimKey {
                link,
                day,
                dim,
                value,
            })
            .or_default() += n;
    }

    /// Adds visitor number `visitor` of link number `link` on `day`.
    pub(crate) fn add_visitor_of(&mut self, link: u32, day: i64, visitor: u32) {
        self.visitors.insert((link, day, visitor));
    }

    /// `(code, hour start ms, clicks, bot clicks)` rows.
    pub fn hour_rows(&self) -> impl Iterator<Item = (&Code, i64, i64, i64)> {
        self.hours
            .iter()
            .map(|((link, hour), (n, bots))| (self.codes.name(*link), *hour, *n, *bots))
    }

    /// `(code, day start ms, dimension, value, clicks)` rows.
    pub fn dim_rows(&self) -> impl Iterator<Item = (&Code, i64, &'static str, &str, i64)> {
        self.dims.iter().map(|(k, n)| {
            (
                self.codes.name(k.link),
                k.day,
                k.dim,
                self.values.name(k.value).as_str(),
                *n,
            )
        })
    }

    /// `(code, day start ms, visitor)` rows.
    pub fn visitor_rows(&self) -> impl Iterator<Item = (&Code, i64, &str)> {
        self.visitors
            .iter()
            .map(|(link, day, v)| (self.codes.name(*link), *day, self.values.name(*v).as_str()))
    }

    /// Splits the totals by `owner(code)`, keeping each part's counts.
    pub fn split(self, owner: impl Fn(&Code) -> usize) -> HashMap<usize, ClickTotals> {
        let owners: Vec<usize> = self.codes.list.iter().map(owner).collect();
        let mut parts: HashMap<usize, ClickTotals> = HashMap::new();
        // Each link's number in its part.
        let ids: Vec<u32> = self
            .codes
            .list
            .iter()
            .zip(&owners)
            .map(|(code, o)| parts.entry(*o).or_default().codes.id(code))
            .collect();
        let at = |link: u32| (owners[link as usize], ids[link as usize]);
        fn part(
            parts: &mut HashMap<usize, ClickTotals>,
            (owner, id): (usize, u32),
        ) -> (&mut ClickTotals, u32) {
            (parts.get_mut(&owner).expect("every owner has a part"), id)
        }
        for (&(link, hour), &(n, bots)) in &self.hours {
            let (p, id) = part(&mut parts, at(link));
            p.add_hour_of(id, hour, n, bots);
        }
        for (k, n) in &self.dims {
            let (p, id) = part(&mut parts, at(k.link));
            let value = p.values.id(self.values.name(k.value).as_str());
            p.add_dim_of(id, k.day, k.dim, value, *n);
        }
        for &(link, day, v) in &self.visitors {
            let (p, id) = part(&mut parts, at(link));
            let v = p.values.id(self.values.name(v).as_str());
            p.add_visitor_of(id, day, v);
        }
        for p in parts.values_mut() {
            p.last_at = self.last_at;
        }
        parts
    }

    /// Every row, sorted: what two totals must share to be equal.
    #[allow(clippy::type_complexity)]
    fn canonical(
        &self,
    ) -> (
        Vec<(&Code, i64, i64, i64)>,
        Vec<(&Code, i64, &'static str, &str, i64)>,
        Vec<(&Code, i64, &str)>,
    ) {
        let mut hours: Vec<_> = self.hour_rows().collect();
        let mut dims: Vec<_> = self.dim_rows().collect();
        let mut visitors: Vec<_> = self.visitor_rows().collect();
        hours.sort_unstable();
        dims.sort_unstable();
        visitors.sort_unstable();
        (hours, dims, visitors)
    }
}

/// Equal when they would write the same rows (whatever the numbering).
impl PartialEq for ClickTotals {
    fn eq(&self, other: &Self) -> bool {
        self.clicks == other.clicks
            && self.last_at == other.last_at
            && self.canonical() == other.canonical()
    }
}

impl Eq for ClickTotals {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fact(code: &str, minute: u32, bot: bool, visitor: &str) -> ClickFact {
        ClickFact {
            event_id: None,
            code: Code::from_path(code).unwrap(),
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
            bot,
            visitor: (!bot).then(|| visitor.to_owned()),
            dims: if bot {
                vec![]
            } else {
                vec![("browser", "Chrome".into()), ("referrer", "t.co".into())]
            },
        }
    }

    #[test]
    fn adds_up_per_link_hour_dimension_and_visitor() {
        let t = ClickTotals::of(&[
            fact("aa", 0, false, "v1"),
            fact("aa", 1, false, "v1"),
            fact("aa", 2, true, ""),
            fact("bb", 59, false, "v2"),
        ]);
        assert_eq!(t.clicks, 4);
        let aa = Code::from_path("aa").unwrap();
        let day = day_of(to_millis(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let hours: Vec<_> = t.hour_rows().filter(|r| r.0 == &aa).collect();
        assert_eq!(hours, vec![(&aa, day, 3, 1)]);
        assert!(
            t.dim_rows()
                .any(|r| r == (&aa, day, "browser", "Chrome", 2))
        );
        assert_eq!(t.visitor_rows().filter(|r| r.0 == &aa).count(), 1);
        // aa: 1 hour + 2 dimension values + 1 visitor; bb the same.
        assert_eq!(t.rows(), 8);
        let parts = t.clone().split(|c| usize::from(c.as_str() == "bb"));
        assert_eq!(parts[&0].clicks, 3);
        assert_eq!(parts[&1].clicks, 1);
        assert_eq!(parts[&0].rows() + parts[&1].rows(), 8);
        // Split and added up again, nothing changes.
        let mut joined = ClickTotals::default();
        for p in parts.values() {
            for (code, hour, n, bots) in p.hour_rows() {
                let link = joined.codes.id(code);
                joined.add_hour_of(link, hour, n, bots);
            }
            for (code, day, dim, value, n) in p.dim_rows() {
                let (link, value) = (joined.codes.id(code), joined.value_id(value));
                joined.add_dim_of(link, day, dim, value, n);
            }
            for (code, day, v) in p.visitor_rows() {
                joined.add_visitor(code, day, v);
            }
        }
        joined.last_at = t.last_at;
        assert_eq!(joined, t);
    }
}
