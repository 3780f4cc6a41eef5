//! `hopline`: the command line, a thin shell over the runtime and the apps.
//!
//! Exit codes: 0 success; 1 the run failed (input, output or a node); 2 the command line or
//! the config is wrong (nothing was read or written); 141 stdout was closed by its reader (as
//! for any Unix filter whose reader goes away, e.g. `hopline run ... | head`: said nowhere).

mod apps;
mod observer;
mod trace;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hopline_model::CorrelationId;
use hopline_model::config::TracingFlags;
use hopline_runtime::adapters::SinkError;
use hopline_runtime::{Progress, RunError, RunOptions, load_config};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// hopline runs event pipelines, in one process or across supervised worker processes,
/// with every hop traced.
#[derive(Parser)]
#[command(name = "hopline", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 the run failed, 2 bad command line or config, 141 stdout closed by its reader."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline from its YAML config.
    ///
    /// The config is validated completely (keys, node kinds, params, node order) before any
    /// input is read. Output goes where the config's sink says (or --output); the run summary
    /// goes to stderr.
    ///
    /// With `runtime.profile: multiprocess` this process becomes the supervisor of one worker
    /// per process group. Ctrl-C or SIGTERM drains the pipeline (every record read reaches the
    /// sink; exit 130 or 143); a second one kills the workers. SIGUSR1 prints each worker's
    /// status to stderr.
    Run {
        /// Pipeline config file (YAML). Relative paths inside it are taken from its folder.
        config: PathBuf,
        /// Read input from PATH instead of the config's source path (`-` for stdin).
        #[arg(long, short, value_name = "PATH")]
        input: Option<PathBuf>,
        /// Write output to PATH instead of the config's sink path (`-` for stdout).
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Correlation id stamped on every event: 32 hex digits or a UUID. Random if absent.
        #[arg(long, value_name = "ID", value_parser = parse_correlation_id)]
        correlation_id: Option<CorrelationId>,
        /// Print no progress bar and no summary.
        #[arg(long, short)]
        quiet: bool,
        /// Print the supervisor's lifecycle (multiprocess profile): listeners, workers and
        /// their pids and ports, READY, stop, exits.
        #[arg(long, short)]
        verbose: bool,
        /// Trace, sending spans over OTLP/HTTP to URL (`http://collector:4318`; a URL without
        /// a path gets `/v1/traces`). Wins over OTEL_EXPORTER_OTLP_*ENDPOINT and the config.
        #[arg(long, value_name = "URL")]
        trace_otlp: Option<String>,
        /// Trace, also writing spans to PATH as OTLP JSON lines (one `TracesData` a line).
        #[arg(long, value_name = "PATH")]
        trace_file: Option<String>,
        /// Trace, and write the run's merged forensic trace (every process's spans) to PATH.
        #[arg(long, value_name = "PATH")]
        forensic: Option<String>,
        /// Narrate the run on stdout, one JSON object a line, from every process (startup,
        /// each group ready, progress, warnings, failures, the summary). Needs --output or a
        /// sink that is a file. HOPLINE_JOB_ID, when set, is written on every line.
        #[arg(long)]
        narrate: bool,
    },
    /// Run one process group of a multiprocess run. Started by `hopline run`, which writes
    /// the bootstrap to this process's stdin; not for direct use.
    #[command(hide = true)]
    Worker,
    /// Validate a pipeline config without reading any input, and show its nodes.
    Check {
        /// Pipeline config file (YAML).
        config: PathBuf,
    },
    /// List the node kinds of every app, with the messages they consume and emit.
    Nodes,
    /// Generate realistic input for an app, deterministic by seed.
    Generate {
        #[command(subcommand)]
        app: GenerateApp,
    },
    /// Serve the jobs API: submit pipeline runs, list and cancel them, follow their events
    /// live (SSE). The first line on stdout is `listening on http://HOST:PORT`.
    Coordinator {
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7420")]
        listen: String,
        /// File whose first line is the bearer token that requests changing state must
        /// present (else the variable HOPLINE_TOKEN). At least 16 characters.
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// How long finished jobs are kept (`30s`, `15m`, `1h`, ...).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        retention: Duration,
        /// How often a quiet event stream gets a comment, so proxies keep it open.
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
        keep_alive: Duration,
        /// An agent silent this long is presumed gone, and its jobs fail.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        agent_timeout: Duration,
        /// Trace each job (a span from submit to its end, the parent of its agent's and its
        /// run's), sending spans over OTLP/HTTP to URL. OTEL_SERVICE_NAME and the OTLP
        /// variables apply.
        #[arg(long, value_name = "URL")]
        trace_otlp: Option<String>,
        /// An agent known in advance, NAME=URL (repeatable): asked for its health every
        /// second rather than waited for. Agents can also register themselves.
        #[arg(long = "agent", value_name = "NAME=URL", value_parser = parse_agent)]
        agents: Vec<(String, String)>,
    },
    /// Run jobs for a coordinator on this host: each as `hopline run --narrate` (with its
    /// workers), reporting every line they print and how the run ended.
    Agent {
        /// The coordinator's URL (`http://host:port`).
        #[arg(long, value_name = "URL")]
        coordinator: String,
        /// File whose first line is the shared bearer token (else the variable HOPLINE_TOKEN).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// Address to take jobs on; port 0 picks a free one.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: String,
        /// The URL the coordinator reaches this agent at (default: from the bound address).
        #[arg(long, value_name = "URL")]
        advertise: Option<String>,
        /// How the agent names itself (default: agent-PID).
        #[arg(long)]
        name: Option<String>,
        /// How often the agent tells the coordinator it is alive.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        heartbeat: Duration,
        /// How long a cancelled run has to drain before it is killed.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        stop_grace: Duration,
        /// Trace each job run here (a span, child of the coordinator's, parent of the run's),
        /// sending spans over OTLP/HTTP to URL.
        #[arg(long, value_name = "URL")]
        trace_otlp: Option<String>,
    },
    /// Submit a pipeline config as a job to a coordinator; with --follow, watch it live and
    /// exit with its outcome (0 succeeded, 1 failed, 3 cancelled, 2 refused).
    Submit {
        /// Pipeline config file (YAML); its text is sent.
        config: PathBuf,
        /// The coordinator's URL (`http://host:port`).
        #[arg(long, value_name = "URL")]
        coordinator: String,
        /// File whose first line is the bearer token (else the variable HOPLINE_TOKEN).
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// The input's path on the agent's host.
        #[arg(long, short, value_name = "PATH")]
        input: Option<String>,
        /// The output's path on the agent's host.
        #[arg(long, short, value_name = "PATH")]
        output: Option<String>,
        /// The job's correlation id: 32 hex digits or a UUID. The coordinator makes one if absent.
        #[arg(long, value_name = "ID", value_parser = parse_correlation_id)]
        correlation_id: Option<CorrelationId>,
        /// Render the job's events live, until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Read forensic trace files (OTLP JSON lines): merge, summarise, export.
    Trace {
        #[command(subcommand)]
        command: trace::TraceCommand,
    },
    /// The observer app's database side: `migrate` (its schema and capture triggers) and `dlq`
    /// (its dead-letter queue: list, retry). The observer itself runs with `hopline run`.
    Observer {
        #[command(subcommand)]
        command: observer::ObserverCommand,
    },
}

