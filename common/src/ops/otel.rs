//! Distributed tracing: OpenTelemetry spans exported over OTLP, one trace per
//! snapshot from the producer's publish to the worker's switch.
//!
//! # Configuration (the standard `OTEL_*` variables)
//!
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`):
//!   where spans go. Unset or empty: tracing is off ([`Otel::from_env`]
//!   returns `None`) and nothing else changes.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` (or `..._TRACES_PROTOCOL`): `grpc`
//!   (default; the collector's port 4317) or `http/protobuf` (port 4318;
//!   `/v1/traces` is appended to the generic endpoint, the traces endpoint is
//!   used as is).
//! - `OTEL_SERVICE_NAME`: the `service.name` resource attribute; default the
//!   binary's name. `OTEL_RESOURCE_ATTRIBUTES` adds more.
//! - `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: off.
//! - Read by the SDK itself: `OTEL_BSP_SCHEDULE_DELAY` (ms, default 5000),
//!   `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
//!   `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip`).
//!
//! # Wiring
//!
//! ```no_run
//! # use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};
//! # fn main() -> Result<(), common::otel::OtelError> {
//! // At startup, before the first span:
//! let otel = common::otel::Otel::from_env("worker")?; // None when off
//! tracing_subscriber::registry()
//!     .with(otel.as_ref().map(|o| o.layer()))
//!     .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
//!     .with(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
//!     .init();
//! // … and on exit (flushes what is still queued):
//! if let Some(otel) = otel {
//!     otel.shutdown();
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Spans are ordinary `tracing` spans; the layer turns them into OpenTelemetry
//! spans. Special fields understood by `tracing-opentelemetry`:
//! - `otel.kind = "producer" | "consumer" | "server" | "client" | "internal"`
//!   sets the span kind (default internal);
//! - `otel.name = …` overrides the span name;
//! - `otel.status_code = "error"` / `otel.status_description = …` the status.
//!
//! Every other field becomes an attribute (`messaging.system = "rabbitmq"` is a
//! valid field name). A field recorded later must be declared when the span is
//! created: `rows = tracing::field::Empty`, then `span.record("rows", n)`.
//! Spans must pass the subscriber's filter to be exported: with the default
//! `RUST_LOG=info`, create them with `info_span!`.
//!
//! # Across RabbitMQ
//!
//! The producer's span context travels in the message's AMQP headers as W3C
//! `traceparent` (and `tracestate` when there is one), see [`inject`]; the
//! worker continues it with [`set_parent`], which must be called right after
//! the span is created and before it is entered or instrumented (the parent
//! of a started span cannot change). A message without `traceparent` (an
//! upstream job's, or one published with tracing off) starts a new trace.
//!
//! ```no_run
//! # use lapin::types::FieldTable;
//! # use tracing::Instrument;
//! # async fn send(headers: FieldTable) {}
//! # async fn example(delivery_headers: Option<FieldTable>) {
//! // Producer:
//! let span = tracing::info_span!("publish", otel.kind = "producer", messaging.system = "rabbitmq");
//! async {
//!     let mut headers = FieldTable::default();
//!     common::otel::inject(&tracing::Span::current(), &mut headers);
//!     send(headers).await;
//! }
//! .instrument(span)
//! .await;
//!
//! // Worker:
//! let span = tracing::info_span!(parent: None, "process", otel.kind = "consumer");
//! common::otel::set_parent(&span, delivery_headers.as_ref());
//! async {
//!     // info_span!("lock"), info_span!("load_nodes", rows = Empty), …:
//!     // children of `process`.
//! }
//! .instrument(span)
//! .await;
//! # }
//! ```

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};

pub use opentelemetry_otlp::Compression;

/// The instrumentation scope of every span snapswitch exports.
pub const TRACER_NAME: &str = "snapswitch";

/// The W3C trace-context header carried in AMQP headers.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The W3C trace-state header carried with it.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// Why tracing export could not start.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("{variable}={value:?}: unsupported OTLP protocol (use `grpc` or `http/protobuf`)")]
    Protocol {
        variable: &'static str,
        value: String,
    },
    #[error("OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("starting the OTLP export runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC through tonic (the collector's port 4317).
    Grpc,
    /// Protobuf over HTTP (port 4318).
    HttpProtobuf,
}

