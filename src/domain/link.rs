//! Links: the validated fields a client may set, and the rules for creating and changing them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::FieldError;
use super::code::Code;
use super::target_url::{TargetUrl, UrlPolicy};

/// Longest accepted title, in characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// Most tags on one link.
pub const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Longest accepted password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Largest `max_clicks` (2^53, so it survives a JSON number in every client).
pub const MAX_MAX_CLICKS: i64 = 1 << 53;

/// The HTTP status a link redirects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectStatus {
    /// 301 Moved Permanently: cacheable by browsers and CDNs.
    MovedPermanently,
    /// 302 Found: the default; every click reaches snip.
    #[default]
    Found,
    /// 307 Temporary Redirect: like 302, keeps the method.
    Temporary,
    /// 308 Permanent Redirect: like 301, keeps the method.
    Permanent,
}

impl RedirectStatus {
    /// Parses one of 301, 302, 307, 308.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            301 => Some(Self::MovedPermanently),
            302 => Some(Self::Found),
            307 => Some(Self::Temporary),
            308 => Some(Self::Permanent),
            _ => None,
        }
    }

    /// The numeric status.
    pub fn code(self) -> u16 {
        match self {
            Self::MovedPermanently => 301,
            Self::Found => 302,
            Self::Temporary => 307,
            Self::Permanent => 308,
        }
    }

    /// Whether shared caches may keep the redirect.
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::MovedPermanently | Self::Permanent)
    }
}

/// What to do with a link's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// Leave it as it is (on create: no password).
    Keep,
    /// Remove it.
    Clear,
    /// Protect the link with this password (hashed before it is stored).
    Set(String),
}

/// The fields of a link that clients set, all validated.
///
/// Not the same type as `store::LinkFields`, though the fields but one are alike: a draft
/// says what to do with the password (keep, clear, or set a plain one), the stored fields
/// hold its argon2 hash. Hashing is slow and runs on a blocking thread between the two, so
/// a plain password never reaches the store and the store never sees a `Keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDraft {
    /// Where the link goes.
    pub url: TargetUrl,
    /// A human title.
    pub title: Option<String>,
    /// Sorted, de-duplicated tags.
    pub tags: Vec<String>,
    /// After this instant the link answers 410.
    pub expires_at: Option<DateTime<Utc>>,
    /// After this many redirects the link answers 410.
    pub max_clicks: Option<i64>,
    /// The redirect status.
    pub redirect_status: RedirectStatus,
    /// The password change.
    pub password: PasswordChange,
}

/// A request to create a link (also the shape of a PUT body, which has no alias).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// Destination: absolute http(s) URL, with a host, without user information, not this
    /// service itself nor a blocked host.
    #[schema(required = true, value_type = String, min_length = 1, max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: Option<String>,
    /// Custom code, `[A-Za-z0-9_-]{3,64}`; a random 7-character code when absent.
    #[schema(pattern = "^[A-Za-z0-9_-]{3,64}$")]
    pub alias: Option<String>,
    /// Title, at most 512 characters.
    #[schema(max_length = 512)]
    pub title: Option<String>,
    /// At most 20 tags of 1–64 letters, digits, `-`, `_`, `.`, `:`.
    #[schema(max_items = 20)]
    pub tags: Option<Vec<String>>,
    /// RFC 3339 instant in the future.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Number of redirects after which the link is gone, 1 to 2^53.
    #[serde(default, deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 9_007_199_254_740_992_i64)]
    pub max_clicks: Option<i64>,
    /// 301, 302 (default), 307 or 308.
    #[serde(default, deserialize_with = "integer")]
    #[schema(schema_with = redirect_status_schema)]
    pub redirect_status: Option<i64>,
    /// Protects the link with a password (1–256 characters).
    #[schema(min_length = 1, max_length = 256)]
    pub password: Option<String>,
}

/// The redirect statuses a link may use, for the API document (`null`: the default, 302).
fn redirect_status_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .enum_values(Some([
            serde_json::json!(301),
            serde_json::json!(302),
            serde_json::json!(307),
            serde_json::json!(308),
            serde_json::Value::Null,
        ]))
        .description(Some("301, 302 (default), 307 or 308; null for the default"))
        .build()
}

