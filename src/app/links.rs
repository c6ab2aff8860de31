//! Link use cases: create (single, bulk, idempotent), read, list, replace, patch, delete.

use std::collections::HashMap;

use chrono::TimeDelta;

use super::{AppError, AppState, Caller};
use crate::domain::code::{Code, length_for_attempt};
use crate::domain::key::Scope;
use crate::domain::link::{
    LinkDraft, LinkInput, LinkPatch, PasswordChange, apply_patch, validate_create, validate_replace,
};
use crate::domain::password;
use crate::domain::user::UserId;
use crate::store::{
    IdempotencyRecord, IdempotencySave, LinkCursor, LinkFields, LinkOrder, LinkPage, LinkQuery,
    LinkRecord, PageRequest, StoreError, StoredResponse, TagCount, Taken,
};

/// Attempts at a free random code before giving up (each third one a character longer).
const MAX_CODE_ATTEMPTS: u32 = 12;
/// Most links in one bulk request.
pub const MAX_BULK: usize = 1_000;
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL: TimeDelta = TimeDelta::hours(24);

/// An `Idempotency-Key` and the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// The client's key.
    pub key: String,
    /// Hash of the canonical request body.
    pub request_hash: String,
}

/// How a created link is rendered into the response that is sent (and stored for replay).
pub trait Render: Fn(&LinkRecord) -> StoredResponse + Send + Sync {}
impl<F: Fn(&LinkRecord) -> StoredResponse + Send + Sync> Render for F {}

