//! The queries: the caller, one link, the caller's links, and users (admins).

use async_graphql::{Context, ID, Object, Result};

use super::error::{gql, invalid};
use super::types::{
    LinkConnection, LinkFilter, LinkNode, UserConnection, UserNode, caller, list_complexity,
    list_links, page_size, state,
};
use crate::app::{links, users};
use crate::domain::user::UserId;

/// The root of queries.
pub struct Query;

/// Reads a user id argument.
pub fn user_id(id: &ID, field: &'static str) -> Result<UserId> {
    id.parse::<UserId>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(&[(field, "must be a user id")]))
}

/// The root of queries.
#[Object]
impl Query {
    /// The caller: the owner of the API key.
    async fn me(&self, ctx: &Context<'_>) -> Result<UserNode> {
        Ok(UserNode(caller(ctx)?.user.clone()))
    }

    /// One of the caller's links (any link, for an admin). Another member's link is "not
    /// found", like an unknown one.
    async fn link(&self, ctx: &Context<'_>, code: String) -> Result<Option<LinkNode>> {
        let link = links::get(state(ctx), caller(ctx)?, &code)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(Some(LinkNode(link)))
    }

    /// The caller's links, newest first (at most 100 a page).
    #[graphql(complexity = "list_complexity(first, child_complexity)")]
    async fn links(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<LinkFilter>,
    ) -> Result<LinkConnection> {
        let me = caller(ctx)?.user.id;
        list_links(ctx, me, first, after, filter).await
    }

    /// A user: the caller, or anyone for an admin.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<UserNode>> {
        let id = user_id(&id, "id")?;
        let user = users::get(state(ctx), caller(ctx)?, id)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(Some(UserNode(user)))
    }

    /// Every user, by id (admins only; at most 100 a page).
    #[graphql(complexity = "list_complexity(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<UserConnection> {
        let limit = page_size(first)?;
        let after = after.map(|a| user_id(&ID(a), "after")).transpose()?;
        let (users, has_more) = users::list(state(ctx), caller(ctx)?, after, limit)
            .await
            .map_err(|e| gql(e, ""))?;
        Ok(UserConnection { users, has_more })
    }
}
