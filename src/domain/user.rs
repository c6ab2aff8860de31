//! Users: who owns links and holds keys.

use serde::Deserialize;

use super::FieldError;

/// Longest accepted display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A user's numeric id.
pub type UserId = i64;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May manage every user, key and link (with the `users:admin` scope).
    Admin,
    /// Sees and changes only their own links and record.
    Member,
}

impl Role {
    /// Parses `admin` or `member`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

/// A validated e-mail address, lower-cased so uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// A deliberately simple check: one `@`, a non-empty local part, a domain with a dot or
    /// `localhost`, no spaces, at most 254 characters. Delivery is the only real proof.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let s = s.trim();
        if s.is_empty() || s.len() > 254 {
            return Err("must be 1 to 254 characters long");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("must be an e-mail address");
        };
        let ok = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && (domain.contains('.') || domain.eq_ignore_ascii_case("localhost"))
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err("must be an e-mail address");
        }
        Ok(Self(s.to_lowercase()))
    }

    /// Rebuilds an address read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new user, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDraft {
    /// Unique e-mail.
    pub email: Email,
    /// Display name (may be empty).
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A request to create or replace a user.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// E-mail address, unique among users.
    #[schema(required = true, value_type = String, format = Email, max_length = 254)]
    pub email: Option<String>,
    /// Display name, at most 200 printable characters.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// `admin` or `member` (default; only an admin may set it).
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

/// A merge patch of a user.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New e-mail address.
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// New display name; null clears it.
    #[serde(default, deserialize_with = "present_string")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub name: Option<Option<String>>,
    /// New role (admins only).
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
}

fn present_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn parse_name(name: Option<String>) -> Result<String, FieldError> {
    let name = name.unwrap_or_default().trim().to_owned();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(name)
}

fn parse_role(role: Option<&str>, default: Role) -> Result<Role, FieldError> {
    match role {
        None => Ok(default),
        Some(r) => Role::parse(r).ok_or_else(|| FieldError::new("role", "must be admin or member")),
    }
}

fn parse_email(email: Option<&str>) -> Result<Email, FieldError> {
    match email {
        None => Err(FieldError::new("email", "is required")),
        Some(e) => Email::parse(e).map_err(|m| FieldError::new("email", m)),
    }
}

/// Validates a create or replace request; an absent role means `default_role`.
pub fn validate_user(input: UserInput, default_role: Role) -> Result<UserDraft, Vec<FieldError>> {
    let email = parse_email(input.email.as_deref());
    let name = parse_name(input.name);
    let role = parse_role(input.role.as_deref(), default_role);
    match (email, name, role) {
        (Ok(email), Ok(name), Ok(role)) => Ok(UserDraft { email, name, role }),
        (e, n, r) => Err([e.err(), n.err(), r.err()].into_iter().flatten().collect()),
    }
}

/// Applies a merge patch to a user's current fields.
pub fn apply_user_patch(
    current: UserDraft,
    patch: UserPatch,
) -> Result<UserDraft, Vec<FieldError>> {
    let email = match patch.email.as_deref() {
        None => Ok(current.email),
        e => parse_email(e),
    };
    let name = match patch.name {
        None => Ok(current.name),
        Some(n) => parse_name(n),
    };
    let role = parse_role(patch.role.as_deref(), current.role);
    match (email, name, role) {
        (Ok(email), Ok(name), Ok(role)) => Ok(UserDraft { email, name, role }),
        (e, n, r) => Err([e.err(), n.err(), r.err()].into_iter().flatten().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(Email::parse("A@B.Example").unwrap().as_str(), "a@b.example");
        assert!(Email::parse("admin@localhost").is_ok());
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b@c.d", "a@.b"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_round_trip_by_name() {
        for role in [Role::Admin, Role::Member] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::Admin.as_str(), "admin");
        assert_eq!(Role::Member.as_str(), "member");
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn emails_are_at_most_254_characters() {
        let at = |n: usize| format!("{}@example.com", "a".repeat(n - "@example.com".len()));
        assert!(Email::parse(&at(254)).is_ok());
        assert_eq!(
            Email::parse(&at(255)),
            Err("must be 1 to 254 characters long")
        );
        assert_eq!(Email::parse("  "), Err("must be 1 to 254 characters long"));
    }

    #[test]
    fn names_are_at_most_200_characters() {
        assert_eq!(
            parse_name(Some("é".repeat(200))).unwrap().chars().count(),
            200
        );
        assert!(parse_name(Some("é".repeat(201))).is_err());
    }

    #[test]
    fn a_patch_tells_a_cleared_name_from_an_absent_one() {
        let patch = |json: &str| serde_json::from_str::<UserPatch>(json).unwrap().name;
        assert_eq!(patch("{}"), None);
        assert_eq!(patch(r#"{"name": null}"#), Some(None));
        assert_eq!(patch(r#"{"name": "Ada"}"#), Some(Some("Ada".into())));
    }

    #[test]
    fn user_validation_reports_every_field() {
        let errs = validate_user(
            UserInput {
                email: Some("nope".into()),
                name: Some("x".repeat(201)),
                role: Some("root".into()),
            },
            Role::Member,
        )
        .unwrap_err();
        let mut fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["email", "name", "role"], "{errs:?}");
    }
}
