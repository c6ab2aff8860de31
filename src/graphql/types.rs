//! The object types of the schema. Each wraps a record of the use cases; nested fields
//! call a use case (through a loader, when many objects of a page ask at once).

use async_graphql::{
    Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, Scalar, ScalarType,
    SimpleObject, Value,
};
use base64::Engine;
use chrono::{DateTime, Utc};

use super::error::{gql, invalid, unauthorized};
use super::loaders::{Batch, CountKey, SeriesKey, StatsKey, SumsKey, TagsKey, TopKey, UserKey};
use crate::app::stats::{Interval, Range};
use crate::app::{AppState, Caller};
use crate::domain::user::Role;
use crate::store::{KeyRecord, LinkCursor, LinkPage, LinkRecord, UserRecord};

/// What every resolver of a request can reach.
pub struct RequestData {
    /// The services.
    pub state: AppState,
    /// The caller, when the request carries a valid API key.
    pub caller: Option<Caller>,
}

/// The services of the request.
pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    &ctx.data_unchecked::<RequestData>().state
}

/// The caller of the request; an `unauthorized` error without an API key.
pub fn caller<'a>(ctx: &Context<'a>) -> Result<&'a Caller> {
    ctx.data_unchecked::<RequestData>()
        .caller
        .as_ref()
        .ok_or_else(unauthorized)
}

/// The batch loads of the request.
pub fn batch<'a>(ctx: &Context<'a>) -> &'a Batch {
    ctx.data_unchecked::<std::sync::Arc<Batch>>()
}

/// An instant: RFC 3339, UTC, milliseconds, as the REST API writes times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant(pub DateTime<Utc>);

/// An instant in RFC 3339 (`2026-12-07T21:30:00.000Z`); any offset is accepted on input.
#[Scalar(name = "DateTime")]
impl ScalarType for Instant {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| Instant(t.with_timezone(&Utc)))
                .map_err(|_| "must be an RFC 3339 date-time".into()),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(crate::http::links::rfc3339(self.0))
    }
}

/// The page size asked for: 1 to [`MAX_FIRST`], [`DEFAULT_FIRST`] when absent.
pub fn page_size(first: Option<i32>) -> Result<u32> {
    match first {
        None => Ok(DEFAULT_FIRST),
        Some(n) if (1..=MAX_FIRST as i32).contains(&n) => Ok(n as u32),
        Some(_) => Err(invalid(&[("first", "must be between 1 and 100")])),
    }
}

/// Default page size.
pub const DEFAULT_FIRST: u32 = 20;
/// Largest page size.
pub const MAX_FIRST: u32 = 100;

/// What the complexity of a list field is: its items' complexity times the page size.
pub fn list_complexity(first: Option<i32>, child: usize) -> usize {
    let n = first.map_or(DEFAULT_FIRST as usize, |n| {
        n.clamp(1, MAX_FIRST as i32) as usize
    });
    n.saturating_mul(child).saturating_add(1)
}

/// Where a page ends.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether more items follow.
    pub has_next_page: bool,
    /// Always false: pages go forward only.
    pub has_previous_page: bool,
    /// The cursor of the first item.
    pub start_cursor: Option<String>,
    /// The cursor of the last item: pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    fn of(cursors: &[String], has_next_page: bool) -> Self {
        Self {
            has_next_page,
            has_previous_page: false,
            start_cursor: cursors.first().cloned(),
            end_cursor: cursors.last().cloned(),
        }
    }
}

/// Which of a user's links.
#[derive(InputObject, Default)]
pub struct LinkFilter {
    /// Only links with this tag.
    pub tag: Option<String>,
    /// Only links whose URL, title or code contains this text.
    pub q: Option<String>,
}

/// A page of links, newest first.
pub struct LinkConnection(pub LinkPage);

/// One link of a page.
#[derive(SimpleObject)]
pub struct LinkEdge {
    /// Its position, for `after`.
    pub cursor: String,
    /// The link.
    pub node: LinkNode,
}

/// A page of links, newest first.
#[Object(name = "LinkConnection")]
impl LinkConnection {
    /// The links with their cursors.
    async fn edges(&self) -> Vec<LinkEdge> {
        self.0
            .links
            .iter()
            .map(|l| LinkEdge {
                cursor: link_cursor(l),
                node: LinkNode(l.clone()),
            })
            .collect()
    }

