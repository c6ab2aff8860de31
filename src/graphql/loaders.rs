//! Batch loading: the nested fields of a page of N links (owners, click totals, series,
//! top values) and of a page of users (link counts, tags) cost one use-case call per kind
//! of field, whatever N is. Each loader collects the keys of every resolver of one level,
//! then makes one call ([`drive`] says how); on shards the store makes that one statement
//! per shard. One `Batch` is made per request, with that request's caller: nothing is
//! cached across requests or callers.

use std::collections::HashMap;
use std::hash::Hash;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::error::{gql, unauthorized};
use crate::app::stats::Range;
use crate::app::{AppState, Caller, links, stats, users};
use crate::domain::code::Code;
use crate::domain::user::UserId;
use crate::store::{ClickSums, TagCount, UserRecord};

/// Most keys in one batch.
const MAX_BATCH: usize = 500;

/// The loaders of one request.
pub struct Batch {
    state: AppState,
    caller: Option<Caller>,
}

/// The loads a request's loaders have started, for [`drive`] to run.
pub type Loads = mpsc::UnboundedReceiver<BoxFuture<'static, ()>>;

impl Batch {
    /// The loaders of a request by `caller`, and the loads they start: run the request
    /// with [`drive`].
    pub fn loader(state: AppState, caller: Option<Caller>) -> (DataLoader<Self>, Loads) {
        let (tx, rx) = mpsc::unbounded_channel();
        let spawn = move |load: BoxFuture<'static, ()>| {
            let _ = tx.send(load);
        };
        let loader = DataLoader::new(Self { state, caller }, spawn)
            .delay(Duration::ZERO)
            .max_batch_size(MAX_BATCH);
        (loader, rx)
    }

    fn caller(&self) -> Result<&Caller, async_graphql::Error> {
        self.caller.as_ref().ok_or_else(unauthorized)
    }
}

/// Runs `request` and, on the same task, the loads its loaders start. A load starts only
/// when the request is waiting for something, not when it merely paused: a long list
/// pauses its resolvers every few dozen items to be fair to other tasks, and starting a
/// load then would split one level's keys into several batches. So each level of a query
/// makes one batch per loader, whatever its size and whatever the timing.
pub async fn drive<F: Future>(request: F, mut loads: Loads) -> F::Output {
    let mut request = std::pin::pin!(request);
    let mut running = FuturesUnordered::new();
    std::future::poll_fn(move |cx| {
        loop {
            let paused = Arc::new(Paused {
                woken: AtomicBool::new(false),
                waker: cx.waker().clone(),
            });
            let waker = Waker::from(paused.clone());
            if let Poll::Ready(out) = request.as_mut().poll(&mut Context::from_waker(&waker)) {
                return Poll::Ready(out);
            }
            if paused.woken.load(Ordering::Acquire) {
                // It paused and asked to go on: let it ask for its other keys first.
                continue;
            }
            while let Poll::Ready(Some(load)) = loads.poll_recv(cx) {
                running.push(load);
            }
            let mut finished = false;
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {
                finished = true;
            }
            if !finished {
                return Poll::Pending;
            }
        }
    })
    .await
}

/// The waker of one poll of the request: notes that the request asked to be polled again
/// (and passes the call on).
struct Paused {
    woken: AtomicBool,
    waker: Waker,
}

impl Wake for Paused {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.waker.wake_by_ref();
    }
}

/// A user, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(pub UserId);

/// A link's statistics over a range: its code, its owner (as the caller read the link)
/// and the range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatsKey {
    /// The link.
    pub code: Code,
    /// Its owner.
    pub owner: UserId,
    /// The range.
    pub range: Range,
}

/// A link's click totals over a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SumsKey(pub StatsKey);

/// A link's series over a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey(pub StatsKey);

/// A link's top values over a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopKey(pub StatsKey);

/// The number of a user's live links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountKey(pub UserId);

/// The tags of a user's live links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagsKey(pub UserId);