#[derive(Subcommand)]
enum GenerateApp {
    /// fund_load attempts: many customers, repeated ids, replays, limit boundaries, a few
    /// malformed lines.
    #[command(name = "fund_load")]
    FundLoad {
        /// Number of lines to write.
        #[arg(long, short = 'n', default_value_t = 1_000)]
        records: u64,
        /// Seed; the same seed and options always give the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of distinct customers.
        #[arg(long, default_value_t = 2_000)]
        customers: u32,
        /// Deliberately malformed lines per million.
        #[arg(long, default_value_t = 500)]
        malformed_per_million: u32,
        /// Exact replays of an earlier line per million.
        #[arg(long, default_value_t = 3_000)]
        replay_per_million: u32,
        /// Earlier ids reused with different content per million.
        #[arg(long, default_value_t = 2_000)]
        id_reuse_per_million: u32,
        /// Mean lines per day of the clock: higher packs the same lines into fewer days.
        #[arg(long, default_value_t = hopline_fundload::generate::DEFAULT_LOADS_PER_DAY)]
        loads_per_day: u32,
        /// Write to PATH instead of stdout.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

/// `NAME=http://host:port`.
fn parse_agent(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, url)) if !name.is_empty() && url.starts_with("http://") => {
            Ok((name.to_string(), url.trim_end_matches('/').to_string()))
        }
        _ => Err(format!("expected NAME=http://HOST:PORT; found {text:?}")),
    }
}

/// `30s`, `15m`, `2h`, `500ms`: a number and a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("expected a number and a unit (30s, 15m, 1h); found {text:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("expected a unit of ms, s, m or h; found {text:?}")),
    }
}

/// The bearer token: from `--token-file`, else `HOPLINE_TOKEN`.
fn token(file: Option<&Path>) -> Result<hopline_server::Token, Failure> {
    match file {
        Some(path) => hopline_server::Token::from_file(path),
        None => hopline_server::Token::from_env("HOPLINE_TOKEN"),
    }
    .map_err(|e| {
        Failure::Config(anyhow::Error::new(e).context("no token: give --token-file PATH or set HOPLINE_TOKEN"))
    })
}

