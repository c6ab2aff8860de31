//! Reading other services' export files into links to import: a generic CSV (snip's own
//! export is one), Bitly's CSV export, Shlink's CSV export and a SQL dump of YOURLS's
//! `yourls_url` table. Each row gives a link or the reason it cannot be read.

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::app::import::Incoming;

/// A row read: where it is (for the summary) and its link, or why it cannot be read.
pub type Row = (String, Result<Incoming, String>);

/// A date in one of the forms exports use: RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), or a
/// bare date.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for form in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, form) {
            return Some(t.and_utc());
        }
    }
    for form in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, form) {
            return Some(t.with_timezone(&Utc));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The columns of a CSV header, found by any of several names (case and spaces ignored).
struct Columns(Vec<String>);

impl Columns {
    fn of(headers: &csv::StringRecord) -> Self {
        Self(headers.iter().map(normal).collect())
    }

    fn find(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|n| self.0.iter().position(|h| *h == normal(n)))
    }
}

fn normal(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Reads a CSV file into rows with `read`, which turns one record into a link.
fn read_csv(
    bytes: &[u8],
    needed: &[&str],
    read: impl Fn(&Columns, &csv::StringRecord) -> Result<Incoming, String>,
) -> anyhow::Result<Vec<Row>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let columns = Columns::of(reader.headers().context("reading the header row")?);
    if columns.find(needed).is_none() {
        bail!(
            "the header row has no {} column (it has: {})",
            needed.join(" or "),
            columns.0.join(", ")
        );
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let at = format!("row {}", i + 2);
        let link = match record {
            Ok(r) => read(&columns, &r),
            Err(e) => Err(format!("cannot be read: {e}")),
        };
        rows.push((at, link));
    }
    Ok(rows)
}

