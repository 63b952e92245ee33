//! The `ringcast` binary: parse the CLI, start the server with the built-in apps, wait
//! for SIGINT/SIGTERM, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use ringcast::app::{Builtin, Rooms};
use ringcast::cli::{Cli, Command, LogFormat, ServeArgs};
use ringcast::{sys, Server};

fn init_logging(args: &ServeArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logging(&args);
    let signals = sys::install_shutdown_signals()?;
    match sys::raise_nofile_limit(None) {
        Ok(limit) => tracing::debug!(limit, "RLIMIT_NOFILE raised"),
        Err(e) => tracing::warn!(error = %e, "could not raise RLIMIT_NOFILE"),
    }
    let app = Builtin {
        rooms: Rooms {
            exclude_sender: args.exclude_sender,
        },
        ..Builtin::default()
    };
    let server = Server::start(args.to_config(), app)?;
    println!(
        "ringcast listening on ws://{} (backend {}, {} shards): /ws/{{room}} and /echo",
        server.local_addr(),
        server.backend(),
        server.shards()
    );
    signals.wait()?;
    tracing::info!("shutdown requested");
    server.shutdown()?;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