/// A JSON merge patch (RFC 7396) of a link: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPatch {
    /// New destination; cannot be null.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 2048,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: Option<Option<String>>,
    /// New title, or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 512)]
    pub title: Option<Option<String>>,
    /// New tags, or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, max_items = 20)]
    pub tags: Option<Option<Vec<String>>>,
    /// New expiry, or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<String>>,
    /// New click limit (1 to 2^53), or null to clear.
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 9_007_199_254_740_992_i64)]
    pub max_clicks: Option<Option<i64>>,
    /// New redirect status, or null for the default (302).
    #[serde(default, deserialize_with = "present_integer")]
    #[schema(schema_with = redirect_status_schema)]
    pub redirect_status: Option<Option<i64>>,
    /// New password (1–256 characters), or null to remove protection.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 256)]
    pub password: Option<Option<String>>,
}

/// Deserialises a field that is present (possibly `null`) as `Some(..)`; `#[serde(default)]`
/// leaves an absent one `None`.
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON integer, also when written with a zero fraction (`5.0`): JSON does not tell the
/// two apart, and neither does JSON Schema's `integer`.
fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    // ±2^63 is where an f64 stops fitting an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < LIMIT)
                .map(|f| f as i64)
        })
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("must be a whole number, not {n}")))
}

/// A merge-patch field holding an [`integer`]: absent, null, or a number.
fn present_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    integer(d).map(Some)
}

/// Collects field errors while a request is validated, so a client sees them all at once.
#[derive(Debug, Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn check<T, E: std::fmt::Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(FieldError::new(field, e.to_string()));
                None
            }
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// Validates a create request: the alias (if any) and the link's fields.
pub fn validate_create(
    input: LinkInput,
    policy: &UrlPolicy,
    now: DateTime<Utc>,
) -> Result<(Option<Code>, LinkDraft), Vec<FieldError>> {
    let mut errs = Errors::default();
    let alias = match input.alias.as_deref() {
        Some(a) => errs.check("alias", Code::parse_alias(a).map(Some)),
        None => Some(None),
    };
    let draft = draft_from_input(&mut errs, input, policy, now);
    errs.finish(alias.zip(draft))
}

/// Validates a PUT body: every mutable field is replaced, absent optional fields cleared.
pub fn validate_replace(
    input: LinkInput,
    policy: &UrlPolicy,
    now: DateTime<Utc>,
) -> Result<LinkDraft, Vec<FieldError>> {
    let mut errs = Errors::default();
    if input.alias.is_some() {
        errs.0.push(FieldError::new(
            "alias",
            "cannot be changed; create a new link",
        ));
    }
    let mut draft = draft_from_input(&mut errs, input, policy, now);
    if let Some(d) = draft.as_mut()
        && d.password == PasswordChange::Keep
    {
        d.password = PasswordChange::Clear;
    }
    errs.finish(draft)
}

fn draft_from_input(
    errs: &mut Errors,
    input: LinkInput,
    policy: &UrlPolicy,
    now: DateTime<Utc>,
) -> Option<LinkDraft> {
    let url = match input.url.as_deref() {
        Some(u) => errs.check("url", TargetUrl::parse(u, policy)),
        None => errs.check("url", Err::<TargetUrl, _>("is required")),
    };
    let title = errs.check("title", parse_title(input.title));
    let tags = errs.check("tags", parse_tags(input.tags.unwrap_or_default()));
    let expires_at = errs.check("expires_at", parse_expiry(input.expires_at, now));
    let max_clicks = errs.check("max_clicks", parse_max_clicks(input.max_clicks));
    let redirect_status = errs.check("redirect_status", parse_status(input.redirect_status));
    let password = errs.check("password", parse_password(input.password));
    Some(LinkDraft {
        url: url?,
        title: title?,
        tags: tags?,
        expires_at: expires_at?,
        max_clicks: max_clicks?,
        redirect_status: redirect_status?,
        password: password?,
    })
}

/// Applies a merge patch to the current fields of a link.
pub fn apply_patch(
    current: LinkDraft,
    patch: LinkPatch,
    policy: &UrlPolicy,
    now: DateTime<Utc>,
) -> Result<LinkDraft, Vec<FieldError>> {
    let mut errs = Errors::default();
    let url = match patch.url {
        None => Some(current.url),
        Some(None) => errs.check("url", Err::<TargetUrl, _>("cannot be null")),
        Some(Some(u)) => errs.check("url", TargetUrl::parse(&u, policy)),
    };
    let title = match patch.title {
        None => Some(current.title),
        Some(t) => errs.check("title", parse_title(t)),
    };
    let tags = match patch.tags {
        None => Some(current.tags),
        Some(t) => errs.check("tags", parse_tags(t.unwrap_or_default())),
    };
    let expires_at = match patch.expires_at {
        None => Some(current.expires_at),
        Some(e) => errs.check("expires_at", parse_expiry(e, now)),
    };
    let max_clicks = match patch.max_clicks {
        None => Some(current.max_clicks),
        Some(m) => errs.check("max_clicks", parse_max_clicks(m)),
    };
    let redirect_status = match patch.redirect_status {
        None => Some(current.redirect_status),
        Some(s) => errs.check("redirect_status", parse_status(s)),
    };
    let password = match patch.password {
        None => Some(PasswordChange::Keep),
        Some(None) => Some(PasswordChange::Clear),
        Some(p) => errs.check("password", parse_password(p)),
    };
    let draft = (|| {
        Some(LinkDraft {
            url: url?,
            title: title?,
            tags: tags?,
            expires_at: expires_at?,
            max_clicks: max_clicks?,
            redirect_status: redirect_status?,
            password: password?,
        })
    })();
    errs.finish(draft)
}

