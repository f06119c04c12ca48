//! `GRAPH.BULK`'s binary encoding (FalkorDB 4.16.3,
//! `src/bulk_insert/bulk_insert.c`): values, token headers, node and edge
//! records.

use super::super::{Prop, Value, Values};
use crate::snapshot::PropType;

/// Type bytes of a `GRAPH.BULK` value.
const NULL: u8 = 0;
const BOOL: u8 = 1;
const DOUBLE: u8 = 2;
const STRING: u8 = 3;
const LONG: u8 = 4;
const ARRAY: u8 = 5;

/// Why a value cannot be encoded. The batch then goes through the Cypher
/// writer, which either stores it or refuses it with its own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unencodable;

/// The most properties a batch may have to travel in `GRAPH.BULK`; wider
/// batches go through Cypher. Measured on 4.16.3: a node with 40 000 or
/// 50 000 properties loaded and read back, one with 60 000 or more crashed
/// the server (SIGSEGV) after the call (`tests/tests/loading.rs` loads
/// 65 534 through the bulk method, so through Cypher).
pub const MAX_BULK_PROPERTIES: usize = 16_384;

/// Whether a column can travel in `GRAPH.BULK`: the plain types and arrays
/// of them; not temporal values or points.
pub fn column_fits(values: &Values) -> bool {
    match values.cell_kind() {
        None => true,
        Some(kind) => {
            kind.ty.int_range().is_some()
                || matches!(kind.ty, PropType::Float | PropType::Bool | PropType::String)
        }
    }
}

fn encode_cell(out: &mut Vec<u8>, c: &super::super::values::Cell) -> Result<(), Unencodable> {
    use super::super::values::Cell;
    match c {
        Cell::Int(i) => encode_value(out, Value::Int(*i)),
        Cell::Float(f) => encode_value(out, Value::Float(*f)),
        Cell::Bool(b) => encode_value(out, Value::Bool(*b)),
        Cell::Str(s) => encode_value(out, Value::Str(s)),
        Cell::List(items) => {
            out.push(ARRAY);
            out.extend_from_slice(&(items.len() as i64).to_le_bytes());
            for item in items {
                encode_cell(out, item)?;
            }
            Ok(())
        }
        _ => Err(Unencodable),
    }
}

/// Appends one value. Refused (as on the Cypher path): a string holding a
/// NUL (the format ends strings with one), a float that is not finite,
/// temporal values and points.
pub fn encode_value(out: &mut Vec<u8>, v: Value<'_>) -> Result<(), Unencodable> {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(b)]),
        Value::Float(f) if f.is_finite() => {
            out.push(DOUBLE);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Float(_) => return Err(Unencodable),
        Value::Int(i) => {
            out.push(LONG);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Str(s) => {
            if s.as_bytes().contains(&0) {
                return Err(Unencodable);
            }
            out.push(STRING);
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Value::Cell(c) => encode_cell(out, c)?,
    }
    Ok(())
}

/// A token's header: its name (labels joined by `:`, or the relationship
/// type), then the property names.
pub fn token_header(name: &str, props: &[&str]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(name.len() + 5 + props.iter().map(|p| p.len() + 1).sum::<usize>());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&(props.len() as u32).to_le_bytes());
    for p in props {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

/// Appends one node record (`row` of each property column).
pub fn encode_node(out: &mut Vec<u8>, props: &[Prop<'_>], row: usize) -> Result<(), Unencodable> {
    for p in props {
        encode_value(out, p.values.get(row))?;
    }
    Ok(())
}

/// Appends one edge record from node position `src` to `dst`.
pub fn encode_edge(
    out: &mut Vec<u8>,
    src: u64,
    dst: u64,
    props: &[Prop<'_>],
    row: usize,
) -> Result<(), Unencodable> {
    out.extend_from_slice(&src.to_le_bytes());
    out.extend_from_slice(&dst.to_le_bytes());
    for p in props {
        encode_value(out, p.values.get(row))?;
    }
    Ok(())
}
