//! Links on several PostgreSQL shards, placed by the consistent-hash ring over their codes;
//! users, keys and idempotency records on the first shard (the directory).
//!
//! Reads go to the code's owner first and, if it is not there, to the other shards: during
//! a rebalance a link may still sit on its old shard, and redirects keep working. Listings
//! ask every shard for the same keyset page and merge them: the `(created_at, code)` order
//! is total, so one cursor serves all shards.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::postgres::PgStore;
use super::ring::{Ring, RingMember};
use super::{
    ClickFact, ClickStats, ClickSums, ClickTotals, IdempotencyRecord, IdempotencySave, KeyRecord,
    LinkFields, LinkPage, LinkQuery, LinkRecord, LinkStore, NewKey, NewSession, PageRequest,
    PoolUsage, RedirectTarget, SessionRecord, StoreError, StoreResult, TagCount, Taken, UserRecord,
    UserStore,
};
use crate::domain::code::Code;
use crate::domain::user::{Email, UserDraft, UserId};

/// One shard: a stable name (its place on the ring) and its database.
#[derive(Debug, Clone)]
pub struct Shard {
    /// The ring name.
    pub name: String,
    /// Virtual nodes (its weight).
    pub vnodes: u32,
    /// The database.
    pub store: Arc<PgStore>,
}

/// The sharded store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShardedStore {
    shards: Vec<Shard>,
    ring: Arc<Ring>,
}

impl ShardedStore {
    /// A store over `shards`; the first is the directory.
    pub fn new(shards: Vec<Shard>) -> anyhow::Result<Self> {
        anyhow::ensure!(!shards.is_empty(), "at least one shard is needed");
        let ring = Ring::new(
            shards
                .iter()
                .map(|s| RingMember {
                    name: s.name.clone(),
                    vnodes: s.vnodes,
                })
                .collect(),
        );
        Ok(Self {
            shards,
            ring: Arc::new(ring),
        })
    }

