//! Reading FalkorDB's replies (`[header, rows, stats]`): columns, statistics,
//! scalars, constraint states.

use super::*;

/// The first column of every row of a reply, as integers: `[header, rows, stats]`.
pub(super) fn int_column(reply: &RedisValue) -> Option<Vec<i64>> {
    let RedisValue::Array(parts) = reply else {
        return None;
    };
    let RedisValue::Array(rows) = parts.get(1)? else {
        return None;
    };
    rows.iter()
        .map(|row| match row {
            RedisValue::Array(cells) => match cells.first()? {
                RedisValue::Int(n) => Some(*n),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Reads `<label>: <n>` from the statistics part of a reply.
pub(super) fn stat(reply: &RedisValue, label: &str) -> u64 {
    let RedisValue::Array(parts) = reply else {
        return 0;
    };
    let Some(RedisValue::Array(stats)) = parts.last() else {
        return 0;
    };
    stats
        .iter()
        .filter_map(|s| match s {
            RedisValue::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            RedisValue::SimpleString(s) => Some(s.clone()),
            _ => None,
        })
        .find_map(|s| {
            s.strip_prefix(label)
                .and_then(|v| v.trim_start_matches(':').trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Distinct property names one FalkorDB graph can hold: attribute ids are
/// `unsigned short` and `USHRT_MAX`, `USHRT_MAX - 1` are reserved
/// (`ATTRIBUTE_ID_NONE`, `ATTRIBUTE_ID_ALL` in FalkorDB's
/// `src/graph/entities/attribute_set.h`). Past it, ids wrap and properties
/// are silently mixed up.
pub const FALKORDB_MAX_PROPERTY_KEYS: usize = 65534;
/// The first column of every row of a reply `[header, rows, stats]`, as
/// strings (label and type names of `CALL db.labels()`).
pub(super) fn first_column_strings(reply: &RedisValue) -> Result<Vec<String>, GraphError> {
    let bad = || GraphError::Permanent(format!("unexpected reply from FalkorDB: {reply:?}"));
    let RedisValue::Array(parts) = reply else {
        return Err(bad());
    };
    let Some(RedisValue::Array(rows)) = parts.get(1) else {
        return Err(bad());
    };
    rows.iter()
        .map(|row| match row {
            RedisValue::Array(cells) => match cells.first() {
                Some(RedisValue::BulkString(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
                Some(RedisValue::SimpleString(s)) => Ok(s.clone()),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

/// The status of the unique constraint on `label`(`property`) in a
/// `CALL db.constraints()` reply of (label, properties, status) rows.
pub(super) fn constraint_status(reply: &RedisValue, label: &str, property: &str) -> Option<String> {
    let text = |v: &RedisValue| match v {
        RedisValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RedisValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let RedisValue::Array(parts) = reply else {
        return None;
    };
    let RedisValue::Array(rows) = parts.get(1)? else {
        return None;
    };
    rows.iter().find_map(|row| {
        let RedisValue::Array(cells) = row else {
            return None;
        };
        let props = match cells.get(1)? {
            RedisValue::Array(ps) => ps.iter().filter_map(text).collect::<Vec<_>>(),
            other => vec![text(other)?],
        };
        let props_match = props == [property.to_owned()] || props == [format!("[{property}]")];
        (text(cells.first()?)?.as_str() == label && props_match).then(|| text(cells.get(2)?))?
    })
}

/// The one value of a `[header, rows, stats]` reply. FalkorDB's verbose
/// replies give integers as integers and booleans, floats and strings as
/// text: `true`/`false` read as booleans, decimal text as a float.
pub(super) fn scalar_of(reply: &RedisValue) -> Scalar {
    let rows = match reply {
        RedisValue::Array(parts) => match parts.get(1) {
            Some(RedisValue::Array(rows)) => rows,
            _ => return Scalar::Null,
        },
        other => return Scalar::Other(format!("{other:?}")),
    };
    let cells = match rows.as_slice() {
        [RedisValue::Array(cells)] => cells,
        _ => return Scalar::Other(format!("{} rows", rows.len())),
    };
    let cell = match cells.as_slice() {
        [cell] => cell,
        _ => return Scalar::Other(format!("{} columns", cells.len())),
    };
    match cell {
        RedisValue::Int(n) => Scalar::Int(*n),
        RedisValue::Nil => Scalar::Null,
        RedisValue::Double(f) => Scalar::Float(*f),
        RedisValue::Boolean(b) => Scalar::Bool(*b),
        RedisValue::BulkString(b) => {
            let text = String::from_utf8_lossy(b);
            match text.as_ref() {
                "true" => Scalar::Bool(true),
                "false" => Scalar::Bool(false),
                t => t
                    .parse::<f64>()
                    .map_or_else(|_| Scalar::Other(format!("{t:?}")), Scalar::Float),
            }
        }
        RedisValue::SimpleString(t) => Scalar::Other(format!("{t:?}")),
        other => Scalar::Other(format!("{other:?}")),
    }
}

/// The single integer of a `RETURN count(..)` reply: `[header, [[n]], stats]`.
pub(super) fn single_int(reply: &RedisValue) -> Option<u64> {
    let RedisValue::Array(parts) = reply else {
        return None;
    };
    let RedisValue::Array(rows) = parts.get(1)? else {
        return None;
    };
    let RedisValue::Array(row) = rows.first()? else {
        return None;
    };
    match row.first()? {
        RedisValue::Int(n) => u64::try_from(*n).ok(),
        RedisValue::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}