/// Where and how spans are exported; [`OtelSettings::from_env`] reads them
/// from the `OTEL_*` variables, tests build them directly.
#[derive(Debug, Clone)]
pub struct OtelSettings {
    /// The endpoint the exporter uses as is: for gRPC the collector's address
    /// (`http://collector:4317`), for HTTP the full URL
    /// (`http://collector:4318/v1/traces`).
    pub endpoint: String,
    /// gRPC or HTTP/protobuf.
    pub protocol: OtlpProtocol,
    /// `service.name`.
    pub service_name: String,
    /// `None`: `OTEL_EXPORTER_OTLP_COMPRESSION` decides (default none).
    pub compression: Option<Compression>,
}

impl OtelSettings {
    /// `None` when no endpoint is configured (or the SDK is disabled).
    pub fn from_env(default_service: &str) -> Result<Option<OtelSettings>, OtelError> {
        Self::from_lookup(default_service, |name| std::env::var(name).ok())
    }

    /// [`OtelSettings::from_env`] with the variables read through `var`.
    pub fn from_lookup(
        default_service: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtelSettings>, OtelError> {
        // Set, non-empty, trimmed.
        let env = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let traces_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if traces_endpoint.is_none() && base_endpoint.is_none() {
            return Ok(None);
        }
        let protocol = match [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|variable| env(variable).map(|value| (variable, value)))
        {
            None => OtlpProtocol::Grpc,
            Some((_, value)) if value == "grpc" => OtlpProtocol::Grpc,
            Some((_, value)) if value == "http/protobuf" => OtlpProtocol::HttpProtobuf,
            Some((variable, value)) => return Err(OtelError::Protocol { variable, value }),
        };
        let endpoint = match (traces_endpoint, base_endpoint, protocol) {
            (Some(traces), _, _) => traces,
            (None, Some(base), OtlpProtocol::Grpc) => base,
            (None, Some(base), OtlpProtocol::HttpProtobuf) => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, None, _) => unreachable!("checked above"),
        };
        Ok(Some(OtelSettings {
            endpoint,
            protocol,
            service_name: env("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.to_owned()),
            compression: None,
        }))
    }
}

/// The tracer provider and its exporter; [`Otel::layer`] connects it to
/// `tracing`, [`Otel::shutdown`] flushes it.
pub struct Otel {
    provider: Option<SdkTracerProvider>,
    /// Drives the gRPC channel, so exports (and the flush on shutdown) never
    /// depend on the application's runtime having a free thread.
    runtime: Option<tokio::runtime::Runtime>,
    service_name: String,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel")
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

impl Otel {
    /// Tracing per the `OTEL_*` variables, `None` when no endpoint is set.
    /// Sets the global W3C trace-context propagator. Call it before installing
    /// the subscriber; inside or outside a Tokio runtime (gRPC exports run on
    /// a one-thread runtime of their own, HTTP ones on the SDK's thread).
    pub fn from_env(default_service: &str) -> Result<Option<Otel>, OtelError> {
        match OtelSettings::from_env(default_service)? {
            Some(settings) => Ok(Some(Otel::from_settings(&settings)?)),
            None => Ok(None),
        }
    }

