//! The tills: 3-line sales of random SKUs and quantities over keep-alive connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Summary;
use super::deploy::sku;
use super::http::HttpConn;

/// How long to drive: at least `min`, and until `done` is set (a catalog publication that
/// must finish inside the measured window).
#[derive(Clone)]
pub struct Until {
    pub min: Duration,
    pub done: Arc<AtomicBool>,
}

impl Until {
    pub fn fixed(min: Duration) -> Self {
        Self {
            min,
            done: Arc::new(AtomicBool::new(true)),
        }
    }

    fn reached(&self, start: Instant) -> bool {
        start.elapsed() >= self.min && self.done.load(Ordering::Acquire)
    }
}

/// `clients` tills selling 3 random SKUs of `items`, 1 to 5 of each, as fast as answered.
/// `seed` keeps runs comparable; idempotency keys carry `tag` so runs never collide.
pub async fn drive_sales(
    addr: &str,
    clients: usize,
    items: usize,
    until: Until,
    tag: &str,
) -> anyhow::Result<Summary> {
    let start = Instant::now();
    let mut workers = Vec::with_capacity(clients);
    for client in 0..clients {
        let addr = addr.to_string();
        let until = until.clone();
        let tag = tag.to_string();
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(client as u64);
            let mut conn = HttpConn::connect(&addr).await?;
            let mut latencies = Vec::new();
            let mut n = 0usize;
            while !until.reached(start) {
                let key = format!("{tag}-{client}-{n}");
                let lines: Vec<String> = (0..3)
                    .map(|_| {
                        format!(
                            r#"{{"sku":"{}","quantity":{}}}"#,
                            sku(rng.random_range(0..items.max(3))),
                            rng.random_range(1..=5)
                        )
                    })
                    .collect();
                let body = format!(
                    r#"{{"lines":[{}],"payments":[{{"method":"cash","amount_minor":1000000}}]}}"#,
                    lines.join(",")
                );
                let t = Instant::now();
                let (status, answer) = conn
                    .request("POST", "/v1/sales", Some(&key), Some(&body))
                    .await?;
                if status != 201 {
                    bail!("sale answered {status}: {answer}");
                }
                latencies.push(t.elapsed());
                n += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    Ok(Summary::from(all, start.elapsed()))
}
