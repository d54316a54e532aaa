//! `storenode privacy erase`: asks HQ to erase a customer's data (`POST /v1/privacy/erase`)
//! and prints what was erased and whether each store confirmed. It never prints personal
//! data: only order ids, stores and times. HTTPS with the chain's CA (`--ca-file`, or the
//! `ca_file` of `--config`), or plain HTTP to a loopback address (see
//! [`crate::http_client`]); exit 0 when HQ answered, 1 otherwise.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::http_client::{HqClient, chain_ca};

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["order", "email", "phone"])))]
pub struct EraseArgs {
    /// HQ's API, e.g. https://hq.example.net:8443 (http:// only to a loopback address)
    #[arg(long)]
    pub hq_url: String,
    /// CA certificate HQ's certificate must chain to (default: `ca_file` of --config).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
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

/// Runs the erasure; returns the report to print. `config_file`: where the chain's CA is
/// named when `--ca-file` is not given.
pub async fn erase(args: &EraseArgs, config_file: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("token file {}", args.token_file.display()))?;
    let ca = args.ca_file.clone().or_else(|| chain_ca(config_file));
    let client = HqClient::new(&args.hq_url, &token, ca.as_deref()).context("--hq-url")?;
    let body = serde_json::json!({
        "order_id": args.order, "store": args.store, "email": args.email, "phone": args.phone,
    });
    let reply = client
        .post_json("/v1/privacy/erase", &strip_nulls(body))
        .await?;
    // A refusal carries HQ's message, as every `hq` command's does.
    let answer = crate::hq::cli::answer(reply)?;
    // An answer that is not the erasure report must not read as "nothing matched".
    if !answer.json["erased"].is_array() {
        anyhow::bail!(
            "HQ answered {} without an erasure report: {:?}",
            answer.status,
            answer.body
        );
    }
    Ok(report(&answer.json))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        let answer = serde_json::json!({ "erased": [
            { "order_id": "web-1", "store": "s1", "erased_at": "2026-01-01T00:00:00.000Z", "store_confirmed": false } ] });
        let text = report(&answer);
        assert!(text.contains("order web-1  store s1"), "{text}");
        assert!(text.contains("not confirmed"), "{text}");
        assert!(report(&serde_json::json!({ "erased": [] })).contains("nothing erased"));
    }
}
