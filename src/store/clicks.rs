//! Clicks added up before they are written: what one batch changes in the aggregate tables
//! (`clicks_by_hour`, `clicks_by_dim`, `visitors`). Writing totals instead of events makes a
//! batch cost one row per link, hour and dimension value, however many clicks it holds.

use std::collections::{HashMap, HashSet};

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

/// The clicks of one link in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTotals {
    /// Hour start (ms) → (all clicks, bot clicks).
    pub hours: Map<i64, (i64, i64)>,
    /// (day start ms, dimension) → value → people's clicks.
    pub dims: Map<(i64, &'static str), Map<String, i64>>,
    /// Day start (ms) → visitors seen.
    pub visitors: Map<i64, Set<String>>,
}

/// The clicks of a batch, per link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClickTotals {
    /// Per link.
    pub links: Map<Code, LinkTotals>,
    /// Clicks added.
    pub clicks: u64,
    /// Rows the batch will write (one per link and hour, dimension value, visitor).
    pub rows: usize,
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

    /// Whether no click was added.
    pub fn is_empty(&self) -> bool {
        self.clicks == 0
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
    /// `(dimension, value)` pairs. Allocates only for keys not seen before.
    pub fn add_count(
        &mut self,
        code: &Code,
        at: i64,
        bot: bool,
        n: i64,
        dims: &[(&'static str, &str)],
    ) {
        self.clicks += n as u64;
        self.last_at = self.last_at.max(at);
        let link = match self.links.get_mut(code) {
            Some(l) => l,
            None => self.links.entry(code.clone()).or_default(),
        };
        let hour = link
            .hours
            .entry(at - at.rem_euclid(3_600_000))
            .or_insert_with(|| {
                self.rows += 1;
                (0, 0)
            });
        hour.0 += n;
        if bot {
            hour.1 += n;
            return;
        }
        let day = day_of(at);
        for (dim, value) in dims {
            let values = link.dims.entry((day, dim)).or_default();
            match values.get_mut(*value) {
                Some(c) => *c += n,
                None => {
                    values.insert((*value).to_owned(), n);
                    self.rows += 1;
                }
            }
        }
    }

    /// Adds a visitor of `code` on the day starting at `day` (ms).
    pub fn add_visitor(&mut self, code: &Code, day: i64, visitor: &str) {
        let link = match self.links.get_mut(code) {
            Some(l) => l,
            None => self.links.entry(code.clone()).or_default(),
        };
        let seen = link.visitors.entry(day).or_default();
        if !seen.contains(visitor) {
            seen.insert(visitor.to_owned());
            self.rows += 1;
        }
    }

    /// Splits the totals by `owner(code)`, keeping each part's counts.
    pub fn split(self, owner: impl Fn(&Code) -> usize) -> HashMap<usize, ClickTotals> {
        let mut parts: HashMap<usize, ClickTotals> = HashMap::new();
        for (code, link) in self.links {
            let part = parts.entry(owner(&code)).or_default();
            part.clicks += link.hours.values().map(|(n, _)| *n as u64).sum::<u64>();
            part.rows += link.hours.len()
                + link.dims.values().map(Map::len).sum::<usize>()
                + link.visitors.values().map(Set::len).sum::<usize>();
            part.last_at = self.last_at;
            part.links.insert(code, link);
        }
        parts
    }
}

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
        let aa = &t.links[&Code::from_path("aa").unwrap()];
        assert_eq!(aa.hours.values().collect::<Vec<_>>(), vec![&(3, 1)]);
        let day = *aa.visitors.keys().next().unwrap();
        assert_eq!(aa.dims[&(day, "browser")]["Chrome"], 2);
        assert_eq!(aa.visitors[&day].len(), 1);
        // aa: 1 hour + 2 dimension values + 1 visitor; bb the same.
        assert_eq!(t.rows, 8);
        let parts = t.split(|c| usize::from(c.as_str() == "bb"));
        assert_eq!(parts[&0].clicks, 3);
        assert_eq!(parts[&1].clicks, 1);
        assert_eq!(parts[&0].rows + parts[&1].rows, 8);
    }
}
