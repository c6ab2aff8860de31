//! Batch loading: the nested fields of a page of N links (owners, click totals, series,
//! top values) and of a page of users (link counts, tags) cost one use-case call per kind
//! of field, whatever N is; on shards the store makes that one statement per shard.
//!
//! A resolver asks [`Batch::load_one`] for its key and waits. The keys of one kind queue
//! up until the request has nothing left to do but wait; then [`drive`] takes every queue
//! and makes one load per kind. One `Batch` is made per request, with that request's
//! caller: nothing is cached across requests or callers.
//!
//! (async-graphql's `DataLoader` does the same on a timer: it waits a moment, at least a
//! tick of tokio's millisecond clock, for more keys. On this machine that was about 40 %
//! of a 100-link page's time, and a busy machine could split a level into several
//! batches. The comparison is in `docs/benchmarks.md`.)

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use async_graphql::Error;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::oneshot;

use super::error::{gql, unauthorized};
use crate::app::stats::Range;
use crate::app::{AppState, Caller, links, stats, users};
use crate::domain::code::Code;
use crate::domain::user::UserId;
use crate::store::{ClickSums, TagCount, UserRecord};

/// Where a waiting resolver gets its value.
type Reply<V> = oneshot::Sender<Result<Option<V>, Error>>;

/// The keys each kind of load has queued, with their resolvers' replies.
#[derive(Default)]
pub struct Queues {
    users: Vec<(UserKey, Reply<UserRecord>)>,
    sums: Vec<(SumsKey, Reply<ClickSums>)>,
    series: Vec<(SeriesKey, Reply<Series>)>,
    top: Vec<(TopKey, Reply<Top>)>,
    counts: Vec<(CountKey, Reply<u64>)>,
    tags: Vec<(TagsKey, Reply<Vec<TagCount>>)>,
}

/// A link's series: every bucket's start and clicks.
pub type Series = Vec<(chrono::DateTime<chrono::Utc>, i64)>;

/// A link's top values: per dimension, `(value, clicks)`, most first.
pub type Top = Vec<(String, Vec<(String, i64)>)>;

/// What a request's loads need: the services and the caller.
pub struct Loader {
    state: AppState,
    caller: Option<Caller>,
}

impl Loader {
    fn caller(&self) -> Result<&Caller, Error> {
        self.caller.as_ref().ok_or_else(unauthorized)
    }
}

/// One kind of key that is loaded in batches.
pub trait Load: Clone + Eq + Hash + Send + Sync + 'static {
    /// What a key loads.
    type Value: Clone + Send + 'static;

    /// The queue of this kind.
    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)>;

    /// Loads `keys` (no two alike) in one call; keys without a value are absent.
    fn load(
        loader: &Loader,
        keys: Vec<Self>,
    ) -> impl Future<Output = Result<HashMap<Self, Self::Value>, Error>> + Send;
}

/// The batch loads of one request.
pub struct Batch {
    loader: Arc<Loader>,
    queues: Mutex<Queues>,
}

impl Batch {
    /// The loads of a request by `caller`; run the request with [`drive`].
    pub fn new(state: AppState, caller: Option<Caller>) -> Self {
        Self {
            loader: Arc::new(Loader { state, caller }),
            queues: Mutex::default(),
        }
    }

    /// The value of `key`, loaded in one batch with every key of its kind that the
    /// request's other resolvers ask for meanwhile.
    pub async fn load_one<K: Load>(&self, key: K) -> Result<Option<K::Value>, Error> {
        let (reply, value) = oneshot::channel();
        K::queue(&mut self.queues.lock().unwrap_or_else(|e| e.into_inner())).push((key, reply));
        value
            .await
            .unwrap_or_else(|_| Err(Error::new("a batch load was dropped")))
    }