fn coordinator(
    listen: &str,
    settings: hopline_server::coordinator::Settings,
    tracer: Option<hopline_runtime::tracing::ServiceTracer>,
) -> Result<(), Failure> {
    hopline_server::coordinator::run_blocking(listen, settings, tracer, |addr| {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{addr}");
        let _ = stdout.flush();
    })
    .with_context(|| format!("coordinator on {listen}"))
    .map_err(Failure::Run)
}

struct AgentArgs {
    coordinator: String,
    token_file: Option<PathBuf>,
    listen: String,
    advertise: Option<String>,
    name: Option<String>,
    heartbeat: Duration,
    stop_grace: Duration,
    trace_otlp: Option<String>,
}

/// A service's tracer when `--trace-otlp` is given: the `OTEL_*` variables apply as for runs.
fn service_tracer(
    otlp: Option<String>,
    role: &str,
) -> Result<Option<hopline_runtime::tracing::ServiceTracer>, Failure> {
    let Some(otlp) = otlp else { return Ok(None) };
    let flags = TracingFlags { otlp: Some(otlp), ..TracingFlags::default() };
    let settings = hopline_model::TracingConfig::default()
        .resolve(&|name| std::env::var(name).ok(), &flags)
        .map_err(|e| Failure::Config(e.into()))?;
    hopline_runtime::tracing::ServiceTracer::start(&settings, role).map(Some).map_err(|e| Failure::Config(e.into()))
}

fn agent(args: AgentArgs) -> Result<(), Failure> {
    let tracer = service_tracer(args.trace_otlp.clone(), "agent")?;
    let program = std::env::current_exe().context("cannot find the hopline program").map_err(Failure::Run)?;
    let settings = hopline_server::agent::AgentSettings {
        coordinator: args.coordinator.trim_end_matches('/').to_string(),
        token: token(args.token_file.as_deref())?,
        name: args.name.unwrap_or_else(|| format!("agent-{}", std::process::id())),
        advertise: args.advertise,
        heartbeat: args.heartbeat.max(Duration::from_millis(50)),
        program,
        work_root: std::env::temp_dir(),
        stop_grace: args.stop_grace,
    };
    let result = hopline_server::agent::run_blocking(&args.listen, settings, tracer, |addr| {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{addr}");
        let _ = stdout.flush();
    });
    result.with_context(|| format!("agent on {}", args.listen)).map_err(Failure::Run)
}

fn submit(
    config: PathBuf,
    coordinator: String,
    token_file: Option<PathBuf>,
    input: Option<String>,
    output: Option<String>,
    correlation_id: Option<CorrelationId>,
    follow: bool,
) -> Result<(), Failure> {
    let submit = hopline_server::client::Submit {
        coordinator: coordinator.trim_end_matches('/').to_string(),
        token: token(token_file.as_deref())?,
        config,
        input,
        output,
        correlation_id: correlation_id.map(|c| c.to_string()),
        traceparent: std::env::var("TRACEPARENT").ok().filter(|t| !t.is_empty()),
        follow,
        color: std::io::stdout().is_terminal(),
    };
    match hopline_server::client::run_blocking(&submit, &mut std::io::stdout()) {
        Ok(0) => Ok(()),
        Ok(code) => Err(Failure::Stopped(code as u8)),
        Err(e) => Err(Failure::Config(e.into())),
    }
}