/// Creates a link for the caller. With an idempotency key, a repeat of the same request
/// returns the stored first response; the link and that response are written together.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: LinkInput,
    idempotency: Option<Idempotency>,
    render: impl Render,
) -> Result<StoredResponse, AppError> {
    caller.require(Scope::LinksWrite)?;
    let now = state.clock.now();
    if let Some(idem) = &idempotency {
        let found = state
            .links
            .get_idempotency(caller.user.id, &idem.key, now - IDEMPOTENCY_TTL)
            .await?;
        if let Some(record) = found {
            return replay(record, idem);
        }
    }
    let (alias, draft) = validate_create(input, &state.settings.url_policy, now)?;
    let fields = hash_password(state, draft, None).await?;
    for attempt in 0..MAX_CODE_ATTEMPTS {
        let code = alias
            .clone()
            .unwrap_or_else(|| Code::generate(length_for_attempt(attempt)));
        let link = LinkRecord {
            code,
            fields: fields.clone(),
            owner_id: caller.user.id,
            clicks: 0,
            created_at: now,
            updated_at: now,
        };
        let response = render(&link);
        let save = idempotency.as_ref().map(|idem| IdempotencySave {
            user_id: caller.user.id,
            key: idem.key.clone(),
            request_hash: idem.request_hash.clone(),
            response: response.clone(),
            expired_before: now - IDEMPOTENCY_TTL,
        });
        match state.links.insert_link(&link, save.as_ref()).await {
            Ok(()) => {
                // The code may be cached as unknown (someone tried it before it existed).
                state.cache.refresh(&link.code).await;
                return Ok(response);
            }
            Err(StoreError::Conflict(Taken::Code)) if alias.is_none() => continue,
            Err(StoreError::Conflict(Taken::IdempotencyKey)) => {
                // Another request with this key won the race: answer as a replay of it.
                let idem = idempotency.as_ref().ok_or(AppError::IdempotencyInFlight)?;
                let record = state
                    .links
                    .get_idempotency(caller.user.id, &idem.key, now - IDEMPOTENCY_TTL)
                    .await?
                    .ok_or(AppError::IdempotencyInFlight)?;
                return replay(record, idem);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Internal(anyhow::anyhow!(
        "no free code after {MAX_CODE_ATTEMPTS} attempts"
    )))
}

fn replay(record: IdempotencyRecord, idem: &Idempotency) -> Result<StoredResponse, AppError> {
    if record.request_hash != idem.request_hash {
        return Err(AppError::IdempotencyMismatch);
    }
    record.response.ok_or(AppError::IdempotencyInFlight)
}

/// The error for a bulk request of more than [`MAX_BULK`] items.
pub fn too_many_items() -> AppError {
    AppError::TooManyItems(MAX_BULK)
}

/// The outcome of one item of a bulk create.
pub type BulkResult = Result<LinkRecord, AppError>;

/// Creates up to [`MAX_BULK`] links in one transaction; each item succeeds or fails alone.
pub async fn create_bulk(
    state: &AppState,
    caller: &Caller,
    inputs: Vec<LinkInput>,
) -> Result<Vec<BulkResult>, AppError> {
    caller.require(Scope::LinksWrite)?;
    if inputs.len() > MAX_BULK {
        return Err(too_many_items());
    }
    if inputs.is_empty() {
        return Err(AppError::Validation(vec![crate::domain::FieldError::new(
            "links",
            "must hold at least one link",
        )]));
    }
    let now = state.clock.now();
    let mut results: Vec<Option<BulkResult>> = Vec::with_capacity(inputs.len());
    // (index, alias, fields) of the items still to insert.
    let mut pending: Vec<(usize, Option<Code>, LinkFields)> = Vec::new();
    for (i, input) in inputs.into_iter().enumerate() {
        match validate_create(input, &state.settings.url_policy, now) {
            Ok((alias, draft)) => match hash_password(state, draft, None).await {
                Ok(fields) => {
                    pending.push((i, alias, fields));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            },
            Err(errors) => results.push(Some(Err(AppError::Validation(errors)))),
        }
    }
    for attempt in 0..MAX_CODE_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        let links: Vec<LinkRecord> = pending
            .iter()
            .map(|(_, alias, fields)| LinkRecord {
                code: alias
                    .clone()
                    .unwrap_or_else(|| Code::generate(length_for_attempt(attempt))),
                fields: fields.clone(),
                owner_id: caller.user.id,
                clicks: 0,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let outcomes = state.links.insert_links(&links).await?;
        let mut retry = Vec::new();
        for ((item, link), outcome) in pending.into_iter().zip(links).zip(outcomes) {
            let (i, alias, _) = &item;
            match outcome {
                Ok(()) => {
                    state.cache.refresh(&link.code).await;
                    results[*i] = Some(Ok(link));
                }
                Err(StoreError::Conflict(Taken::Code)) if alias.is_none() => retry.push(item),
                Err(e) => results[*i] = Some(Err(e.into())),
            }
        }
        pending = retry;
    }
    for (i, _, _) in pending {
        results[i] = Some(Err(AppError::Internal(anyhow::anyhow!("no free code"))));
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Err(AppError::Internal(anyhow::anyhow!(
                "item not processed"
            ))))
        })
        .collect())
}

/// Turns a validated draft into stored fields, hashing a new password on a blocking
/// thread. `current_hash` is kept when the draft says `Keep`.
async fn hash_password(
    state: &AppState,
    draft: LinkDraft,
    current_hash: Option<String>,
) -> Result<LinkFields, AppError> {
    let password_hash = match draft.password {
        PasswordChange::Keep => current_hash,
        PasswordChange::Clear => None,
        PasswordChange::Set(p) => Some(
            state
                .passwords
                .hash(move || password::hash(&p))
                .await?
                .map_err(|e| AppError::Internal(anyhow::anyhow!("hashing password: {e}")))?,
        ),
    };
    Ok(LinkFields {
        url: draft.url,
        title: draft.title,
        tags: draft.tags,
        expires_at: draft.expires_at,
        max_clicks: draft.max_clicks,
        redirect_status: draft.redirect_status,
        password_hash,
    })
}

/// One of the caller's links (or anyone's, for an admin).
pub async fn get(state: &AppState, caller: &Caller, code: &str) -> Result<LinkRecord, AppError> {
    caller.require(Scope::LinksRead)?;
    owned_link(state, caller, code).await
}

async fn owned_link(state: &AppState, caller: &Caller, code: &str) -> Result<LinkRecord, AppError> {
    let code = Code::from_path(code).ok_or(AppError::NotFound)?;
    match state.links.get_link(&code).await? {
        Some(link) if caller.may_access(link.owner_id) => Ok(link),
        _ => Err(AppError::NotFound),
    }
}

/// Replaces every mutable field of a link (PUT).
pub async fn replace(
    state: &AppState,
    caller: &Caller,
    code: &str,
    input: LinkInput,
) -> Result<LinkRecord, AppError> {
    caller.require(Scope::LinksWrite)?;
    let current = owned_link(state, caller, code).await?;
    let now = state.clock.now();
    let draft = validate_replace(input, &state.settings.url_policy, now)?;
    let fields = hash_password(state, draft, None).await?;
    let link = state.links.update_link(&current.code, &fields, now).await?;
    state.cache.refresh(&link.code).await;
    Ok(link)
}

/// Applies a JSON merge patch to a link (PATCH).
pub async fn patch(
    state: &AppState,
    caller: &Caller,
    code: &str,
    patch: LinkPatch,
) -> Result<LinkRecord, AppError> {
    caller.require(Scope::LinksWrite)?;
    let current = owned_link(state, caller, code).await?;
    let now = state.clock.now();
    let f = current.fields;
    let draft = LinkDraft {
        url: f.url,
        title: f.title,
        tags: f.tags,
        expires_at: f.expires_at,
        max_clicks: f.max_clicks,
        redirect_status: f.redirect_status,
        password: PasswordChange::Keep,
    };
    // An expiry already in the past may stay as it is: only new values must be future.
    let next = apply_patch(draft, patch, &state.settings.url_policy, now)?;
    let fields = hash_password(state, next, f.password_hash).await?;
    let link = state.links.update_link(&current.code, &fields, now).await?;
    state.cache.refresh(&link.code).await;
    Ok(link)
}

/// Deletes a link; its code answers 410 from then on and is never reused.
pub async fn delete(state: &AppState, caller: &Caller, code: &str) -> Result<(), AppError> {
    caller.require(Scope::LinksWrite)?;
    let current = owned_link(state, caller, code).await?;
    state
        .links
        .delete_link(&current.code, state.clock.now())
        .await?;
    state.cache.refresh(&current.code).await;
    Ok(())
}

/// Lists `owner`'s links; the caller must be the owner or an admin. Orders other than
/// newest first page by offset only (a cursor from the start reads as offset 0).
#[allow(clippy::too_many_arguments)]
pub async fn list(
    state: &AppState,
    caller: &Caller,
    owner: UserId,
    tag: Option<String>,
    q: Option<String>,
    order: LinkOrder,
    limit: u32,
    page: PageRequest,
) -> Result<LinkPage, AppError> {
    caller.require(Scope::LinksRead)?;
    if !caller.may_access(owner) {
        return Err(AppError::NotFound);
    }
    let page = match (order, page) {
        (LinkOrder::Newest, page) => page,
        (_, PageRequest::After(None)) => PageRequest::Offset(0),
        (_, PageRequest::After(Some(_))) => {
            return Err(AppError::Validation(vec![crate::domain::FieldError::new(
                "cursor",
                "pages newest-first listings only; use page with this order",
            )]));
        }
        (_, page) => page,
    };
    let query = LinkQuery {
        owner_id: owner,
        tag,
        q,
        url: None,
        order,
        limit,
        page,
    };
    Ok(state.links.list_links(&query).await?)
}

/// How many of the caller's links to one URL are looked at for a live one.
const FIND_BY_URL_LOOKS: u32 = 20;

/// The caller's newest live link to `url` (compared as stored, after normalisation), if
/// any, skipping links that have expired or used up their clicks: what compatible APIs
/// answer when a client shortens a URL it has shortened before.
pub async fn find_by_url(
    state: &AppState,
    caller: &Caller,
    url: &str,
) -> Result<Option<LinkRecord>, AppError> {
    caller.require(Scope::LinksRead)?;
    let Ok(url) = crate::domain::target_url::TargetUrl::parse(url, &state.settings.url_policy)
    else {
        return Ok(None);
    };
    let query = LinkQuery {
        owner_id: caller.user.id,
        tag: None,
        q: None,
        url: Some(url.as_str().to_owned()),
        order: LinkOrder::Newest,
        limit: FIND_BY_URL_LOOKS,
        page: PageRequest::After(None),
    };
    // A link that has expired or used up its clicks answers 410: it is not one to hand out.
    let now = state.clock.now();
    Ok(state
        .links
        .list_links(&query)
        .await?
        .links
        .into_iter()
        .find(|l| {
            l.fields.expires_at.is_none_or(|t| t > now)
                && l.fields.max_clicks.is_none_or(|m| l.clicks < m)
        }))
}

/// The clicks counted on all of the caller's live links.
pub async fn click_total(state: &AppState, caller: &Caller) -> Result<i64, AppError> {
    caller.require(Scope::LinksRead)?;
    Ok(state.links.owner_clicks(caller.user.id).await?)
}

/// Links read per store call while exporting.
pub const EXPORT_PAGE: u32 = 500;

/// Every live link of `owner`, newest first, one page of [`EXPORT_PAGE`] links at a time.
/// Memory stays bounded by one page whatever the number of links.
pub fn export(
    state: AppState,
    caller: Caller,
    owner: UserId,
) -> impl futures_util::Stream<Item = Result<Vec<LinkRecord>, AppError>> + Send + 'static {
    futures_util::stream::try_unfold(Some(PageRequest::After(None)), move |next| {
        let (state, caller) = (state.clone(), caller.clone());
        async move {
            let Some(page) = next else {
                return Ok(None);
            };
            let found = list(
                &state,
                &caller,
                owner,
                None,
                None,
                LinkOrder::Newest,
                EXPORT_PAGE,
                page,
            )
            .await?;
            let next = match found.links.last() {
                Some(last) if found.has_more => Some(PageRequest::After(Some(LinkCursor {
                    created_at: crate::clock::to_millis(last.created_at),
                    code: last.code.to_string(),
                }))),
                _ => None,
            };
            Ok((!found.links.is_empty()).then_some((found.links, next)))
        }
    })
}

