//! `GET /v1/epcis/events`: the store's events as an EPCIS 2.0 document.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::TerminalId;
use super::error::{ApiError, ErrorBody};
use crate::config::Config;
use crate::epcis::{self, EpcisError, Origin, source};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// The validated query: a time window, a page size and a cursor (`after`, a log sequence).
#[derive(Debug, PartialEq, Eq)]
struct EventQuery {
    filter: source::Filter,
    /// The query as given, minus `after`, to build the `next` link.
    base: Vec<(String, String)>,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Some(field.to_string()), message)
}

fn parse_number<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| {
        bad(
            field,
            format!("{field}: not a non-negative integer: {value:?}"),
        )
    })
}

fn parse_query(pairs: Vec<(String, String)>) -> Result<EventQuery, ApiError> {
    let mut filter = source::Filter {
        limit: DEFAULT_LIMIT,
        ..source::Filter::default()
    };
    let mut base = Vec::new();
    for (key, value) in pairs {
        let time = |field: &'static str| {
            epcis::normalize_time(field, &value).map_err(|e: EpcisError| bad(field, e.to_string()))
        };
        match key.as_str() {
            "from" => filter.from = Some(time("from")?),
            "to" => filter.to = Some(time("to")?),
            "limit" => {
                let n: u32 = parse_number("limit", &value)?;
                if !(1..=MAX_LIMIT).contains(&n) {
                    return Err(bad("limit", format!("limit: give 1 to {MAX_LIMIT}")));
                }
                filter.limit = n;
            }
            "after" => filter.after = parse_number("after", &value)?,
            other => return Err(bad(other, format!("unknown query parameter {other:?}"))),
        }
        if key != "after" {
            base.push((key, value));
        }
    }
    if let (Some(from), Some(to)) = (&filter.from, &filter.to)
        && from > to
    {
        // Well-formed but empty window: refused as unprocessable, not malformed.
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "unprocessable",
            ..bad("to", "to: earlier than from")
        });
    }
    Ok(EventQuery { filter, base })
}

/// This node as an EPCIS origin. The GLN and time zone were checked when the configuration
/// was loaded.
fn origin(config: &Config) -> Result<Origin, ApiError> {
    let n = &config.node;
    Origin::new(&n.tenant, &n.store_id, &n.node_id, n.gln.as_deref())
        .map(|o| o.with_time_zone(n.time_zone.clone()))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn next_link(base: &[(String, String)], after: i64) -> String {
    let mut q: Vec<String> = base
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    q.push(format!("after={after}"));
    format!("</v1/epcis/events?{}>; rel=\"next\"", q.join("&"))
}

/// Receipts, counts, sales, RFID reads and exit alerts as a GS1 EPCIS 2.0 EPCISDocument.
///
/// The page of events: `limit` events unless it is the last page; a page with events after
/// it links the next one (`Link: <…&after=SEQ>; rel="next"`, as the EPCIS 2.0 REST binding
/// pages). Facts without GTIN in the page's range are counted in the document
/// (`storenode:factsWithoutGtin`), not silently left out.
#[utoipa::path(get, path = "/epcis/events", tag = "epcis",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("after" = Option<i64>, Query, description = "The cursor of the Link rel=next header"),
    ),
    responses(
        (status = 200, description = "An EPCISDocument (ObjectEvents, CBV 2.0); a page with more events after it has a Link rel=next header", body = Object),
        (status = 422, description = "`to` earlier than `from`", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    _t: TerminalId,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let query = parse_query(pairs)?;
    let origin = origin(&state.config)?;
    let filter = query.filter.clone();
    let page = state
        .store
        .read(move |conn| source::page(conn, &filter, &|r| epcis::build_event(&origin, r)))
        .await?;
    let doc = epcis::document(
        page.events,
        &crate::clock::now_utc(),
        page.facts_without_gtin,
    );
    let mut response = Json(doc).into_response();
    if let Some(after) = page.next_after
        && let Ok(link) = HeaderValue::from_str(&next_link(&query.base, after))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_filters_name_the_field() {
        for (key, value) in [
            ("from", "yesterday"),
            ("to", "2026-13-01T00:00:00Z"),
            ("limit", "0"),
            ("limit", "-1"),
            ("after", "x"),
            ("colour", "red"),
        ] {
            let err = parse_query(pairs(&[(key, value)])).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.field.as_deref(), Some(key));
        }
        let err = parse_query(pairs(&[
            ("from", "2026-01-02T00:00:00Z"),
            ("to", "2026-01-01T00:00:00Z"),
        ]))
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("to"));
    }

    #[test]
    fn good_query_is_normalised_and_links_next() {
        let q = parse_query(pairs(&[
            ("from", "2026-01-01T02:00:00+02:00"),
            ("limit", "5"),
            ("after", "9"),
        ]))
        .unwrap();
        assert_eq!(q.filter.from.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!((q.filter.limit, q.filter.after), (5, 9));
        assert_eq!(
            next_link(&q.base, 14),
            "</v1/epcis/events?from=2026-01-01T02%3A00%3A00%2B02%3A00&limit=5&after=14>; rel=\"next\""
        );
    }
}
