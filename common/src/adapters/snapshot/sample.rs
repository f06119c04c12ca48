//! Writes realistic sample snapshots (people, companies, who-knows-whom,
//! who-works-where) of a chosen size and format, for the demo, the tests and the
//! benchmarks. Deterministic for a given seed; memory bounded by the chunk size.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::layout::{NODES_DIR, READY_MARKER, RELATIONSHIPS_DIR};

const CHUNK: usize = 50_000;
const FIRST: [&str; 16] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim",
    "Margaret", "Linus", "Zoë", "José", "Søren", "Amélie",
];
const LAST: [&str; 12] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
    "O'Neil", "Hamilton", "Müller",
];
const SECTORS: [&str; 5] = ["software", "energy", "retail", "health", "finance"];

/// The file format of a sample snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// CSV files.
    Csv,
    /// Parquet files.
    Parquet,
    /// Arrow IPC files.
    Arrow,
}

impl SampleFormat {
    fn ext(self) -> &'static str {
        match self {
            SampleFormat::Csv => "csv",
            SampleFormat::Parquet => "parquet",
            SampleFormat::Arrow => "arrow",
        }
    }
}

impl std::str::FromStr for SampleFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(SampleFormat::Csv),
            "parquet" => Ok(SampleFormat::Parquet),
            "arrow" => Ok(SampleFormat::Arrow),
            other => Err(format!(
                "unknown format `{other}`: use csv, parquet or arrow"
            )),
        }
    }
}

/// Size and shape of a sample snapshot.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// `Person` nodes.
    pub people: usize,
    /// `Company` nodes.
    pub companies: usize,
    /// `KNOWS` relationships between people (each person also `WORKS_AT` one
    /// company when there are companies).
    pub knows: usize,
    /// The files' format.
    pub format: SampleFormat,
    /// The random seed (the same seed makes the same snapshot).
    pub seed: u64,
}

impl SampleSpec {
    /// A snapshot of about `rows` rows in all (nodes + relationships).
    pub fn with_rows(rows: usize, format: SampleFormat, seed: u64) -> Self {
        let people = (rows / 4).max(1);
        SampleSpec {
            people,
            companies: (people / 20).max(1),
            knows: rows.saturating_sub(people + (people / 20).max(1) + people),
            format,
            seed,
        }
    }

    /// Nodes the snapshot holds.
    pub fn node_count(&self) -> u64 {
        (self.people + self.companies) as u64
    }

    /// Relationships the snapshot holds.
    pub fn relationship_count(&self) -> u64 {
        let works = if self.companies > 0 { self.people } else { 0 };
        (self.knows + works) as u64
    }
}

