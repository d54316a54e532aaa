//! Values crossing HQ's storage interface: parameters in, columns out, the same for SQLite
//! and PostgreSQL. HQ's tables hold only integers, text and bytes (booleans as 0/1), so
//! three kinds and NULL cover every column.

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql as PgToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::DbError;

/// A parameter as bound to a statement.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// Anything HQ binds to a statement.
pub trait Param {
    fn value(&self) -> Value<'_>;
}

impl Param for i64 {
    fn value(&self) -> Value<'_> {
        Value::Int(*self)
    }
}

impl Param for u32 {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for i32 {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for bool {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(n),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

impl PgToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            // The column decides the width: PostgreSQL wants exactly its own.
            Value::Int(n) if *ty == Type::INT4 => i32::try_from(n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::INT2 => i16::try_from(n)?.to_sql(ty, out),
            Value::Int(n) if *ty == Type::BOOL => (n != 0).to_sql(ty, out),
            Value::Int(n) => n.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::BOOL,
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::BYTEA,
        ]
        .contains(ty)
    }

    to_sql_checked!();
}

/// A column as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    pub(super) fn from_sqlite(value: ValueRef<'_>) -> Result<Self, DbError> {
        Ok(match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(n) => Cell::Int(n),
            ValueRef::Text(t) => Cell::Text(
                std::str::from_utf8(t)
                    .map_err(|_| DbError::Column("text column is not UTF-8".into()))?
                    .to_owned(),
            ),
            ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
            ValueRef::Real(_) => return Err(DbError::Column("HQ stores no REAL columns".into())),
        })
    }

    pub(super) fn from_pg(row: &postgres::Row, index: usize) -> Result<Self, DbError> {
        let ty = row.columns()[index].type_().clone();
        let cell = if ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(index)?.map(Cell::Int)
        } else if ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(index)?
                .map(|n| Cell::Int(n.into()))
        } else if ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(index)?
                .map(|n| Cell::Int(n.into()))
        } else if ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(index)?
                .map(|b| Cell::Int(b.into()))
        } else if ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(index)?.map(Cell::Bytes)
        } else {
            row.try_get::<_, Option<String>>(index)?.map(Cell::Text)
        };
        Ok(cell.unwrap_or(Cell::Null))
    }
}

/// A Rust type a column is read into.
pub trait Column: Sized {
    fn from_cell(cell: Cell) -> Result<Self, DbError>;
}

fn wrong(want: &str, got: &Cell) -> DbError {
    DbError::Column(format!("expected {want}, found {got:?}"))
}

impl Column for i64 {
    fn from_cell(cell: Cell) -> Result<Self, DbError> {
        match cell {
            Cell::Int(n) => Ok(n),
            other => Err(wrong("an integer", &other)),
        }
    }
}

impl Column for u32 {
    fn from_cell(cell: Cell) -> Result<Self, DbError> {
        let n = i64::from_cell(cell)?;
        u32::try_from(n).map_err(|_| DbError::Column(format!("{n} is not a u32")))
    }
}

impl Column for bool {
    fn from_cell(cell: Cell) -> Result<Self, DbError> {
        Ok(i64::from_cell(cell)? != 0)
    }
}

impl Column for String {
    fn from_cell(cell: Cell) -> Result<Self, DbError> {
        match cell {
            Cell::Text(s) => Ok(s),
            other => Err(wrong("text", &other)),
        }
    }
}

impl Column for Vec<u8> {
    fn from_cell(cell: Cell) -> Result<Self, DbError> {
        match cell {
            Cell::Bytes(b) => Ok(b),
            other => Err(wrong("bytes", &other)),
        }
    }
}

impl<T: Column> Column for Option<T> {
    fn from_cell(cell: Cell) -> Result<Self, DbError> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(other).map(Some),
        }
    }
}

/// One row read back.
#[derive(Debug)]
pub struct Row(pub(super) Vec<Cell>);

impl Row {
    /// Takes column `index` out of the row (a second read of it finds NULL): saved
    /// documents are megabytes, not worth a copy.
    pub fn get<T: Column>(&mut self, index: usize) -> Result<T, DbError> {
        let cell = self
            .0
            .get_mut(index)
            .map(|cell| std::mem::replace(cell, Cell::Null))
            .ok_or_else(|| DbError::Column(format!("no column {index}")))?;
        T::from_cell(cell)
    }
}
