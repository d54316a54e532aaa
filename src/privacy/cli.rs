//! `storenode privacy erase`: asks HQ to erase a customer's data (`POST /v1/privacy/erase`)
//! and prints what was erased and whether each store confirmed. It never prints personal
//! data: only order ids, stores and times. Plain HTTP (HQ's API listens on a private
//! address or behind a TLS-terminating proxy); exit 0 when HQ answered, 1 otherwise.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["order", "email", "phone"])))]
pub struct EraseArgs {
    /// HQ's API, e.g. http://10.0.0.5:8443
    #[arg(long)]
    pub hq_url: String,
    /// File holding HQ's API bearer token.
    #[arg(long)]
    pub token_file: PathBuf,
    /// Erase this order's customer data.
    #[arg(long)]
    pub order: Option<String>,
    /// With --order: only at this store.
    #[arg(long, requires = "order")]
    pub store: Option<String>,
    /// Erase every order with this e-mail address (case-insensitive).
    #[arg(long)]
    pub email: Option<String>,
    /// Erase every order with this phone number (compared by digits).
    #[arg(long)]
    pub phone: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("--hq-url {0:?}: expected http://host:port")]
    Url(String),
    #[error("HQ answered {status}: {detail}")]
    Refused { status: u16, detail: String },
}

/// Runs the erasure; returns the report to print.
pub async fn erase(args: &EraseArgs) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("token file {}", args.token_file.display()))?;
    let body = serde_json::json!({
        "order_id": args.order, "store": args.store, "email": args.email, "phone": args.phone,
    });
    let body = strip_nulls(body);
    let (status, answer) = post(
        &args.hq_url,
        "/v1/privacy/erase",
        token.trim(),
        &serde_json::to_vec(&body)?,
    )
    .await?;
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if status != 200 {
        let detail = answer["error"].as_str().unwrap_or("no detail").to_owned();
        return Err(CliError::Refused { status, detail }.into());
    }
    Ok(report(&answer))
}

fn strip_nulls(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, value| !value.is_null());
    }
    v
}

/// One line per erased order: id, store, time, confirmation. Nothing personal.
fn report(answer: &serde_json::Value) -> String {
    let erased = answer["erased"].as_array().cloned().unwrap_or_default();
    if erased.is_empty() {
        return "no customer data matched; nothing erased".to_owned();
    }
    let mut out = format!("erased the customer data of {} order(s)\n", erased.len());
    for e in &erased {
        let confirmed = if e["store_confirmed"].as_bool() == Some(true) {
            "store confirmed".to_owned()
        } else {
            "store not confirmed yet (it erases when it next connects)".to_owned()
        };
        out.push_str(&format!(
            "  order {}  store {}  erased_at {}  {confirmed}\n",
            e["order_id"].as_str().unwrap_or("?"),
            e["store"].as_str().unwrap_or("?"),
            e["erased_at"].as_str().unwrap_or("?"),
        ));
    }
    out
}

/// `http://host:port[/]` → `host:port`.
fn authority(url: &str) -> Result<&str, CliError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CliError::Url(url.to_owned()))?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        return Err(CliError::Url(url.to_owned()));
    }
    Ok(authority)
}

/// A one-shot HTTP/1.1 POST; returns the status and the body.
async fn post(url: &str, path: &str, token: &str, body: &[u8]) -> anyhow::Result<(u16, String)> {
    let authority = authority(url)?;
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    .with_context(|| format!("connecting to {authority} timed out"))?
    .with_context(|| format!("cannot reach HQ at {authority}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .context("HQ did not answer within 30 s")??;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_reports() {
        assert_eq!(
            authority("http://127.0.0.1:8443/").unwrap(),
            "127.0.0.1:8443"
        );
        assert!(authority("https://hq:8443").is_err());
        assert!(authority("http://hq").is_err());
        let answer = serde_json::json!({ "erased": [
            { "order_id": "web-1", "store": "s1", "erased_at": "2026-01-01T00:00:00.000Z", "store_confirmed": false } ] });
        let text = report(&answer);
        assert!(text.contains("order web-1  store s1"), "{text}");
        assert!(text.contains("not confirmed"), "{text}");
        assert!(report(&serde_json::json!({ "erased": [] })).contains("nothing erased"));
    }
}
