//! `remotemedia`: run, validate and inspect media/AI pipelines.
//!
//! Exit codes: 0 success, 1 invalid manifest / input / usage, 2 the pipeline failed at
//! run time, 128 + the signal (130, 143) a run stopped by SIGINT / SIGTERM.

mod cli;
mod commands;
#[cfg(unix)]
mod crash;
mod jsonl;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, LogFormat, NodesCommand};

/// Exit code for bad manifests, inputs and usage.
pub const EXIT_INVALID: u8 = 1;
/// Exit code for a pipeline that failed while running.
pub const EXIT_RUN_FAILED: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_INVALID } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.verbose, cli.quiet, cli.log_format);
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    JSON_LOGS.store(
        cli.log_format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    #[cfg(unix)]
    crash::install();
    let result = match cli.command {
        Command::Run(args) => commands::run::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Nodes { command } => match command {
            NodesCommand::List(args) => commands::nodes::list(args),
            NodesCommand::Info(args) => commands::nodes::info(args),
        },
        Command::Plan(args) => commands::plan::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Connect(args) => commands::connect::run(args),
        Command::Capabilities(args) => commands::capabilities::run(args),
        Command::Schema => commands::nodes::schema(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// `-q`: only errors on stderr.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--log-format json`: warnings are log events too, so that stderr stays JSON.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints `warning: MESSAGE` on stderr (a `warn` event with `--log-format json`),
/// unless `-q` was given.
pub fn warn(message: impl std::fmt::Display) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("{message}");
    } else {
        eprintln!("warning: {message}");
    }
}

/// Logs go to stderr (stdout carries the outputs): from `-v`/`-q` or the
/// `REMOTEMEDIA_LOG` filter, as text or, with `--log-format json`, one JSON object per
/// line with the fields of the enclosing spans.
fn init_tracing(verbose: u8, quiet: bool, format: LogFormat) {
    let default = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            // The runtime's decisions, without the per-frame chatter of the HTTP/2 and
            // TLS libraries underneath (every target of this project starts so).
            2 => "info,remotemedia=debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REMOTEMEDIA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            // Colour codes only on a terminal: logs piped to a file or a test stay plain.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
