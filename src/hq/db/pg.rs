//! HQ's PostgreSQL connection: statements prepared once per connection, and a new
//! connection after the old one broke (a PostgreSQL restart must not need an HQ restart).
//!
//! The `postgres` crate is tokio-postgres behind a blocking facade: HQ's state is worked on
//! synchronously under its lock on the blocking pool, so a blocking client fits it without
//! a second async layer (see the commit that added it).

use std::collections::HashMap;

use postgres::{Client, Statement};

use crate::tls::pg::PgTarget;

use super::value::{Cell, Value};
use super::{DbError, Row};

pub(super) struct PgConn {
    url: String,
    target: PgTarget,
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    pub(super) fn connect(url: &str) -> Result<Self, DbError> {
        let target = PgTarget::parse(url).map_err(|e| open_error(url, &e))?;
        Ok(Self {
            client: open(url, &target)?,
            url: url.to_owned(),
            target,
            statements: HashMap::new(),
        })
    }

    /// The client, reconnected first if the server closed the old one. Inside a
    /// transaction a broken connection is an error: its work is gone with it.
    fn client(&mut self, in_transaction: bool) -> Result<&mut Client, DbError> {
        if self.client.is_closed() && !in_transaction {
            tracing::warn!("HQ's PostgreSQL connection was closed; reconnecting");
            self.client = open(&self.url, &self.target)?;
            self.statements.clear();
        }
        Ok(&mut self.client)
    }

    fn statement(&mut self, sql: &str, in_transaction: bool) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql)
            && !self.client.is_closed()
        {
            return Ok(statement.clone());
        }
        let statement = self
            .client(in_transaction)?
            .prepare(&numbered_parameters(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        values: &[Value<'_>],
        in_transaction: bool,
    ) -> Result<u64, DbError> {
        let statement = self.statement(sql, in_transaction)?;
        let params = as_params(values);
        Ok(self.client(in_transaction)?.execute(&statement, &params)?)
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        values: &[Value<'_>],
        in_transaction: bool,
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql, in_transaction)?;
        let params = as_params(values);
        let rows = self.client(in_transaction)?.query(&statement, &params)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| Cell::from_pg(row, i))
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect()
    }

    pub(super) fn batch(&mut self, sql: &str, in_transaction: bool) -> Result<(), DbError> {
        Ok(self.client(in_transaction)?.batch_execute(sql)?)
    }
}

/// Connects anew (with a short timeout) and runs `SELECT 1`.
pub(super) fn ping(url: &str) -> Result<(), String> {
    let mut target = PgTarget::parse(url).map_err(|e| format!("{e}"))?;
    target
        .config
        .connect_timeout(std::time::Duration::from_secs(2));
    let mut client = target
        .connect()
        .map_err(|e| format!("PostgreSQL does not answer: {e}"))?;
    client
        .simple_query("SELECT 1")
        .map(|_| ())
        .map_err(|e| format!("PostgreSQL does not answer: {e}"))
}

fn open(url: &str, target: &PgTarget) -> Result<Client, DbError> {
    target.connect().map_err(|e| open_error(url, &e))
}

fn open_error(url: &str, e: &crate::tls::pg::PgTlsError) -> DbError {
    DbError::Open {
        target: redact(url),
        reason: error_chain(e),
    }
}

/// The error and its causes: a TLS failure is the cause of the client library's error.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

/// The connection string without its password, for messages.
fn redact(url: &str) -> String {
    url.split_whitespace()
        .map(|part| {
            if part.starts_with("password=") {
                "password=…"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn as_params<'a>(values: &'a [Value<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// SQLite's `?1` parameters as PostgreSQL's `$1`. HQ's statements carry no `?` inside
/// string literals.
fn numbered_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
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
    fn parameters_are_renumbered_for_postgresql() {
        assert_eq!(
            numbered_parameters(
                "SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?2) LIMIT ?10"
            ),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $2) LIMIT $10"
        );
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("host=db user=hq password=s3cret dbname=hq"),
            "host=db user=hq password=… dbname=hq"
        );
    }
}
