//! Section `bulk`: one CSV snapshot (`producer generate --rows N`: about
//! 1.05 M nodes and 2.95 M relationships at N = 4 000 000) loaded into one
//! FalkorDB three ways, interleaved within each run: the worker's load path
//! with `load_method = "bulk"` and with `"cypher"` (each load in a fresh
//! child process, this program with `--load-once`, so its peak RSS is a
//! worker's), and
//! FalkorDB's Python `falkordb-bulk-insert` (from `scripts/ensure-services.sh
//! --bench-tools`; headers converted to its form, same rows). Then a matched
//! pair of Parquet snapshots, identical but for the id columns' type
//! (integers, or the same numbers as strings), each loaded bulk and cypher:
//! the cypher path's cost of integer against string ids. For each: seconds, nodes/s,
//! relationships/s, the loader's peak RSS, FalkorDB's CPU-seconds, and the
//! latency of a reader of another live graph on the same server
//! (`GRAPH.RO_QUERY … count(n)` every 10 ms on its own connection).
//! The snapshots are written by a child process too (`--write-snapshot`);
//! each way
//! starts on an idle server (the graph of the way before dropped and freed);
//! the matched pair alternates which id type loads first.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::config::ServiceUrl;
use common::graph::falkordb::FalkorStore;
use common::graph::GraphStore;
use common::load::{load_snapshot, LoadMethod, LoadOptions};
use common::snapshot::sample::{self, SampleFormat, SampleSpec};
use harness::FalkorServer;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{percentile, progress, round, status_kib, Args};

/// The FalkorDB server's pid, from `INFO server`.
fn server_pid(server: &FalkorServer) -> anyhow::Result<u32> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut server.connection())?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no process_id in INFO server")
}

/// CPU-seconds (user + system) a process used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11usize, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// Writes the snapshot `spec` names (the hidden `--write-snapshot`
/// option): run in a child process so that what generating it allocates is
/// not in this process's RSS when a load's peak is measured.
pub fn write_snapshot(spec: &[String]) -> anyhow::Result<()> {
    let number = |i: usize| -> anyhow::Result<usize> {
        let v = spec.get(i).context("--write-snapshot: missing argument")?;
        v.parse()
            .with_context(|| format!("--write-snapshot: `{v}` is not a number"))
    };
    let dir = Path::new(spec.get(1).context("--write-snapshot: no directory")?);
    match spec.first().map(String::as_str) {
        Some("csv") => {
            let spec = SampleSpec::with_rows(number(2)?, SampleFormat::Csv, 16);
            sample::write_snapshot(dir, &spec)?;
        }
        Some(ids @ ("int" | "string")) => {
            super::synthetic::write_synthetic_ids(dir, number(2)?, number(3)?, 17, ids == "string")?
        }
        other => bail!("--write-snapshot: unknown kind {other:?}"),
    }
    Ok(())
}

/// The hidden `--load-once URL DB DIR METHOD`: one load through the
/// worker's load path in this (fresh) process; its figures as JSON.
pub async fn load_once(args: &Args) -> anyhow::Result<Value> {
    let [url, db, dir, method] = args.load_once.as_slice() else {
        bail!("--load-once URL DB DIR METHOD");
    };
    let method = match method.as_str() {
        "bulk" => LoadMethod::Bulk,
        "cypher" => LoadMethod::Cypher,
        other => bail!("--load-once: unknown method {other}"),
    };
    let store = FalkorStore::connect_with_writers(&ServiceUrl::new(url.clone()), 4).await?;
    store.create_database(db).await?;
    let cpu0 = cpu_seconds(std::process::id());
    let t = Instant::now();
    let options = LoadOptions::new(args.batch_size)
        .with_concurrency(args.concurrency)
        .with_method(method)
        .with_bulk_max_stall_ms(args.bulk_max_stall_ms);
    let r = load_snapshot(
        &store,
        db,
        Path::new(dir),
        options,
        &CancellationToken::new(),
    )
    .await?;
    let seconds = t.elapsed().as_secs_f64();
    let t = r.times;
    Ok(json!({
        "seconds": seconds,
        "nodes": r.nodes,
        "relationships": r.relationships,
        "peak_rss_mib": own_peak_mib(),
        "cpu_s": cpu_seconds(std::process::id()) - cpu0,
        "bulk_calls": r.bulk_calls,
        "longest_bulk_call_ms": r.longest_bulk_call_ms,
        "read_stall_ms": t.read_stall_ms,
        "convert_ms": t.convert_ms,
        "id_map_ms": t.id_map_ms,
        "encode_ms": t.encode_ms,
        "call_ms": t.call_ms,
        "sync_ms": t.sync_ms,
    }))
}

