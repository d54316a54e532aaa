//! Who calls HQ's API and what each may do. Every client (`[[hq.clients]]`, and `hq.token`
//! as `admin`) has a token and a role; [`guard`] runs before every route that needs a token:
//! no or a wrong token is 401, a role that may not use the route 403 (both in the shared
//! error shape). The `web` role ([`web_may`]) is the web shop's: read stock and orders,
//! quote, place and cancel orders; `admin` may do everything.
//!
//! Tokens are kept as SHA-256 digests and the presented one is compared with every client's
//! in constant time, as the store does with its terminals, so neither a token's length nor
//! which client matched leaks through timing.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{HttpState, Problem};
use crate::sync::config::{ApiClient, Role};

/// Routes the web shop's role may use: (method, route as declared).
const WEB_ROUTES: [(Method, &str); 11] = [
    (Method::GET, "/v1/stock"),
    (Method::GET, "/v1/stock/{store}/{sku}"),
    (Method::GET, "/v1/orders"),
    (Method::POST, "/v1/orders"),
    (Method::GET, "/v1/orders/{id}"),
    (Method::POST, "/v1/orders/{id}/cancel"),
    (Method::POST, "/v1/quote"),
    (Method::POST, "/v1/coupons/{code}/redeem"),
    (Method::GET, "/v1/loyalty/members/{card}"),
    (Method::POST, "/v1/loyalty/members/{card}/earn"),
    (Method::POST, "/v1/loyalty/members/{card}/spend"),
];

/// Whether the `web` role may call `method` on `route` (the declared path, `{id}` and all).
pub fn web_may(method: &Method, route: &str) -> bool {
    WEB_ROUTES.iter().any(|(m, r)| m == method && *r == route)
}

/// Whether `role` may call `method` on `route`.
pub fn may(role: Role, method: &Method, route: &str) -> bool {
    match role {
        Role::Admin => true,
        Role::Web => web_may(method, route),
    }
}

/// A client that showed its token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The clients' token digests.
pub struct Clients(Vec<([u8; 32], Caller)>);

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Clients {
    pub fn new(clients: &[ApiClient]) -> Self {
        Self(
            clients
                .iter()
                .map(|c| {
                    (
                        digest(c.token.expose()),
                        Caller {
                            name: c.name.clone(),
                            role: c.role,
                        },
                    )
                })
                .collect(),
        )
    }

    /// The client whose bearer token `headers` carry. Every client is compared.
    pub fn caller(&self, headers: &HeaderMap) -> Option<&Caller> {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::settings::bearer_token)?;
        let presented = digest(given);
        let mut found = None;
        for (expected, caller) in &self.0 {
            if bool::from(expected.ct_eq(&presented)) {
                found = Some(caller);
            }
        }
        found
    }
}

/// Authenticates and authorises a request before its route runs (public routes pass).
pub async fn guard(
    State(state): State<HttpState>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = route.as_ref().map_or("", MatchedPath::as_str);
    if super::openapi::PUBLIC.contains(&route) {
        return next.run(request).await;
    }
    let Some(caller) = state.clients.caller(request.headers()) else {
        return Problem::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
            .into_response();
    };
    if !may(caller.role, request.method(), route) {
        tracing::warn!(client = caller.name, role = caller.role.as_str(), method = %request.method(), route, "HQ API call refused for the client's role");
        return Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "client {:?} has role {}, which may not {} {route}",
                caller.name,
                caller.role.as_str(),
                request.method()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;

    #[test]
    fn the_web_role_reads_stock_and_orders_and_places_and_cancels_only() {
        assert!(may(Role::Web, &Method::POST, "/v1/orders"));
        assert!(may(Role::Web, &Method::POST, "/v1/orders/{id}/cancel"));
        assert!(may(Role::Web, &Method::GET, "/v1/stock/{store}/{sku}"));
        assert!(!may(Role::Web, &Method::POST, "/v1/catalog"));
        assert!(!may(Role::Web, &Method::POST, "/v1/privacy/erase"));
        assert!(!may(Role::Web, &Method::GET, "/v1/orders/{id}/customer"));
        // Looking members up by phone or e-mail reads personal data: admin only.
        assert!(!may(Role::Web, &Method::GET, "/v1/loyalty/members"));
        assert!(may(Role::Admin, &Method::GET, "/v1/loyalty/members"));
        assert!(may(Role::Admin, &Method::POST, "/v1/privacy/erase"));
    }

    #[test]
    fn each_token_finds_its_client() {
        let clients = Clients::new(&[
            ApiClient::admin(Secret::new("admin-token-0123456789")),
            ApiClient {
                name: "shop".into(),
                role: Role::Web,
                token: Secret::new("web-token-0123456789"),
            },
        ]);
        let with = |token: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
            clients.caller(&headers).map(|c| c.name.clone())
        };
        assert_eq!(with("web-token-0123456789").as_deref(), Some("shop"));
        assert_eq!(with("admin-token-0123456789").as_deref(), Some("admin"));
        assert_eq!(with("web-token-012345678"), None);
    }
}
