//! `remotemedia run MANIFEST [--input FILE|-] [--output FILE|-] [--metrics FILE]
//! [--executor NAME=HOST:PORT]… [--policy P]`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::thread;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use remotemedia_core::executor::{start_session, RunOptions, RunResult};
use remotemedia_core::manifest;
use remotemedia_core::metrics::peak_rss_bytes;
use remotemedia_core::plan::Plan;
use remotemedia_remote::stage::ReportData;
use remotemedia_remote::{distribute, StageOptions};
use serde_json::json;

use crate::cli::RunArgs;
use crate::jsonl::{read_items, write_item, BadLine};
use crate::{EXIT_INVALID, EXIT_RUN_FAILED};

/// Runs the pipeline, streaming input lines in and output lines out.
pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let registry = super::registry();
    let pipeline = match manifest::load_file(&args.manifest, &registry) {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("error: {} is not a valid manifest", args.manifest.display());
            return Ok(EXIT_INVALID);
        }
    };
    if args.batch_size == 0 || args.queue_capacity == 0 {
        eprintln!("error: --batch-size and --queue-capacity must be at least 1");
        return Ok(EXIT_INVALID);
    }
    // Placement: only when executors are configured or nodes ask for something.
    let (pipeline, registry, remote_report) =
        if super::plan::needs_placement(&pipeline, &args.remote) {
            let placed = match super::plan::place(&pipeline, &args.remote) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(EXIT_INVALID);
                }
            };
            let placement = match placed.placement {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    if placed.executors.is_empty() {
                        eprintln!("{}", super::plan::NO_EXECUTORS_HINT);
                    }
                    return Ok(EXIT_RUN_FAILED);
                }
            };
            for w in placement.warnings() {
                eprintln!("warning: {w}");
            }
            let options = StageOptions {
                local_registry: super::registry(),
                ..StageOptions::default()
            };
            let distributed =
                match distribute(&pipeline, &registry, &placement, &placed.endpoints, options) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(EXIT_RUN_FAILED);
                    }
                };
            (
                distributed.pipeline,
                distributed.registry,
                Some(distributed.report),
            )
        } else {
            (pipeline, registry, None)
        };

    let input: Option<Box<dyn BufRead + Send>> = match args.input.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufReader::new(std::io::stdin()))),
        Some(path) => match File::open(path) {
            Ok(f) => Some(Box::new(BufReader::with_capacity(1 << 16, f))),
            Err(e) => {
                eprintln!("error: cannot open input {path}: {e}");
                return Ok(EXIT_INVALID);
            }
        },
    };
    let mut out: Box<dyn Write> = if args.output == "-" {
        Box::new(BufWriter::new(std::io::stdout().lock()))
    } else {
        let f = File::create(&args.output)
            .with_context(|| format!("cannot create output {}", args.output))?;
        Box::new(BufWriter::new(f))
    };

    let options = RunOptions {
        batch_size: args.batch_size,
        channel_capacity: args.queue_capacity,
        force_threads: true,
        ..RunOptions::default()
    };
    let plan = match Plan::build(&pipeline, &registry) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_RUN_FAILED);
        }
    };
    let session = match start_session(plan, &options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_RUN_FAILED);
        }
    };
    let (sender, mut receiver) = session.into_split();
    let sinks = receiver.sink_ids().to_vec();
    let several = sinks.len() > 1;

    // Stdin may be interactive: hand each line over at once. Files are read in batches.
    let interactive = args.input.as_deref() == Some("-");
    let read_batch = if interactive { 1 } else { args.batch_size };
    let reader = thread::Builder::new()
        .name("rm-input".into())
        .spawn(move || -> Result<u64, BadLine> {
            match input {
                None => Ok(0),
                Some(r) => read_items(r, read_batch, |batch| sender.send_batch(batch).is_ok()),
            }
            // Dropping `sender` here ends the stream.
        })
        .context("cannot start input thread")?;

    let progress = progress_bar(args.no_progress);
    let mut written = 0u64;
    let mut write_error = None;
    while let Some((sink, batch)) = receiver.recv_batch() {
        if write_error.is_some() {
            continue; // keep draining so the pipeline can finish
        }
        for item in &batch {
            let label = several.then(|| sinks[sink].as_str());
            if let Err(e) = write_item(&mut out, label, item) {
                write_error = Some(e);
                break;
            }
            written += 1;
        }
        // Items typed on stdin get their outputs at once, not when a buffer fills.
        if interactive && write_error.is_none() {
            if let Err(e) = out.flush() {
                write_error = Some(e);
            }
        }
        if let Some(p) = &progress {
            p.set_position(written);
        }
    }
    let input_result = reader.join().unwrap_or_else(|_| {
        Err(BadLine {
            line: 0,
            message: "input thread panicked".into(),
        })
    });
    let finished = receiver.finish();
    let (result, failure) = match finished {
        Ok(r) => (r, None),
        Err(f) => (*f.partial, Some(f.error)),
    };
    // Outputs produced but not yet received (after a failure) are still written.
    for s in &result.outputs {
        for item in &s.items {
            let label = several.then_some(s.sink.as_str());
            if write_error.is_none() {
                if let Err(e) = write_item(&mut out, label, item) {
                    write_error = Some(e);
                }
            }
        }
    }
    if write_error.is_none() {
        if let Err(e) = out.flush() {
            write_error = Some(e);
        }
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }

    let remote = remote_report.map(|r| r.snapshot());
    if let Some(r) = &remote {
        for e in &r.events {
            eprintln!("warning: {e}");
        }
        for skipped in &r.skipped {
            eprintln!("warning: skipped item: {skipped}");
        }
        for e in &r.cleanup_errors {
            eprintln!("warning: {e}");
        }
    }
    for skipped in &result.skipped {
        eprintln!("warning: skipped item: {skipped}");
    }
    for e in &result.cleanup_errors {
        eprintln!("warning: {e}");
    }
    if let Some(path) = &args.metrics {
        write_metrics(path, &result, failure.as_ref(), remote.as_ref())?;
    }
    if let Some(e) = write_error {
        eprintln!("error: cannot write output: {e}");
        return Ok(EXIT_RUN_FAILED);
    }
    let mut code = 0;
    if let Err(bad) = input_result {
        eprintln!("error: input line {}: {}", bad.line, bad.message);
        code = EXIT_INVALID;
    }
    if let Some(e) = failure {
        eprintln!("error: {e}");
        code = EXIT_RUN_FAILED;
    }
    Ok(code)
}

fn progress_bar(disabled: bool) -> Option<ProgressBar> {
    if disabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let p = ProgressBar::new_spinner();
    p.set_style(
        ProgressStyle::with_template("{spinner} {pos} items out ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    p.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(p)
}

fn write_metrics(
    path: &std::path::Path,
    result: &RunResult,
    failure: Option<&remotemedia_core::RunError>,
    remote: Option<&ReportData>,
) -> anyhow::Result<()> {
    let mut metrics = result.metrics.clone();
    if metrics.peak_rss_bytes.is_none() {
        metrics.peak_rss_bytes = peak_rss_bytes();
    }
    let mut body = json!({
        "metrics": metrics,
        "skipped": result.skipped,
        "error": failure.map(|e| match e.node_error() {
            Some(n) => serde_json::to_value(n).unwrap_or_default(),
            None => json!({"message": e.to_string()}),
        }),
    });
    if let Some(r) = remote {
        body["remote"] = serde_json::to_value(r)?;
    }
    let text = serde_json::to_string_pretty(&body)?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("cannot write metrics {}", path.display()))?;
    Ok(())
}