/// A cell by column names, empty cells as `None`.
fn cell(columns: &Columns, r: &csv::StringRecord, names: &[&str]) -> Option<String> {
    columns
        .find(names)
        .and_then(|i| r.get(i))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Tags in one cell, separated by `sep`.
fn split_tags(cell: Option<String>, sep: &[char]) -> Vec<String> {
    cell.map(|t| {
        t.split(sep)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

/// A count, or `None` when the cell is empty; a cell that is not a count is an error.
fn count(v: Option<String>, what: &str) -> Result<Option<i64>, String> {
    v.map(|s| {
        s.replace(',', "")
            .parse::<i64>()
            .map_err(|_| format!("{what} {s:?} is not a number"))
    })
    .transpose()
}

fn date(v: Option<String>, what: &str) -> Result<Option<DateTime<Utc>>, String> {
    v.map(|s| parse_date(&s).ok_or_else(|| format!("{what} {s:?} is not a date")))
        .transpose()
}

/// A generic CSV: `url` and optionally `alias` (or `code`), `tags` (separated by spaces or
/// commas), `title`, `created_at`, `clicks`, `expires_at`, `max_clicks`.
pub fn generic_csv(bytes: &[u8]) -> anyhow::Result<Vec<Row>> {
    read_csv(bytes, &["url"], |c, r| {
        Ok(Incoming {
            url: cell(c, r, &["url"]).ok_or("it has no url")?,
            alias: cell(c, r, &["alias", "code"]),
            title: cell(c, r, &["title"]),
            tags: split_tags(cell(c, r, &["tags"]), &[' ', ',']),
            created_at: date(cell(c, r, &["created_at"]), "created_at")?,
            clicks: count(cell(c, r, &["clicks"]), "clicks")?,
            expires_at: date(cell(c, r, &["expires_at"]), "expires_at")?,
            max_clicks: count(cell(c, r, &["max_clicks"]), "max_clicks")?,
        })
    })
}

/// The path of a short link such as `bit.ly/abc` or `https://s.test/abc`: the code it
/// had (a path of several segments is kept whole, and then refused as an alias).
fn code_of_short(link: &str) -> Option<String> {
    let path = link.split_once("://").map_or(link, |(_, rest)| rest);
    let (_, code) = path.trim_end_matches('/').split_once('/')?;
    (!code.is_empty()).then(|| code.to_owned())
}

/// Bitly's CSV export. Bitly does not document its columns, so they are found by the
/// names seen in the wild: the destination (`Destination URL`, `long_url`, …), the short
/// link (a custom back-half first, else the Bitlink), title, tags, creation date and
/// clicks.
pub fn bitly_csv(bytes: &[u8]) -> anyhow::Result<Vec<Row>> {
    let url_names = ["destination url", "long url", "long_url", "original url"];
    read_csv(bytes, &url_names, |c, r| {
        let custom = cell(c, r, &["custom link", "custom bitlink", "custom_bitlinks"]);
        // A cell may list several custom links: the first is kept.
        let custom = custom
            .as_deref()
            .and_then(|v| v.split([',', ' ', ';', '|']).find(|s| !s.is_empty()))
            .and_then(code_of_short);
        let alias = custom.or_else(|| {
            cell(c, r, &["link", "bitlink", "id", "short url"])
                .as_deref()
                .and_then(code_of_short)
        });
        Ok(Incoming {
            url: cell(c, r, &url_names).ok_or("it has no destination URL")?,
            alias,
            title: cell(c, r, &["title"]),
            tags: split_tags(cell(c, r, &["tags"]), &[',', ';', '|']),
            created_at: date(
                cell(c, r, &["date created", "created", "created_at"]),
                "created",
            )?,
            clicks: count(
                cell(c, r, &["engagements", "clicks", "total clicks"]),
                "clicks",
            )?,
            ..Incoming::default()
        })
    })
}

/// Decodes `%XX` escapes (Shlink's export writes short codes URL-encoded).
fn percent_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Shlink's CSV export of short URLs: `createdAt, domain, shortCode, shortUrl, longUrl,
/// title, tags, visits`, tags joined by `|` (by `,` in exports before `shortCode` was a
/// column).
pub fn shlink_csv(bytes: &[u8]) -> anyhow::Result<Vec<Row>> {
    read_csv(bytes, &["longUrl"], |c, r| {
        let current = c.find(&["shortCode"]).is_some();
        let alias = cell(c, r, &["shortCode"])
            .map(|code| percent_decoded(&code))
            .or_else(|| {
                cell(c, r, &["shortUrl"])
                    .as_deref()
                    .and_then(code_of_short)
                    .map(|code| percent_decoded(&code))
            });
        Ok(Incoming {
            url: cell(c, r, &["longUrl"]).ok_or("it has no longUrl")?,
            alias,
            title: cell(c, r, &["title"]),
            tags: split_tags(cell(c, r, &["tags"]), if current { &['|'] } else { &[','] }),
            created_at: date(cell(c, r, &["createdAt", "dateCreated"]), "createdAt")?,
            clicks: count(cell(c, r, &["visits"]), "visits")?,
            ..Incoming::default()
        })
    })
}

/// One value of a SQL `VALUES` tuple.
#[derive(Debug, Clone, PartialEq)]
enum SqlValue {
    Text(String),
    Null,
}

/// Splits a SQL dump into statements at each `;` outside strings, quoted names and
/// comments, and drops the comments. Text inside strings is kept as written (escapes too).
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                cur.push(c);
                while let Some(d) = chars.next() {
                    cur.push(d);
                    if d == '\\' && c != '`' {
                        if let Some(e) = chars.next() {
                            cur.push(e);
                        }
                    } else if d == c {
                        if chars.peek() == Some(&c) {
                            cur.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut star = false;
                for d in chars.by_ref() {
                    if star && d == '/' {
                        break;
                    }
                    star = d == '*';
                }
            }
            ';' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|s| !s.trim().is_empty());
    out
}

/// The name of the table an `INSERT` statement writes, lower-case and without quotes or
/// database name; `None` for any other statement.
fn insert_table(statement: &str) -> Option<String> {
    let mut words = statement.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("insert") {
        return None;
    }
    let mut word = words.next()?;
    if word.eq_ignore_ascii_case("ignore") {
        word = words.next()?;
    }
    if !word.eq_ignore_ascii_case("into") {
        return None;
    }
    let name: String = words
        .next()?
        .chars()
        .take_while(|c| *c != '(')
        .filter(|c| *c != '`' && *c != '"')
        .collect();
    Some(
        name.rsplit('.')
            .next()
            .unwrap_or(&name)
            .to_ascii_lowercase(),
    )
}

/// Reads the values of one tuple starting after its `(`: the values and the rest of the
/// text after its `)`.
fn tuple(text: &str) -> anyhow::Result<(Vec<SqlValue>, &str)> {
    let mut values = Vec::new();
    let mut value = String::new();
    let (mut in_string, mut quoted) = (false, false);
    let mut chars = text.char_indices().peekable();
    while let Some((i, ch)) = chars.next() {
        if in_string {
            match ch {
                '\\' => {
                    let (_, esc) = chars.next().context("a dump that ends inside a string")?;
                    value.push(match esc {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        '0' => '\0',
                        'Z' => '\u{1a}',
                        other => other,
                    });
                }
                '\'' if chars.peek().is_some_and(|(_, c)| *c == '\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => in_string = false,
                c => value.push(c),
            }
            continue;
        }
        match ch {
            '\'' => (in_string, quoted) = (true, true),
            ',' | ')' => {
                let raw = std::mem::take(&mut value);
                values.push(if quoted {
                    SqlValue::Text(raw)
                } else if raw.eq_ignore_ascii_case("null") {
                    SqlValue::Null
                } else {
                    SqlValue::Text(raw)
                });
                quoted = false;
                if ch == ')' {
                    return Ok((values, &text[i + 1..]));
                }
            }
            c if c.is_whitespace() => {}
            c => value.push(c),
        }
    }
    bail!("a VALUES tuple is not closed")
}

/// Reads the tuples of the `INSERT INTO …url … VALUES (...), (...)` statements of a MySQL
/// dump (mysqldump or phpMyAdmin): their column names (YOURLS's own order when a statement
/// names none) and values. Only whole statements count: text inside strings, such as a
/// visitor's user agent in another table, can never start one.
fn insert_tuples(sql: &str, table: &str) -> anyhow::Result<Vec<(Vec<String>, Vec<SqlValue>)>> {
    let default_columns: Vec<String> = ["keyword", "url", "title", "timestamp", "ip", "clicks"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut out = Vec::new();
    for statement in statements(sql) {
        let statement = statement.trim();
        let Some(name) = insert_table(statement) else {
            continue;
        };
        if name != table && !name.ends_with(&format!("_{table}")) {
            continue;
        }
        let values_at = statement
            .to_ascii_lowercase()
            .find("values")
            .context("an INSERT without VALUES")?;
        let head = &statement[..values_at];
        let columns = match (head.find('('), head.rfind(')')) {
            (Some(a), Some(b)) if a < b => head[a + 1..b]
                .split(',')
                .map(|c| {
                    c.trim()
                        .trim_matches('`')
                        .trim_matches('"')
                        .to_ascii_lowercase()
                })
                .collect(),
            _ => default_columns.clone(),
        };
        let mut rest = &statement[values_at + "values".len()..];
        while let Some(open) = rest.find('(') {
            let (values, after) = tuple(&rest[open + 1..])?;
            out.push((columns.clone(), values));
            rest = after;
        }
    }
    Ok(out)
}

/// A SQL dump of YOURLS's `yourls_url` table (columns `keyword`, `url`, `title`,
/// `timestamp`, `ip`, `clicks`).
pub fn yourls_sql(bytes: &[u8]) -> anyhow::Result<Vec<Row>> {
    let sql = String::from_utf8_lossy(bytes);
    let tuples = insert_tuples(&sql, "url")?;
    if tuples.is_empty() {
        bail!("the dump has no INSERT INTO yourls_url statement");
    }
    Ok(tuples
        .into_iter()
        .enumerate()
        .map(|(i, (columns, values))| {
            let get = |name: &str| {
                columns
                    .iter()
                    .position(|c| c == name)
                    .and_then(|at| values.get(at))
                    .and_then(|v| match v {
                        SqlValue::Text(t) if !t.is_empty() => Some(t.clone()),
                        _ => None,
                    })
            };
            let link = (|| {
                let url = get("url").ok_or("it has no url")?;
                let title = get("title").filter(|t| *t != url);
                Ok(Incoming {
                    alias: get("keyword"),
                    title,
                    created_at: date(get("timestamp"), "timestamp")?,
                    clicks: count(get("clicks"), "clicks")?,
                    url,
                    ..Incoming::default()
                })
            })();
            (format!("link {}", i + 1), link)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_in_the_forms_exports_use() {
        let want = parse_date("2024-05-06T07:08:09Z");
        assert!(want.is_some());
        assert_eq!(parse_date("2024-05-06 07:08:09"), want);
        assert_eq!(parse_date("2024-05-06T09:08:09+02:00"), want);
        assert_eq!(parse_date("2024-05-06 07:08:09 +0000"), want);
        assert!(parse_date("2024-05-06").is_some());
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn mysql_tuples_unescape_quotes_backslashes_and_nulls() {
        let sql = "INSERT INTO `yourls_url` (`keyword`, `url`, `title`, `timestamp`, `ip`, `clicks`) VALUES \
            ('a','https://a.example/?x=1&y=2','It\\'s, \"here\"','2024-01-02 03:04:05','1.2.3.4',7),\
            ('b','https://b.example/',NULL,'2024-01-02 03:04:05','::1',0);\n\
            INSERT INTO yourls_url VALUES ('c','https://c.example/','Don''t\\\\','2024-01-02 03:04:05','',1);";
        let t = insert_tuples(sql, "url").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].1[2], SqlValue::Text("It's, \"here\"".into()));
        assert_eq!(
            t[0].1[1],
            SqlValue::Text("https://a.example/?x=1&y=2".into())
        );
        assert_eq!(t[0].1[5], SqlValue::Text("7".into()));
        assert_eq!(t[1].1[2], SqlValue::Null);
        assert_eq!(t[2].0[0], "keyword", "the table's own column order");
        assert_eq!(t[2].1[2], SqlValue::Text("Don't\\".into()));
    }

    #[test]
    fn an_insert_inside_another_tables_string_is_only_text() {
        let sql = "INSERT INTO `yourls_log` VALUES (1,'x','INSERT INTO yourls_url VALUES (promo,https://evil.example/p,t,2024-01-01,x,0)');\n\
            -- INSERT INTO yourls_url VALUES ('c','https://c.example/','','2024-01-01 00:00:00','',0);\n\
            /* INSERT INTO yourls_url VALUES ('d','https://d.example/','','2024-01-01 00:00:00','',0); */\n\
            insert into yourls_url values ('real','https://real.example/','A; b','2024-01-01 00:00:00','',2);";
        let t = insert_tuples(sql, "url").unwrap();
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].1[0], SqlValue::Text("real".into()));
        assert_eq!(t[0].1[2], SqlValue::Text("A; b".into()));
    }

    #[test]
    fn short_links_give_their_codes() {
        assert_eq!(code_of_short("bit.ly/3abcDEF").as_deref(), Some("3abcDEF"));
        assert_eq!(code_of_short("https://s.test/xyz/").as_deref(), Some("xyz"));
        assert_eq!(code_of_short("bit.ly"), None);
        assert_eq!(code_of_short("s.test/a/b").as_deref(), Some("a/b"));
    }
}