fn parse_title(title: Option<String>) -> Result<Option<String>, String> {
    match title {
        Some(t) if t.chars().count() > MAX_TITLE_CHARS => {
            Err(format!("must be at most {MAX_TITLE_CHARS} characters long"))
        }
        Some(t) if t.chars().any(char::is_control) => {
            Err("must not contain control characters".into())
        }
        Some(t) if t.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// Parses a tag list: each tag 1–64 letters, digits, `-_.:`; sorted and de-duplicated.
pub fn parse_tags(tags: Vec<String>) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(tags.len());
    for (i, tag) in tags.into_iter().enumerate() {
        let tag = tag.trim().to_owned();
        let n = tag.chars().count();
        if n == 0 || n > MAX_TAG_CHARS {
            return Err(format!(
                "tag {i} must be 1 to {MAX_TAG_CHARS} characters long"
            ));
        }
        if !tag
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(format!(
                "tag {i} may contain only letters, digits, '-', '_', '.' and ':'"
            ));
        }
        out.push(tag);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags are allowed"));
    }
    Ok(out)
}

fn parse_expiry(
    expires_at: Option<String>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, String> {
    let Some(s) = expires_at else { return Ok(None) };
    let at = DateTime::parse_from_rfc3339(&s)
        .map_err(|_| "must be an RFC 3339 date-time, e.g. 2030-01-01T00:00:00Z".to_owned())?
        .with_timezone(&Utc);
    if at <= now {
        return Err("must be in the future".into());
    }
    Ok(Some(at))
}

fn parse_max_clicks(max_clicks: Option<i64>) -> Result<Option<i64>, String> {
    match max_clicks {
        Some(m) if !(1..=MAX_MAX_CLICKS).contains(&m) => {
            Err(format!("must be between 1 and {MAX_MAX_CLICKS}"))
        }
        other => Ok(other),
    }
}

fn parse_status(status: Option<i64>) -> Result<RedirectStatus, String> {
    match status {
        None => Ok(RedirectStatus::default()),
        Some(s) => {
            RedirectStatus::from_code(s).ok_or_else(|| "must be one of 301, 302, 307, 308".into())
        }
    }
}

fn parse_password(password: Option<String>) -> Result<PasswordChange, String> {
    match password {
        None => Ok(PasswordChange::Keep),
        Some(p) if p.is_empty() || p.chars().count() > MAX_PASSWORD_CHARS => {
            Err(format!("must be 1 to {MAX_PASSWORD_CHARS} characters long"))
        }
        Some(p) => Ok(PasswordChange::Set(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> LinkInput {
        LinkInput {
            url: Some(url.into()),
            ..LinkInput::default()
        }
    }

    #[test]
    fn redirect_statuses_round_trip_and_two_are_permanent() {
        for code in [301, 302, 307, 308] {
            let status = RedirectStatus::from_code(code).unwrap();
            assert_eq!(i64::from(status.code()), code);
            assert_eq!(status.is_permanent(), code == 301 || code == 308, "{code}");
        }
        assert_eq!(RedirectStatus::from_code(300), None);
        let schema = serde_json::to_value(redirect_status_schema()).unwrap();
        assert_eq!(
            schema["enum"],
            serde_json::json!([301, 302, 307, 308, null])
        );
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let max_clicks = |v: serde_json::Value| {
            serde_json::from_value::<LinkInput>(serde_json::json!({ "max_clicks": v }))
                .map(|i| i.max_clicks)
                .map_err(|e| e.to_string())
        };
        assert_eq!(max_clicks(serde_json::json!(5)), Ok(Some(5)));
        assert_eq!(max_clicks(serde_json::json!(5.0)), Ok(Some(5)));
        assert_eq!(max_clicks(serde_json::json!(-4.0)), Ok(Some(-4)));
        assert!(max_clicks(serde_json::json!(5.5)).is_err());
        assert!(max_clicks(serde_json::json!(9_223_372_036_854_775_808.0)).is_err());
        assert!(max_clicks(serde_json::json!(1e19)).is_err());
    }

    #[test]
    fn an_alias_error_fails_the_request_even_when_the_link_is_good() {
        let with_alias = |alias: &str| LinkInput {
            alias: Some(alias.into()),
            ..input("https://example.com/")
        };
        let policy = UrlPolicy::default();
        let errors = validate_create(with_alias("ab"), &policy, Utc::now()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "alias");
        // A PUT cannot change the alias: refused, although every field is valid.
        let errors = validate_replace(with_alias("fine-alias"), &policy, Utc::now()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "alias");
    }

    #[test]
    fn field_limits_hold_at_their_boundaries() {
        assert_eq!(parse_title(Some("x".into())), Ok(Some("x".into())));
        assert!(parse_title(Some("é".repeat(MAX_TITLE_CHARS))).is_ok());
        assert!(parse_title(Some("é".repeat(MAX_TITLE_CHARS + 1))).is_err());
        assert!(parse_title(Some("a\u{7}b".into())).is_err());
        assert_eq!(parse_title(Some("   ".into())), Ok(None));

        assert!(parse_tags(vec!["t".repeat(MAX_TAG_CHARS)]).is_ok());
        assert!(parse_tags(vec!["t".repeat(MAX_TAG_CHARS + 1)]).is_err());
        let tags = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        assert_eq!(parse_tags(tags(MAX_TAGS)).unwrap().len(), MAX_TAGS);
        assert!(parse_tags(tags(MAX_TAGS + 1)).is_err());

        let now = Utc::now();
        let at = |t: DateTime<Utc>| Some(t.to_rfc3339());
        assert!(parse_expiry(at(now), now).is_err(), "now is not the future");
        assert!(parse_expiry(at(now + chrono::TimeDelta::seconds(1)), now).is_ok());

        assert_eq!(
            parse_password(Some("x".into())),
            Ok(PasswordChange::Set("x".into()))
        );
        assert!(parse_password(Some("é".repeat(MAX_PASSWORD_CHARS))).is_ok());
        assert!(parse_password(Some("é".repeat(MAX_PASSWORD_CHARS + 1))).is_err());
        assert!(parse_password(Some(String::new())).is_err());
    }

    #[test]
    fn create_collects_every_field_error() {
        let now = Utc::now();
        let bad = LinkInput {
            url: Some("ftp://x".into()),
            alias: Some("a b".into()),
            title: None,
            tags: Some(vec!["ok".into(), "".into()]),
            expires_at: Some("yesterday".into()),
            max_clicks: Some(0),
            redirect_status: Some(303),
            password: Some(String::new()),
        };
        let errs = validate_create(bad, &UrlPolicy::default(), now).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "alias",
                "url",
                "tags",
                "expires_at",
                "max_clicks",
                "redirect_status",
                "password"
            ]
        );
    }

    #[test]
    fn tags_are_sorted_and_deduplicated() {
        let tags = parse_tags(vec!["b".into(), "a".into(), "b".into()]).unwrap();
        assert_eq!(tags, ["a", "b"]);
        assert!(parse_tags((0..21).map(|i| i.to_string()).collect()).is_err());
        assert!(parse_tags(vec!["has space".into()]).is_err());
    }

    #[test]
    fn patch_keeps_absent_fields_and_clears_nulls() {
        let now = Utc::now();
        let policy = UrlPolicy::default();
        let (_, current) = validate_create(
            LinkInput {
                title: Some("t".into()),
                max_clicks: Some(5),
                redirect_status: Some(301),
                ..input("https://a.example/")
            },
            &policy,
            now,
        )
        .unwrap();
        let patch: LinkPatch =
            serde_json::from_str(r#"{"title": null, "redirect_status": null}"#).unwrap();
        let next = apply_patch(current.clone(), patch, &policy, now).unwrap();
        assert_eq!(next.title, None);
        assert_eq!(next.redirect_status, RedirectStatus::Found);
        assert_eq!(next.max_clicks, Some(5));
        assert_eq!(next.url, current.url);
        assert_eq!(next.password, PasswordChange::Keep);

        let patch: LinkPatch = serde_json::from_str(r#"{"url": null}"#).unwrap();
        assert!(apply_patch(current, patch, &policy, now).is_err());
    }

    #[test]
    fn replace_clears_the_password() {
        let d = validate_replace(
            input("https://a.example/"),
            &UrlPolicy::default(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.password, PasswordChange::Clear);
    }
}
