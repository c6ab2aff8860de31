//! What the in-process worker counts between two writes, kept compact: a click costs a few
//! lookups of small integer keys, and the strings it names (link, agent, referrer, country)
//! are stored once per batch. Written, it becomes [`ClickTotals`].

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Classifier, ClickEvent, ClickSlotValue, ClickedLink, Salts, visitor_id};
use crate::clock::to_millis;
use crate::domain::code::Code;
use crate::store::{ClickTotals, Names};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a counter counts, in its top four bits: a kind, and (below) the number of a value
/// of it. People's clicks are counted by profile (browser, OS and device together, see
/// [`Classifier::profile`]), referrer and country; a link's clicks in an hour are its
/// people's (the sum of its profile counters) and its bots'.
const BOTS: u32 = 1 << 28;
const PROFILE: u32 = 2 << 28;
const REFERRER: u32 = 3 << 28;
const COUNTRY: u32 = 4 << 28;
const KIND: u32 = 0xf << 28;

/// Counters one link keeps inline ([`Block`]).
const SLOTS: usize = 16;

/// One link's counters for the tally's current hour, kept together (128 bytes, two cache
/// lines), so that a click costs one place in memory whatever it counts: a link sees few
/// profiles, referrers and countries in an hour. A counter that finds no room here (or
/// whose value's number needs more than 28 bits, or that is full) is counted among the
/// tally's overflow counters instead. Tags are filled in order; 0 is free.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Block {
    tags: [u32; SLOTS],
    counts: [u32; SLOTS],
}

impl Block {
    /// Adds one to the counter tagged `tag`: `Some(true)` if it is new, `None` if it has no
    /// room here.
    #[inline]
    fn bump(&mut self, tag: u32) -> Option<bool> {
        for i in 0..SLOTS {
            if self.tags[i] == tag {
                self.counts[i] = self.counts[i].checked_add(1)?;
                return Some(false);
            }
            if self.tags[i] == 0 {
                self.tags[i] = tag;
                self.counts[i] = 1;
                return Some(true);
            }
        }
        None
    }

    /// The counters: (tag, clicks).
    fn counters(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.tags
            .iter()
            .zip(&self.counts)
            .take_while(|(t, _)| **t != 0)
            .map(|(t, n)| (*t, *n))
    }
}

/// The key of an overflow counter (one outside the blocks): link number, hour start (ms),
/// kind, value number.
type OverflowKey = (u32, i64, u32, u32);

/// Clicks counted since the last write.
#[derive(Debug)]
pub struct Tally {
    links: Names<Code>,
    /// Each link's key in [`KnownVisitors`], by number.
    link_keys: Vec<u64>,
    /// This batch's mark on the links it numbered, kept in each link's
    /// [`ClickedLink::click_slot`] with the number (see [`Self::link`]).
    epoch: u64,
    names: Names<String>,
    /// Each link's counters of the hour starting at `hour` (ms), by number.
    blocks: Vec<Block>,
    hour: i64,
    /// Counters of earlier hours (clicks that came late, and what the blocks held when the
    /// hour changed) and those that found no room in a block.
    overflow: Map<OverflowKey, i64>,
    /// Counters held, in blocks and overflow.
    counters: usize,
    /// People new to a link today; their visitor ids are made when the batch is taken.
    visitors: Vec<NewVisitor>,
    known: KnownVisitors,
    clicks: u64,
    last_at: i64,
    /// The clicks [`Tally::add_all`] is counting, numbered (kept to reuse its memory).
    numbered: Vec<NumberedClick>,
}

/// A click with its link, agent and values replaced by their numbers: what
/// [`Tally::add_all`]'s first pass makes of it.
#[derive(Debug, Clone, Copy)]
struct NumberedClick {
    link: u32,
    hour: i64,
    at: i64,
    agent: u32,
    ip: IpAddr,
    /// The visitor's key in [`KnownVisitors`] (a person's).
    visitor: u64,
    /// A person's profile, referrer and country numbers; `None` for a bot.
    values: Option<[u32; 3]>,
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
            blocks: Vec::new(),
            hour: 0,
            overflow: Map::default(),
            counters: 0,
            visitors: Vec::new(),
            known: KnownVisitors::default(),
            clicks: 0,
            last_at: 0,
            numbered: Vec::new(),
        }
    }
}

impl Tally {
    /// Counts one click.
    pub fn add(&mut self, e: &ClickEvent<'_>, classifier: &mut Classifier) {
        self.add_all(std::slice::from_ref(e), classifier);
    }

