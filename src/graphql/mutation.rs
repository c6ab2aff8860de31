//! The mutations: links (create, bulk create, merge-patch, delete) and API keys. Each calls
//! the use case REST calls, with the same scopes and rules.

use std::sync::{Arc, Mutex};

use async_graphql::{Context, ID, Object, PathSegment, Result};
use sha2::{Digest, Sha256};

use super::error::{gql, invalid};
use super::query::user_id as parse_user_id;
use super::types::{CreatedKey, KeyNode, LinkInput, LinkNode, LinkPatch, caller, state};
use crate::app::links::{self as uc, Idempotency};
use crate::app::users;
use crate::store::LinkRecord;

/// The root of mutations.
pub struct Mutation;

/// Reads an idempotency key: 1–255 visible ASCII characters, as REST's header.
fn idempotency(key: Option<String>, input: &LinkInput) -> Result<Option<Idempotency>> {
    let Some(key) = key else { return Ok(None) };
    if !(1..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(&[(
            "idempotencyKey",
            "must be 1 to 255 visible ASCII characters",
        )]));
    }
    // The hash of the request as REST's JSON body: a key means one request on both APIs.
    let request_hash = hex::encode(Sha256::digest(input.to_json().to_string().as_bytes()));
    Ok(Some(Idempotency { key, request_hash }))
}

/// The root of mutations. Each runs the use case REST runs, with the same scopes.
#[Object]
impl Mutation {
    /// Creates a link. With `idempotencyKey`, a repeat of the same request within 24 h
    /// returns the link the first one made (the key is shared with REST's
    /// `Idempotency-Key`).
    async fn create_link(
        &self,
        ctx: &Context<'_>,
        input: LinkInput,
        idempotency_key: Option<String>,
    ) -> Result<LinkNode> {
        let (state, caller) = (state(ctx), caller(ctx)?);
        let idem = idempotency(idempotency_key, &input)?;
        let made: Arc<Mutex<Option<LinkRecord>>> = Arc::default();
        let base = state.settings.base_url.clone();
        let slot = made.clone();
        let render = move |link: &LinkRecord| {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.clone());
            crate::http::links::created_response(link, &base)
        };
        let stored = uc::create(state, caller, input.to_domain(), idem, render)
            .await
            .map_err(|e| gql(e, "input"))?;
        let fresh = made.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(link) = fresh {
            return Ok(LinkNode(link));
        }
        // A replay: the first request's answer names the link; show it as it is now.
        let code = serde_json::from_slice::<serde_json::Value>(&stored.body)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let link = uc::get(state, caller, &code)
            .await
            .map_err(|e| gql(e, "input"))?;
        Ok(LinkNode(link))
    }

    /// Creates up to 1,000 links in one transaction; each succeeds or fails alone (a
    /// failed item is `null`, with an error whose path ends with its index).
    #[graphql(complexity = "inputs.len().saturating_mul(child_complexity).saturating_add(1)")]
    async fn create_links(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<LinkInput>,
    ) -> Result<Vec<Option<LinkNode>>> {
        let domain = inputs.iter().map(LinkInput::to_domain).collect();
        let results = uc::create_bulk(state(ctx), caller(ctx)?, domain)
            .await
            .map_err(|e| gql(e, "inputs"))?;
        Ok(results
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Ok(link) => Some(LinkNode(link)),
                Err(e) => {
                    // The item's error, at the item's path; the other items stand.
                    let mut error = gql(e, &format!("inputs.{i}")).into_server_error(ctx.item.pos);
                    error.path = ctx
                        .path_node
                        .map(|p| p.to_string_vec())
                        .unwrap_or_default()
                        .into_iter()
                        .map(PathSegment::Field)
                        .chain([PathSegment::Index(i)])
                        .collect();
                    ctx.add_error(error);
                    None
                }
            })
            .collect())
    }

    /// Changes a link: fields absent from `patch` stay, `null` clears (JSON merge patch).
    async fn update_link(
        &self,
        ctx: &Context<'_>,
        code: String,
        patch: LinkPatch,
    ) -> Result<LinkNode> {
        let link = uc::patch(state(ctx), caller(ctx)?, &code, patch.into_domain())
            .await
            .map_err(|e| gql(e, "patch"))?;
        Ok(LinkNode(link))
    }

    /// Deletes a link: its code answers 410 from then on and is never reused. True once
    /// deleted.
    async fn delete_link(&self, ctx: &Context<'_>, code: String) -> Result<bool> {
        uc::delete(state(ctx), caller(ctx)?, &code)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(true)
    }

    /// Creates an API key for a user (the caller when `userId` is absent). A key never
    /// grants more than the key that creates it; without `scopes` it gets
    /// `links:read links:write`.
    async fn create_key(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        name: Option<String>,
        scopes: Option<Vec<String>>,
    ) -> Result<CreatedKey> {
        let caller = caller(ctx)?;
        let id = match user_id {
            Some(id) => parse_user_id(&id, "userId")?,
            None => caller.user.id,
        };
        let (record, key) = users::create_key(state(ctx), caller, id, name, scopes)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(CreatedKey {
            key: KeyNode(record),
            secret: key.expose().to_owned(),
        })
    }

    /// Revokes one of a user's keys (the caller's when `userId` is absent). True once
    /// revoked.
    async fn revoke_key(&self, ctx: &Context<'_>, user_id: Option<ID>, id: ID) -> Result<bool> {
        let caller = caller(ctx)?;
        let owner = match user_id {
            Some(u) => parse_user_id(&u, "userId")?,
            None => caller.user.id,
        };
        let key_id = id
            .parse::<i64>()
            .map_err(|_| invalid(&[("id", "must be a key id")]))?;
        users::revoke_key(state(ctx), caller, owner, key_id)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(true)
    }
}