/// Runs this program with `--write-snapshot spec…` and waits for it.
fn write_in_child(spec: &[String]) -> anyhow::Result<()> {
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--write-snapshot")
        .args(spec)
        .status()?;
    if !status.success() {
        bail!("writing the snapshot {spec:?} failed: {status}");
    }
    Ok(())
}

/// Waits (up to 20 s) until the server has used no CPU tick (under 10 ms,
/// `/proc` counts in hundredths) in 300 ms: a graph dropped by the way
/// before is freed and the next way starts on an idle server.
async fn settle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if cpu_seconds(pid) - before < 0.006 || Instant::now() > deadline {
            return;
        }
    }
}

fn own_peak_mib() -> f64 {
    status_kib(std::process::id(), "VmHWM").unwrap_or(0) as f64 / 1024.0
}

/// Reads the live graph every 10 ms until `stop`; returns the latencies (ms).
fn reader(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<f64>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let Ok(client) = redis::Client::open(url) else {
            return out;
        };
        let Ok(mut con) = client.get_connection() else {
            return out;
        };
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let r: redis::RedisResult<redis::Value> = redis::cmd("GRAPH.RO_QUERY")
                .arg("live")
                .arg("MATCH (n) RETURN count(n)")
                .query(&mut con);
            if r.is_ok() {
                out.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        out
    })
}

/// Rewrites the generated CSV files into falkordb-bulk-insert's header form
/// (`name:TYPE`, no `:LABEL`/`:TYPE` columns: labels and types come from the
/// command line). The rows stay the same; the `Employee` second label is lost.
fn vendor_files(src: &Path, dst: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dst)?;
    let files = [
        (
            "nodes/people.csv",
            "personId:ID(Person),name:STRING,age:INT,score:DOUBLE,active:BOOLEAN",
            Some(1usize),
            ["-N", "Person"],
        ),
        (
            "nodes/companies.csv",
            "companyId:ID(Company),name:STRING,sector:STRING,founded:INT",
            None,
            ["-N", "Company"],
        ),
        (
            "relationships/works_at.csv",
            ":START_ID(Person),:END_ID(Company),since:INT",
            Some(2),
            ["-R", "WORKS_AT"],
        ),
        (
            "relationships/knows.csv",
            ":START_ID(Person),:END_ID(Person),weight:DOUBLE",
            Some(2),
            ["-R", "KNOWS"],
        ),
    ];
    let mut args = Vec::new();
    for (file, header, drop, flag) in files {
        let input = std::io::BufReader::new(std::fs::File::open(src.join(file))?);
        let out_path = dst.join(file.replace('/', "_"));
        let mut out = BufWriter::new(std::fs::File::create(&out_path)?);
        writeln!(out, "{header}")?;
        for line in input.lines().skip(1) {
            let line = line?;
            match drop {
                None => writeln!(out, "{line}")?,
                Some(col) => {
                    if line.contains('"') {
                        bail!("{file}: quoted fields are not converted: {line}");
                    }
                    let kept: Vec<&str> = line
                        .split(',')
                        .enumerate()
                        .filter(|(i, _)| *i != col)
                        .map(|(_, f)| f)
                        .collect();
                    writeln!(out, "{}", kept.join(","))?;
                }
            }
        }
        out.flush()?;
        args.extend([flag[0].to_owned(), flag[1].to_owned()]);
        args.push(out_path.display().to_string());
    }
    Ok(args)
}

/// The falkordb-bulk-insert program (`$TOOLS/bench.env`).
fn vendor_program() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let env = Path::new(&home).join(".cache/snapswitch/bench.env");
    std::fs::read_to_string(env)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("FALKORDB_BULK_INSERT="))
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

struct Run {
    seconds: f64,
    nodes: u64,
    relationships: u64,
    peak_rss_mib: f64,
    server_cpu_s: f64,
    latencies: Vec<f64>,
    note: Option<String>,
}

impl Run {
    fn json(mut self) -> Value {
        let n = self.latencies.len();
        json!({
            "seconds": round(self.seconds, 2),
            "nodes": self.nodes,
            "relationships": self.relationships,
            "nodes_per_s": round(self.nodes as f64 / self.seconds, 0),
            "relationships_per_s": round(self.relationships as f64 / self.seconds, 0),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "falkordb_cpu_s": round(self.server_cpu_s, 2),
            "reader_probes": n,
            "reader_p50_ms": if n > 0 { round(percentile(&mut self.latencies, 50.0), 2) } else { 0.0 },
            "reader_p99_ms": if n > 0 { round(percentile(&mut self.latencies, 99.0), 2) } else { 0.0 },
            "reader_max_ms": round(self.latencies.iter().copied().fold(0.0, f64::max), 2),
            "note": self.note,
        })
    }
}