    /// Tracing to an explicit endpoint (the batch processor still reads
    /// `OTEL_BSP_*`, the exporter `OTEL_EXPORTER_OTLP_TIMEOUT`/`_HEADERS`).
    pub fn from_settings(settings: &OtelSettings) -> Result<Otel, OtelError> {
        let (exporter, runtime) = match settings.protocol {
            OtlpProtocol::Grpc => {
                // tonic's lazy channel spawns its worker on the runtime it is
                // built in: ours, with its own thread.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("otel-export")
                    .enable_all()
                    .build()?;
                let exporter = {
                    let _entered = runtime.enter();
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(settings.endpoint.clone());
                    if let Some(c) = settings.compression {
                        builder = builder.with_compression(c);
                    }
                    builder.build()?
                };
                (exporter, Some(runtime))
            }
            OtlpProtocol::HttpProtobuf => {
                use opentelemetry_otlp::WithHttpConfig;
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(settings.endpoint.clone());
                if let Some(c) = settings.compression {
                    builder = builder.with_compression(c);
                }
                (builder.build()?, None)
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing::debug!(
            endpoint = %settings.endpoint,
            protocol = ?settings.protocol,
            service = %settings.service_name,
            "OpenTelemetry tracing on"
        );
        Ok(Otel {
            provider: Some(provider),
            runtime,
            service_name: settings.service_name.clone(),
        })
    }

    /// The `service.name` spans carry.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The `tracing` layer exporting spans through this provider; add it to
    /// the subscriber registry next to the fmt layer.
    pub fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let tracer = match &self.provider {
            Some(p) => p.tracer(TRACER_NAME),
            None => SdkTracerProvider::builder().build().tracer(TRACER_NAME),
        };
        tracing_opentelemetry::layer().with_tracer(tracer)
    }

    /// Exports every span still queued and stops the exporter (blocks up to
    /// the export timeout). Spans ended afterwards are dropped. Errors are
    /// logged, never returned: tracing must not fail a shutdown.
    pub fn shutdown(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(provider) = self.provider.take() {
            let flush = move || provider.shutdown();
            let in_multi_thread_runtime = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            let result = if in_multi_thread_runtime {
                tokio::task::block_in_place(flush)
            } else {
                flush()
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "flushing OpenTelemetry spans failed");
            }
        }
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so allowed inside another runtime.
            runtime.shutdown_background();
        }
    }
}

impl Drop for Otel {
    /// Same as [`Otel::shutdown`] when it was not called.
    fn drop(&mut self) {
        self.finish();
    }
}

struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C propagator writes `tracestate` even when there is none.
        if value.is_empty() {
            return;
        }
        self.0.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
}

struct HeaderExtractor<'a>(&'a FieldTable);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}

/// Writes `span`'s trace context into AMQP message headers (`traceparent`,
/// and `tracestate` when not empty). Nothing is written when tracing is off
/// or the span is disabled.
pub fn inject(span: &tracing::Span, headers: &mut FieldTable) {
    inject_context(&span.context(), headers);
}

/// [`inject`] for an OpenTelemetry context.
pub fn inject_context(cx: &Context, headers: &mut FieldTable) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// The remote trace context in AMQP message headers; an empty context (no
/// span) when there are no headers or no valid `traceparent`.
pub fn extract(headers: Option<&FieldTable>) -> Context {
    let Some(headers) = headers else {
        return Context::new();
    };
    opentelemetry::global::get_text_map_propagator(|propagator| {
        // From an empty context, not the current one: no headers must not
        // mean "child of whatever span is current".
        propagator.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    })
}

