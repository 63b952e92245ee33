//! Optional OpenTelemetry export of lifecycle telemetry (cargo feature `otel`).
//!
//! With the feature and `serve --otlp-endpoint http://HOST:4318`, [`Telemetry::start`]
//! builds an OTLP/HTTP (protobuf) span exporter with `service.name = ringcast` and a
//! batch span processor (its own thread; no async runtime), and [`Telemetry::layer`]
//! returns a `tracing` layer to install next to the fmt layer:
//!
//! - only **lifecycle** telemetry is exported: events and spans at INFO or above whose
//!   target is the binary (`ringcast`) or one of [`LIFECYCLE_TARGETS`] (listen,
//!   shutdown, stop, backend fallback, accept/shard/handler failures, whatever those
//!   modules log at INFO+). Per-message paths log at DEBUG/TRACE at most, so nothing
//!   per message reaches the exporter, and the filter's level hint keeps DEBUG/TRACE
//!   call sites disabled (no cost) unless `--log-level` enables them for the console;
//! - `tracing` spans become OTel spans through `tracing-opentelemetry`, with the events
//!   inside them as span events;
//! - an event outside any span (the shard threads and the main thread run none today)
//!   becomes a zero-length span of its own, named by the event's message, with its
//!   fields, target, level and thread name as attributes (status error for ERROR).
//!
//! The exporter posts with a small blocking HTTP/1.1 client over `std::net` (plain
//! `http://` only: run a local collector for TLS), so the feature adds no HTTP client
//! crate and no Tokio. The batch queue drops spans when full: a slow or absent collector
//! never blocks a shard. Dropping [`Telemetry`] flushes and shuts the provider down,
//! bounded by [`SHUTDOWN_TIMEOUT`].
//!
//! Without the feature this module only validates the flag: [`parse_endpoint`] fails with
//! [`NO_EXPORTER`], and [`Telemetry::layer`] is always `None`.

use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Why `--otlp-endpoint` is refused by a build without the `otel` feature.
pub const NO_EXPORTER: &str = "this build has no OTLP exporter; rebuild with --features otel";

/// Target prefixes (besides the binary's own `ringcast`) whose INFO+ telemetry is exported.
pub const LIFECYCLE_TARGETS: &[&str] = &[
    "ringcast::server",
    "ringcast::shard",
    "ringcast::driver",
    "ringcast::listener",
];

/// The OTLP/HTTP path of the traces signal, appended to a base endpoint.
pub const TRACES_PATH: &str = "/v1/traces";

/// Bound on one export (connect, send, response) and on the flush at shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether an event or span with this target and level is lifecycle telemetry.
pub fn is_lifecycle(target: &str, level: &tracing::Level) -> bool {
    *level <= tracing::Level::INFO
        && (target == "ringcast"
            || LIFECYCLE_TARGETS.iter().any(|t| {
                target
                    .strip_prefix(t)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            }))
}

/// The traces URL for a collector base URL: `http://HOST:PORT[/prefix]` gets
/// [`TRACES_PATH`] appended unless it already ends with it (the semantics of
/// `OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn traces_url(base: &str) -> Result<String, String> {
    let base = base.trim();
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        if base.starts_with("https://") {
            format!("{base:?}: https is not supported (the exporter speaks plain HTTP; use a local collector)")
        } else {
            format!("{base:?}: expected http://HOST:PORT (OTLP/HTTP, usually port 4318)")
        }
    })?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains(['@', '?', '#']) {
        return Err(format!("{base:?}: expected http://HOST:PORT"));
    }
    let path = path.trim_end_matches('/');
    if path.contains(['?', '#']) {
        return Err(format!("{base:?}: no query or fragment allowed"));
    }
    if path.ends_with(TRACES_PATH) {
        Ok(format!("http://{authority}{path}"))
    } else {
        Ok(format!("http://{authority}{path}{TRACES_PATH}"))
    }
}

/// clap value parser of `--otlp-endpoint`: the traces URL, or [`NO_EXPORTER`] in a
/// build without the `otel` feature.
pub fn parse_endpoint(s: &str) -> Result<String, String> {
    if cfg!(feature = "otel") {
        traces_url(s)
    } else {
        Err(NO_EXPORTER.to_owned())
    }
}

#[cfg(feature = "otel")]
type Provider = opentelemetry_sdk::trace::SdkTracerProvider;

/// Uninhabited: a build without the feature never has a provider.
#[cfg(not(feature = "otel"))]
#[derive(Debug)]
enum Provider {}

/// The exporter's handle: install [`Telemetry::layer`], keep this alive while serving;
/// dropping it flushes pending spans and shuts the exporter down.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<Provider>,
}

impl Telemetry {
    /// Start exporting to `endpoint` (a collector base URL, see [`traces_url`]), or do
    /// nothing for `None`. Fails with [`NO_EXPORTER`] in a build without the feature.
    pub fn start(endpoint: Option<&str>) -> Result<Self, String> {
        let provider = match endpoint {
            None => None,
            Some(endpoint) => Some(otel::provider(&parse_endpoint(endpoint)?)?),
        };
        Ok(Self { provider })
    }

