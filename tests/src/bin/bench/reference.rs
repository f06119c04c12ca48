//! The reference loader: as plain as it gets. One connection; for each file,
//! read a batch, turn it into `CYPHER rows=[…] UNWIND $rows AS r …`, send it,
//! wait for the reply, next batch.

use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};

pub(super) fn ref_literal(out: &mut String, column: &ArrayRef, row: usize) {
    if column.is_null(row) {
        out.push_str("null");
        return;
    }
    match column.data_type() {
        DataType::Int64 => {
            let _ = write!(out, "{}", column.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float64 => {
            let _ = write!(out, "{:?}", column.as_primitive::<Float64Type>().value(row));
        }
        DataType::Boolean => out.push_str(if column.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        _ => {
            let s = column.as_string::<i32>().value(row);
            out.push('\'');
            out.push_str(&s.replace('\\', "\\\\").replace('\'', "\\'"));
            out.push('\'');
        }
    }
}

pub(super) fn ref_rows(batch: &RecordBatch, columns: &[usize]) -> String {
    let mut q = String::from("CYPHER rows=[");
    for row in 0..batch.num_rows() {
        if row > 0 {
            q.push(',');
        }
        q.push('[');
        for (j, &c) in columns.iter().enumerate() {
            if j > 0 {
                q.push(',');
            }
            ref_literal(&mut q, batch.column(c), row);
        }
        q.push(']');
    }
    q.push_str("] ");
    q
}

pub(super) async fn reference_load(
    url: &str,
    graph: &str,
    dir: &Path,
    batch_size: usize,
) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(600)));
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let query = |q: String| {
        let mut con = con.clone();
        let graph = graph.to_owned();
        async move {
            let _: redis::Value = redis::cmd("GRAPH.QUERY")
                .arg(graph)
                .arg(q)
                .query_async(&mut con)
                .await?;
            Ok::<_, redis::RedisError>(())
        }
    };
    query("CREATE INDEX FOR (n:Node) ON (n.id)".into()).await?;
    let read =
        |path: &Path| -> anyhow::Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
            Ok(
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    File::open(path)?,
                )?
                .with_batch_size(batch_size)
                .build()?,
            )
        };
    for batch in read(&dir.join("nodes/nodes.parquet"))? {
        let mut q = ref_rows(&batch?, &[0, 1, 2, 3, 4]);
        q.push_str("UNWIND $rows AS r CREATE (:Node {id: r[0], name: r[1], age: r[2], score: r[3], active: r[4]})");
        query(q).await?;
    }
    for batch in read(&dir.join("relationships/links.parquet"))? {
        let mut q = ref_rows(&batch?, &[0, 1, 3]);
        q.push_str("UNWIND $rows AS r MATCH (a:Node {id: r[0]}) MATCH (b:Node {id: r[1]}) CREATE (a)-[:LINKS {weight: r[2]}]->(b)");
        query(q).await?;
    }
    Ok(())
}