fn parse_correlation_id(text: &str) -> Result<CorrelationId, String> {
    CorrelationId::parse(text).ok_or_else(|| format!("expected 32 hex digits or a UUID, found {text:?}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            input,
            output,
            correlation_id,
            quiet,
            verbose,
            trace_otlp,
            trace_file,
            forensic,
            narrate,
        } => {
            let tracing = TracingFlags { otlp: trace_otlp, file: trace_file, forensic };
            let options = RunOptions { input, output, correlation_id, worker: None, verbose, quiet, tracing, narrate };
            run(&config, options, quiet)
        }
        Command::Worker => std::process::exit(apps::run_worker()),
        Command::Check { config } => check(&config),
        Command::Nodes => {
            print!("{}", apps::describe_nodes());
            Ok(())
        }
        Command::Generate { app } => generate(app).map_err(Failure::Run),
        Command::Trace { command } => trace::run(command).map_err(Failure::Run),
        Command::Observer { command } => observer::run(command).map_err(Failure::Run),
        Command::Agent { coordinator, token_file, listen, advertise, name, heartbeat, stop_grace, trace_otlp } => {
            agent(AgentArgs { coordinator, token_file, listen, advertise, name, heartbeat, stop_grace, trace_otlp })
        }
        Command::Submit { config, coordinator, token_file, input, output, correlation_id, follow } => {
            submit(config, coordinator, token_file, input, output, correlation_id, follow)
        }
        Command::Coordinator { listen, token_file, retention, keep_alive, agent_timeout, trace_otlp, agents } => {
            let token = token(token_file.as_deref());
            token.and_then(|token| {
                let mut settings = hopline_server::coordinator::Settings::new(token);
                settings.retention = retention;
                settings.keep_alive = keep_alive.max(Duration::from_millis(10));
                settings.agent_timeout = agent_timeout;
                settings.agents = agents;
                coordinator(&listen, settings, service_tracer(trace_otlp, "coordinator")?)
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Stopped(code)) => ExitCode::from(code),
        Err(Failure::Run(e)) if stdout_closed(&e) => ExitCode::from(141),
        Err(Failure::Config(e)) => {
            eprintln!("hopline: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("hopline: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether the failure is stdout's reader having gone away: the 128 + SIGPIPE of a shell
/// filter, not an error worth a message.
fn stdout_closed(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<RunError>() {
        Some(RunError::Sink(SinkError::Write { path, source })) => {
            path == "stdout" && source.kind() == std::io::ErrorKind::BrokenPipe
        }
        Some(RunError::Multiprocess(failure)) => failure.root.stdout_closed,
        _ => false,
    }
}

/// A failure, by exit code.
enum Failure {
    Config(anyhow::Error),
    Run(anyhow::Error),
    /// A run stopped by a signal after draining; the exit code is 128 + the signal.
    Stopped(u8),
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Config(_) | RunError::ConfigRead { .. } | RunError::Key(_) => Failure::Config(e.into()),
            other => Failure::Run(other.into()),
        }
    }
}

fn config_dir(config: &Path) -> PathBuf {
    config.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn run(config_path: &Path, options: RunOptions, quiet: bool) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let bar = (!quiet && std::io::stderr().is_terminal()).then(progress_bar);
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            if let Some(total) = p.bytes_total {
                bar.set_length(total);
            }
            bar.set_position(p.bytes_read);
            bar.set_message(format!("{} records", hopline_runtime::report::thousands(p.records_in)));
        }
    };
    let report = apps::run(&config, &config_dir(config_path), &options, &mut on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = match report {
        Ok(report) => report,
        Err(RunError::Multiprocess(failure)) => {
            if !quiet && !failure.root.stdout_closed && failure.ingress_started {
                eprint!("{}", failure.report);
                for other in &failure.consequences {
                    eprintln!("  then {other}");
                }
                let reached = hopline_runtime::report::thousands(failure.report.records_out);
                if failure.sink_count_final {
                    eprintln!("  {reached} records reached the sink before the run stopped");
                } else {
                    eprintln!("  {reached} records had reached the sink at its worker's last heartbeat");
                }
            }
            let interrupted_by = failure.interrupted_by;
            let error = anyhow::Error::from(RunError::Multiprocess(failure));
            return match interrupted_by {
                Some(signal) => {
                    eprintln!("hopline: {error:#}");
                    Err(Failure::Stopped(if signal == "SIGINT" { 130 } else { 143 }))
                }
                None => Err(Failure::Run(error)),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if !quiet {
        eprint!("{report}");
    }
    match report.stopped_by {
        Some("SIGINT") => Err(Failure::Stopped(130)),
        Some(_) => Err(Failure::Stopped(143)),
        None => Ok(()),
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn check(config_path: &Path) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let chain = apps::check(&config)?;
    let tracing = hopline_runtime::run::resolve_tracing(&config, &TracingFlags::default(), &config.sink.path)?;
    println!("{}: ok ({}/{}, {} nodes)", config_path.display(), config.app, config.scenario, config.nodes.len());
    println!("  {chain}");
    if tracing.enabled {
        println!("  tracing: {}", tracing.describe());
    }
    if let Some(mp) = &config.runtime.multiprocess {
        println!("  multiprocess, {} process groups:", mp.groups.len());
        for group in &mp.groups {
            let mut steps: Vec<&str> = Vec::new();
            if group.source {
                steps.push("source");
            }
            steps.extend(config.nodes[group.nodes.clone()].iter().map(|n| n.name.as_str()));
            if group.sink {
                steps.push("sink");
            }
            println!("    {}: {}", group.name, steps.join(" → "));
        }
    }
    Ok(())
}

fn generate(app: GenerateApp) -> anyhow::Result<()> {
    let GenerateApp::FundLoad {
        records,
        seed,
        customers,
        malformed_per_million,
        replay_per_million,
        id_reuse_per_million,
        loads_per_day,
        output,
    } = app;
    let options = hopline_fundload::generate::GenerateOptions {
        seed,
        records,
        customers,
        malformed_per_million,
        replay_per_million,
        id_reuse_per_million,
        loads_per_day,
    };
    match output {
        Some(path) => {
            let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            hopline_fundload::generate::generate(&options, file)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            hopline_fundload::generate::generate(&options, std::io::stdout().lock()).context("cannot write stdout")?;
        }
    }
    Ok(())
}
