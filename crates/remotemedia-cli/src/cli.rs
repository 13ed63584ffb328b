//! Command-line arguments (raw, as typed); each command validates its own.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run, validate and inspect remotemedia pipelines.
#[derive(Debug, Parser)]
#[command(name = "remotemedia", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). REMOTEMEDIA_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline over JSON Lines input, printing one JSON value per output item.
    Run(RunArgs),
    /// Check a manifest and list every problem in it.
    Validate(ValidateArgs),
    /// List node types or show one type's parameters.
    Nodes {
        /// What to show.
        #[command(subcommand)]
        command: NodesCommand,
    },
}

/// `remotemedia run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline manifest (JSON or YAML).
    pub manifest: PathBuf,
    /// JSON Lines input, one item per line; `-` reads stdin. Without it the pipeline gets no items.
    #[arg(short, long, value_name = "FILE|-")]
    pub input: Option<String>,
    /// Where to write JSON Lines output; `-` (default) is stdout.
    #[arg(short, long, value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Write run metrics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Largest batch of items moved between stages.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub batch_size: usize,
    /// Capacity of each queue between stages, in batches.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub queue_capacity: usize,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `remotemedia validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline manifest (JSON or YAML).
    pub manifest: PathBuf,
    /// Print `{"valid": bool, "errors": [{"path", "message"}]}` on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `remotemedia nodes …`.
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List every node type.
    List(NodesListArgs),
    /// Show a node type's description and parameters.
    Info(NodesInfoArgs),
}

/// `remotemedia nodes list`.
#[derive(Debug, Args)]
pub struct NodesListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `remotemedia nodes info`.
#[derive(Debug, Args)]
pub struct NodesInfoArgs {
    /// Node type name or alias.
    pub node_type: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
