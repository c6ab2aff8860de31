//! The domain: validated value types and the rules of links, users and keys.
//! Nothing here knows about HTTP or SQL.

pub mod code;
pub mod key;
pub mod link;
pub mod password;
pub mod target_url;
pub mod user;
pub mod visit;

/// One rejected field of a request: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON field name (dotted for nested fields, e.g. `tags.2`).
    pub field: String,
    /// What is wrong with it, for a person to read.
    pub message: String,
}

impl FieldError {
    /// A field error with the given field and message.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