/// The keys grouped by range (a request usually asks for one), as `(code, owner)` lists.
fn by_range<'a>(keys: impl Iterator<Item = &'a StatsKey>) -> HashMap<Range, Vec<(Code, UserId)>> {
    let mut groups: HashMap<Range, Vec<(Code, UserId)>> = HashMap::new();
    for k in keys {
        groups
            .entry(k.range)
            .or_default()
            .push((k.code.clone(), k.owner));
    }
    groups
}

/// Runs `load` once per range of `keys` and keys each value by its `StatsKey` wrapper.
async fn per_range<K, V, F, Fut>(
    keys: &[K],
    inner: impl Fn(&K) -> &StatsKey,
    wrap: impl Fn(StatsKey) -> K,
    load: F,
) -> Result<HashMap<K, V>, async_graphql::Error>
where
    K: Eq + Hash,
    F: Fn(Vec<(Code, UserId)>, Range) -> Fut,
    Fut: Future<Output = Result<HashMap<Code, V>, crate::app::AppError>>,
{
    let mut out = HashMap::new();
    for (range, links) in by_range(keys.iter().map(inner)) {
        let owners: HashMap<Code, UserId> = links.iter().cloned().collect();
        for (code, value) in load(links, range).await.map_err(|e| gql(e, ""))? {
            if let Some(&owner) = owners.get(&code) {
                out.insert(wrap(StatsKey { code, owner, range }), value);
            }
        }
    }
    Ok(out)
}

impl Loader<UserKey> for Batch {
    type Value = UserRecord;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, UserRecord>, Self::Error> {
        let ids: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let found = users::get_many(&self.state, self.caller()?, &ids)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(found.into_iter().map(|(id, u)| (UserKey(id), u)).collect())
    }
}

impl Loader<SumsKey> for Batch {
    type Value = ClickSums;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[SumsKey]) -> Result<HashMap<SumsKey, ClickSums>, Self::Error> {
        let caller = self.caller()?;
        let mut out = per_range(
            keys,
            |k| &k.0,
            SumsKey,
            |links, range| async move { stats::sums_of(&self.state, caller, &links, range).await },
        )
        .await?;
        // A link without clicks in the range has no row: its totals are zero.
        for k in keys {
            if caller.may_access(k.0.owner) {
                out.entry(k.clone()).or_default();
            }
        }
        Ok(out)
    }
}

impl Loader<SeriesKey> for Batch {
    type Value = Vec<(chrono::DateTime<chrono::Utc>, i64)>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[SeriesKey],
    ) -> Result<HashMap<SeriesKey, Self::Value>, Self::Error> {
        let caller = self.caller()?;
        per_range(keys, |k| &k.0, SeriesKey, |links, range| async move {
            stats::series_of(&self.state, caller, &links, range).await
        })
        .await
    }
}

impl Loader<TopKey> for Batch {
    type Value = Vec<(String, Vec<(String, i64)>)>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TopKey]) -> Result<HashMap<TopKey, Self::Value>, Self::Error> {
        let caller = self.caller()?;
        per_range(
            keys,
            |k| &k.0,
            TopKey,
            |links, range| async move { stats::top_of(&self.state, caller, &links, range).await },
        )
        .await
    }
}

impl Loader<CountKey> for Batch {
    type Value = u64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[CountKey]) -> Result<HashMap<CountKey, u64>, Self::Error> {
        let owners: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let counts = links::counts_of(&self.state, self.caller()?, &owners)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(counts.into_iter().map(|(o, n)| (CountKey(o), n)).collect())
    }
}

impl Loader<TagsKey> for Batch {
    type Value = Vec<TagCount>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TagsKey]) -> Result<HashMap<TagsKey, Vec<TagCount>>, Self::Error> {
        let owners: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let tags = links::tags_of(&self.state, self.caller()?, &owners)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(tags.into_iter().map(|(o, t)| (TagsKey(o), t)).collect())
    }
}
