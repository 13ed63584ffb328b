//! Command-line arguments (raw, as typed); each command validates its own.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run, validate and inspect remotemedia pipelines.
#[derive(Debug, Parser)]
#[command(name = "remotemedia", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace). REMOTEMEDIA_LOG
    /// overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// How log lines on stderr look: `text` for people, `json` for one JSON object per
    /// line (with the fields of its spans) for log collectors.
    #[arg(
        long,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "REMOTEMEDIA_LOG_FORMAT",
        global = true,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The form of log lines (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event: time, level, spans, message, fields.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields` (with
    /// `message`), `span` and `spans` (the fields of the enclosing spans).
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline over JSON Lines or audio input, printing one JSON value per output
    /// item (or writing audio: `--output out.wav`).
    Run(RunArgs),
    /// Check a manifest and list every problem in it.
    Validate(ValidateArgs),
    /// List node types or show one type's parameters.
    Nodes {
        /// What to show.
        #[command(subcommand)]
        command: NodesCommand,
    },
    /// Show where each node would run (local or which executor) and why, without running.
    Plan(PlanArgs),
    /// Run a remote executor: a gRPC service that runs pipelines and placed sub-graphs,
    /// and with `--pipelines`, live sessions of named pipelines for clients.
    Serve(ServeArgs),
    /// Open a live session on a server (`serve --pipelines`): stream an input to a
    /// named pipeline and print its outputs as they arrive, with their latency.
    Connect(ConnectArgs),
    /// Show this machine's capabilities: CPU cores, memory, architecture, GPUs.
    Capabilities(CapabilitiesArgs),
    /// Print the manifest JSON Schema, with the params of every node type this binary
    /// knows (what `schemas/manifest.v1.json` holds), for editors.
    Schema,
}

/// Which executors a run or plan may use, and how to choose among them.
#[derive(Debug, Args, Clone, Default)]
pub struct RemoteArgs {
    /// A remote executor, `NAME=HOST:PORT` (repeatable; `NAME=https://HOST:PORT` for
    /// TLS), or a pool of them found through DNS: `dns+srv://NAME` (SRV records) or
    /// `dns://NAME:PORT` (A/AAAA records), optionally as `POOL=URL`. Also read from
    /// REMOTEMEDIA_EXECUTORS (comma-separated) and `[[executors]]` in remotemedia.toml.
    #[arg(long = "executor", value_name = "NAME=HOST:PORT")]
    pub executors: Vec<String>,
    /// PEM file of the CA certificate(s) that `https://` executors' certificates must
    /// chain to, for executors without a `ca` of their own; without it (or
    /// REMOTEMEDIA_EXECUTOR_CA), the system's trust store.
    #[arg(long, value_name = "FILE")]
    pub executor_ca: Option<PathBuf>,
    /// Ask this DNS server (IP:PORT, over UDP and TCP) to discover executors instead
    /// of the system resolver. Also read from REMOTEMEDIA_DNS_SERVER.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<String>,
    /// How to choose among executors that fit: greedy, balanced, latency or cost.
    #[arg(long, default_value = "greedy", value_name = "POLICY")]
    pub policy: String,
    /// Executor configuration file (default: remotemedia.toml in the working directory, if any).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Bearer token file for executors that have no token file of their own.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `remotemedia plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Pipeline manifest (JSON or YAML).
    pub manifest: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Executors and policy.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `remotemedia serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless told otherwise (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "ADDR")]
    pub listen: String,
    /// File holding the bearer token clients must send. Without one, only loopback
    /// clients are accepted.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Capabilities JSON file to advertise instead of the detected ones.
    #[arg(long, value_name = "FILE")]
    pub capabilities: Option<PathBuf>,
    /// Serve Prometheus metrics (text format) on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Serve the Python node class `module:Class` under NAME (repeatable). Clients may
    /// use a `PythonNode` only with a served `module` and `class`; nothing else they
    /// name is imported.
    #[arg(long = "python-node", value_name = "NAME=module:Class")]
    pub python_nodes: Vec<String>,
    /// Directory put in front of `sys.path` when importing served classes (repeatable).
    #[arg(long = "python-path", value_name = "DIR")]
    pub python_path: Vec<PathBuf>,
    /// Host that runs served Python nodes: `process` (worker processes per request, so
    /// clients cannot stall or crash one another), `cpython` or `rustpython`.
    #[arg(long, default_value = "process", value_name = "RUNTIME")]
    pub python_runtime: String,
    /// Run any Python code clients send (inline `source`, any module, `python_path`,
    /// `python`): whoever reaches the executor (or holds its token) runs code as its user.
    #[arg(long)]
    pub allow_python_source: bool,
    /// Streams and runs served at once; more are refused.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub max_streams: usize,
    /// Largest request message, in bytes.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    pub max_message_bytes: usize,
    /// On SIGTERM, how long to let open streams finish before exiting, in seconds; then
    /// every run still going is cancelled and the executor exits within a few seconds,
    /// whatever its nodes are doing.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub drain_timeout: u64,
    /// Price per hour to advertise (for clients using `--policy cost`).
    #[arg(long, value_name = "PRICE")]
    pub cost_per_hour: Option<f64>,
    /// How long a stream may take to send its first (`open`) message, and a run its
    /// request, in seconds; the slot counts as taken meanwhile.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub handshake_timeout: f64,
    /// Client connections served at once; more are closed as soon as they are accepted.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// Close a connection that sends nothing for this long, in seconds (live clients
    /// answer the executor's keepalive pings well within it).
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub idle_timeout: f64,
    /// Memory all requests together may hold decoded, in MiB; a request that does not
    /// fit is refused (RESOURCE_EXHAUSTED) before it is decoded.
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub memory_budget_mb: usize,
    /// Memory one request message may take decoded, in MiB.
    #[arg(long, default_value_t = 512, value_name = "MIB")]
    pub max_request_memory_mb: usize,
    /// Nodes in one request's pipeline.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub max_nodes: usize,
    /// Nodes with `timeout_ms` in one request (each takes a thread of its own).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_timeout_nodes: usize,
    /// Python worker processes one request may start: the sum of its `PythonNode`
    /// `workers` (`auto` counts as the CPU count). Default: the CPU count, at least 4.
    #[arg(long, value_name = "N")]
    pub max_workers: Option<usize>,
    /// Serve live sessions of every manifest in DIR (a pipeline per file, named by its
    /// stem) over WebSocket (`/v1/sessions/NAME`), gRPC (`remotemedia.v1.Sessions`) and
    /// a web page at `/`, on the `--listen` address.
    #[arg(long, value_name = "DIR")]
    pub pipelines: Option<PathBuf>,
    /// Live sessions open at once; more are refused with `too_many_sessions`.
    #[arg(long, default_value_t = 256, value_name = "N", requires = "pipelines")]
    pub max_sessions: usize,
    /// Largest frame (text or binary) a session client may send.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", requires = "pipelines")]
    pub max_frame_bytes: usize,
    /// Session audio may arrive at most this many times faster than real time (after
    /// a second of burst); faster input is held back. 0: no limit.
    #[arg(long, default_value_t = 8.0, value_name = "X", requires = "pipelines")]
    pub max_realtime_factor: f64,
    /// A session that sends nothing for this long (before `end`) is closed.
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECS",
        requires = "pipelines"
    )]
    pub session_idle_timeout: f64,
    /// How long a session's last outputs may take after its `end`.
    #[arg(
        long,
        default_value_t = 30.0,
        value_name = "SECS",
        requires = "pipelines"
    )]
    pub session_end_timeout: f64,
    /// A web origin (`https://app.example.com`) whose pages may open sessions besides
    /// the server's own page (repeatable).
    #[arg(long = "allowed-origin", value_name = "ORIGIN", requires = "pipelines")]
    pub allowed_origins: Vec<String>,
    /// Serve TLS (gRPC, HTTP and WebSocket alike) with this PEM certificate chain;
    /// needs `--tls-key`. Browsers give a microphone only to HTTPS pages (or localhost).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `remotemedia connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The server: `ws://HOST:PORT`, `HOST:PORT`, or a full
    /// `ws://HOST:PORT/v1/sessions/NAME` URL.
    pub url: String,
    /// The pipeline to open a session of (the server's `GET /v1/pipelines` lists them).
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
    /// Input: an audio file (WAV, FLAC, MP3, Ogg Vorbis, by content), JSON Lines, or
    /// `-` for stdin.
    #[arg(short, long, value_name = "FILE|-")]
    pub input: String,
    /// Read the input as headerless PCM: `FORMAT:RATE:CHANNELS`.
    #[arg(long, value_name = "FORMAT:RATE:CHANNELS")]
    pub input_format: Option<String>,
    /// Length of the audio frames sent, in milliseconds.
    #[arg(long, default_value_t = 20.0, value_name = "MS")]
    pub chunk_ms: f64,
    /// Send audio at the speed of its timestamps, as a live microphone does.
    #[arg(long)]
    pub realtime: bool,
    /// Write the session's audio outputs to this WAV file (16-bit) instead of
    /// printing their headers.
    #[arg(short, long, value_name = "FILE.wav")]
    pub output: Option<PathBuf>,
    /// Params for the session (a JSON object of `node_id.param` keys the pipeline
    /// declares overridable).
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// Bearer token file.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// For `wss://`: trust the server certificates signed by this PEM CA (a
    /// self-signed server's own certificate works too) instead of the public roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Load test: open N sessions at once, each sending the whole input (read into
    /// memory once), and print one JSON report of latencies instead of the outputs.
    #[arg(long, value_name = "N")]
    pub sessions: Option<usize>,
    /// The server's protocol: `remotemedia`, or `pipecat` (Pipecat's protobuf frames
    /// over its WebSocket transport, s16le audio in, transport messages with JSON
    /// events out), to drive a Pipecat server with the same load for a comparison.
    #[arg(long, default_value = "remotemedia", value_name = "PROTOCOL")]
    pub protocol: String,
    /// With `--sessions`: spread the sessions' starts evenly over this many seconds
    /// (real users do not all connect in the same millisecond).
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub ramp: f64,
}