async fn one(
    server: &FalkorServer,
    store: &FalkorStore,
    pid: u32,
    way: &str,
    snap: &Path,
    vendor_args: Option<&[String]>,
    args: &Args,
) -> anyhow::Result<Run> {
    let db = format!("bench-bulk-{way}");
    store.drop_database(&db).await.ok();
    settle(pid).await;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = reader(server.url(), stop.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let note;
    let mut load_seconds = None;
    let (nodes, relationships, peak) = match way {
        "bulk" | "cypher" => {
            // In a child process of its own (a fresh process, like a
            // worker's), timed there from its first write to its count check.
            let mut child = std::process::Command::new(std::env::current_exe()?);
            child
                .arg("--load-once")
                .args([&server.url(), &db, &path_arg(snap)?, way])
                .args(["--batch-size", &args.batch_size.to_string()])
                .args(["--concurrency", &args.concurrency.to_string()])
                .args(["--bulk-max-stall-ms", &args.bulk_max_stall_ms.to_string()])
                .stderr(std::process::Stdio::inherit());
            let out = tokio::task::spawn_blocking(move || child.output()).await??;
            if !out.status.success() {
                bail!("the {way} load failed: {}", out.status);
            }
            let r: Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("the {way} load printed no JSON"))?;
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let client = format!(
                "loader {:.2} CPU-s; ms summed, overlapping: read stall {}, convert {}, id map {}",
                f("cpu_s"),
                r["read_stall_ms"],
                r["convert_ms"],
                r["id_map_ms"]
            );
            note = Some(if way == "bulk" {
                format!(
                    "{} GRAPH.BULK calls, the longest {} ms; {client}, encode {}, calls {}, syncs {}",
                    r["bulk_calls"],
                    r["longest_bulk_call_ms"],
                    r["encode_ms"],
                    r["call_ms"],
                    r["sync_ms"]
                )
            } else {
                client
            });
            load_seconds = Some(f("seconds"));
            (
                r["nodes"].as_u64().unwrap_or(0),
                r["relationships"].as_u64().unwrap_or(0),
                f("peak_rss_mib"),
            )
        }
        _ => {
            let program = vendor_program().context("falkordb-bulk-insert not installed")?;
            let mut child = std::process::Command::new(program)
                .arg(&db)
                .arg("-u")
                .arg(server.url())
                .arg("-d")
                .args(vendor_args.unwrap_or_default())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            let cpid = child.id();
            let mut peak = 0u64;
            let status = loop {
                if let Some(kib) = status_kib(cpid, "VmHWM") {
                    peak = peak.max(kib);
                }
                if let Some(s) = child.try_wait()? {
                    break s;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                bail!("falkordb-bulk-insert failed: {status}: {err}");
            }
            note = Some("labels from -N (no second label Employee); no index".to_owned());
            let c = common::graph::GraphWriter::counts(store, &db).await?;
            (c.nodes, c.relationships, peak as f64 / 1024.0)
        }
    };
    let seconds = load_seconds.unwrap_or_else(|| t.elapsed().as_secs_f64());
    let server_cpu_s = cpu_seconds(pid) - cpu0;
    stop.store(true, Ordering::Relaxed);
    let latencies = probe.join().unwrap_or_default();
    store.drop_database(&db).await.ok();
    progress(&format!(
        "bulk section: {way} {seconds:.2} s, {nodes} nodes, {relationships} relationships"
    ));
    Ok(Run {
        seconds,
        nodes,
        relationships,
        peak_rss_mib: peak,
        server_cpu_s,
        latencies,
        note,
    })
}

fn median_of(runs: &[Value], key: &str) -> Value {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
    if v.is_empty() {
        return Value::Null;
    }
    json!(round(super::median(&mut v), 2))
}

fn summary(runs: Vec<Value>) -> Value {
    let keys = [
        "seconds",
        "nodes_per_s",
        "relationships_per_s",
        "peak_rss_mib",
        "falkordb_cpu_s",
        "reader_p50_ms",
        "reader_p99_ms",
        "reader_max_ms",
    ];
    let mut out = serde_json::Map::new();
    for k in keys {
        out.insert(k.to_owned(), median_of(&runs, k));
    }
    out.insert("runs".into(), Value::Array(runs));
    Value::Object(out)
}

fn path_arg(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(str::to_owned)
        .context("the temporary directory's path is not UTF-8")
}

pub async fn bench_bulk(args: &Args) -> anyhow::Result<Value> {
    let tmp = tempfile::tempdir()?;
    let csv = tmp.path().join("csv");
    progress(&format!(
        "bulk section: generating {} rows (CSV)",
        args.bulk_rows
    ));
    let spec = SampleSpec::with_rows(args.bulk_rows, SampleFormat::Csv, 16);
    write_in_child(&["csv".into(), path_arg(&csv)?, args.bulk_rows.to_string()])?;
    let vendor_args = match vendor_program() {
        Some(_) => Some(vendor_files(&csv, &tmp.path().join("vendor"))?),
        None => {
            progress("bulk section: falkordb-bulk-insert not installed (scripts/ensure-services.sh --bench-tools); skipped");
            None
        }
    };
    let server = FalkorServer::start()?;
    let store = FalkorStore::connect_with_writers(&ServiceUrl::new(server.url()), 4).await?;
    let pid = server_pid(&server)?;
    let _: redis::Value = redis::cmd("GRAPH.QUERY")
        .arg("live")
        .arg("UNWIND range(1, 10000) AS i CREATE (:Item {i: i})")
        .query(&mut server.connection())?;
    let mut ways = vec!["bulk", "cypher"];
    if vendor_args.is_some() {
        ways.push("falkordb-bulk-insert");
    }
    let mut runs: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for run in 0..args.runs {
        for way in &ways {
            progress(&format!("bulk section: run {} {way}", run + 1));
            let r = one(
                &server,
                &store,
                pid,
                way,
                &csv,
                vendor_args.as_deref(),
                args,
            )
            .await;
            let r = match r {
                Ok(r) => r.json(),
                // The vendor's loader gives up when a 64 MB call outlasts
                // its socket timeout (seen on the loaded shared machine):
                // recorded, and the other ways still run.
                Err(e) if *way == "falkordb-bulk-insert" => {
                    let e = e.to_string();
                    let last = e.lines().last().unwrap_or_default().to_owned();
                    progress(&format!("bulk section: {way} failed: {last}"));
                    json!({ "failed": last })
                }
                Err(e) => return Err(e),
            };
            runs.entry(way).or_default().push(r);
        }
    }
    // A matched pair of Parquet snapshots, integer ids and the same ids as
    // strings, bulk and cypher (falkordb-bulk-insert reads CSV only).
    let (pn, pr) = (
        spec.node_count() as usize,
        spec.relationship_count() as usize,
    );
    progress(&format!(
        "bulk section: Parquet matched pair (integer / string ids), {pn} nodes, {pr} relationships"
    ));
    let int_ids = tmp.path().join("parquet-int");
    let string_ids = tmp.path().join("parquet-string");
    for (ids, dir) in [("int", &int_ids), ("string", &string_ids)] {
        write_in_child(&[ids.into(), path_arg(dir)?, pn.to_string(), pr.to_string()])?;
    }
    let mut parquet_runs: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for run in 0..args.runs {
        // Integer ids first in even runs, string ids first in odd ones.
        let mut pair = [("int_ids", &int_ids), ("string_ids", &string_ids)];
        if run % 2 == 1 {
            pair.reverse();
        }
        for way in ["bulk", "cypher"] {
            for (ids, dir) in pair {
                progress(&format!("bulk section: Parquet {ids} {way}"));
                let r = one(&server, &store, pid, way, dir, None, args).await?;
                parquet_runs
                    .entry(format!("{way}_{ids}"))
                    .or_default()
                    .push(r.json());
            }
        }
    }
    let median_s = |k: &str| {
        parquet_runs.get(k).map_or(f64::NAN, |v| {
            median_of(v, "seconds").as_f64().unwrap_or(f64::NAN)
        })
    };
    let cypher_int_over_string = round(
        median_s("cypher_int_ids") / median_s("cypher_string_ids"),
        2,
    );
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    Ok(json!({
        "rows": args.bulk_rows,
        "nodes": spec.node_count(),
        "relationships": spec.relationship_count(),
        "batch_size": args.batch_size,
        "load_concurrency": args.concurrency,
        "bulk_max_stall_ms": args.bulk_max_stall_ms,
        "load_average_at_end": load_average.trim(),
        "csv": runs.into_iter().map(|(k, v)| (k.to_owned(), summary(v))).collect::<serde_json::Map<_, _>>(),
        "parquet_matched_ids": parquet_runs.into_iter().map(|(k, v)| (k, summary(v))).collect::<serde_json::Map<_, _>>(),
        "cypher_int_over_string_ids": cypher_int_over_string,
    }))
}