    /// The links alone.
    async fn nodes(&self) -> Vec<LinkNode> {
        self.0.links.iter().cloned().map(LinkNode).collect()
    }

    /// Where the page ends.
    async fn page_info(&self) -> PageInfo {
        let cursors: Vec<String> = self.0.links.iter().map(link_cursor).collect();
        PageInfo::of(&cursors, self.0.has_more)
    }
}

fn link_cursor(l: &LinkRecord) -> String {
    LinkCursor {
        created_at: l.created_at.timestamp_millis(),
        code: l.code.to_string(),
    }
    .encode()
}

/// Reads an `after` cursor of a link listing.
pub fn parse_link_cursor(after: Option<String>) -> Result<Option<LinkCursor>> {
    after
        .map(|a| {
            LinkCursor::decode(&a)
                .ok_or_else(|| invalid(&[("after", "is not a cursor of this listing")]))
        })
        .transpose()
}

/// A short link.
#[derive(Clone)]
pub struct LinkNode(pub LinkRecord);

/// An image format of QR codes.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum QrFormat {
    /// Scalable vector graphics.
    Svg,
    /// A greyscale PNG.
    Png,
}

/// The size of a statistics bucket.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Interval")]
pub enum GqlInterval {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

/// A short link.
#[Object(name = "Link")]
impl LinkNode {
    /// The short code.
    async fn code(&self) -> &str {
        self.0.code.as_str()
    }

    /// The full short URL.
    async fn short_url(&self, ctx: &Context<'_>) -> String {
        format!("{}/{}", state(ctx).settings.base_url, self.0.code)
    }

    /// Destination.
    async fn url(&self) -> &str {
        self.0.fields.url.as_str()
    }

    /// Title.
    async fn title(&self) -> Option<&str> {
        self.0.fields.title.as_deref()
    }

    /// Tags, sorted.
    async fn tags(&self) -> &[String] {
        &self.0.fields.tags
    }

    /// The owner's user id.
    async fn owner_id(&self) -> ID {
        ID(self.0.owner_id.to_string())
    }

    /// 301, 302, 307 or 308.
    async fn redirect_status(&self) -> i32 {
        i32::from(self.0.fields.redirect_status.code())
    }

    /// Expiry.
    async fn expires_at(&self) -> Option<Instant> {
        self.0.fields.expires_at.map(Instant)
    }

    /// Click limit.
    async fn max_clicks(&self) -> Option<i64> {
        self.0.fields.max_clicks
    }

    /// Whether a password protects the link.
    async fn has_password(&self) -> bool {
        self.0.fields.password_hash.is_some()
    }

    /// Redirects counted.
    async fn clicks(&self) -> i64 {
        self.0.clicks
    }

    /// Creation time.
    async fn created_at(&self) -> Instant {
        Instant(self.0.created_at)
    }

    /// Time of the last change.
    async fn updated_at(&self) -> Instant {
        Instant(self.0.updated_at)
    }

    /// The owner (batched: one store call for a whole page).
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<UserNode>> {
        Ok(batch(ctx)
            .load_one(UserKey(self.0.owner_id))
            .await?
            .map(UserNode))
    }

    /// Click statistics over `[from, to)`: `to` defaults to now, `from` to 7 days before
    /// `to`, the interval to hours for ranges up to 2 days.
    async fn stats(
        &self,
        ctx: &Context<'_>,
        from: Option<Instant>,
        to: Option<Instant>,
        interval: Option<GqlInterval>,
    ) -> Result<StatsNode> {
        caller(ctx)?;
        let interval = interval.map(|i| match i {
            GqlInterval::Hour => Interval::Hour,
            GqlInterval::Day => Interval::Day,
        });
        let range = Range::new(
            state(ctx).clock.now(),
            from.map(|t| t.0),
            to.map(|t| t.0),
            interval,
        )
        .map_err(|e| gql(e, ""))?;
        Ok(StatsNode(StatsKey {
            code: self.0.code.clone(),
            owner: self.0.owner_id,
            range,
        }))
    }

