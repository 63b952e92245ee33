//! `ringcast-load` binary entry point: parse the command line, run the workload, print
//! the summary, write the JSON report and plot, and exit non-zero if the run was not
//! clean (loss, order violations, failed connections, timeout). `cert` writes a
//! certificate and key instead, `floor` measures the loopback floor (exit 1 if they cannot).

use std::process::ExitCode;

use clap::Parser;
use ringcast_load::cli::{Cli, Command};
use ringcast_load::{cert, connect, echo, fanout, floor, plot};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command: Vec<String> = std::env::args().collect();
    let (rep, json, plot_path) = match cli.cmd {
        Command::Fanout(a) => {
            let (j, p) = (a.common.json.clone(), a.plot.clone());
            (fanout::run(*a, command), j, p)
        }
        Command::Connect(a) => {
            let j = a.common.json.clone();
            (connect::run(a, command), j, None)
        }
        Command::Echo(a) => {
            let (j, p) = (a.common.json.clone(), a.plot.clone());
            (echo::run(a, command), j, p)
        }
        Command::Floor(a) => {
            return match floor::run(&a) {
                Ok(r) => {
                    floor::print(&r, &a);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Cert(a) => {
            return match cert::run(&a) {
                Ok(w) => {
                    println!("certificate: {}", w.cert.display());
                    println!("private key: {} (mode 0600)", w.key.display());
                    println!("names:       {}", w.sans.join(", "));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    };
    let mut failed_output = false;
    if let Err(e) = rep.print_summary(&mut std::io::stdout().lock()) {
        eprintln!("error: cannot print summary: {e}");
    }
    if let Some(path) = json {
        if let Err(e) = rep.write_json(&path) {
            eprintln!("error: cannot write {}: {e}", path.display());
            failed_output = true;
        }
    }
    if let Some(path) = plot_path {
        match &rep.latency {
            Some(l) => {
                let title = format!("{} latency", rep.workload);
                if let Err(e) = plot::write_svg(&path, &title, l) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    failed_output = true;
                }
            }
            None => eprintln!(
                "warning: no latency samples, {} not written",
                path.display()
            ),
        }
    }
    if !rep.ok {
        eprintln!("ringcast-load: run FAILED: {}", rep.problems.join("; "));
        return ExitCode::from(1);
    }
    if failed_output {
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}