    /// The shards.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The ring.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    fn directory(&self) -> &PgStore {
        &self.shards[0].store
    }

    fn owner(&self, code: &Code) -> usize {
        self.ring.owner(code.as_str().as_bytes())
    }

    /// Shard indexes to look in for `code`: its owner first, then the others.
    fn search_order(&self, code: &Code) -> impl Iterator<Item = usize> + '_ {
        let owner = self.owner(code);
        std::iter::once(owner).chain((0..self.shards.len()).filter(move |i| *i != owner))
    }

    /// `codes` grouped by the shard that owns them (clicks are counted there), one group
    /// per shard that has any, so a batch read is one statement per shard.
    fn by_owner(&self, codes: &[Code]) -> Vec<(Arc<PgStore>, Vec<Code>)> {
        let mut groups: Vec<Vec<Code>> = vec![Vec::new(); self.shards.len()];
        for c in codes {
            groups[self.owner(c)].push(c.clone());
        }
        groups
            .into_iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
            .map(|(i, g)| (self.shards[i].store.clone(), g))
            .collect()
    }

    /// Runs `op` on the shard holding `code`: the owner, else the others. A link moving
    /// between shards can be missed by one round, so `NotFound` gets a second round.
    async fn on_holder<T, F, Fut>(&self, code: &Code, op: F) -> StoreResult<T>
    where
        F: Fn(Arc<PgStore>) -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        for _ in 0..2 {
            for i in self.search_order(code) {
                match op(self.shards[i].store.clone()).await {
                    Err(StoreError::NotFound) => continue,
                    other => return other,
                }
            }
        }
        Err(StoreError::NotFound)
    }

    /// Moves every link whose owner changed to its owner; returns how many moved. Runs
    /// online: reads find a link on either shard while it moves.
    pub async fn rebalance(&self) -> StoreResult<u64> {
        let mut moved = 0;
        for (i, shard) in self.shards.iter().enumerate() {
            let mut after = String::new();
            loop {
                let codes = shard.store.codes_after(&after, 1_000).await?;
                let Some(last) = codes.last() else { break };
                after = last.to_string();
                for code in &codes {
                    let owner = self.owner(code);
                    if owner != i
                        && shard
                            .store
                            .move_link_to(code, &self.shards[owner].store)
                            .await?
                    {
                        moved += 1;
                    }
                }
            }
        }
        Ok(moved)
    }

    async fn taken_elsewhere(&self, code: &Code, owner: usize) -> StoreResult<bool> {
        for (i, s) in self.shards.iter().enumerate() {
            if i != owner && s.store.has_code(code).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[async_trait]
impl LinkStore for ShardedStore {
    async fn insert_link(
        &self,
        link: &LinkRecord,
        idempotency: Option<&IdempotencySave>,
    ) -> StoreResult<()> {
        let owner = self.owner(&link.code);
        // The idempotency record lives on the directory, the link on its owner: two
        // transactions. The record is claimed first, so a concurrent retry waits (409) and
        // never creates a second link; a failed insert releases it.
        if let Some(idem) = idempotency
            && !self
                .directory()
                .claim_idempotency(idem, link.created_at)
                .await?
        {
            return Err(StoreError::Conflict(Taken::IdempotencyKey));
        }
        let inserted = async {
            // A code is unique across shards: one not yet moved to its owner still counts.
            if self.taken_elsewhere(&link.code, owner).await? {
                return Err(StoreError::Conflict(Taken::Code));
            }
            self.shards[owner].store.insert_link(link, None).await?;
            if self.taken_elsewhere(&link.code, owner).await? {
                // A rebalance raced us with the older link of this code: it wins.
                self.shards[owner].store.remove_link(&link.code).await?;
                return Err(StoreError::Conflict(Taken::Code));
            }
            Ok(())
        }
        .await;
        if let Some(idem) = idempotency {
            match &inserted {
                Ok(()) => self.directory().complete_idempotency(idem).await?,
                Err(_) => self.directory().release_idempotency(idem).await?,
            }
        }
        inserted
    }

    async fn insert_links(&self, links: &[LinkRecord]) -> StoreResult<Vec<StoreResult<()>>> {
        let mut by_shard: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, l) in links.iter().enumerate() {
            by_shard.entry(self.owner(&l.code)).or_default().push(i);
        }
        let mut results: Vec<Option<StoreResult<()>>> = links.iter().map(|_| None).collect();
        for (shard, idx) in by_shard {
            let batch: Vec<LinkRecord> = idx.iter().map(|i| links[*i].clone()).collect();
            let outcome = self.shards[shard].store.insert_links(&batch).await?;
            for (i, r) in idx.into_iter().zip(outcome) {
                results[i] = Some(r);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(StoreError::NotFound)))
            .collect())
    }

    async fn get_link(&self, code: &Code) -> StoreResult<Option<LinkRecord>> {
        let found = self
            .on_holder(code, |s| async move {
                s.get_link(code).await?.ok_or(StoreError::NotFound)
            })
            .await;
        match found {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn get_redirect(&self, code: &Code) -> StoreResult<Option<RedirectTarget>> {
        let found = self
            .on_holder(code, |s| async move {
                s.get_redirect(code).await?.ok_or(StoreError::NotFound)
            })
            .await;
        match found {
            Err(StoreError::NotFound) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn consume_click(&self, code: &Code) -> StoreResult<bool> {
        // `false` means "used up" or "not here": only the holder can say which.
        for i in self.search_order(code) {
            let s = &self.shards[i].store;
            if s.consume_click(code).await? {
                return Ok(true);
            }
            if s.has_code(code).await? {
                return Ok(false);
            }
        }
        Ok(false)
    }

    async fn update_link(
        &self,
        code: &Code,
        fields: &LinkFields,
        now: DateTime<Utc>,
    ) -> StoreResult<LinkRecord> {
        self.on_holder(
            code,
            |s| async move { s.update_link(code, fields, now).await },
        )
        .await
    }

    async fn delete_link(&self, code: &Code, now: DateTime<Utc>) -> StoreResult<()> {
        self.on_holder(code, |s| async move { s.delete_link(code, now).await })
            .await
    }

    async fn delete_links_of(
        &self,
        owner_id: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Code>> {
        let mut codes = Vec::new();
        for s in &self.shards {
            codes.extend(s.store.delete_links_of(owner_id, now).await?);
        }
        Ok(codes)
    }

    async fn list_links(&self, query: &LinkQuery) -> StoreResult<LinkPage> {
        // Every shard answers the same keyset page (or, for offsets, everything up to the
        // end of the page); the merge keeps the global order.
        let (per_shard, skip) = match &query.page {
            PageRequest::After(_) => (query.clone(), 0),
            PageRequest::Offset(off) => {
                let wanted = off.saturating_add(u64::from(query.limit));
                let limit = u32::try_from(wanted).unwrap_or(u32::MAX);
                (
                    LinkQuery {
                        limit,
                        page: PageRequest::Offset(0),
                        ..query.clone()
                    },
                    usize::try_from(*off).unwrap_or(usize::MAX),
                )
            }
        };
        let mut all = Vec::new();
        let mut more = false;
        let mut total = 0u64;
        for s in &self.shards {
            let page = s.store.list_links(&per_shard).await?;
            more |= page.has_more;
            total += page.total.unwrap_or(0);
            all.extend(page.links);
        }
        all.sort_by(|a, b| query.order.compare(a, b));
        let limit = query.limit as usize;
        let mut links: Vec<LinkRecord> = all.into_iter().skip(skip).collect();
        let has_more = more || links.len() > limit;
        links.truncate(limit);
        Ok(LinkPage {
            links,
            has_more,
            total: matches!(query.page, PageRequest::Offset(_)).then_some(total),
        })
    }

    async fn get_idempotency(
        &self,
        user_id: UserId,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        self.directory()
            .get_idempotency(user_id, key, not_before)
            .await
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.directory().purge_idempotency(before).await
    }

    async fn apply_clicks(&self, batch_id: &str, clicks: &[ClickFact]) -> StoreResult<usize> {
        let mut by_shard: HashMap<usize, Vec<ClickFact>> = HashMap::new();
        for c in clicks {
            by_shard
                .entry(self.owner(&c.code))
                .or_default()
                .push(c.clone());
        }
        let mut applied = 0;
        for (shard, batch) in by_shard {
            applied += self.shards[shard]
                .store
                .apply_clicks(batch_id, &batch)
                .await?;
        }
        Ok(applied)
    }

    async fn apply_click_totals(&self, batch_id: &str, totals: &ClickTotals) -> StoreResult<bool> {
        let mut applied = false;
        for (shard, part) in totals.clone().split(|code| self.owner(code)) {
            applied |= self.shards[shard]
                .store
                .apply_click_totals(batch_id, &part)
                .await?;
        }
        Ok(applied)
    }

    async fn click_stats(
        &self,
        code: &Code,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_ms: i64,
    ) -> StoreResult<ClickStats> {
        // Counts follow the link: they are on the shard that holds it.
        self.on_holder(code, |s| async move {
            match s.get_redirect(code).await? {
                Some(_) => s.click_stats(code, from, to, bucket_ms).await,
                None => Err(StoreError::NotFound),
            }
        })
        .await
    }

    async fn click_sums(
        &self,
        codes: &[Code],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<Code, ClickSums>> {
        let mut out = HashMap::new();
        for (shard, codes) in self.by_owner(codes) {
            out.extend(shard.click_sums(&codes, from, to).await?);
        }
        Ok(out)
    }

    async fn click_series(
        &self,
        codes: &[Code],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket_ms: i64,
    ) -> StoreResult<HashMap<Code, Vec<(i64, i64, i64)>>> {
        let mut out = HashMap::new();
        for (shard, codes) in self.by_owner(codes) {
            out.extend(shard.click_series(&codes, from, to, bucket_ms).await?);
        }
        Ok(out)
    }

    async fn click_dims(
        &self,
        codes: &[Code],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<HashMap<Code, Vec<(String, String, i64)>>> {
        let mut out = HashMap::new();
        for (shard, codes) in self.by_owner(codes) {
            out.extend(shard.click_dims(&codes, from, to).await?);
        }
        Ok(out)
    }

    async fn count_links(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, u64>> {
        // An owner's links are on every shard: each shard counts its own.
        let mut out: HashMap<UserId, u64> = HashMap::new();
        for s in &self.shards {
            for (owner, n) in s.store.count_links(owners).await? {
                *out.entry(owner).or_default() += n;
            }
        }
        Ok(out)
    }

    async fn owner_clicks(&self, owner: UserId) -> StoreResult<i64> {
        let mut total = 0;
        for s in &self.shards {
            total += s.store.owner_clicks(owner).await?;
        }
        Ok(total)
    }

    async fn owner_tags(&self, owners: &[UserId]) -> StoreResult<HashMap<UserId, Vec<TagCount>>> {
        let mut merged: HashMap<UserId, std::collections::BTreeMap<String, u64>> = HashMap::new();
        for s in &self.shards {
            for (owner, tags) in s.store.owner_tags(owners).await? {
                let mine = merged.entry(owner).or_default();
                for t in tags {
                    *mine.entry(t.tag).or_default() += t.links;
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(owner, tags)| {
                let tags = tags
                    .into_iter()
                    .map(|(tag, links)| TagCount { tag, links })
                    .collect();
                (owner, tags)
            })
            .collect())
    }

    async fn daily_salt(&self, day_ms: i64, candidate: &str) -> StoreResult<String> {
        self.directory().daily_salt(day_ms, candidate).await
    }

    async fn ping(&self) -> StoreResult<()> {
        for s in &self.shards {
            LinkStore::ping(&*s.store).await?;
        }
        Ok(())
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.store.pool_usage().into_iter().map(|mut u| {
                    u.pool = s.name.clone();
                    u
                })
            })
            .collect()
    }
}

/// Users and keys: all on the directory shard.
#[async_trait]
impl UserStore for ShardedStore {
    async fn bootstrap_admin(
        &self,
        a: &UserDraft,
        k: &NewKey,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.directory().bootstrap_admin(a, k, now).await
    }
    async fn create_user(&self, u: &UserDraft, now: DateTime<Utc>) -> StoreResult<UserRecord> {
        self.directory().create_user(u, now).await
    }
    async fn get_user(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        self.directory().get_user(id).await
    }
    async fn get_users(&self, ids: &[UserId]) -> StoreResult<Vec<UserRecord>> {
        self.directory().get_users(ids).await
    }
    async fn find_user_by_email(&self, e: &Email) -> StoreResult<Option<UserRecord>> {
        self.directory().find_user_by_email(e).await
    }
    async fn list_users(
        &self,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<(Vec<UserRecord>, bool)> {
        self.directory().list_users(after, limit).await
    }
    async fn count_admins(&self) -> StoreResult<u64> {
        self.directory().count_admins().await
    }
    async fn update_user(
        &self,
        id: UserId,
        u: &UserDraft,
        now: DateTime<Utc>,
    ) -> StoreResult<UserRecord> {
        self.directory().update_user(id, u, now).await
    }
    async fn delete_user(&self, id: UserId, now: DateTime<Utc>) -> StoreResult<()> {
        self.directory().delete_user(id, now).await
    }
    async fn create_key(&self, k: &NewKey, now: DateTime<Utc>) -> StoreResult<KeyRecord> {
        self.directory().create_key(k, now).await
    }
    async fn list_keys(&self, user_id: UserId) -> StoreResult<Vec<KeyRecord>> {
        self.directory().list_keys(user_id).await
    }
    async fn revoke_key(
        &self,
        user_id: UserId,
        key_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.directory().revoke_key(user_id, key_id, now).await
    }
    async fn authenticate(&self, hash: &str) -> StoreResult<Option<(UserRecord, KeyRecord)>> {
        self.directory().authenticate(hash).await
    }
    async fn live_key_hashes(&self) -> StoreResult<Vec<String>> {
        self.directory().live_key_hashes().await
    }
    async fn touch_key(&self, key_id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        self.directory().touch_key(key_id, now).await
    }
    async fn password_hash(&self, id: UserId) -> StoreResult<Option<String>> {
        self.directory().password_hash(id).await
    }
    async fn set_password(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.directory().set_password(id, hash, now).await
    }
    async fn create_session(&self, s: &NewSession, now: DateTime<Utc>) -> StoreResult<()> {
        self.directory().create_session(s, now).await
    }
    async fn session(&self, hash: &str) -> StoreResult<Option<(UserRecord, SessionRecord)>> {
        self.directory().session(hash).await
    }
    async fn touch_session(&self, hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
        self.directory().touch_session(hash, now).await
    }
    async fn end_session(&self, hash: &str) -> StoreResult<bool> {
        self.directory().end_session(hash).await
    }
    async fn end_sessions_of(&self, user_id: UserId, keep: &str) -> StoreResult<u64> {
        self.directory().end_sessions_of(user_id, keep).await
    }
    async fn purge_sessions(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.directory().purge_sessions(before).await
    }
}