/// Writes the snapshot into `dir` (created), `_SUCCESS` last.
pub fn write_snapshot(dir: &Path, spec: &SampleSpec) -> std::io::Result<()> {
    let nodes = dir.join(NODES_DIR);
    let rels = dir.join(RELATIONSHIPS_DIR);
    std::fs::create_dir_all(&nodes)?;
    std::fs::create_dir_all(&rels)?;
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let ext = spec.format.ext();

    let people = schema(&[
        ("personId:ID(Person)", DataType::Utf8),
        (":LABEL", DataType::Utf8),
        ("name", DataType::Utf8),
        ("age:int", DataType::Int64),
        ("score:double", DataType::Float64),
        ("active:boolean", DataType::Boolean),
    ]);
    write_table(
        &nodes.join(format!("people.{ext}")),
        spec.format,
        &people,
        spec.people,
        |start, len| {
            let ids: Vec<String> = (start..start + len).map(|i| format!("p{i}")).collect();
            let labels: Vec<&str> = (start..start + len)
                .map(|i| {
                    if i % 7 == 0 {
                        "Person;Employee"
                    } else {
                        "Person"
                    }
                })
                .collect();
            let names: Vec<String> = (0..len)
                .map(|_| {
                    format!(
                        "{} {}",
                        FIRST[rng.usize(..FIRST.len())],
                        LAST[rng.usize(..LAST.len())]
                    )
                })
                .collect();
            let ages: Vec<Option<i64>> = (0..len)
                .map(|_| (rng.u8(..10) > 0).then(|| rng.i64(18..90)))
                .collect();
            let scores: Vec<f64> = (0..len)
                .map(|_| (rng.f64() * 1000.0).round() / 10.0)
                .collect();
            let active: Vec<bool> = (0..len).map(|_| rng.bool()).collect();
            vec![
                Arc::new(StringArray::from(ids)) as ArrayRef,
                Arc::new(StringArray::from(labels)),
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(ages)),
                Arc::new(Float64Array::from(scores)),
                Arc::new(BooleanArray::from(active)),
            ]
        },
    )?;

    if spec.companies > 0 {
        let companies = schema(&[
            ("companyId:ID(Company)", DataType::Utf8),
            ("name", DataType::Utf8),
            ("sector", DataType::Utf8),
            ("founded:int", DataType::Int64),
        ]);
        write_table(
            &nodes.join(format!("companies.{ext}")),
            spec.format,
            &companies,
            spec.companies,
            |start, len| {
                vec![
                    Arc::new(StringArray::from(
                        (start..start + len)
                            .map(|i| format!("c{i}"))
                            .collect::<Vec<_>>(),
                    )) as ArrayRef,
                    Arc::new(StringArray::from(
                        (start..start + len)
                            .map(|i| format!("Company {i}"))
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        (0..len)
                            .map(|_| SECTORS[rng.usize(..SECTORS.len())])
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(Int64Array::from(
                        (0..len).map(|_| rng.i64(1900..2026)).collect::<Vec<_>>(),
                    )),
                ]
            },
        )?;
        let works = schema(&[
            (":START_ID(Person)", DataType::Utf8),
            (":END_ID(Company)", DataType::Utf8),
            (":TYPE", DataType::Utf8),
            ("since:int", DataType::Int64),
        ]);
        let companies_n = spec.companies;
        write_table(
            &rels.join(format!("works_at.{ext}")),
            spec.format,
            &works,
            spec.people,
            |start, len| {
                vec![
                    Arc::new(StringArray::from(
                        (start..start + len)
                            .map(|i| format!("p{i}"))
                            .collect::<Vec<_>>(),
                    )) as ArrayRef,
                    Arc::new(StringArray::from(
                        (0..len)
                            .map(|_| format!("c{}", rng.usize(..companies_n)))
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(vec!["WORKS_AT"; len])),
                    Arc::new(Int64Array::from(
                        (0..len).map(|_| rng.i64(1990..2026)).collect::<Vec<_>>(),
                    )),
                ]
            },
        )?;
    }

    if spec.knows > 0 {
        let knows = schema(&[
            (":START_ID(Person)", DataType::Utf8),
            (":END_ID(Person)", DataType::Utf8),
            (":TYPE", DataType::Utf8),
            ("weight:float", DataType::Float64),
        ]);
        let people_n = spec.people;
        write_table(
            &rels.join(format!("knows.{ext}")),
            spec.format,
            &knows,
            spec.knows,
            |_, len| {
                vec![
                    Arc::new(StringArray::from(
                        (0..len)
                            .map(|_| format!("p{}", rng.usize(..people_n)))
                            .collect::<Vec<_>>(),
                    )) as ArrayRef,
                    Arc::new(StringArray::from(
                        (0..len)
                            .map(|_| format!("p{}", rng.usize(..people_n)))
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(vec!["KNOWS"; len])),
                    Arc::new(Float64Array::from(
                        (0..len)
                            .map(|_| (rng.f64() * 100.0).round() / 100.0)
                            .collect::<Vec<_>>(),
                    )),
                ]
            },
        )?;
    }

    std::fs::write(dir.join(READY_MARKER), b"")?;
    Ok(())
}

/// The directory a sample snapshot for `customer` at `id` goes to.
pub fn snapshot_dir(root: &Path, customer: &str, id: u64) -> PathBuf {
    root.join(customer).join(id.to_string())
}

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

fn write_table(
    path: &Path,
    format: SampleFormat,
    schema: &SchemaRef,
    rows: usize,
    mut chunk: impl FnMut(usize, usize) -> Vec<ArrayRef>,
) -> std::io::Result<()> {
    let file = File::create(path)?;
    let io = |e: arrow::error::ArrowError| std::io::Error::other(e.to_string());
    let pq = |e: parquet::errors::ParquetError| std::io::Error::other(e.to_string());
    let mut next = |start: usize| -> std::io::Result<RecordBatch> {
        let len = CHUNK.min(rows - start);
        RecordBatch::try_new(schema.clone(), chunk(start, len)).map_err(io)
    };
    match format {
        SampleFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(std::io::BufWriter::new(file));
            for start in (0..rows).step_by(CHUNK) {
                w.write(&next(start)?).map_err(io)?;
            }
        }
        SampleFormat::Parquet => {
            let mut w =
                parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).map_err(pq)?;
            for start in (0..rows).step_by(CHUNK) {
                w.write(&next(start)?).map_err(pq)?;
            }
            w.close().map_err(pq)?;
        }
        SampleFormat::Arrow => {
            let mut w = arrow::ipc::writer::FileWriter::try_new(file, schema).map_err(io)?;
            for start in (0..rows).step_by(CHUNK) {
                w.write(&next(start)?).map_err(io)?;
            }
            w.finish().map_err(io)?;
        }
    }
    Ok(())
}