/// `remotemedia capabilities`.
#[derive(Debug, Args)]
pub struct CapabilitiesArgs {
    /// Print the JSON form (the format REMOTEMEDIA_CAPABILITIES files use; with
    /// `--executor`, the executor's whole answer).
    #[arg(long)]
    pub json: bool,
    /// Ask this executor (`HOST:PORT`, or `https://HOST:PORT` for TLS) what it offers
    /// and serves instead.
    #[arg(long, value_name = "HOST:PORT")]
    pub executor: Option<String>,
    /// Bearer token file for `--executor`.
    #[arg(long, value_name = "FILE", requires = "executor")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA certificate(s) an `https://` executor's certificate must
    /// chain to; without it (or REMOTEMEDIA_EXECUTOR_CA), the system's trust store.
    #[arg(long, value_name = "FILE", requires = "executor")]
    pub executor_ca: Option<PathBuf>,
}

/// Largest `--batch-size`: a batch is held whole in memory, at every stage.
pub const MAX_BATCH: u64 = 1_000_000;

/// Largest `--queue-capacity`, in batches.
pub const MAX_QUEUE_CAPACITY: u64 = 1_000_000;

/// Default `--max-line-bytes`: 16 MiB, a line's text (the item it parses into takes
/// several times that).
pub const DEFAULT_MAX_LINE_BYTES: u64 = 16 << 20;

