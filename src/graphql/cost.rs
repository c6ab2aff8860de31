//! What a GraphQL request costs, and charging it to the caller's rate-limit bucket before
//! any resolver runs. Validation has measured the query's complexity (list fields weigh
//! their page size); the request takes one token per [`POINTS_PER_TOKEN`] points, at least
//! one, from the reads bucket, or from the writes bucket for a mutation. A query that fails
//! to parse or validate still takes one read token. A mutation sent with GET is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{
    ErrorExtensionValues, Response, ServerError, ServerResult, ValidationResult, Variables,
};

use crate::app::AppState;
use crate::ratelimit::{Decision, PolicyName};

/// Complexity points per token.
pub const POINTS_PER_TOKEN: usize = 100;

/// The tokens a request of `complexity` takes, at most `capacity` (so a costly query is
/// slow to repeat, never impossible).
pub fn tokens(complexity: usize, capacity: f64) -> u32 {
    let wanted = complexity.div_ceil(POINTS_PER_TOKEN).max(1);
    let most = capacity.floor().max(1.0) as usize;
    u32::try_from(wanted.min(most)).unwrap_or(u32::MAX)
}

/// The charge of one request: whose bucket, how it came, and what the limiter said.
pub struct Charge {
    /// The services (the limiter, the clock).
    pub state: AppState,
    /// The bucket: the key's, or the client address's for a request without a key.
    pub bucket: String,
    /// Whether the request has no API key (it is charged to the anonymous policy).
    pub anonymous: bool,
    /// Whether it came by GET (queries only).
    pub via_get: bool,
    /// The policy charged and the limiter's decision, once charged.
    pub decision: Mutex<Option<(PolicyName, Decision)>>,
    /// Set when a mutation came by GET.
    pub refused_get_mutation: std::sync::atomic::AtomicBool,
}

impl Charge {
    async fn take(&self, write: bool, tokens_wanted: usize) -> Option<(PolicyName, Decision)> {
        let policy = if self.anonymous {
            PolicyName::Anonymous
        } else if write {
            PolicyName::Writes
        } else {
            PolicyName::Reads
        };
        let limiter = &self.state.limiter;
        let capacity = limiter.limits().policy(policy).capacity;
        let now = crate::clock::to_millis(self.state.clock.now());
        let d = limiter
            .take(policy, &self.bucket, now, tokens(tokens_wanted, capacity))
            .await?;
        *self.decision.lock().unwrap_or_else(|e| e.into_inner()) = Some((policy, d));
        Some((policy, d))
    }
}

/// Makes one [`Costing`] per request, with the depth limit.
pub struct CostLimit {
    /// Deepest nesting of fields, but in introspection (see [`Shape`]).
    pub max_depth: usize,
}

impl ExtensionFactory for CostLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Costing {
            max_depth: self.max_depth,
            ..Costing::default()
        })
    }
}

/// The per-request extension.
#[derive(Default)]
struct Costing {
    max_depth: usize,
    /// The type of each operation of the document, by name (`None` for an anonymous one).
    operations: Mutex<HashMap<Option<String>, OperationType>>,
    /// What the document asks, for the depth rule.
    shape: Mutex<Shape>,
    /// The complexity validation measured.
    complexity: Mutex<usize>,
}

/// The fields of `__Type` that lead to lists of more types (`ofType` leads to one).
const FAN_OUT: [&str; 4] = ["fields", "inputFields", "interfaces", "possibleTypes"];

/// Most fan-out fields nested in one another in introspection, as graphql-js's
/// `MaxIntrospectionDepthRule` allows: enough for every explorer, while
/// `fields { type { fields { type { fields … } } } }` would multiply its answer by the
/// number of fields at each level.
pub const MAX_INTROSPECTION_FAN_OUT: usize = 3;

/// What the depth rule needs to know of a document. The usual introspection query of an
/// explorer nests `ofType` deeper than any limit on data queries, so a document that only
/// reads the schema is held to [`MAX_INTROSPECTION_FAN_OUT`] instead of the depth limit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Whether every operation asks only `__schema`, `__type` or `__typename`.
    pub introspection_only: bool,
    /// The most fan-out fields nested in one another.
    pub fan_out: usize,
}

/// Past this nesting (of selection sets and fragments) the walk stops: a document this
/// deep fails validation anyway (fragment cycles, parser limits).
const WALK_LIMIT: usize = 64;

impl Shape {
    /// The shape of `doc`.
    pub fn of(doc: &ExecutableDocument) -> Self {
        let mut shape = Shape {
            introspection_only: true,
            fan_out: 0,
        };
        for (_, op) in doc.operations.iter() {
            let set = &op.node.selection_set.node;
            shape.introspection_only &= only_introspection(doc, set, 0);
            shape.fan_out = shape.fan_out.max(fan_out(doc, set, 0));
        }
        shape
    }
}

fn only_introspection(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    depth < WALK_LIMIT
        && set.items.iter().all(|item| match &item.node {
            Selection::Field(f) => f.node.name.node.starts_with("__"),
            Selection::InlineFragment(i) => {
                only_introspection(doc, &i.node.selection_set.node, depth + 1)
            }
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .is_some_and(|f| only_introspection(doc, &f.node.selection_set.node, depth + 1)),
        })
}

