//! Reading links from a running YOURLS or Shlink server, page by page, through its API.

use std::collections::VecDeque;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::app::import::Incoming;
use crate::outgoing::Client;

/// Links asked for per request.
const PAGE: usize = 500;
/// The links of a running source, read a page at a time.
pub struct Remote {
    client: Client,
    kind: Kind,
    /// Links read and not yet handed out.
    ready: VecDeque<Incoming>,
    /// The next page to ask for (YOURLS: an offset; Shlink: a 1-based page); `None` at the
    /// end.
    next: Option<usize>,
}

enum Kind {
    Yourls { api: String, signature: String },
    Shlink { base: String, key: String },
}

impl Remote {
    /// The YOURLS API at `api` (its `yourls-api.php`), with a signature token or key.
    pub fn yourls(api: &str, signature: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::new()?,
            kind: Kind::Yourls {
                api: api.to_owned(),
                signature: signature.to_owned(),
            },
            ready: VecDeque::new(),
            next: Some(0),
        })
    }

    /// The Shlink server at `base` (the address before `/rest`), with an API key.
    pub fn shlink(base: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::new()?,
            kind: Kind::Shlink {
                base: base.trim_end_matches('/').to_owned(),
                key: key.to_owned(),
            },
            ready: VecDeque::new(),
            next: Some(1),
        })
    }

    /// The next link, reading another page when needed; `None` at the end.
    pub async fn next(&mut self) -> anyhow::Result<Option<Incoming>> {
        while self.ready.is_empty() {
            let Some(page) = self.next else {
                return Ok(None);
            };
            let (links, more) = match &self.kind {
                Kind::Yourls { api, signature } => {
                    yourls_page(&self.client, api, signature, page).await?
                }
                Kind::Shlink { base, key } => shlink_page(&self.client, base, key, page).await?,
            };
            self.next = match (&self.kind, more) {
                (_, false) => None,
                (Kind::Yourls { .. }, true) => Some(page + links.len()),
                (Kind::Shlink { .. }, true) => Some(page + 1),
            };
            self.ready.extend(links);
        }
        Ok(self.ready.pop_front())
    }
}

/// Reads `url`'s JSON answer, failing with the source's own message.
async fn fetch(
    client: &Client,
    url: &url::Url,
    headers: &[(&str, &str)],
    what: &str,
) -> anyhow::Result<Value> {
    let (status, body) = client
        .get_json(url, headers)
        .await
        .with_context(|| format!("asking {what}"))?;
    if !(200..300).contains(&status) {
        let why = body["message"]
            .as_str()
            .or(body["detail"].as_str())
            .unwrap_or("no reason given");
        bail!("{what} answered {status}: {why}");
    }
    Ok(body)
}

/// `base` with `query` added.
fn with_query(base: &str, query: &[(&str, &str)]) -> anyhow::Result<url::Url> {
    let mut url = url::Url::parse(base).with_context(|| format!("{base} is not a URL"))?;
    url.query_pairs_mut().extend_pairs(query);
    Ok(url)
}

/// A YOURLS date (`YYYY-MM-DD HH:MM:SS`, taken as UTC).
fn yourls_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

/// A number YOURLS may send as a string or as a number.
fn number(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// One page of a YOURLS server's links (`action=stats`, newest first, from `start`).
async fn yourls_page(
    client: &Client,
    api: &str,
    signature: &str,
    start: usize,
) -> anyhow::Result<(Vec<Incoming>, bool)> {
    let limit = PAGE.to_string();
    let start_text = start.to_string();
    let url = with_query(
        api,
        &[
            ("action", "stats"),
            ("filter", "last"),
            ("limit", limit.as_str()),
            ("start", start_text.as_str()),
            ("format", "json"),
            ("signature", signature),
        ],
    )?;
    let body = fetch(client, &url, &[], "the YOURLS API").await?;
    let Some(list) = body["links"].as_object() else {
        return Ok((Vec::new(), false));
    };
    // YOURLS numbers the links link_1 … link_N; keep that order.
    let mut numbered: Vec<(usize, &Value)> = list
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("link_")?.parse().ok()?, v)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let links: Vec<Incoming> = numbered
        .into_iter()
        .map(|(_, l)| {
            let url = l["url"].as_str().unwrap_or_default().to_owned();
            let title = l["title"].as_str().filter(|t| *t != url && !t.is_empty());
            Incoming {
                alias: l["shorturl"]
                    .as_str()
                    .and_then(|s| s.trim_end_matches('/').rsplit('/').next())
                    .map(str::to_owned),
                title: title.map(str::to_owned),
                created_at: l["timestamp"].as_str().and_then(yourls_date),
                clicks: number(&l["clicks"]),
                url,
                ..Incoming::default()
            }
        })
        .collect();
    // A server may cap `limit` below ours: only an empty page ends the listing.
    let more = !links.is_empty();
    Ok((links, more))
}

/// One page of a Shlink server's links (`GET /rest/v3/short-urls`, oldest first).
async fn shlink_page(
    client: &Client,
    base: &str,
    key: &str,
    page: usize,
) -> anyhow::Result<(Vec<Incoming>, bool)> {
    let (page_text, per_page) = (page.to_string(), PAGE.to_string());
    let url = with_query(
        &format!("{base}/rest/v3/short-urls"),
        &[
            ("page", page_text.as_str()),
            ("itemsPerPage", per_page.as_str()),
            ("orderBy", "dateCreated-ASC"),
        ],
    )?;
    let body = fetch(client, &url, &[("x-api-key", key)], "the Shlink API").await?;
    let list = &body["shortUrls"];
    let date = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let links = list["data"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| Incoming {
            url: s["longUrl"].as_str().unwrap_or_default().to_owned(),
            alias: s["shortCode"].as_str().map(str::to_owned),
            title: s["title"].as_str().map(str::to_owned),
            tags: s["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            created_at: date(&s["dateCreated"]),
            clicks: s["visitsSummary"]["total"]
                .as_i64()
                .or(s["visitsCount"].as_i64()),
            expires_at: date(&s["meta"]["validUntil"]),
            max_clicks: s["meta"]["maxVisits"].as_i64(),
        })
        .collect();
    let pages = list["pagination"]["pagesCount"].as_u64().unwrap_or(1);
    Ok((links, (page as u64) < pages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yourls_dates_and_numbers_read_in_both_forms() {
        assert_eq!(
            yourls_date("2024-05-06 07:08:09").map(|t| t.to_rfc3339()),
            Some("2024-05-06T07:08:09+00:00".to_owned())
        );
        assert_eq!(number(&serde_json::json!("12")), Some(12));
        assert_eq!(number(&serde_json::json!(12)), Some(12));
        assert_eq!(number(&serde_json::json!(null)), None);
    }
}
