//! Synthetic snapshots: one ID space `Node` (integer ids), a few property
//! types, relationships `LINKS` between random nodes. Parquet.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

/// Writes `nodes` nodes and `rels` relationships into `dir`, `_SUCCESS` last.
pub(super) fn write_synthetic(
    dir: &Path,
    nodes: usize,
    rels: usize,
    seed: u64,
) -> anyhow::Result<()> {
    write_synthetic_ids(dir, nodes, rels, seed, false)
}

/// [`write_synthetic`] with the ids as integers or as the same numbers in
/// strings: the same rows either way, only the id columns' type differs (a
/// matched pair).
pub(super) fn write_synthetic_ids(
    dir: &Path,
    nodes: usize,
    rels: usize,
    seed: u64,
    string_ids: bool,
) -> anyhow::Result<()> {
    const CHUNK: usize = 50_000;
    std::fs::create_dir_all(dir.join("nodes"))?;
    std::fs::create_dir_all(dir.join("relationships"))?;
    let id_type = if string_ids {
        DataType::Utf8
    } else {
        DataType::Int64
    };
    let ids = |v: Vec<i64>| -> ArrayRef {
        if string_ids {
            Arc::new(StringArray::from(
                v.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            ))
        } else {
            Arc::new(Int64Array::from(v))
        }
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id:ID(Node)", id_type.clone(), false),
        Field::new("name", DataType::Utf8, true),
        Field::new("age:int", DataType::Int64, true),
        Field::new("score:double", DataType::Float64, true),
        Field::new("active:boolean", DataType::Boolean, true),
    ]));
    let mut w = parquet::arrow::ArrowWriter::try_new(
        File::create(dir.join("nodes/nodes.parquet"))?,
        schema.clone(),
        None,
    )?;
    for start in (0..nodes).step_by(CHUNK) {
        let len = CHUNK.min(nodes - start);
        let names: Vec<String> = (start..start + len)
            .map(|i| format!("node {i} O'Neil"))
            .collect();
        let ages: Vec<Option<i64>> = (0..len)
            .map(|_| (rng.u8(..10) > 0).then(|| rng.i64(18..90)))
            .collect();
        let scores: Vec<f64> = (0..len).map(|_| rng.f64() * 1000.0).collect();
        let active: Vec<bool> = (0..len).map(|_| rng.bool()).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                ids((start..start + len).map(|i| i as i64).collect()),
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(ages)),
                Arc::new(Float64Array::from(scores)),
                Arc::new(BooleanArray::from(active)),
            ],
        )?;
        w.write(&batch)?;
    }
    w.close()?;
    let schema = Arc::new(Schema::new(vec![
        Field::new(":START_ID(Node)", id_type.clone(), false),
        Field::new(":END_ID(Node)", id_type, false),
        Field::new(":TYPE", DataType::Utf8, false),
        Field::new("weight:double", DataType::Float64, true),
    ]));
    let mut w = parquet::arrow::ArrowWriter::try_new(
        File::create(dir.join("relationships/links.parquet"))?,
        schema.clone(),
        None,
    )?;
    let n = nodes.max(1) as i64;
    for start in (0..rels).step_by(CHUNK) {
        let len = CHUNK.min(rels - start);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                ids((0..len).map(|_| rng.i64(0..n)).collect()),
                ids((0..len).map(|_| rng.i64(0..n)).collect()),
                Arc::new(StringArray::from(vec!["LINKS"; len])),
                Arc::new(Float64Array::from(
                    (0..len).map(|_| rng.f64()).collect::<Vec<_>>(),
                )),
            ],
        )?;
        w.write(&batch)?;
    }
    w.close()?;
    std::fs::write(dir.join("_SUCCESS"), b"")?;
    Ok(())
}
