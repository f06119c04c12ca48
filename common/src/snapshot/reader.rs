//! Streaming readers: a snapshot file becomes a sequence of Arrow record
//! batches, read on a blocking thread and handed over through a bounded
//! channel, so a fast disk never runs ahead of the graph database by more than
//! a couple of batches and memory does not grow with file size.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use tokio::sync::mpsc;

use super::header::Column;
use super::layout::FileFormat;
use super::limits::{LineLimit, MAX_LINE_BYTES};
use super::SnapshotError;

/// Batches read ahead of the writer.
const READ_AHEAD: usize = 2;

/// The column names of a file: the CSV header line, or the Parquet/Arrow schema.
pub fn column_names(path: &Path) -> Result<Vec<String>, SnapshotError> {
    let schema = match format(path)? {
        FileFormat::Csv => {
            let file = open_csv(path)?;
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(file, Some(0))
                .map_err(|e| read_err(path, e))?;
            schema
        }
        FileFormat::Parquet => {
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                    .map_err(|e| SnapshotError::Read {
                        file: path.display().to_string(),
                        message: format!("not a readable Parquet file: {e}"),
                    })?;
            builder.schema().as_ref().clone()
        }
        FileFormat::ArrowFile => {
            let reader = arrow::ipc::reader::FileReader::try_new(open(path)?, None)
                .map_err(|e| read_err(path, e))?;
            reader.schema().as_ref().clone()
        }
        FileFormat::ArrowStream => {
            let reader = arrow::ipc::reader::StreamReader::try_new(open(path)?, None)
                .map_err(|e| read_err(path, e))?;
            reader.schema().as_ref().clone()
        }
    };
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.iter().all(String::is_empty) {
        return Err(SnapshotError::format(path, "file has no header"));
    }
    Ok(names)
}

/// The Arrow type a CSV column is parsed as: text, always. Declared types
/// are converted by [`crate::graph::Values::from_array_strict`], the same
/// strict rules for CSV, Parquet and Arrow, each refusal naming the row,
/// column and value (arrow's CSV parser names a 0-based line instead).
fn csv_type(_column: &Column) -> DataType {
    DataType::Utf8
}

/// Record batches of one file, produced by a blocking reader thread.
pub struct BatchStream {
    rx: mpsc::Receiver<Result<RecordBatch, SnapshotError>>,
    pub path: PathBuf,
}

impl BatchStream {
    pub async fn next(&mut self) -> Option<Result<RecordBatch, SnapshotError>> {
        self.rx.recv().await
    }
}

/// Starts reading `path` (whose columns were parsed into `columns`) in batches
/// of `batch_size` rows.
pub fn stream(
    path: &Path,
    columns: &[Column],
    batch_size: usize,
) -> Result<BatchStream, SnapshotError> {
    let iter = batches(path, columns, batch_size)?;
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let shown = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        for item in iter {
            let item = item.map_err(|e| read_err(&shown, e));
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break; // the consumer went away, or the file is broken
            }
        }
    });
    Ok(BatchStream {
        rx,
        path: path.to_path_buf(),
    })
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

fn batches(path: &Path, columns: &[Column], batch_size: usize) -> Result<Batches, SnapshotError> {
    Ok(match format(path)? {
        FileFormat::Csv => {
            let names = column_names(path)?;
            let fields: Vec<Field> = names
                .iter()
                .zip(columns)
                .map(|(n, c)| Field::new(n, csv_type(c), true))
                .collect();
            let reader = arrow::csv::ReaderBuilder::new(Arc::new(Schema::new(fields)))
                .with_header(true)
                .with_batch_size(batch_size)
                .build(open_csv(path)?)
                .map_err(|e| read_err(path, e))?;
            Box::new(reader)
        }
        FileFormat::Parquet => {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open(path)?)
                    .and_then(|b| b.with_batch_size(batch_size).build())
                    .map_err(|e| SnapshotError::Read {
                        file: path.display().to_string(),
                        message: format!("not a readable Parquet file: {e}"),
                    })?;
            Box::new(reader)
        }
        FileFormat::ArrowFile => Box::new(
            arrow::ipc::reader::FileReader::try_new(open(path)?, None)
                .map_err(|e| read_err(path, e))?,
        ),
        FileFormat::ArrowStream => Box::new(
            arrow::ipc::reader::StreamReader::try_new(std::io::BufReader::new(open(path)?), None)
                .map_err(|e| read_err(path, e))?,
        ),
    })
}

fn format(path: &Path) -> Result<FileFormat, SnapshotError> {
    FileFormat::of(path).ok_or_else(|| SnapshotError::format(path, "unsupported file type"))
}

fn open(path: &Path) -> Result<File, SnapshotError> {
    File::open(path).map_err(|e| SnapshotError::Io {
        file: path.display().to_string(),
        source: e,
    })
}

/// A CSV file, read with a cap on line length (`limits`: a huge line is an
/// error, not an allocation).
fn open_csv(path: &Path) -> Result<LineLimit<File>, SnapshotError> {
    Ok(LineLimit::new(open(path)?, MAX_LINE_BYTES))
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Read {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::header::NodeSpec;
    use arrow::array::{Int64Array, LargeStringArray};
    use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
    use arrow::ipc::CompressionType;

    #[tokio::test]
    async fn reads_lz4_compressed_arrow_files_with_large_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.arrow");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id:ID(Person)", DataType::LargeUtf8, false),
            Field::new("age:int", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(LargeStringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .unwrap();
        let mut w =
            FileWriter::try_new_with_options(File::create(&path).unwrap(), &schema, options)
                .unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();

        let names = column_names(&path).unwrap();
        let spec = NodeSpec::parse(&names).unwrap();
        let mut s = stream(&path, &spec.columns, 10).unwrap();
        let read = s.next().await.unwrap().unwrap();
        assert_eq!(read.num_rows(), 3);
        assert!(s.next().await.is_none());
    }
}
