use super::*;
use crate::graph::values::Cell;
use crate::graph::{Prop, Value, Values};
use arrow::array::{ArrayRef, Int64Array, StringArray};
use std::sync::Arc;

#[test]
fn values_encode_as_the_server_reads_them() {
    let list = Cell::List(vec![Cell::Int(1), Cell::Int(2)]);
    let empty = Cell::List(vec![]);
    let table: Vec<(Value<'_>, Vec<u8>)> = vec![
        (Value::Null, vec![0]),
        (Value::Bool(true), vec![1, 1]),
        (Value::Bool(false), vec![1, 0]),
        (
            Value::Float(1.5),
            [vec![2], 1.5f64.to_le_bytes().to_vec()].concat(),
        ),
        (Value::Str("ab"), vec![3, b'a', b'b', 0]),
        (Value::Str(""), vec![3, 0]),
        (
            Value::Int(-2),
            [vec![4], (-2i64).to_le_bytes().to_vec()].concat(),
        ),
        (
            Value::Cell(&list),
            [
                vec![5],
                2i64.to_le_bytes().to_vec(),
                vec![4],
                1i64.to_le_bytes().to_vec(),
                vec![4],
                2i64.to_le_bytes().to_vec(),
            ]
            .concat(),
        ),
        (
            Value::Cell(&empty),
            [vec![5], 0i64.to_le_bytes().to_vec()].concat(),
        ),
    ];
    for (v, want) in table {
        let mut out = Vec::new();
        encode_value(&mut out, v).unwrap();
        assert_eq!(out, want, "{v:?}");
    }
}

#[test]
fn what_the_format_cannot_carry_is_refused() {
    let date = Cell::Date(chrono::NaiveDate::from_ymd_opt(2020, 1, 2).unwrap());
    let nested = Cell::List(vec![date.clone()]);
    for v in [
        Value::Str("a\0b"),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Cell(&date),
        Value::Cell(&nested),
    ] {
        assert_eq!(encode_value(&mut Vec::new(), v), Err(Unencodable), "{v:?}");
    }
}

#[test]
fn a_token_header_names_labels_and_properties() {
    assert_eq!(
        token_header("Person:Employee", &["id", "x"]),
        [
            b"Person:Employee\0".to_vec(),
            2u32.to_le_bytes().to_vec(),
            b"id\0x\0".to_vec()
        ]
        .concat()
    );
    assert_eq!(
        token_header("KNOWS", &[]),
        [b"KNOWS\0".to_vec(), 0u32.to_le_bytes().to_vec()].concat()
    );
}

#[test]
fn an_edge_record_is_two_positions_then_values() {
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None]));
    let values = Values::from_array(&ints, None).unwrap();
    let props = [Prop {
        name: "w",
        values: &values,
    }];
    let mut out = Vec::new();
    encode_edge(&mut out, 3, 4, &props, 1).unwrap();
    assert_eq!(
        out,
        [
            3u64.to_le_bytes().to_vec(),
            4u64.to_le_bytes().to_vec(),
            vec![0]
        ]
        .concat()
    );
    let mut out = Vec::new();
    encode_node(&mut out, &props, 0).unwrap();
    assert_eq!(out, [vec![4], 7i64.to_le_bytes().to_vec()].concat());
}

#[test]
fn tokens_of_one_header_are_joined_in_order() {
    let mut call = Call::default();
    Call::token(&mut call.node_tokens, &token_header("A", &[])).push(1);
    Call::token(&mut call.node_tokens, &token_header("A", &[])).push(2);
    Call::token(&mut call.node_tokens, &token_header("B", &[])).push(3);
    Call::token(&mut call.node_tokens, &token_header("A", &[])).push(4);
    call.nodes = 4;
    let args = call.args();
    assert_eq!(
        &args[..4],
        &[b"4".to_vec(), b"0".to_vec(), b"3".to_vec(), b"0".to_vec()]
    );
    let bodies: Vec<&[u8]> = args[4..]
        .iter()
        .map(|t| &t[t.len() - t.len().min(2)..])
        .collect();
    assert_eq!(args.len(), 7, "A, B, A: positions follow token order");
    assert_eq!(bodies[0], &[1, 2]);
}

#[test]
fn string_columns_fit_and_date_columns_do_not() {
    let s: ArrayRef = Arc::new(StringArray::from(vec!["2020-01-02"]));
    assert!(column_fits(&Values::from_array(&s, None).unwrap()));
    assert!(column_fits(
        &Values::from_array(&s, Some(PropType::String)).unwrap()
    ));
    assert!(!column_fits(
        &Values::from_array(&s, Some(PropType::Date)).unwrap()
    ));
}

#[test]
fn call_size_follows_the_stall_budget() {
    // (budget ms, measured bytes/ms, expected bytes)
    let table: [(u64, Option<f64>, usize); 9] = [
        (50, None, 600_000),
        (5, None, MIN_CALL_BYTES),
        (0, None, MAX_CALL_BYTES),
        (0, Some(10.0), MAX_CALL_BYTES),
        (50, Some(40_000.0), 1_200_000),
        (100, Some(40_000.0), 2_400_000),
        (200, Some(40_000.0), 4_800_000),
        (50, Some(1.0), MIN_CALL_BYTES),
        (10_000, Some(1e9), MAX_CALL_BYTES),
    ];
    for (budget, rate, want) in table {
        assert_eq!(call_bytes(budget, rate), want, "{budget} ms at {rate:?}");
    }
    assert_eq!(call_bytes(50, Some(f64::NAN)), 600_000);
}