    /// One load per kind with queued keys, taking the queues.
    fn take(&self) -> Vec<BoxFuture<'static, ()>> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut loads = Vec::new();
        self.push::<UserKey>(&mut queues, &mut loads);
        self.push::<SumsKey>(&mut queues, &mut loads);
        self.push::<SeriesKey>(&mut queues, &mut loads);
        self.push::<TopKey>(&mut queues, &mut loads);
        self.push::<CountKey>(&mut queues, &mut loads);
        self.push::<TagsKey>(&mut queues, &mut loads);
        loads
    }

    fn push<K: Load>(&self, queues: &mut Queues, loads: &mut Vec<BoxFuture<'static, ()>>) {
        let waiting = std::mem::take(K::queue(queues));
        if waiting.is_empty() {
            return;
        }
        let loader = self.loader.clone();
        loads.push(Box::pin(async move {
            let keys: HashSet<K> = waiting.iter().map(|(k, _)| k.clone()).collect();
            let loaded = K::load(&loader, keys.into_iter().collect()).await;
            for (key, reply) in waiting {
                let _ = reply.send(match &loaded {
                    Ok(values) => Ok(values.get(&key).cloned()),
                    Err(e) => Err(e.clone()),
                });
            }
        }));
    }
}

/// Runs `request` and, on the same task, the loads of `batch`. The loads start only
/// when the request is waiting for something, not when it merely paused: a long list
/// pauses its resolvers every few dozen items to be fair to other tasks, and loading then
/// would split one level's keys into several batches. So each level of a query makes one
/// batch per kind, whatever its size and whatever the timing.
pub async fn drive<F: Future>(request: F, batch: &Batch) -> F::Output {
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
            running.extend(batch.take());
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
) -> Result<HashMap<K, V>, Error>
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

impl Load for UserKey {
    type Value = UserRecord;

    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)> {
        &mut queues.users
    }

    async fn load(loader: &Loader, keys: Vec<Self>) -> Result<HashMap<Self, UserRecord>, Error> {
        let ids: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let found = users::get_many(&loader.state, loader.caller()?, &ids)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(found.into_iter().map(|(id, u)| (UserKey(id), u)).collect())
    }
}

impl Load for SumsKey {
    type Value = ClickSums;

    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)> {
        &mut queues.sums
    }

    async fn load(loader: &Loader, keys: Vec<Self>) -> Result<HashMap<Self, ClickSums>, Error> {
        let caller = loader.caller()?;
        let mut out = per_range(
            &keys,
            |k| &k.0,
            SumsKey,
            |links, range| async move { stats::sums_of(&loader.state, caller, &links, range).await },
        )
        .await?;
        // A link without clicks in the range has no row: its totals are zero.
        for k in &keys {
            if caller.may_access(k.0.owner) {
                out.entry(k.clone()).or_default();
            }
        }
        Ok(out)
    }
}

impl Load for SeriesKey {
    type Value = Series;

    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)> {
        &mut queues.series
    }

    async fn load(loader: &Loader, keys: Vec<Self>) -> Result<HashMap<Self, Series>, Error> {
        let caller = loader.caller()?;
        per_range(&keys, |k| &k.0, SeriesKey, |links, range| async move {
            stats::series_of(&loader.state, caller, &links, range).await
        })
        .await
    }
}

impl Load for TopKey {
    type Value = Top;

    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)> {
        &mut queues.top
    }

    async fn load(loader: &Loader, keys: Vec<Self>) -> Result<HashMap<Self, Top>, Error> {
        let caller = loader.caller()?;
        per_range(
            &keys,
            |k| &k.0,
            TopKey,
            |links, range| async move { stats::top_of(&loader.state, caller, &links, range).await },
        )
        .await
    }
}

impl Load for CountKey {
    type Value = u64;

    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)> {
        &mut queues.counts
    }

    async fn load(loader: &Loader, keys: Vec<Self>) -> Result<HashMap<Self, u64>, Error> {
        let owners: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let counts = links::counts_of(&loader.state, loader.caller()?, &owners)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(counts.into_iter().map(|(o, n)| (CountKey(o), n)).collect())
    }
}

impl Load for TagsKey {
    type Value = Vec<TagCount>;

    fn queue(queues: &mut Queues) -> &mut Vec<(Self, Reply<Self::Value>)> {
        &mut queues.tags
    }

    async fn load(loader: &Loader, keys: Vec<Self>) -> Result<HashMap<Self, Vec<TagCount>>, Error> {
        let owners: Vec<UserId> = keys.iter().map(|k| k.0).collect();
        let tags = links::tags_of(&loader.state, loader.caller()?, &owners)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(tags.into_iter().map(|(o, t)| (TagsKey(o), t)).collect())
    }
}
