//! The answers every route can give besides its own, written into the OpenAPI document once.
//!
//! The middleware in front of every handler can answer on its own: a malformed path, query or body
//! (400), a missing, expired or foreign token (401), a role without the right (403), a rate limit
//! or too many failed authentications from one address (429), a body over the size limit (413),
//! and, for calls carrying an `Idempotency-Key`, a key reused with another request (422). Listing
//! these by hand on each of the ~50 routes drifted (schemathesis found 80 undocumented statuses),
//! so [`complete`] adds them to every operation of the document the router serves, and documents
//! the `Idempotency-Key` header where the middleware reads it. Statuses a handler documents itself
//! keep the handler's description.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder};

/// Adds the middleware's answers (and the `Idempotency-Key` header) to every operation of `doc`,
/// and the values the API accepts in lists of names that the code owns (S3 actions of a custom
/// role, built-in roles of a quorum rule's approvers).
pub(super) fn complete(doc: &mut OpenApi) {
    let actions: Vec<String> = policy::Action::ALL
        .iter()
        .flat_map(|a| [a.s3_name().to_owned(), format!("s3:{}", a.s3_name())])
        .collect();
    enumerate_items(doc, "NewRole", "actions", &actions);
    let roles: Vec<String> = [
        policy::Role::Viewer,
        policy::Role::Manager,
        policy::Role::SuperAdmin,
    ]
    .iter()
    .map(|r| r.as_str().to_owned())
    .collect();
    enumerate_items(doc, "RuleBody", "approver_roles", &roles);
    for item in doc.paths.paths.values_mut() {
        let ops = [
            (&mut item.get, false),
            (&mut item.head, false),
            (&mut item.post, true),
            (&mut item.put, true),
            (&mut item.patch, true),
            (&mut item.delete, true),
        ];
        for (op, mutating) in ops {
            if let Some(op) = op.as_mut() {
                complete_operation(op, mutating);
            }
        }
    }
}

/// Restricts the items of the array property `property` of the component schema `schema` to
/// `values` (through the document's JSON form: the typed builders cannot edit in place).
fn enumerate_items(doc: &mut OpenApi, schema: &str, property: &str, values: &[String]) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(s) = components.schemas.get_mut(schema) else {
        return;
    };
    let Ok(mut json) = serde_json::to_value(&*s) else {
        return;
    };
    if let Some(items) = json.pointer_mut(&format!("/properties/{property}/items")) {
        *items = serde_json::json!({ "type": "string", "enum": values });
        if let Ok(patched) = serde_json::from_value(json) {
            *s = patched;
        }
    }
}

fn complete_operation(op: &mut Operation, mutating: bool) {
    // `security(())` (an empty requirement) marks the public routes: no token is read there
    let public = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().any(is_empty_requirement));
    let has_body = op.request_body.is_some();
    let has_path_params = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path))
    });
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    };
    add(
        "400",
        "malformed request: path, query, header or body (`InvalidRequest`)",
    );
    add(
        "429",
        "rate limit, or too many failed authentications from this address; see `Retry-After`",
    );
    if !public {
        add(
            "401",
            "missing, malformed, expired or foreign token (log in again)",
        );
        add("403", "the caller's role or tenant does not allow this");
    }
    if has_body {
        add("413", "body over the size limit");
    }
    if !public && (has_path_params || has_body) {
        add(
            "404",
            "a resource the path or the body names does not exist (or is another tenant's)",
        );
    }
    if mutating && !public {
        add("422", "`Idempotency-Key` reused with a different request");
        // one definition of the header (a route may name it; the constraints live here)
        let params = op.parameters.get_or_insert_with(Vec::new);
        params.retain(|p| !p.name.eq_ignore_ascii_case("idempotency-key"));
        params.push(idempotency_key());
    }
}

fn is_empty_requirement(r: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn idempotency_key() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "makes a retried call safe: the same key and request within 24 h get the first answer again",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[!-~]{1,255}$")),
        ))
        .build()
}