    /// Whether spans are being exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// The layer that exports lifecycle telemetry, filtered on its own (independent of
    /// the console's `--log-level`); `None` when not exporting.
    pub fn layer<S>(&self) -> Option<Box<dyn Layer<S> + Send + Sync + 'static>>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        self.provider.as_ref().map(otel::layer)
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            otel::shutdown(provider);
        }
    }
}

#[cfg(not(feature = "otel"))]
mod otel {
    use tracing::Subscriber;
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    use super::{Provider, NO_EXPORTER};

    pub(super) fn provider(_url: &str) -> Result<Provider, String> {
        Err(NO_EXPORTER.to_owned())
    }

    pub(super) fn layer<S>(provider: &Provider) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        match *provider {}
    }

    pub(super) fn shutdown(provider: Provider) {
        match provider {}
    }
}

#[cfg(feature = "otel")]
mod otel {
    use std::borrow::Cow;
    use std::fmt::Debug;
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::{Duration, Instant};

    use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
    use opentelemetry::{Key, KeyValue, Value};
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
    use opentelemetry_sdk::Resource;
    use tracing::field::{Field, Visit};
    use tracing::{Event, Subscriber};
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    use super::{is_lifecycle, SHUTDOWN_TIMEOUT};

    /// Largest response read from the collector.
    const MAX_RESPONSE: usize = 4 << 20;

