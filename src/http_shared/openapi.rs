//! What the OpenAPI documents of the store's API and HQ's share: the bearer scheme, the
//! error replies (each an [`ErrorBody`](super::error::ErrorBody), schema `Error`), and a
//! walk over a path's operations. Each service lists its own replies and adds them to its
//! routes by these helpers.

use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Components, Content, Ref, RefOr, ResponseBuilder};

/// A shared error reply: (status, component name, description).
pub type ErrorReply = (&'static str, &'static str, &'static str);

/// Registers the `bearer` scheme and each error reply as a component.
pub fn add_components(components: &mut Components, replies: &[ErrorReply]) {
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (_, name, description) in replies {
        let response = ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("Error"))),
            )
            .build();
        components
            .responses
            .insert(name.to_string(), RefOr::T(response));
    }
}

/// The operation needs a bearer token.
pub fn require_bearer(op: &mut Operation) {
    op.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
}

/// A path's operations with their methods.
pub fn operations(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

/// Adds the shared reply of `code` to `op`, unless the operation describes it itself.
pub fn add_response(op: &mut Operation, code: &str, replies: &[ErrorReply]) {
    let Some((_, name, _)) = replies.iter().find(|(c, _, _)| *c == code) else {
        return;
    };
    op.responses
        .responses
        .entry(code.to_string())
        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
}