/// The owners of `owners` whose links the caller may read: themself, or anyone for an
/// admin.
fn readable_owners(caller: &Caller, owners: &[UserId]) -> Result<Vec<UserId>, AppError> {
    caller.require(Scope::LinksRead)?;
    Ok(owners
        .iter()
        .copied()
        .filter(|o| caller.may_access(*o))
        .collect())
}

/// How many live links each of `owners` has, in one store call; owners the caller may
/// not read are absent, owners without links count 0.
pub async fn counts_of(
    state: &AppState,
    caller: &Caller,
    owners: &[UserId],
) -> Result<HashMap<UserId, u64>, AppError> {
    let owners = readable_owners(caller, owners)?;
    let mut counts = state.links.count_links(&owners).await?;
    for o in owners {
        counts.entry(o).or_insert(0);
    }
    Ok(counts)
}

/// The tags each of `owners` uses, with how many live links carry each, in one store
/// call; owners the caller may not read are absent.
pub async fn tags_of(
    state: &AppState,
    caller: &Caller,
    owners: &[UserId],
) -> Result<HashMap<UserId, Vec<TagCount>>, AppError> {
    let owners = readable_owners(caller, owners)?;
    let mut tags = state.links.owner_tags(&owners).await?;
    for o in owners {
        tags.entry(o).or_default();
    }
    Ok(tags)
}