#[test]
fn a_call_past_the_reserved_room_reserves_half_again() {
    // 70 000 nodes sent before, 30 000 in this call.
    let mut state = State {
        next_node: 100_000,
        ..State::default()
    };
    state.call.nodes = 30_000;
    Call::token(
        &mut state.call.node_tokens,
        &token_header("Person:Employee", &[]),
    )
    .push(1);
    let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
    assert_eq!(call.reserve, 150_000 - 70_000);
    assert_eq!(state.reserved, 150_000);
    assert_eq!(call.pre_sync, vec![SyncTarget::NodeLabels]);
    state.next_node = 130_000;
    state.call.nodes = 30_000;
    let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
    assert_eq!(call.reserve, 0, "within the room reserved");
    state.next_node = 160_000;
    state.call.nodes = 30_000;
    let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
    assert_eq!(call.reserve, 240_000 - 130_000);
    // The matrices that exist are resized by queries, not by the call.
    assert_eq!(
        call.pre_sync,
        vec![
            SyncTarget::NodeLabels,
            SyncTarget::Label("Employee".into()),
            SyncTarget::Label("Person".into())
        ]
    );
    // Small graphs: FalkorDB's own capacity step is enough.
    let mut small = State {
        next_node: 1000,
        ..State::default()
    };
    small.call.nodes = 1000;
    assert_eq!(
        BulkWriter::close(&mut small, SYNC_EDGES).unwrap().1.reserve,
        0
    );
}

#[test]
fn a_type_is_synchronised_after_the_call_that_reaches_the_threshold() {
    let mut state = State::default();
    state.call.edges = 10;
    state.unsynced.insert("KNOWS".into(), SYNC_EDGES - 1);
    state.unsynced.insert("WORKS_AT".into(), SYNC_EDGES);
    let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
    assert_eq!(call.sync, vec![SyncTarget::RelType("WORKS_AT".into())]);
    assert_eq!(state.unsynced["WORKS_AT"], 0);
    assert_eq!(state.unsynced["KNOWS"], SYNC_EDGES - 1);
}

/// A writer that is never called: [`BulkWriter::append`] needs none.
struct Unused;

#[async_trait]
impl GraphWriter for Unused {
    async fn create_index(&self, _: &str, _: &str, _: &str) -> Result<(), GraphError> {
        unreachable!()
    }
    async fn write_nodes(&self, _: &str, _: &NodeWrite<'_>) -> Result<Vec<NodeRef>, GraphError> {
        unreachable!()
    }
    async fn write_relationships(&self, _: &str, _: &RelWrite<'_>) -> Result<u64, GraphError> {
        unreachable!()
    }
    async fn counts(&self, _: &str) -> Result<Counts, GraphError> {
        unreachable!()
    }
}

#[test]
fn a_batch_larger_than_a_call_is_split_at_record_boundaries() {
    let writer = BulkWriter::new(&Unused, 1);
    let mut state = State::default();
    // 10 000 nodes of one LONG property: 9 bytes a record, 90 000 bytes,
    // more than one call of MIN_CALL_BYTES.
    let mut body = Vec::new();
    let mut ends = Vec::new();
    for i in 0..10_000i64 {
        encode_value(&mut body, Value::Int(i)).unwrap();
        ends.push(body.len());
    }
    let header = token_header("N", &["v"]);
    let closed = writer.append(&mut state, Kind::Nodes, "N", &header, &body, &ends);
    assert_eq!(closed.len(), 1);
    let (seq, call) = &closed[0];
    assert_eq!(*seq, 0);
    assert!(call.bytes() <= MIN_CALL_BYTES, "{}", call.bytes());
    assert!(call.bytes() + 9 > MIN_CALL_BYTES, "{}", call.bytes());
    assert_eq!(call.nodes + state.call.nodes, 10_000);
    assert_eq!(state.next_node, 10_000);
    // The records of both calls, in order, are the batch.
    let args = call.args();
    let first = &args[4][header.len()..];
    let rest = state.call.args();
    assert_eq!([first, &rest[4][header.len()..]].concat(), body);
    assert_eq!(first.len() % 9, 0);
}

#[test]
fn a_call_filling_for_longer_than_its_age_limit_is_closed_however_small() {
    let writer = BulkWriter::new(&Unused, 1_000);
    let mut state = State::default();
    let header = token_header("N", &["v"]);
    let mut body = Vec::new();
    encode_value(&mut body, Value::Int(1)).unwrap();
    let ends = [body.len()];
    let closed = writer.append(&mut state, Kind::Nodes, "N", &header, &body, &ends);
    assert!(closed.is_empty(), "a fresh one-record call stays open");
    let opened = state.call.opened.expect("opened at its first record");
    state.call.opened = opened.checked_sub(MAX_CALL_AGE);
    let closed = writer.append(&mut state, Kind::Nodes, "N", &header, &body, &ends);
    assert_eq!(closed.len(), 1, "an aged call is closed at the next batch");
    assert_eq!(closed[0].1.nodes, 2);
    assert!(state.call.is_empty() && state.call.opened.is_none());
}

#[test]
fn a_slow_call_lowers_the_rate_at_once_and_a_fast_one_by_half() {
    let ms = Duration::from_millis;
    assert_eq!(next_rate(None, 1000, ms(10)), Some(100.0));
    assert_eq!(next_rate(Some(100.0), 500, ms(10)), Some(50.0));
    assert_eq!(next_rate(Some(100.0), 3000, ms(10)), Some(200.0));
    assert_eq!(next_rate(Some(100.0), 0, ms(10)), Some(100.0));
    assert_eq!(next_rate(Some(100.0), 10, Duration::ZERO), Some(100.0));
}
