//! Links in and out of snip from the command line: `snip import` reads another service's
//! export file (`files.rs`) or its running API (`remote.rs`) and creates the links through
//! `app::import`; `snip export` writes a user's links as CSV or JSON, as the API's export
//! does.

pub mod files;
pub mod remote;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;

use crate::app::import::{Incoming, Outcome, import_one};
use crate::app::{AppState, Caller};
use crate::domain::user::Email;

/// The kinds of sources `snip import` reads (also its `--from` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// A CSV file with a header row: `url` and optionally `alias` (or `code`), `tags`,
    /// `title`, `created_at`, `clicks`. snip's own export is one.
    Csv,
    /// Bitly's CSV export.
    BitlyCsv,
    /// YOURLS: a SQL dump of its `yourls_url` table, or the URL of its `yourls-api.php`.
    Yourls,
    /// Shlink: its CSV export, or the address of a running Shlink.
    Shlink,
}

/// What one import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Links created (or, in a dry run, that would be).
    pub imported: u64,
    /// Links already here, left alone.
    pub duplicates: u64,
    /// Links not imported: `(where in the source, why)`.
    pub refused: Vec<(String, String)>,
}

/// How many refusals the summary lists one by one.
const LISTED_REFUSALS: usize = 20;

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "imported {}, skipped {} already here, refused {}",
            self.imported,
            self.duplicates,
            self.refused.len()
        )?;
        for (at, why) in self.refused.iter().take(LISTED_REFUSALS) {
            writeln!(f, "  refused {at}: {why}")?;
        }
        if self.refused.len() > LISTED_REFUSALS {
            writeln!(f, "  … and {} more", self.refused.len() - LISTED_REFUSALS)?;
        }
        Ok(())
    }
}

/// A progress line on standard error, redrawn at most ten times a second, only on a
/// terminal: how many links were read (of how many, when the source says) and what became
/// of them. Hand-written: a progress-bar crate would bring several dependencies for one
/// line.
struct Progress {
    on: bool,
    total: Option<u64>,
    last: Instant,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        Self {
            on: std::io::stderr().is_terminal(),
            total,
            last: Instant::now(),
        }
    }

    fn show(&mut self, seen: u64, s: &Summary, done: bool) {
        if !self.on || (!done && self.last.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Instant::now();
        let read = match self.total {
            Some(total) if total > 0 => format!("{seen}/{total} ({}%)", seen * 100 / total),
            _ => seen.to_string(),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{read} read: {} imported, {} already here, {} refused",
            s.imported,
            s.duplicates,
            s.refused.len()
        );
        if done {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// The caller links are imported for or exported from: the user with `email`.
pub async fn caller_for(state: &AppState, email: &str) -> anyhow::Result<Caller> {
    let parsed = Email::parse(email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
    let Some(user) = crate::app::users::by_email(state, &parsed).await? else {
        bail!(
            "no user has the e-mail {email} (create one with `snip keys create --email {email}`)"
        );
    };
    Ok(Caller::signed_in(user))
}

/// The links of a source one at a time: `(where, link or why it cannot be read)`.
pub type Items =
    futures_util::stream::BoxStream<'static, anyhow::Result<(String, Result<Incoming, String>)>>;

/// An opened source: its links, and how many there are when that is known (files).
pub struct Source {
    /// The links.
    pub items: Items,
    /// How many.
    pub total: Option<u64>,
}

/// Opens `source` (a file path, or an API address for YOURLS and Shlink) as `from` says.
/// `secret` is the API's signature or key.
pub fn open(from: SourceKind, source: &str, secret: Option<&str>) -> anyhow::Result<Source> {
    let remote = source.starts_with("http://") || source.starts_with("https://");
    let need_secret = |flag: &str| {
        secret
            .map(str::to_owned)
            .with_context(|| format!("reading a running server needs its key: {flag}"))
    };
    if remote {
        let api = match from {
            SourceKind::Yourls => remote::Remote::yourls(source, &need_secret("--signature")?)?,
            SourceKind::Shlink => remote::Remote::shlink(source, &need_secret("--api-key")?)?,
            _ => bail!("only --from yourls and --from shlink read a running server"),
        };
        // After an error the stream ends: the import stops there and says why.
        let stream = futures_util::stream::unfold(Some((api, 1u64)), |state| async move {
            let (mut api, n) = state?;
            match api.next().await {
                Ok(Some(link)) => Some((Ok((format!("link {n}"), Ok(link))), Some((api, n + 1)))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        });
        return Ok(Source {
            items: stream.boxed(),
            total: None,
        });
    }
    let text = std::fs::read(source).with_context(|| format!("reading {source}"))?;
    let rows = match from {
        SourceKind::Csv => files::generic_csv(&text)?,
        SourceKind::BitlyCsv => files::bitly_csv(&text)?,
        SourceKind::Shlink => files::shlink_csv(&text)?,
        SourceKind::Yourls => files::yourls_sql(&text)?,
    };
    Ok(Source {
        total: Some(rows.len() as u64),
        items: futures_util::stream::iter(rows.into_iter().map(Ok)).boxed(),
    })
}

/// Imports every link of `source` for `caller`; a dry run writes nothing.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    source: Source,
    dry_run: bool,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut progress = Progress::new(source.total);
    let mut items = source.items;
    let mut seen = 0;
    while let Some(item) = items.next().await {
        let (at, read) = item?;
        seen += 1;
        let outcome = match read {
            Ok(link) => import_one(state, caller, &link, dry_run)
                .await
                .map_err(|e| anyhow::anyhow!("importing {at}: {e}"))?,
            Err(why) => Outcome::Refused(why),
        };
        match outcome {
            Outcome::Imported(_) => summary.imported += 1,
            Outcome::Duplicate(_) => summary.duplicates += 1,
            Outcome::Refused(why) => summary.refused.push((at, why)),
        }
        progress.show(seen, &summary, false);
    }
    progress.show(seen, &summary, true);
    Ok(summary)
}

/// Writes every live link of `caller` to `out`, as CSV or JSON.
pub async fn export(
    state: &AppState,
    caller: &Caller,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u64> {
    let base = state.settings.base_url.clone();
    let mut pages = std::pin::pin!(crate::app::links::export(
        state.clone(),
        caller.clone(),
        caller.user.id
    ));
    let mut n = 0u64;
    if json {
        out.write_all(b"[\n")?;
    } else {
        out.write_all(&crate::http::export::csv_rows(&[], "", true)?)?;
    }
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow::anyhow!("reading links: {e}"))?;
        if json {
            out.write_all(&crate::http::export::json_items(&page, &base, n == 0))?;
        } else {
            out.write_all(&crate::http::export::csv_rows(&page, &base, false)?)?;
        }
        n += page.len() as u64;
    }
    if json {
        out.write_all(b"]\n")?;
    }
    out.flush()?;
    Ok(n)
}
