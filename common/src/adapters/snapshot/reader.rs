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

use std::io::{Read, Seek, SeekFrom};

use super::header::Column;
use super::layout::{FileFormat, Input};
use super::limits::{LineLimit, MAX_LINE_BYTES};
use super::options::ImportOptions;
use super::SnapshotError;

/// Batches read ahead of the writer.
const READ_AHEAD: usize = 2;

/// The column names of a file: the CSV header line, or the Parquet/Arrow schema.
pub fn column_names(path: &Path) -> Result<Vec<String>, SnapshotError> {
    column_names_of(
        &Input {
            path: path.to_path_buf(),
            header: None,
            group: None,
        },
        &ImportOptions::default(),
    )
}

fn csv_format(options: &ImportOptions) -> arrow::csv::reader::Format {
    arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(options.delimiter)
        .with_quote(options.quote)
}

/// The column names of an input: its group's header file, the CSV header
/// line (split with the snapshot's delimiter and quote), or the
/// Parquet/Arrow schema.
pub fn column_names_of(
    input: &Input,
    options: &ImportOptions,
) -> Result<Vec<String>, SnapshotError> {
    let path = input.path.as_path();
    if let Some(header) = &input.header {
        if !format(path)?.is_csv() {
            return Err(SnapshotError::format(
                path,
                "a header file applies to CSV files only; Parquet and Arrow files carry their own column names",
            ));
        }
        let (schema, rows) = csv_format(options)
            .infer_schema(open_text(header)?, Some(1))
            .map_err(|e| read_err(header, e))?;
        if rows > 0 {
            return Err(SnapshotError::format(
                header,
                "a header file must hold only the header line (its data would not be loaded)",
            ));
        }
        return names_of(header, &schema);
    }
    let schema = match format(path)? {
        FileFormat::Csv | FileFormat::CsvGz | FileFormat::CsvZip => {
            let (schema, _) = csv_format(options)
                .infer_schema(open_text(path)?, Some(0))
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
    names_of(path, &schema)
}

fn names_of(path: &Path, schema: &Schema) -> Result<Vec<String>, SnapshotError> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if names.iter().all(String::is_empty) {
        return Err(SnapshotError::format(path, "file has no header"));
    }
    Ok(names)
}

/// The Arrow type a CSV column is parsed as: text, always. Declared types
/// are converted by [`crate::adapters::graph::Values::from_column`], the same
/// strict rules for CSV, Parquet and Arrow, each refusal naming the row,
/// column and value (arrow's CSV parser names a 0-based line instead).
fn csv_type(_column: &Column) -> DataType {
    DataType::Utf8
}

/// Record batches of one file, produced by a blocking reader thread.
pub struct BatchStream {
    rx: mpsc::Receiver<Result<RecordBatch, SnapshotError>>,
    /// The file being read.
    pub path: PathBuf,
}

impl BatchStream {
    /// The next batch; `None` at the end of the file.
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
    let input = Input {
        path: path.to_path_buf(),
        header: None,
        group: None,
    };
    stream_of(&input, columns, batch_size, &ImportOptions::default())
}

/// [`stream`] for an input (header file, compression) with the snapshot's
/// CSV options.
pub fn stream_of(
    input: &Input,
    columns: &[Column],
    batch_size: usize,
    options: &ImportOptions,
) -> Result<BatchStream, SnapshotError> {
    let path = input.path.as_path();
    let iter = batches(input, columns, batch_size, options)?;
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

fn batches(
    input: &Input,
    columns: &[Column],
    batch_size: usize,
    options: &ImportOptions,
) -> Result<Batches, SnapshotError> {
    let path = input.path.as_path();
    Ok(match format(path)? {
        FileFormat::Csv | FileFormat::CsvGz | FileFormat::CsvZip => {
            let names = column_names_of(input, options)?;
            let fields: Vec<Field> = names
                .iter()
                .zip(columns)
                .map(|(n, c)| Field::new(n, csv_type(c), true))
                .collect();
            let reader = arrow::csv::ReaderBuilder::new(Arc::new(Schema::new(fields)))
                .with_header(input.header.is_none())
                .with_delimiter(options.delimiter)
                .with_quote(options.quote)
                .with_batch_size(batch_size)
                .build(open_text(path)?)
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

/// A CSV file, decompressed if it is `.csv.gz` or `.zip`, read with a cap on
/// line length (`limits`: a huge line is an error, not an allocation).
fn open_text(path: &Path) -> Result<LineLimit<Box<dyn Read + Send>>, SnapshotError> {
    let file = open(path)?;
    let inner: Box<dyn Read + Send> = match format(path)? {
        FileFormat::CsvGz => Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            file,
        ))),
        FileFormat::CsvZip => zip_entry(path, file)?,
        _ => Box::new(file),
    };
    Ok(LineLimit::new(inner, MAX_LINE_BYTES))
}

/// The one CSV file inside a zip archive, inflated as it is read (no
/// temporary file, no whole entry in memory); its length and CRC-32 are
/// checked at the end, so a damaged archive is an error, never short data.
fn zip_entry(path: &Path, file: File) -> Result<Box<dyn Read + Send>, SnapshotError> {
    let bad = |m: String| SnapshotError::format(path, m);
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    let mut found = None;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        if found.is_some() {
            return Err(bad(
                "a zip archive must hold exactly one CSV file (neo4j-admin reads only the first)"
                    .into(),
            ));
        }
        if !name.to_ascii_lowercase().ends_with(".csv") {
            return Err(bad(format!(
                "the file in the zip archive, `{name}`, is not a .csv file"
            )));
        }
        if entry.encrypted() {
            return Err(bad(format!("`{name}` in the zip archive is encrypted")));
        }
        let start = entry
            .data_start()
            .ok_or_else(|| bad(format!("`{name}`: no data offset in the zip archive")))?;
        found = Some((
            name,
            entry.compression(),
            start,
            entry.compressed_size(),
            entry.size(),
            entry.crc32(),
        ));
    }
    let (name, method, start, compressed, size, crc) =
        found.ok_or_else(|| bad("the zip archive holds no file".into()))?;
    let mut file = archive.into_inner();
    file.seek(SeekFrom::Start(start))
        .map_err(|e| SnapshotError::Io {
            file: path.display().to_string(),
            source: e,
        })?;
    let raw = std::io::BufReader::new(file).take(compressed);
    let data: Box<dyn Read + Send> = match method {
        zip::CompressionMethod::Stored => Box::new(raw),
        m if m == zip::CompressionMethod::DEFLATE => {
            Box::new(flate2::read::DeflateDecoder::new(raw))
        }
        other => {
            return Err(bad(format!(
                "`{name}` in the zip archive uses compression {other}; use deflate or none"
            )))
        }
    };
    Ok(Box::new(Checked {
        inner: flate2::CrcReader::new(data),
        size,
        crc,
        name,
    }))
}

/// Checks a zip entry's length and CRC-32 when its end is reached.
struct Checked<R> {
    inner: flate2::CrcReader<R>,
    size: u64,
    crc: u32,
    name: String,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let c = self.inner.crc();
            if u64::from(c.amount()) != self.size & 0xffff_ffff || c.sum() != self.crc {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "`{}` in the zip archive is damaged (length or CRC-32 does not match)",
                        self.name
                    ),
                ));
            }
        }
        Ok(n)
    }
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
    use crate::adapters::snapshot::header::NodeSpec;
    use arrow::array::{Int64Array, LargeStringArray};
    use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
    use arrow::ipc::CompressionType;

    fn zip_of(path: &Path, entries: &[(&str, &str)]) {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, text) in entries {
            w.start_file(*name, stored).unwrap();
            w.write_all(text.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn a_zip_archive_must_hold_exactly_one_csv_file() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("ok.zip");
        zip_of(&ok, &[("people.csv", "id:ID(P),name\np1,Ann\n")]);
        assert_eq!(column_names(&ok).unwrap(), ["id:ID(P)", "name"]);
        let cases = [
            (
                vec![("a.csv", "x\n"), ("b.csv", "y\n")],
                "exactly one CSV file",
            ),
            (vec![("a.txt", "x\n")], "is not a .csv file"),
            (vec![], "holds no file"),
        ];
        for (i, (entries, want)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.zip"));
            zip_of(&path, &entries);
            let err = column_names(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{entries:?}: {err}");
        }
        let not_zip = dir.path().join("junk.zip");
        std::fs::write(&not_zip, b"id:ID(P)\np1\n").unwrap();
        let err = column_names(&not_zip).unwrap_err().to_string();
        assert!(err.contains("not a readable zip archive"), "{err}");
    }

    #[test]
    fn a_header_file_applies_to_csv_only() {
        let dir = tempfile::tempdir().unwrap();
        let header = dir.path().join("header.csv");
        std::fs::write(&header, "id:ID(P);name\n").unwrap();
        let data = dir.path().join("part.parquet");
        std::fs::write(&data, b"").unwrap();
        let input = Input {
            path: data,
            header: Some(header.clone()),
            group: None,
        };
        let err = column_names_of(&input, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("CSV files only"), "{err}");
        // The header file is split with the snapshot's delimiter.
        let csv = Input {
            path: dir.path().join("part.csv"),
            header: Some(header),
            group: None,
        };
        let semicolon = ImportOptions {
            delimiter: b';',
            array_delimiter: '|',
            ..ImportOptions::default()
        };
        assert_eq!(
            column_names_of(&csv, &semicolon).unwrap(),
            ["id:ID(P)", "name"]
        );
    }

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