fn fan_out(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> usize {
    if depth >= WALK_LIMIT {
        return usize::MAX;
    }
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                let here = usize::from(FAN_OUT.contains(&f.node.name.node.as_str()));
                here.saturating_add(fan_out(doc, &f.node.selection_set.node, depth + 1))
            }
            Selection::InlineFragment(i) => fan_out(doc, &i.node.selection_set.node, depth + 1),
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .map_or(0, |f| fan_out(doc, &f.node.selection_set.node, depth + 1)),
        })
        .max()
        .unwrap_or(0)
}

/// The error of a query nested too deep.
fn too_deep() -> ServerError {
    with_code(ServerError::new("Query is nested too deep.", None))
}

/// A request-level error (no path, no location) with a code and a status.
fn request_error(message: String, code: &str, status: u16) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    ext.set("status", status);
    e.extensions = Some(ext);
    e
}

/// A parse or validation error with its code: `too-complex` for a query over the depth or
/// complexity limit, `bad-request` for any other (REST would answer 400).
fn with_code(mut e: ServerError) -> ServerError {
    if e.extensions.is_some() {
        return e;
    }
    let code = if e.message.contains("too complex") || e.message.contains("nested too deep") {
        "too-complex"
    } else {
        "bad-request"
    };
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    ext.set("status", 400);
    e.extensions = Some(ext);
    e
}

fn rate_limited(policy: PolicyName, d: &Decision) -> ServerError {
    let retry = crate::http::guard::retry_after_secs(d);
    request_error(
        format!(
            "too many requests ({} policy); retry in {retry} s",
            policy.as_str()
        ),
        "rate-limited",
        429,
    )
}

#[async_trait::async_trait]
impl Extension for Costing {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        match next.run(ctx, query, variables).await {
            Ok(doc) => {
                *self.shape.lock().unwrap_or_else(|e| e.into_inner()) = Shape::of(&doc);
                let mut ops = self.operations.lock().unwrap_or_else(|e| e.into_inner());
                match &doc.operations {
                    DocumentOperations::Single(op) => {
                        ops.insert(None, op.node.ty);
                    }
                    DocumentOperations::Multiple(many) => {
                        for (name, op) in many {
                            ops.insert(Some(name.to_string()), op.node.ty);
                        }
                    }
                }
                Ok(doc)
            }
            Err(e) => {
                if let Some(charge) = ctx.data_opt::<Arc<Charge>>() {
                    charge.take(false, 1).await;
                }
                Err(with_code(e))
            }
        }
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let shape = *self.shape.lock().unwrap_or_else(|e| e.into_inner());
        let result = next.run(ctx).await.and_then(|v| {
            let deep = if shape.introspection_only {
                shape.fan_out > MAX_INTROSPECTION_FAN_OUT
            } else {
                v.depth > self.max_depth
            };
            if deep { Err(vec![too_deep()]) } else { Ok(v) }
        });
        match result {
            Ok(v) => {
                *self.complexity.lock().unwrap_or_else(|e| e.into_inner()) = v.complexity;
                Ok(v)
            }
            Err(errors) => {
                if let Some(charge) = ctx.data_opt::<Arc<Charge>>() {
                    charge.take(false, 1).await;
                }
                Err(errors.into_iter().map(with_code).collect())
            }
        }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let Some(charge) = ctx.data_opt::<Arc<Charge>>() else {
            return next.run(ctx, operation_name).await;
        };
        let ty = {
            let ops = self.operations.lock().unwrap_or_else(|e| e.into_inner());
            ops.get(&operation_name.map(str::to_owned))
                .or_else(|| (ops.len() == 1).then(|| ops.values().next()).flatten())
                .copied()
                .unwrap_or(OperationType::Query)
        };
        let write = ty != OperationType::Query;
        if write && charge.via_get {
            charge
                .refused_get_mutation
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Response::from_errors(vec![request_error(
                "a mutation must be sent with POST".into(),
                "method-not-allowed",
                405,
            )]);
        }
        let complexity = *self.complexity.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((policy, d)) = charge.take(write, complexity).await
            && !d.allowed
        {
            return Response::from_errors(vec![rate_limited(policy, &d)]);
        }
        next.run(ctx, operation_name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> Shape {
        Shape::of(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn only_schema_reading_documents_count_as_introspection() {
        assert!(shape("{ __schema { types { name } } }").introspection_only);
        assert!(shape("query { ...F } fragment F on Query { __typename }").introspection_only);
        assert!(!shape("{ __typename me { email } }").introspection_only);
        assert!(!shape("query { ...F } fragment F on Query { me { email } }").introspection_only);
        assert!(!shape("query A { __typename } query B { me { id } }").introspection_only);
    }

    #[test]
    fn fan_out_counts_nested_type_lists_through_fragments() {
        let explorer = "{ __schema { types { ...T } } }
            fragment T on __Type { fields { type { ...R } } inputFields { name } }
            fragment R on __Type { ofType { ofType { ofType { ofType { name } } } } }";
        assert_eq!(shape(explorer).fan_out, 1);
        let bomb = "{ __schema { types { fields { type { fields { type { interfaces {
            possibleTypes { name } } } } } } } } }";
        assert_eq!(shape(bomb).fan_out, 4);
    }

    #[test]
    fn a_request_takes_a_token_per_hundred_points_within_the_capacity() {
        assert_eq!(tokens(0, 200.0), 1);
        assert_eq!(tokens(100, 200.0), 1);
        assert_eq!(tokens(101, 200.0), 2);
        assert_eq!(tokens(901, 200.0), 10);
        assert_eq!(tokens(1_000_000, 5.0), 5);
        assert_eq!(tokens(1_000, 0.5), 1);
    }
}