    /// A QR code of the short URL, 64 to 2048 pixels wide.
    #[graphql(complexity = 10)]
    async fn qr(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "QrFormat::Svg")] format: QrFormat,
        #[graphql(default = 256)] size: i32,
    ) -> Result<QrNode> {
        let size = u32::try_from(size)
            .ok()
            .filter(|s| (crate::qr::MIN_SIZE..=crate::qr::MAX_SIZE).contains(s))
            .ok_or_else(|| invalid(&[("size", "must be between 64 and 2048")]))?;
        let format = match format {
            QrFormat::Svg => crate::qr::Format::Svg,
            QrFormat::Png => crate::qr::Format::Png,
        };
        let base = &state(ctx).settings.base_url;
        Ok(QrNode {
            short_url: format!("{base}/{}", self.0.code),
            url: format!(
                "{base}/api/v1/links/{}/qr?format={}&size={size}",
                self.0.code,
                format.extension()
            ),
            format,
            size,
        })
    }
}

/// A QR code of a short URL.
pub struct QrNode {
    short_url: String,
    url: String,
    format: crate::qr::Format,
    size: u32,
}

/// A QR code of a short URL.
#[Object(name = "QrCode")]
impl QrNode {
    /// Where the API serves the image (with an API key).
    async fn url(&self) -> &str {
        &self.url
    }

