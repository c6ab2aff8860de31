//! Loads links straight through the store layer, without HTTP, for the scale benchmark
//! (`bench/run.sh`): links 1..=N, each with the code [`numbered_code`] gives it and the URL
//! `https://example.com/articles/{i}`. `bench/redirects.lua` computes the same codes, so
//! the load generator can ask for any of the N links without a list of them. Links already
//! there are skipped, so a run can be repeated or extended. The first argument is a
//! database URL, or a snip configuration file (for shards: each link goes to the shard the
//! server would place it on).
//!
//! ```sh
//! cargo run --release --example bulk_load -- sqlite:///tmp/big.db 10000000
//! cargo run --release --example bulk_load -- shards.toml 100000
//! ```

use std::time::Instant;

use anyhow::Context;
use snip::domain::code::Code;
use snip::domain::link::RedirectStatus;
use snip::domain::target_url::{TargetUrl, UrlPolicy};
use snip::domain::user::{Email, Role, UserDraft};
use snip::store::{AnyStore, LinkFields, LinkRecord};

/// Links per transaction.
const CHUNK: u64 = 10_000;

/// The code of link `i` (1 ≤ i < 2³¹ − 1): `b` and base62 of `i × 48271 mod (2³¹ − 1)`, a
/// bijection that scatters neighbouring numbers, as random codes are scattered.
fn numbered_code(i: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = i * 48_271 % 2_147_483_647;
    let mut out = Vec::with_capacity(8);
    while x > 0 {
        out.push(DIGITS[(x % 62) as usize]);
        x /= 62;
    }
    out.push(b'b');
    out.reverse();
    String::from_utf8(out).expect("base62 digits are ASCII")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    const USAGE: &str = "usage: bulk_load DATABASE_URL|CONFIG.toml N";
    let target = args.next().context(USAGE)?;
    let n: u64 = args
        .next()
        .context(USAGE)?
        .parse()
        .context("N must be a whole number")?;
    let store = if target.starts_with("sqlite:") || target.starts_with("postgres") {
        AnyStore::open(&target).await?
    } else {
        let overrides = snip::config::Overrides::default();
        let config = snip::config::Config::load(Some(std::path::Path::new(&target)), overrides)?;
        AnyStore::from_config(&config).await?
    };
    let (users, links) = (store.users(), store.links());
    let now = chrono::Utc::now();
    let email = Email::parse("bulk-load@example.com").map_err(anyhow::Error::msg)?;
    let owner = match users.find_user_by_email(&email).await? {
        Some(u) => u,
        None => {
            let draft = UserDraft {
                email,
                name: "bulk load".into(),
                role: Role::Member,
            };
            users.create_user(&draft, now).await?
        }
    };
    let policy = UrlPolicy::default();
    let started = Instant::now();
    let mut inserted = 0usize;
    let mut first = 1;
    while first <= n {
        let last = (first + CHUNK - 1).min(n);
        let batch = (first..=last)
            .map(|i| {
                let url = format!("https://example.com/articles/{i}");
                Ok(LinkRecord {
                    code: Code::from_trusted(numbered_code(i)),
                    fields: LinkFields {
                        url: TargetUrl::parse(&url, &policy).map_err(anyhow::Error::msg)?,
                        title: None,
                        tags: Vec::new(),
                        expires_at: None,
                        max_clicks: None,
                        redirect_status: RedirectStatus::Found,
                        password_hash: None,
                    },
                    owner_id: owner.id,
                    clicks: 0,
                    created_at: now,
                    updated_at: now,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        inserted += links
            .insert_links(&batch)
            .await?
            .iter()
            .filter(|r| r.is_ok())
            .count();
        first = last + 1;
    }
    store.close().await;
    eprintln!(
        "{inserted} links inserted ({} were there) in {:.1} s",
        n as usize - inserted,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