/// Makes `span` a child of the trace context in `headers`; true when there
/// was one. Call it right after creating the span, before entering it.
/// Without a context nothing is set: the span starts a new trace (or stays
/// under the current span).
pub fn set_parent(span: &tracing::Span, headers: Option<&FieldTable>) -> bool {
    let cx = extract(headers);
    if !cx.span().span_context().is_valid() {
        return false;
    }
    match span.set_parent(cx) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "span parent not set");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use tracing_subscriber::layer::SubscriberExt;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn w3c() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }

    fn header(headers: &FieldTable, key: &str) -> Option<String> {
        match headers.inner().get(key)? {
            AMQPValue::LongString(s) => Some(s.to_string()),
            other => panic!("{key} is not a long string: {other:?}"),
        }
    }

    fn remote(trace_state: TraceState) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            trace_state,
        ))
    }

    #[test]
    fn known_traceparent_round_trips() {
        w3c();
        let mut headers = FieldTable::default();
        inject_context(&remote(TraceState::default()), &mut headers);
        assert_eq!(
            header(&headers, TRACEPARENT_HEADER).as_deref(),
            Some(TRACEPARENT)
        );

        let cx = extract(Some(&headers));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn tracestate_is_written_only_when_not_empty() {
        w3c();
        let mut headers = FieldTable::default();
        inject_context(&remote(TraceState::default()), &mut headers);
        assert!(!headers.contains_key(TRACESTATE_HEADER), "{headers:?}");

        let state = TraceState::from_key_value([("vendor", "value")]).unwrap();
        let mut headers = FieldTable::default();
        inject_context(&remote(state), &mut headers);
        assert_eq!(
            header(&headers, TRACESTATE_HEADER).as_deref(),
            Some("vendor=value")
        );
        let cx = extract(Some(&headers));
        assert_eq!(
            cx.span().span_context().trace_state().get("vendor"),
            Some("value")
        );
    }

    #[test]
    fn short_string_headers_are_read() {
        w3c();
        let mut headers = FieldTable::default();
        headers.insert(
            TRACEPARENT_HEADER.into(),
            AMQPValue::ShortString(TRACEPARENT.into()),
        );
        let cx = extract(Some(&headers));
        assert_eq!(
            cx.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
    }

    #[test]
    fn no_or_bad_headers_give_an_empty_context() {
        w3c();
        for headers in [
            None,
            Some(FieldTable::default()),
            Some({
                let mut t = FieldTable::default();
                t.insert(
                    TRACEPARENT_HEADER.into(),
                    AMQPValue::LongString("garbage".into()),
                );
                t
            }),
        ] {
            let cx = extract(headers.as_ref());
            assert!(!cx.has_active_span(), "{headers:?}");
            assert!(!cx.span().span_context().is_valid());
        }
        let span = tracing::Span::none();
        assert!(!set_parent(&span, None));
        let mut headers = FieldTable::default();
        inject(&span, &mut headers);
        assert!(headers.inner().is_empty(), "disabled span injects nothing");
    }

    #[test]
    fn spans_propagate_through_headers() {
        w3c();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let publish = tracing::info_span!("publish", otel.kind = "producer");
            let mut headers = FieldTable::default();
            inject(&publish, &mut headers);
            let sent = publish.context().span().span_context().clone();
            assert!(sent.is_valid());
            assert_eq!(
                header(&headers, TRACEPARENT_HEADER),
                Some(format!("00-{}-{}-01", sent.trace_id(), sent.span_id()))
            );
            assert!(!headers.contains_key(TRACESTATE_HEADER));

            let process = tracing::info_span!(parent: None, "process", otel.kind = "consumer");
            assert!(set_parent(&process, Some(&headers)));
            let received = process.context().span().span_context().clone();
            assert_eq!(received.trace_id(), sent.trace_id());
            assert_ne!(received.span_id(), sent.span_id());

            // No headers: a new trace.
            let other = tracing::info_span!(parent: None, "process", otel.kind = "consumer");
            assert!(!set_parent(&other, None));
            let fresh = other.context().span().span_context().clone();
            assert!(fresh.is_valid());
            assert_ne!(fresh.trace_id(), sent.trace_id());
        });
    }

    fn settings(vars: &[(&str, &str)]) -> Result<Option<OtelSettings>, OtelError> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtelSettings::from_lookup("worker", |name| vars.get(name).cloned())
    }

    #[test]
    fn off_without_an_endpoint() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])
            .unwrap()
            .is_none());
        assert!(settings(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")];
        assert!(settings(&on).unwrap().is_some());
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(settings(&[on[0], off]).unwrap().is_none(), "{off:?}");
        }
    }

    #[test]
    fn endpoint_protocol_and_service_from_the_variables() {
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.endpoint.as_str(), s.protocol, s.service_name.as_str()),
            ("http://c:4317", OtlpProtocol::Grpc, "worker")
        );
        assert!(s.compression.is_none());

        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "producer-eu"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.endpoint.as_str(), s.protocol, s.service_name.as_str()),
            (
                "http://c:4318/v1/traces",
                OtlpProtocol::HttpProtobuf,
                "producer-eu"
            )
        );

        // The traces-specific variables win and are used as they are.
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.endpoint.as_str(), s.protocol),
            ("http://t:4318/custom", OtlpProtocol::HttpProtobuf)
        );

        let err = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
            "{err}"
        );
    }
}
