//! Importing links from other services: one link at a time, keeping its alias, title,
//! tags, creation date and click total. Importing is idempotent: a link already here (the
//! same alias and URL, or for a link without alias the same URL) is skipped, so a file can
//! be imported again after a failure without duplicates.

use chrono::{DateTime, Utc};

use super::{AppError, AppState, Caller, links};
use crate::domain::code::{Code, length_for_attempt};
use crate::domain::key::Scope;
use crate::domain::link::{LinkInput, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS, validate_create};
use crate::store::{ClickTotals, LinkFields, LinkRecord, StoreError, Taken};

/// A link read from another service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incoming {
    /// Destination.
    pub url: String,
    /// The code it had there, kept when snip accepts it.
    pub alias: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Tags as the source wrote them; characters snip does not allow in tags become `-`.
    pub tags: Vec<String>,
    /// When it was created there; now when unknown.
    pub created_at: Option<DateTime<Utc>>,
    /// Its click total there, when the source has one.
    pub clicks: Option<i64>,
    /// Its expiry, when the source has one.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its click limit, when the source has one.
    pub max_clicks: Option<i64>,
}

/// What became of one incoming link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Created with this code (or, in a dry run, would be).
    Imported(String),
    /// Already here with this code: nothing written.
    Duplicate(String),
    /// Not imported, for this reason.
    Refused(String),
}

/// A tag as snip accepts it: each run of characters a tag may not hold (spaces, `&`, …)
/// becomes one `-`.
fn clean_tag(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    for c in tag.trim().chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '.' | ':') {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// Tags as snip accepts them: each made acceptable ([`clean_tag`]) and cut to the longest
/// tag allowed, without empty ones and repeats, at most as many as a link may hold.
fn clean_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag: String = clean_tag(tag).chars().take(MAX_TAG_CHARS).collect();
        if !tag.is_empty() && !out.contains(&tag) && out.len() < MAX_TAGS {
            out.push(tag);
        }
    }
    out
}

/// A title as snip accepts it: line breaks and tabs become spaces, and it is cut to the
/// longest title allowed.
fn clean_title(title: &str) -> String {
    title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TITLE_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Imports one link for the caller. In a dry run everything is checked and nothing is
/// written. Click totals are added, as people's clicks without details, in the hour the
/// link was created.
pub async fn import_one(
    state: &AppState,
    caller: &Caller,
    item: &Incoming,
    dry_run: bool,
) -> Result<Outcome, AppError> {
    caller.require(Scope::LinksWrite)?;
    let now = state.clock.now();
    if item.expires_at.is_some_and(|t| t <= now) {
        return Ok(Outcome::Refused("it has expired".into()));
    }
    let input = LinkInput {
        url: Some(item.url.clone()),
        alias: item.alias.clone(),
        title: item
            .title
            .as_deref()
            .map(clean_title)
            .filter(|t| !t.is_empty()),
        tags: Some(clean_tags(&item.tags)),
        expires_at: item
            .expires_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        max_clicks: item.max_clicks,
        ..LinkInput::default()
    };
    let (alias, draft) = match validate_create(input, &state.settings.url_policy, now) {
        Ok(valid) => valid,
        Err(errors) => {
            let why = errors
                .iter()
                .map(|e| match e.field.as_str() {
                    "alias" => format!(
                        "alias {:?} {}",
                        item.alias.as_deref().unwrap_or(""),
                        e.message
                    ),
                    "url" => format!("url {:?} {}", item.url, e.message),
                    field => format!("{field} {}", e.message),
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Ok(Outcome::Refused(why));
        }
    };
    if let Some(code) = &alias {
        match state.links.get_link(code).await? {
            Some(l) if l.owner_id == caller.user.id && l.fields.url == draft.url => {
                return duplicate(state, &l, item, dry_run).await;
            }
            Some(_) => return Ok(Outcome::Refused(format!("the alias {code} is taken"))),
            None => {}
        }
    } else if let Some(l) = links::find_by_url(state, caller, draft.url.as_str()).await? {
        return duplicate(state, &l, item, dry_run).await;
    }
    if dry_run {
        return Ok(Outcome::Imported(
            alias.map_or_else(|| "(new)".to_owned(), |a| a.to_string()),
        ));
    }
    let created_at = item.created_at.unwrap_or(now).min(now);
    let fields = LinkFields {
        url: draft.url,
        title: draft.title,
        tags: draft.tags,
        expires_at: draft.expires_at,
        max_clicks: draft.max_clicks,
        redirect_status: draft.redirect_status,
        password_hash: None,
    };
    for attempt in 0..12 {
        let code = alias
            .clone()
            .unwrap_or_else(|| Code::generate(length_for_attempt(attempt)));
        let link = LinkRecord {
            code: code.clone(),
            fields: fields.clone(),
            owner_id: caller.user.id,
            clicks: 0,
            created_at,
            updated_at: now,
        };
        match state.links.insert_link(&link, None).await {
            Ok(()) => {
                state.cache.refresh(&code).await;
                add_clicks(state, &code, created_at, item.clicks.unwrap_or(0)).await?;
                return Ok(Outcome::Imported(code.to_string()));
            }
            Err(StoreError::Conflict(Taken::Code)) if alias.is_none() => continue,
            Err(StoreError::Conflict(Taken::Code)) => {
                return Ok(Outcome::Refused(format!(
                    "the alias {code} is taken (perhaps by a deleted link)"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Internal(anyhow::anyhow!("no free code")))
}

/// A link already here. If an earlier run created it but failed before adding its click
/// total (the link still has no clicks), the total is added now.
async fn duplicate(
    state: &AppState,
    link: &LinkRecord,
    item: &Incoming,
    dry_run: bool,
) -> Result<Outcome, AppError> {
    if !dry_run && link.clicks == 0 {
        add_clicks(state, &link.code, link.created_at, item.clicks.unwrap_or(0)).await?;
    }
    Ok(Outcome::Duplicate(link.code.to_string()))
}

/// Adds `clicks` people's clicks to a new link in the hour of `at`, once: the batch is
/// named after the link.
async fn add_clicks(
    state: &AppState,
    code: &Code,
    at: DateTime<Utc>,
    clicks: i64,
) -> Result<(), AppError> {
    if clicks <= 0 {
        return Ok(());
    }
    let mut totals = ClickTotals::default();
    totals.add_count(code, crate::clock::to_millis(at), false, clicks, &[]);
    state
        .links
        .apply_click_totals(&format!("import:{code}"), &totals)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_titles_are_made_acceptable() {
        assert_eq!(clean_tag(" summer  sale "), "summer-sale");
        assert_eq!(clean_tag("food & drink"), "food-drink");
        assert_eq!(clean_tag("q3:launch_1.0"), "q3:launch_1.0");
        assert_eq!(clean_tag("&"), "");
        assert_eq!(
            clean_title("line one\nline two\twith tab"),
            "line one line two with tab"
        );
    }
}