    pub(super) fn provider(url: &str) -> Result<SdkTracerProvider, String> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(StdHttpClient {
                timeout: SHUTDOWN_TIMEOUT,
            })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(SHUTDOWN_TIMEOUT)
            .build()
            .map_err(|e| format!("OTLP exporter for {url}: {e}"))?;
        Ok(SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name("ringcast").build())
            .with_batch_exporter(exporter)
            .build())
    }

    pub(super) fn shutdown(provider: SdkTracerProvider) {
        if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "OTLP exporter shutdown");
        }
    }

    pub(super) fn layer<S>(provider: &SdkTracerProvider) -> Box<dyn Layer<S> + Send + Sync>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = provider.tracer("ringcast");
        let filter = filter_fn(|meta| is_lifecycle(meta.target(), meta.level()))
            .with_max_level_hint(tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .and_then(EventSpans { tracer })
            .with_filter(filter)
            .boxed()
    }

    /// Turns an event outside any (exported) span into a zero-length span of its own;
    /// `tracing-opentelemetry` drops such events.
    struct EventSpans {
        tracer: SdkTracer,
    }

    impl<S> Layer<S> for EventSpans
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            if ctx.event_span(event).is_some() {
                return; // recorded as a span event by tracing-opentelemetry
            }
            let meta = event.metadata();
            let mut fields = Fields::default();
            event.record(&mut fields);
            let name = fields
                .message
                .take()
                .map_or(Cow::Borrowed(meta.name()), Cow::Owned);
            fields
                .attributes
                .push(KeyValue::new("target", meta.target()));
            fields
                .attributes
                .push(KeyValue::new("level", meta.level().as_str()));
            if let Some(thread) = std::thread::current().name() {
                fields
                    .attributes
                    .push(KeyValue::new("thread.name", thread.to_owned()));
            }
            let mut span = self
                .tracer
                .span_builder(name.clone())
                .with_kind(SpanKind::Internal)
                .with_attributes(fields.attributes)
                .start(&self.tracer);
            if *meta.level() == tracing::Level::ERROR {
                span.set_status(Status::error(name));
            }
            span.end();
        }
    }

    /// An event's fields as OTel attributes; `message` apart.
    #[derive(Default)]
    struct Fields {
        message: Option<String>,
        attributes: Vec<KeyValue>,
    }

    impl Fields {
        fn push(&mut self, field: &Field, value: Value) {
            if field.name() == "message" {
                self.message = Some(value.as_str().into_owned());
            } else {
                self.attributes
                    .push(KeyValue::new(Key::from_static_str(field.name()), value));
            }
        }
    }

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.push(field, Value::from(value.to_owned()));
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            self.push(field, Value::I64(value));
        }
        fn record_u64(&mut self, field: &Field, value: u64) {
            self.push(
                field,
                i64::try_from(value).map_or_else(|_| Value::from(value.to_string()), Value::I64),
            );
        }
        fn record_f64(&mut self, field: &Field, value: f64) {
            self.push(field, Value::F64(value));
        }
        fn record_bool(&mut self, field: &Field, value: bool) {
            self.push(field, Value::Bool(value));
        }
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            self.push(field, Value::from(format!("{value:?}")));
        }
    }

    /// Blocking HTTP/1.1 POST over `std::net`, run by the SDK's batch thread (which
    /// drives the exporter's futures with a plain executor). One connection per export,
    /// `Connection: close`; every step bounded by `timeout`.
    #[derive(Debug)]
    struct StdHttpClient {
        timeout: Duration,
    }

    #[async_trait::async_trait]
    impl HttpClient for StdHttpClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            post(&request, Instant::now() + self.timeout)
        }
    }

    fn remaining(deadline: Instant) -> Result<Duration, HttpError> {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "OTLP export timed out".into())
    }

    fn post(request: &Request<Bytes>, deadline: Instant) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri();
        if uri.scheme_str() != Some("http") {
            return Err(format!("{uri}: only http:// is supported").into());
        }
        let authority = uri.authority().ok_or("endpoint has no host")?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let mut last_err: Option<std::io::Error> = None;
        let mut stream = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let mut stream = match (stream, last_err) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(format!("connect to {authority}: {e}").into()),
            (None, None) => return Err(format!("{host}: no address").into()),
        };
        let _ = stream.set_nodelay(true);

        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let body = request.body();
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-length: {}\r\nconnection: close\r\n",
            request.method(),
            body.len()
        );
        for (name, value) in request.headers() {
            if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                head.push_str(name.as_str());
                head.push_str(": ");
                head.push_str(value.to_str().map_err(|e| format!("header {name}: {e}"))?);
                head.push_str("\r\n");
            }
        }
        head.push_str("\r\n");
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;

        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 8192];
        loop {
            stream.set_read_timeout(Some(remaining(deadline)?))?;
            let n = stream.read(&mut chunk)?;
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                return Err("OTLP response too large".into());
            }
            if let Some(response) = parse_response(&buf, n == 0)? {
                return Ok(response);
            }
            if n == 0 {
                return Err("collector closed the connection mid-response".into());
            }
        }
    }

    /// A complete response in `buf`, `None` if more bytes are needed (`eof`: none come).
    fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response<Bytes>>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(buf)? {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok(None),
        };
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = header("content-length").and_then(|v| v.trim().parse::<usize>().ok());
        let rest = &buf[head_len..];
        let body = if chunked {
            match dechunk(rest) {
                Some(body) => body,
                None if eof => Vec::new(),
                None => return Ok(None),
            }
        } else if let Some(length) = length {
            if rest.len() < length {
                return if eof {
                    Err("collector closed the connection mid-body".into())
                } else {
                    Ok(None)
                };
            }
            rest[..length].to_vec()
        } else if eof {
            rest.to_vec()
        } else {
            return Ok(None);
        };
        let status = parsed.code.ok_or("response without status")?;
        Ok(Some(
            Response::builder().status(status).body(Bytes::from(body))?,
        ))
    }

    /// A complete chunked body, or `None` while its last chunk is missing.
    pub(super) fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size_text = size_text.split(';').next()?.trim();
            let size = usize::from_str_radix(size_text, 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some(body);
            }
            if rest.len() < size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        let ok = |s: &str| traces_url(s).unwrap();
        assert_eq!(
            ok("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(ok("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(ok("http://c:4318/otlp"), "http://c:4318/otlp/v1/traces");
        assert_eq!(ok("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
        assert_eq!(ok("http://[::1]:4318"), "http://[::1]:4318/v1/traces");
        assert!(traces_url("https://c:4318").unwrap_err().contains("https"));
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("http://").is_err());
        assert!(traces_url("http://c/?x").is_err());
    }

    #[test]
    fn only_lifecycle_targets_at_info_and_above() {
        assert!(is_lifecycle("ringcast", &Level::INFO));
        assert!(is_lifecycle("ringcast::server", &Level::WARN));
        assert!(is_lifecycle("ringcast::shard::replay", &Level::ERROR));
        assert!(!is_lifecycle("ringcast::shard", &Level::DEBUG));
        assert!(!is_lifecycle("ringcast::conn", &Level::INFO));
        assert!(!is_lifecycle("ringcast::serverx", &Level::INFO));
        assert!(!is_lifecycle("opentelemetry_sdk", &Level::ERROR));
    }

    #[test]
    fn endpoint_flag_needs_the_feature() {
        let parsed = parse_endpoint("http://127.0.0.1:4318");
        if cfg!(feature = "otel") {
            assert_eq!(parsed.unwrap(), "http://127.0.0.1:4318/v1/traces");
        } else {
            assert_eq!(parsed.unwrap_err(), NO_EXPORTER);
            assert_eq!(
                Telemetry::start(Some("http://x:1")).unwrap_err(),
                NO_EXPORTER
            );
        }
        let none = Telemetry::start(None).unwrap();
        assert!(!none.is_exporting());
        assert!(none.layer::<tracing_subscriber::Registry>().is_none());
    }

    #[cfg(feature = "otel")]
    #[test]
    fn chunked_bodies_decode() {
        assert_eq!(
            otel::dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert_eq!(otel::dechunk(b"0\r\n\r\n").unwrap(), b"");
        assert!(otel::dechunk(b"3\r\nab").is_none());
    }
}
