//! The `ringcast` binary: parse the CLI, start the server with the built-in apps, wait
//! for SIGINT/SIGTERM, shut down gracefully.

use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;

use ringcast::app::{Builtin, Rooms};
use ringcast::cli::{Command, LogFormat, ServeArgs};
use ringcast::metrics::{MetricsCollector, MetricsServer, NoopCollector, PrometheusCollector};
use ringcast::telemetry::Telemetry;
use ringcast::{sys, Server};

/// Console logs (stderr, `--log-level`, `--log-format`) and, with `--otlp-endpoint`
/// (feature `otel`), the OTLP export of lifecycle spans, filtered on its own. Dropping the
/// returned handle flushes and stops the exporter.
fn init_logging(args: &ServeArgs) -> Result<Telemetry, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let console = match args.log_format {
        LogFormat::Text => console.boxed(),
        LogFormat::Json => console.json().boxed(),
    };
    let telemetry = Telemetry::start(args.otlp_endpoint.as_deref())
        .map_err(|e| format!("--otlp-endpoint: {e}"))?;
    tracing_subscriber::registry()
        .with(console.with_filter(filter))
        .with(telemetry.layer())
        .init();
    Ok(telemetry)
}

/// Print a status line on stdout; a closed stdout must not take the server down.
fn announce(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Declared first so it drops last: spans up to "stopped" (or an error) are flushed.
    let _telemetry = init_logging(&args)?;
    let signals = sys::install_shutdown_signals()?;
    match sys::raise_nofile_limit(None) {
        Ok(limit) => tracing::debug!(limit, "RLIMIT_NOFILE raised"),
        Err(e) => tracing::warn!(error = %e, "could not raise RLIMIT_NOFILE"),
    }
    let app = Builtin {
        rooms: Rooms {
            exclude_sender: args.exclude_sender,
        },
        access: args.room_access(),
        ..Builtin::default()
    };
    let mut cfg = args.to_config();
    cfg.driver.tls = args.tls_config()?;
    let scheme = if cfg.driver.tls.is_some() {
        "wss"
    } else {
        "ws"
    };
    // Checked before anything binds: an overlap with --addr is refused up front.
    let metrics_addr: Option<SocketAddr> = args.metrics_socket_addr()?;
    let prometheus = match metrics_addr {
        Some(_) => {
            let labels = args.metrics_labels()?;
            Some(Arc::new(PrometheusCollector::new(
                cfg.threads,
                &args.metrics_prefix,
                labels,
                "auto",
            )))
        }
        None => None,
    };
    let collector: Arc<dyn MetricsCollector> = match &prometheus {
        Some(p) => p.clone(),
        None => Arc::new(NoopCollector),
    };
    // The metrics endpoint binds first: if its port is taken, nothing has started yet.
    let exporter = match (metrics_addr, &prometheus) {
        (Some(addr), Some(prometheus)) => {
            Some(MetricsServer::start(addr, prometheus.clone()).map_err(|e| {
                format!("metrics endpoint on {addr}: {e} (use --metrics-addr off to disable)")
            })?)
        }
        _ => None,
    };
    let server = Server::start_with_metrics(cfg, Arc::new(app), collector)?;
    announce(&format!(
        "ringcast listening on {scheme}://{} (backend {}, {} shards): /ws/{{room}}, /sse/{{room}}, POST /publish/{{room}}, /echo",
        server.local_addr(),
        server.backend(),
        server.shards()
    ));
    if let Some((node, _)) = server.broker_stats() {
        announce(&format!("cluster node {node}"));
    }
    if let (Some(exporter), Some(prometheus)) = (&exporter, &prometheus) {
        prometheus.set_backend(server.backend().name());
        if let Some((node, stats)) = server.broker_stats_handle() {
            let node = ringcast::metrics::prometheus::escape_label_value(&node);
            prometheus.add_section(Box::new(move |prefix, labels| {
                let labels = match labels {
                    "" => format!("node=\"{node}\""),
                    l => format!("{l},node=\"{node}\""),
                };
                stats.snapshot().exposition(prefix, &labels)
            }));
        }
        let at = exporter.local_addr();
        announce(&format!(
            "metrics on http://{at}/metrics (dashboard: http://{at}/)"
        ));
    }
    signals.wait()?;
    tracing::info!("shutdown requested");
    server.shutdown()?;
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let parsed = match ringcast::cli::sources::parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    };
    // Checked before --print-config too: a configuration that would not start is not
    // printed as if it would.
    if let Err(e) = parsed.check() {
        eprintln!("ringcast: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(printed) = parsed
        .print_config()
        .filter(|_| parsed.wants_print_config())
    {
        announce(printed.trim_end());
        return ExitCode::SUCCESS;
    }
    let result = match parsed.cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringcast: {e}");
            ExitCode::FAILURE
        }
    }
}