    /// The image itself, as a `data:` URL.
    async fn data_url(&self) -> Result<String> {
        let (text, format, size) = (self.short_url.clone(), self.format, self.size);
        let bytes = crate::app::blocking(move || crate::qr::render(&text, format, size))
            .await
            .map_err(|e| gql(e, ""))?
            .map_err(|e| gql(crate::app::AppError::Internal(e), ""))?;
        Ok(format!(
            "data:{};base64,{}",
            format.content_type(),
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }
}

/// A link's click statistics over a range, in the shape of the REST statistics.
pub struct StatsNode(pub StatsKey);

/// One bucket of a series.
#[derive(SimpleObject)]
pub struct Point {
    /// Bucket start.
    pub t: Instant,
    /// Clicks (people and bots).
    pub clicks: i64,
}

/// One value of a dimension.
#[derive(SimpleObject)]
pub struct Count {
    /// The value (a host, browser, OS, device class or country code).
    pub value: String,
    /// Clicks by people.
    pub clicks: i64,
}

impl StatsNode {
    async fn sums(&self, ctx: &Context<'_>) -> Result<crate::store::ClickSums> {
        Ok(batch(ctx)
            .load_one(SumsKey(self.0.clone()))
            .await?
            .unwrap_or_default())
    }

    async fn top(&self, ctx: &Context<'_>, dimension: &str) -> Result<Vec<Count>> {
        let top = batch(ctx).load_one(TopKey(self.0.clone())).await?;
        Ok(top
            .unwrap_or_default()
            .into_iter()
            .find(|(d, _)| d == dimension)
            .map(|(_, values)| {
                values
                    .into_iter()
                    .map(|(value, clicks)| Count { value, clicks })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A link's click statistics over a range, in the shape of the REST statistics.
#[Object(name = "Stats")]
impl StatsNode {
    /// The link.
    async fn code(&self) -> &str {
        self.0.code.as_str()
    }

    /// Start (aligned to the interval).
    async fn from(&self) -> Instant {
        Instant(self.0.range.from)
    }

    /// End, exclusive.
    async fn to(&self) -> Instant {
        Instant(self.0.range.to)
    }

    /// Bucket size.
    async fn interval(&self) -> GqlInterval {
        match self.0.range.interval {
            Interval::Hour => GqlInterval::Hour,
            Interval::Day => GqlInterval::Day,
        }
    }

    /// People and bots.
    async fn total(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.sums(ctx).await?.total)
    }

    /// People.
    async fn humans(&self, ctx: &Context<'_>) -> Result<i64> {
        let s = self.sums(ctx).await?;
        Ok(s.total - s.bots)
    }

    /// Bots, link unfurlers and HEAD requests.
    async fn bots(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.sums(ctx).await?.bots)
    }

    /// Distinct visitors per day, summed over the days.
    async fn unique_visitors(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.sums(ctx).await?.unique_visitors)
    }

    /// Every bucket of the range.
    async fn series(&self, ctx: &Context<'_>) -> Result<Vec<Point>> {
        let series = batch(ctx).load_one(SeriesKey(self.0.clone())).await?;
        Ok(series
            .unwrap_or_default()
            .into_iter()
            .map(|(t, clicks)| Point {
                t: Instant(t),
                clicks,
            })
            .collect())
    }

    /// Top referring hosts (`direct` without a referrer).
    async fn referrers(&self, ctx: &Context<'_>) -> Result<Vec<Count>> {
        self.top(ctx, "referrer").await
    }

    /// Top browsers.
    async fn browsers(&self, ctx: &Context<'_>) -> Result<Vec<Count>> {
        self.top(ctx, "browser").await
    }

    /// Top operating systems.
    async fn os(&self, ctx: &Context<'_>) -> Result<Vec<Count>> {
        self.top(ctx, "os").await
    }

    /// Device classes.
    async fn devices(&self, ctx: &Context<'_>) -> Result<Vec<Count>> {
        self.top(ctx, "device").await
    }

    /// Countries (`unknown` without a GeoIP database).
    async fn countries(&self, ctx: &Context<'_>) -> Result<Vec<Count>> {
        self.top(ctx, "country").await
    }
}

/// A user's role.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Role")]
pub enum GqlRole {
    /// May manage every user, key and link.
    Admin,
    /// Sees and changes only their own links and record.
    Member,
}

/// A user.
#[derive(Clone)]
pub struct UserNode(pub UserRecord);

/// A tag and how many of a user's links carry it.
#[derive(SimpleObject)]
pub struct Tag {
    /// The tag.
    pub name: String,
    /// Live links with it.
    pub links: u64,
}

/// A user.
#[Object(name = "User")]
impl UserNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// E-mail address.
    async fn email(&self) -> &str {
        self.0.email.as_str()
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Role.
    async fn role(&self) -> GqlRole {
        match self.0.role {
            Role::Admin => GqlRole::Admin,
            Role::Member => GqlRole::Member,
        }
    }

    /// Creation time.
    async fn created_at(&self) -> Instant {
        Instant(self.0.created_at)
    }

    /// Time of the last change.
    async fn updated_at(&self) -> Instant {
        Instant(self.0.updated_at)
    }

    /// The user's links, newest first (at most 100 a page).
    #[graphql(complexity = "list_complexity(first, child_complexity)")]
    async fn links(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<LinkFilter>,
    ) -> Result<LinkConnection> {
        list_links(ctx, self.0.id, first, after, filter).await
    }

    /// How many live links the user has (batched).
    async fn link_count(&self, ctx: &Context<'_>) -> Result<u64> {
        Ok(batch(ctx).load_one(CountKey(self.0.id)).await?.unwrap_or(0))
    }

    /// The tags of the user's links, with how many links carry each (batched).
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        Ok(batch(ctx)
            .load_one(TagsKey(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|t| Tag {
                name: t.tag,
                links: t.links,
            })
            .collect())
    }

    /// The user's live API keys, oldest first (never the secrets).
    async fn keys(&self, ctx: &Context<'_>) -> Result<Vec<KeyNode>> {
        let keys = crate::app::users::list_keys(state(ctx), caller(ctx)?, self.0.id)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(keys.into_iter().map(KeyNode).collect())
    }
}

/// A page of the caller's, or a user's, links.
pub async fn list_links(
    ctx: &Context<'_>,
    owner: crate::domain::user::UserId,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<LinkFilter>,
) -> Result<LinkConnection> {
    let limit = page_size(first)?;
    let after = parse_link_cursor(after)?;
    let filter = filter.unwrap_or_default();
    let page = crate::app::links::list(
        state(ctx),
        caller(ctx)?,
        owner,
        filter.tag,
        filter.q,
        crate::store::LinkOrder::Newest,
        limit,
        crate::store::PageRequest::After(after),
    )
    .await
    .map_err(|e| gql(e, "filter"))?;
    Ok(LinkConnection(page))
}

/// A page of users, by id.
pub struct UserConnection {
    /// The users.
    pub users: Vec<UserRecord>,
    /// Whether more follow.
    pub has_more: bool,
}

/// One user of a page.
#[derive(SimpleObject)]
pub struct UserEdge {
    /// Its position, for `after`.
    pub cursor: String,
    /// The user.
    pub node: UserNode,
}

/// A page of users, by id.
#[Object(name = "UserConnection")]
impl UserConnection {
    /// The users with their cursors.
    async fn edges(&self) -> Vec<UserEdge> {
        self.users
            .iter()
            .map(|u| UserEdge {
                cursor: u.id.to_string(),
                node: UserNode(u.clone()),
            })
            .collect()
    }

    /// The users alone.
    async fn nodes(&self) -> Vec<UserNode> {
        self.users.iter().cloned().map(UserNode).collect()
    }

    /// Where the page ends.
    async fn page_info(&self) -> PageInfo {
        let cursors: Vec<String> = self.users.iter().map(|u| u.id.to_string()).collect();
        PageInfo::of(&cursors, self.has_more)
    }
}

/// An API key (never its secret).
pub struct KeyNode(pub KeyRecord);

/// An API key (never its secret).
#[Object(name = "Key")]
impl KeyNode {
    /// Id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The owner's user id.
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }

    /// A label.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The first characters of the key, to recognise it.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// What the key may do.
    async fn scopes(&self) -> Vec<String> {
        self.0
            .scopes
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Creation time.
    async fn created_at(&self) -> Instant {
        Instant(self.0.created_at)
    }

    /// Last use, to within a minute.
    async fn last_used_at(&self) -> Option<Instant> {
        self.0.last_used_at.map(Instant)
    }
}

/// A new API key and its secret, shown this once.
#[derive(SimpleObject)]
pub struct CreatedKey {
    /// The key's record.
    pub key: KeyNode,
    /// The key itself: keep it, it is not stored.
    pub secret: String,
}

/// A link to create.
#[derive(InputObject, Clone)]
pub struct LinkInput {
    /// Destination: an absolute http(s) URL.
    pub url: String,
    /// Custom code, `[A-Za-z0-9_-]{3,64}`; a random code when absent.
    pub alias: Option<String>,
    /// Title, at most 512 characters.
    pub title: Option<String>,
    /// At most 20 tags.
    pub tags: Option<Vec<String>>,
    /// Expiry, in the future.
    pub expires_at: Option<Instant>,
    /// Redirects after which the link is gone, 1 to 2^53.
    pub max_clicks: Option<i64>,
    /// 301, 302 (default), 307 or 308.
    pub redirect_status: Option<i32>,
    /// Protects the link with a password (1–256 characters).
    pub password: Option<String>,
}

impl LinkInput {
    /// The same request as the REST API's JSON body (for the use case, and for the
    /// idempotency hash, so a key means the same request on both APIs).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("url".into(), self.url.clone().into());
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put("alias", self.alias.clone().map(Into::into));
        put("title", self.title.clone().map(Into::into));
        put("tags", self.tags.clone().map(Into::into));
        put(
            "expires_at",
            self.expires_at
                .map(|t| crate::http::links::rfc3339(t.0).into()),
        );
        put("max_clicks", self.max_clicks.map(Into::into));
        put("redirect_status", self.redirect_status.map(Into::into));
        put("password", self.password.clone().map(Into::into));
        serde_json::Value::Object(m)
    }

    /// The use case's input.
    pub fn to_domain(&self) -> crate::domain::link::LinkInput {
        crate::domain::link::LinkInput {
            url: Some(self.url.clone()),
            alias: self.alias.clone(),
            title: self.title.clone(),
            tags: self.tags.clone(),
            expires_at: self.expires_at.map(|t| crate::http::links::rfc3339(t.0)),
            max_clicks: self.max_clicks,
            redirect_status: self.redirect_status.map(i64::from),
            password: self.password.clone(),
        }
    }
}

/// A merge patch of a link: absent fields stay, `null` clears.
#[derive(InputObject)]
pub struct LinkPatch {
    /// New destination; cannot be null.
    pub url: MaybeUndefined<String>,
    /// New title, or null to clear.
    pub title: MaybeUndefined<String>,
    /// New tags, or null to clear.
    pub tags: MaybeUndefined<Vec<String>>,
    /// New expiry, or null to clear.
    pub expires_at: MaybeUndefined<Instant>,
    /// New click limit, or null to clear.
    pub max_clicks: MaybeUndefined<i64>,
    /// New redirect status, or null for the default (302).
    pub redirect_status: MaybeUndefined<i32>,
    /// New password, or null to remove protection.
    pub password: MaybeUndefined<String>,
}

fn present<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

impl LinkPatch {
    /// The use case's patch.
    pub fn into_domain(self) -> crate::domain::link::LinkPatch {
        crate::domain::link::LinkPatch {
            url: present(self.url),
            title: present(self.title),
            tags: present(self.tags),
            expires_at: present(self.expires_at)
                .map(|t| t.map(|t| crate::http::links::rfc3339(t.0))),
            max_clicks: present(self.max_clicks),
            redirect_status: present(self.redirect_status).map(|s| s.map(i64::from)),
            password: present(self.password),
        }
    }
}
