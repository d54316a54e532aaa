//! Reading and creating maps and counters in an automerge document, at now or at given heads.

use automerge::{ChangeHash, ObjId, ReadDoc, Value};

use super::*;

/// The map under `key` in `parent`, made if it is not there yet.
pub fn child_map(
    tx: &mut automerge::transaction::Transaction<'_>,
    parent: &ObjId,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    use automerge::transaction::Transactable;
    match map_at(tx, parent, key) {
        Some(map) => Ok(map),
        None => tx.put_object(parent, key, ObjType::Map),
    }
}

pub fn map_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// The integer at `obj[key]`; other types read as absent.
pub fn int_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key) {
        Ok(Some((value, _))) => int_of(&value),
        _ => None,
    }
}

/// The string at `obj[key]`; other types read as absent.
pub fn str_at<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(text) => Some(text.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The map at `obj[key]` as of `heads` (`None`: now).
pub fn map_at_heads(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<ObjId> {
    let found = match heads {
        Some(heads) => doc.get_at(obj, key, heads),
        None => doc.get(obj, key),
    };
    match found {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

/// Every `Int` entry of the map `obj` as of `heads` (`None`: now); other values are skipped.
pub fn int_entries(
    doc: &Automerge,
    obj: &ObjId,
    heads: Option<&[ChangeHash]>,
) -> Vec<(String, i64)> {
    let ints = |item: automerge::iter::MapRangeItem<'_>| match item.value {
        automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(i)) => {
            Some((item.key.into_owned(), i))
        }
        _ => None,
    };
    match heads {
        Some(heads) => doc.map_range_at(obj, .., heads).filter_map(ints).collect(),
        None => doc.map_range(obj, ..).filter_map(ints).collect(),
    }
}

/// Keys of the map `obj` as of `heads` (`None`: now).
pub fn map_keys(doc: &Automerge, obj: &ObjId, heads: Option<&[ChangeHash]>) -> Vec<String> {
    match heads {
        Some(heads) => doc.keys_at(obj, heads).collect(),
        None => doc.keys(obj).collect(),
    }
}

/// Strictly an `Int` scalar: counters, floats etc. written by a misbehaving peer are ignored.
pub fn int_of(value: &Value<'_>) -> Option<i64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) => Some(*i),
            _ => None,
        },
        Value::Object(_) => None,
    }
}
