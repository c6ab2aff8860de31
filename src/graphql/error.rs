//! How errors of the use cases become GraphQL errors: the message REST would put in
//! `detail`, and `extensions` with `code` (the REST problem type's name), `status` (the
//! HTTP status REST would answer) and, for invalid fields, `fields` (paths from the
//! argument, such as `input.url`).

use async_graphql::{Error, ErrorExtensions};

use crate::app::AppError;
use crate::http::error::{ApiError, PROBLEM_TYPES_PATH, Problem};

/// The GraphQL error of a use case's error. `argument` names the argument the input came
/// in (`input`, `patch`, …): field paths start with it. Store failures and bugs are
/// logged, never shown.
pub fn gql(e: AppError, argument: &str) -> Error {
    let not_found = matches!(e, AppError::NotFound);
    let api = ApiError::from(e);
    let problem = Problem::from(&api);
    let code = match problem.kind.strip_prefix(PROBLEM_TYPES_PATH) {
        Some(anchor) => anchor.trim_start_matches('#').to_owned(),
        None if not_found => "not-found".to_owned(),
        None => generic_code(problem.status).to_owned(),
    };
    let fields: Vec<async_graphql::Value> = problem
        .errors
        .iter()
        .map(|f| {
            let field = camel(&f.field);
            let path = if argument.is_empty() {
                field
            } else {
                format!("{argument}.{field}")
            };
            let mut m = async_graphql::indexmap::IndexMap::new();
            m.insert(async_graphql::Name::new("field"), path.into());
            m.insert(
                async_graphql::Name::new("message"),
                f.message.clone().into(),
            );
            async_graphql::Value::Object(m)
        })
        .collect();
    let message = if not_found {
        "not found".to_owned()
    } else {
        problem.detail.clone()
    };
    Error::new(message).extend_with(|_, ext| {
        ext.set("code", code.as_str());
        ext.set("status", problem.status);
        if !fields.is_empty() {
            ext.set("fields", async_graphql::Value::List(fields.clone()));
        }
    })
}

/// An error of this module's own, with a code and the status REST would answer.
pub fn coded(code: &str, status: u16, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, ext| {
        ext.set("code", code);
        ext.set("status", status);
    })
}

/// Invalid arguments (422), each `(path, message)`.
pub fn invalid(fields: &[(&str, &str)]) -> Error {
    let errors = fields
        .iter()
        .map(|(f, m)| crate::domain::FieldError::new(*f, *m))
        .collect();
    gql(AppError::Validation(errors), "")
}

/// The code of a problem REST answers as `about:blank`.
fn generic_code(status: u16) -> &'static str {
    match status {
        400 => "bad-request",
        401 => "unauthorized",
        404 => "not-found",
        413 => "too-large",
        _ => "internal",
    }
}

/// The error of a request without an API key, for fields that need one.
pub fn unauthorized() -> Error {
    coded(
        "unauthorized",
        401,
        "an API key is required (Authorization: Bearer <key>)",
    )
}

/// A REST field name in GraphQL's spelling: `expires_at` → `expiresAt`.
fn camel(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_are_spelt_as_in_the_schema() {
        assert_eq!(camel("expires_at"), "expiresAt");
        assert_eq!(camel("tags.2"), "tags.2");
        assert_eq!(camel("redirect_status"), "redirectStatus");
    }

    #[test]
    fn codes_are_the_rest_problem_types() {
        let code = |e: Error| e.extensions.unwrap().get("code").cloned().unwrap();
        assert_eq!(code(gql(AppError::NotFound, "")), "not-found".into());
        assert_eq!(
            code(gql(AppError::Conflict(crate::store::Taken::Code), "input")),
            "alias-taken".into()
        );
        let e = gql(
            AppError::Validation(vec![crate::domain::FieldError::new("max_clicks", "bad")]),
            "input",
        );
        let ext = e.extensions.unwrap();
        assert_eq!(ext.get("code").cloned().unwrap(), "validation".into());
        assert!(format!("{:?}", ext.get("fields")).contains("input.maxClicks"));
    }
}