    /// Counts clicks, in three passes over them: what each is (the link's number, the
    /// agent's, the values'), which people are new (a lookup in the known visitors), and the
    /// counters (in the links' blocks). Each of the last two is a run of lookups in big
    /// tables that do not wait for one another, so the processor has many of them under
    /// way at once, where one pass per click would wait for each in turn. Pass a few dozen
    /// clicks at a time.
    pub fn add_all(&mut self, events: &[ClickEvent<'_>], classifier: &mut Classifier) {
        let mut numbered = std::mem::take(&mut self.numbered);
        numbered.clear();
        for e in events {
            let at = to_millis(e.at);
            let hour = at - at.rem_euclid(3_600_000);
            let link = self.link(e.link.as_ref(), e.slot);
            let agent = classifier.id(e.user_agent);
            self.clicks += 1;
            self.last_at = self.last_at.max(at);
            if hour > self.hour {
                self.next_hour(hour);
            }
            let person = !(e.head || classifier.visit(agent).bot);
            let (visitor, values) = if person {
                let visitor =
                    self.known
                        .visitor(self.link_keys[link as usize], e.ip, classifier.key(agent));
                let values = [
                    classifier.profile(agent),
                    self.names.id(e.referrer.unwrap_or("direct")),
                    self.names.id(e.country.unwrap_or("unknown")),
                ];
                (visitor, Some(values))
            } else {
                (0, None)
            };
            numbered.push(NumberedClick {
                link,
                hour,
                at,
                agent,
                ip: e.ip,
                visitor,
                values,
            });
        }
        for s in numbered.iter().filter(|s| s.values.is_some()) {
            if self.known.first_time(s.at, s.visitor) {
                self.visitors.push(NewVisitor {
                    link: s.link,
                    day: s.at - s.at.rem_euclid(86_400_000),
                    ip: s.ip,
                    agent: s.agent,
                });
            }
        }
        for s in &numbered {
            match s.values {
                None => self.count(s.link, s.hour, BOTS, 0),
                Some([profile, referrer, country]) => {
                    self.count(s.link, s.hour, PROFILE, profile);
                    self.count(s.link, s.hour, REFERRER, referrer);
                    self.count(s.link, s.hour, COUNTRY, country);
                }
            }
        }
        self.numbered = numbered;
    }

    /// Adds one to the counter of `kind` and `value` of link number `link` in `hour`: in
    /// the link's block when that counts `hour` and has room, else among the overflow.
    #[inline]
    fn count(&mut self, link: u32, hour: i64, kind: u32, value: u32) {
        let in_block = if hour == self.hour && value & KIND == 0 {
            self.blocks[link as usize].bump(kind | value)
        } else {
            None
        };
        let new = in_block.unwrap_or_else(|| {
            let n = self.overflow.entry((link, hour, kind, value)).or_default();
            *n += 1;
            *n == 1
        });
        self.counters += usize::from(new);
    }

    /// Makes the blocks count `hour`, a later one than theirs: what they held moves to the
    /// overflow.
    #[cold]
    fn next_hour(&mut self, hour: i64) {
        let last = std::mem::replace(&mut self.hour, hour);
        for (link, block) in self.blocks.iter_mut().enumerate() {
            for (tag, n) in block.counters() {
                let overflow = self
                    .overflow
                    .entry((link as u32, last, tag & KIND, tag & !KIND))
                    .or_default();
                // Already a counter of its own (one that had found no room in the block).
                if *overflow != 0 {
                    self.counters -= 1;
                }
                *overflow += i64::from(n);
            }
            *block = Block::default();
        }
    }

    /// The batch's number of `target`'s link, given the `slot` the edge read from it: when
    /// this batch numbered the link already, that is the number (no hashing, no comparing
    /// of codes); else the code is looked up and the number noted on the link.
    fn link(&mut self, target: &dyn ClickedLink, slot: ClickSlotValue) -> u32 {
        if let Some(number) = slot.number_in(self.epoch) {
            return number;
        }
        // Cached codes came from the store.
        let code = Code::from_trusted(target.code().to_owned());
        let id = self.links.id(&code);
        if id as usize == self.link_keys.len() {
            self.link_keys.push(self.known.key_of(code.as_str()));
            self.blocks.push(Block::default());
        }
        target.click_slot().set(self.epoch, id);
        id
    }

    /// Clicks counted.
    pub fn clicks(&self) -> u64 {
        self.clicks
    }

    /// Counters and visitors held: a bound on the rows the write will touch.
    pub fn rows(&self) -> usize {
        self.counters + self.visitors.len()
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
    /// day has no salt is not counted. The totals are made in `spare` (totals written
    /// before) if given. See [`TotalsBuilder`].
    pub fn start_take(&mut self, salts: Salts, spare: Option<ClickTotals>) -> TotalsBuilder {
        let names = std::mem::take(&mut self.names);
        let links = std::mem::take(&mut self.links);
        let totals = match spare {
            Some(mut totals) => {
                self.links = totals.reuse(links);
                totals
            }
            None => ClickTotals::with_codes(links),
        };
        let builder = TotalsBuilder {
            totals,
            blocks: std::mem::take(&mut self.blocks),
            next_link: 0,
            hour: self.hour,
            overflow: std::mem::take(&mut self.overflow).into_iter(),
            visitors: std::mem::take(&mut self.visitors),
            salts,
            name_ids: vec![None; names.len()],
            names,
            profile_ids: Vec::new(),
            last_at: self.last_at,
        };
        self.counters = 0;
        self.epoch = new_epoch();
        self.link_keys.clear();
        self.clicks = 0;
        self.last_at = 0;
        builder
    }

    /// The totals to write, in one go (see [`Self::start_take`]).
    pub fn take(&mut self, classifier: &Classifier, salts: Salts) -> ClickTotals {
        let mut builder = self.start_take(salts, None);
        while !builder.step(classifier, usize::MAX) {}
        let (totals, spare) = builder.finish();
        self.reuse_blocks(spare);
        totals
    }

    /// Takes back the blocks a [`TotalsBuilder`] of this tally held, for the next batch.
    pub fn reuse_blocks(&mut self, spare: SpareBlocks) {
        if self.blocks.is_empty() {
            self.blocks = spare.blocks;
            self.blocks.clear();
        }
    }
}

/// Builds a batch's [`ClickTotals`] from the counted clicks, a slice at a time, so that a big
/// batch can be taken between other work. The links keep their numbers; each name and profile is looked
/// up once, not once per counter. `classifier` must be the one the clicks were added with.
#[derive(Debug)]
pub struct TotalsBuilder {
    totals: ClickTotals,
    /// The blocks, of `hour`; those of links numbered `next_link` on are not taken yet.
    blocks: Vec<Block>,
    next_link: u32,
    hour: i64,
    overflow: std::collections::hash_map::IntoIter<OverflowKey, i64>,
    visitors: Vec<NewVisitor>,
    salts: Salts,
    names: Names<String>,
    name_ids: Vec<Option<u32>>,
    profile_ids: Vec<Option<[u32; 3]>>,
    last_at: i64,
}

impl TotalsBuilder {
    /// Adds up to `most` counters (about: a block at a time), or makes up to `most` visitor
    /// ids once the counters are in; `true` once all are.
    pub fn step(&mut self, classifier: &Classifier, most: usize) -> bool {
        if (self.next_link as usize) < self.blocks.len() {
            for _ in 0..most.div_ceil(SLOTS) {
                let Some(&block) = self.blocks.get(self.next_link as usize) else {
                    break;
                };
                let link = self.next_link;
                self.next_link += 1;
                let (mut all, mut bots) = (0, 0);
                for (tag, n) in block.counters() {
                    let n = i64::from(n);
                    match tag & KIND {
                        BOTS => (all, bots) = (all + n, bots + n),
                        PROFILE => all += n,
                        _ => {}
                    }
                    self.add_dims(classifier, link, self.hour, tag & KIND, tag & !KIND, n);
                }
                if all > 0 {
                    self.totals.add_hour_of(link, self.hour, all, bots);
                }
            }
            return false;
        }
        if self.overflow.len() > 0 {
            for _ in 0..most {
                let Some(((link, hour, kind, value), n)) = self.overflow.next() else {
                    break;
                };
                // Every click has one bot or profile counter: those make the hour's total.
                match kind {
                    BOTS => self.totals.add_hour_of(link, hour, n, n),
                    PROFILE => self.totals.add_hour_of(link, hour, n, 0),
                    _ => {}
                }
                self.add_dims(classifier, link, hour, kind, value, n);
            }
            return false;
        }
        let from = self.visitors.len().saturating_sub(most);
        for v in self.visitors.drain(from..) {
            let Some(salt) = self.salts.get(v.day) else {
                continue;
            };
            let id = visitor_id(salt, v.ip, classifier.text(v.agent));
            let id = self.totals.value_id(&id.to_string());
            self.totals.add_visitor_of(v.link, v.day, id);
        }
        self.visitors.is_empty()
    }

    /// Adds the dimension values a counter of `kind` and `value` stands for (none for
    /// bots), `n` clicks each, on the day of `hour`.
    fn add_dims(
        &mut self,
        classifier: &Classifier,
        link: u32,
        hour: i64,
        kind: u32,
        value: u32,
        n: i64,
    ) {
        let day = hour - hour.rem_euclid(86_400_000);
        let totals = &mut self.totals;
        match kind {
            PROFILE => {
                if self.profile_ids.len() <= value as usize {
                    self.profile_ids.resize(value as usize + 1, None);
                }
                let ids = &mut self.profile_ids[value as usize];
                let [browser, os, device] = *ids.get_or_insert_with(|| {
                    let v = classifier.profile_visit(value);
                    [&v.browser, &v.os, &v.device].map(|s| totals.value_id(s))
                });
                totals.add_dim_of(link, day, "browser", browser, n);
                totals.add_dim_of(link, day, "os", os, n);
                totals.add_dim_of(link, day, "device", device, n);
            }
            REFERRER | COUNTRY => {
                let id = *self.name_ids[value as usize]
                    .get_or_insert_with(|| totals.value_id(self.names.name(value)));
                let dim = if kind == REFERRER {
                    "referrer"
                } else {
                    "country"
                };
                totals.add_dim_of(link, day, dim, id, n);
            }
            _ => {}
        }
    }

    /// The totals, once [`Self::step`] said all are in, and the blocks the tally can have
    /// back ([`Tally::reuse_blocks`]).
    pub fn finish(mut self) -> (ClickTotals, SpareBlocks) {
        self.totals.last_at = self.last_at;
        (
            self.totals,
            SpareBlocks {
                blocks: self.blocks,
            },
        )
    }
}

/// The emptied blocks of a batch's [`TotalsBuilder`], for the next batch of its tally to reuse.
#[derive(Debug)]
pub struct SpareBlocks {
    blocks: Vec<Block>,
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

    /// The key of the visitor at `ip` with the agent keyed `agent` ([`Classifier::key`]) on
    /// the link keyed `link` ([`Self::key_of`]).
    pub fn visitor(&self, link: u64, ip: IpAddr, agent: u64) -> u64 {
        self.hasher.hash_one((link, ip, agent)).max(1)
    }

    /// Whether the visitor keyed `visitor` ([`Self::visitor`]) is new on the day of `at`
    /// (ms), remembering it.
    pub fn first_time(&mut self, at: i64, visitor: u64) -> bool {
        let day = at - at.rem_euclid(86_400_000);
        if day != self.day || self.len >= Self::CAPACITY {
            self.day = day;
            self.slots = Vec::new();
            self.len = 0;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        if self.insert(visitor) {
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
    use crate::cache::CachedTarget;
    use std::sync::Arc;

    fn link(code: &str) -> Arc<dyn ClickedLink> {
        Arc::new(CachedTarget::plain(code))
    }

    /// An event as the edge makes it: the link's slot read when the click is recorded.
    fn event<'a>(link: &'a Arc<dyn ClickedLink>, i: usize, ua: Option<&'a str>) -> ClickEvent<'a> {
        ClickEvent {
            link,
            slot: link.click_slot().read(),
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

    /// A browser's user agent.
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

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
        let agents = [Some(FIREFOX), Some("Slackbot 1.0"), None];
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
            Some(FIREFOX),
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
                slot: e.link.click_slot().read(),
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
    fn totals_made_in_a_written_batchs_memory_equal_fresh_ones() {
        let mut c = Classifier::default();
        let agents = [Some(FIREFOX), Some("Slackbot 1.0"), None];
        let (aa, bb, cc) = (link("aa"), link("bb"), link("cc"));
        // Two tallies fed the same clicks: one makes its totals in the memory of the
        // last batch, the other afresh; a few counters at a time, as the worker does.
        let (mut reused, mut fresh) = (Tally::default(), Tally::default());
        fn take(
            t: &mut Tally,
            c: &Classifier,
            spare: Option<crate::store::ClickTotals>,
        ) -> crate::store::ClickTotals {
            let mut builder = t.start_take(salts(), spare);
            while !builder.step(c, 3) {}
            let (totals, spare) = builder.finish();
            t.reuse_blocks(spare);
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
    fn clicks_of_the_tallys_hour_are_counted_in_their_links_block() {
        let mut c = Classifier::default();
        let mut tally = Tally::default();
        let aa = link("aa");
        // Three quarter hours of one hour.
        for i in [1, 2, 3] {
            tally.add(&event(&aa, i, Some(FIREFOX)), &mut c);
        }
        assert!(tally.overflow.is_empty(), "{:?}", tally.overflow);
        // A click of the next hour moves the last hour's counters out of the block.
        tally.add(&event(&aa, 4, Some(FIREFOX)), &mut c);
        assert!(!tally.overflow.is_empty());
        assert!(
            tally
                .overflow
                .keys()
                .all(|(_, hour, _, _)| *hour == 1_800_000_000_000)
        );
    }

    #[test]
    fn rows_count_each_counter_and_each_new_visitor_once() {
        let mut c = Classifier::default();
        let mut tally = Tally::default();
        let aa = link("aa");
        let referrers: Vec<String> = (0..20).map(|r| format!("r{r}.example")).collect();
        for round in 0..2 {
            for r in &referrers {
                let mut e = event(&aa, 1, Some(FIREFOX));
                e.referrer = Some(r);
                tally.add(&e, &mut c);
            }
            // One profile, 20 referrers (16 counters fill the block, the rest overflow),
            // one country and one visitor, however often they are seen.
            assert_eq!(tally.rows(), 1 + 20 + 1 + 1, "round {round}");
        }
    }

    #[test]
    fn a_taken_tally_keeps_its_blocks_memory_for_the_next_batch() {
        let mut c = Classifier::default();
        let mut tally = Tally::default();
        let (aa, bb) = (link("aa"), link("bb"));
        tally.add(&event(&aa, 1, Some(FIREFOX)), &mut c);
        tally.add(&event(&bb, 2, Some(FIREFOX)), &mut c);
        let _ = tally.take(&c, salts());
        assert!(tally.blocks.capacity() >= 2, "{}", tally.blocks.capacity());
    }

    #[test]
    fn one_person_on_two_links_is_a_new_visitor_of_each() {
        let mut c = Classifier::default();
        let mut tally = Tally::default();
        let (aa, bb) = (link("aa"), link("bb"));
        tally.add(&event(&aa, 1, Some(FIREFOX)), &mut c);
        tally.add(&event(&bb, 1, Some(FIREFOX)), &mut c);
        tally.add(&event(&bb, 1, Some(FIREFOX)), &mut c);
        assert_eq!(tally.take(&c, salts()).visitor_rows().count(), 2);
    }

    #[test]
    fn a_block_counts_until_full_then_sends_the_rest_elsewhere() {
        let mut b = Block::default();
        for tag in 1..=SLOTS as u32 {
            assert_eq!(b.bump(tag), Some(true));
        }
        assert_eq!(b.bump(1), Some(false));
        assert_eq!(b.bump(SLOTS as u32 + 1), None);
        b.counts[1] = u32::MAX;
        assert_eq!(b.bump(2), None);
        assert_eq!(b.counters().count(), SLOTS);
        assert_eq!(b.counters().next(), Some((1, 2)));
        assert_eq!(b.counters().nth(1), Some((2, u32::MAX)));
    }

    #[test]
    fn known_visitors_are_told_apart_across_growth_days_and_the_bound() {
        let mut known = KnownVisitors::default();
        let (day, next_day) = (1_800_000_000_000, 1_800_000_000_000 + 86_400_000);
        let ip = |n: u32| IpAddr::from(n.to_be_bytes());
        // Far past the first table's size: every pair is new once, and then known.
        for n in 0..20_000 {
            assert!(known.first_time(day, known.visitor(7, ip(n), 1)), "{n}");
        }
        for n in 0..20_000 {
            assert!(!known.first_time(day, known.visitor(7, ip(n), 1)), "{n}");
            // Another link, or another agent, is another pair.
            assert!(known.first_time(day, known.visitor(8, ip(n), 1)), "{n}");
            assert!(known.first_time(day, known.visitor(7, ip(n), 2)), "{n}");
        }
        assert_eq!(known.len(), 60_000);
        // A new day starts over.
        assert!(known.first_time(next_day, known.visitor(7, ip(0), 1)));
        assert!(!known.first_time(next_day, known.visitor(7, ip(0), 1)));
        assert_eq!(known.len(), 1);
        // So does reaching the bound, and nothing is forgotten before it.
        let mut n = 0;
        while known.len() < KnownVisitors::CAPACITY - 1 {
            n += 1;
            assert!(known.first_time(next_day, known.visitor(9, ip(n), 1)));
        }
        assert!(!known.first_time(next_day, known.visitor(9, ip(1), 1)));
        assert!(known.first_time(next_day, known.visitor(9, ip(n + 1), 1)));
        assert_eq!(known.len(), KnownVisitors::CAPACITY);
        assert!(known.first_time(next_day, known.visitor(9, ip(1), 1)));
        assert_eq!(known.len(), 1);
    }
}