/// `remotemedia run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline manifest (JSON or YAML).
    pub manifest: PathBuf,
    /// Input: JSON Lines (one item per line) or an audio file (WAV, FLAC, MP3, Ogg
    /// Vorbis, recognised by its content) decoded into audio chunks; `-` reads stdin.
    /// Without it the pipeline gets no items.
    #[arg(short, long, value_name = "FILE|-")]
    pub input: Option<String>,
    /// Read the input as headerless PCM, `FORMAT:RATE:CHANNELS` (FORMAT: s16le, f32le,
    /// u8, mulaw or alaw), e.g. `s16le:16000:1`.
    #[arg(long, value_name = "FORMAT:RATE:CHANNELS", requires = "input")]
    pub input_format: Option<String>,
    /// Length of the audio chunks an audio or PCM input is cut into, in milliseconds.
    #[arg(long, default_value_t = 20.0, value_name = "MS")]
    pub chunk_ms: f64,
    /// Where to write the outputs; `-` (default) is stdout. JSON Lines, unless the name
    /// ends in `.wav` or `--output-format` says otherwise.
    #[arg(short, long, value_name = "FILE|-", default_value = "-")]
    pub output: String,
    /// Write the (single) sink's audio as a WAV file (`s16`, the default for `.wav`, or
    /// `f32`), as raw PCM (`s16le`, `f32le`, `u8`, `mulaw`, `alaw`), or as `jsonl`.
    #[arg(long, value_name = "FORMAT")]
    pub output_format: Option<String>,
    /// Feed the input at the pace of its timestamps, as a live source would: an item
    /// with `pts_us` p lasting d is sent at start + p + d. With `--metrics`, reports
    /// the latency of each timestamped output (`realtime_latency_us`).
    #[arg(long)]
    pub realtime: bool,
    /// Write run metrics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Largest batch of items moved between stages [default: 256; audio input is read
    /// in batches of one second of chunks, so that the queues between stages hold
    /// seconds of audio, not minutes].
    /// At most 1000000.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH))]
    pub batch_size: Option<u64>,
    /// Capacity of each queue between stages, in batches (at most 1000000).
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_QUEUE_CAPACITY))]
    pub queue_capacity: u64,
    /// Longest JSON Lines input line, in bytes; a longer one stops the input with an
    /// error naming it (the items before it are processed). Default 16 MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_bytes: u64,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Executors and policy for nodes this machine cannot run.
    #[command(flatten)]
    pub remote: RemoteArgs,
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
