//! `postflow`: run Postflow's Lambda handlers locally. See the crate docs (`src/lib.rs`) and the README.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use postflow::backend::{App, Backend, Function, cli_config};
use postflow::scenario::{StepResult, is_scenario, load_scenario, plan, run_event};
use postflow::session::Session;
use postflow::state;
use shared::storage::seed::{Seed, load_seed};
use shared::storage::table::Table;

/// mimalloc for the local CLI (`serve`, the benchmarks): measured in BENCHMARKS §3 and §9.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "postflow",
    version,
    about = "Run Postflow's Lambda handlers locally: replay sample events, invoke one function, seed data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct BackendArgs {
    /// Use DynamoDB and Kinesis (real AWS, or the emulators named by AWS_ENDPOINT_URL_DYNAMODB /
    /// AWS_ENDPOINT_URL_KINESIS) instead of the embedded in-memory store. Table: $TABLE_NAME or `postflow`.
    #[arg(long)]
    aws: bool,
    /// With --aws: create the table and stream first (idempotent).
    #[arg(long, requires = "aws")]
    create: bool,
    /// Embedded store only: load state from this file before and save it after the command.
    #[arg(long, conflicts_with = "aws")]
    state: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Replay sample events: files, folders (their *.scenario.json files, or every event in name order)
    /// or scenario files. Exits non-zero when a step's status differs from its expectation.
    Replay {
        #[arg(default_value = "events")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        backend: BackendArgs,
        /// Print each response body.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Invoke one function with an API Gateway event file, like `sam local invoke -e`; prints the response.
    Invoke {
        #[arg(value_enum)]
        function: Function,
        #[arg(long, short)]
        event: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Serve the functions on 127.0.0.1 like API Gateway (routes of template.yaml). LOCAL ONLY: JWT claims
    /// are taken from `X-Postflow-Claims` or an unverified bearer token.
    Serve {
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Seed file(s) to load first.
        #[arg(long)]
        seed: Vec<PathBuf>,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Print the records on the event stream (Kinesis with --aws; the embedded stream of --state).
    Tail {
        /// Print each record's full JSON (Sentry's eventstream message) instead of a summary line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Benchmarks that print numbers (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Load organizations, users, members/invites and identities from a seed file.
    Seed {
        file: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// save-event CPU per event on the real SDK payloads of events/ (optionally beside Relay's normalizer).
    Pipeline {
        #[arg(long, default_value = "events")]
        events: PathBuf,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        /// A Python with `sentry-relay` installed: time Relay's normalize_event on the same payloads.
        #[arg(long)]
        relay_python: Option<String>,
    },
    /// Field lookups in the events of events/: by hash (serde_json's map) against the scan of small
    /// objects the save path uses, by object size.
    Lookups {
        #[arg(long, default_value = "events")]
        events: PathBuf,
        #[arg(long, default_value_t = 2000)]
        rounds: usize,
    },
    /// What hostile and oversized save-event requests cost: CPU per refused request, peak memory per
    /// MiB of decompressed event (issue 18).
    Limits {
        /// Seconds each refused request is repeated for its CPU figure.
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
        /// Internal: run one case in this process and print its peak RSS.
        #[arg(long, hide = true)]
        one: Option<usize>,
    },
    /// save-event with 1, 10, 100, 1000 distinct releases/groups: per-event time and table calls.
    Growth {
        #[arg(long, default_value_t = 5000)]
        events: usize,
    },
    /// Throughput and latency through `postflow serve --aws` against the emulators (run under
    /// scripts/with-emulators), beside their raw PutItem / PutRecord rates.
    Throughput {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// An error storm through the real save-event handler on the AWS limits model (issue 15): answers,
    /// throttles, conflicts, the hottest item, partition and shard, usage per event, exact counts.
    Storm {
        /// Events per (simulated) second.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 5)]
        secs: u64,
        /// Distinct groups (1 = a one-group storm; 1000 = the control).
        #[arg(long, default_value_t = 1)]
        groups: usize,
        /// Shards of the modelled Kinesis stream.
        #[arg(long, default_value_t = 64)]
        shards: usize,
        /// Send transactions (the captured sentry-python transaction) instead of errors.
        #[arg(long)]
        transactions: bool,
    },
    /// Cold start of release binaries under a local Lambda Runtime API emulator.
    ColdStart {
        /// Binaries to start (default: target/release/{accept-invite,enroll-authenticator,save-event}).
        bins: Vec<PathBuf>,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// A Python with `boto3`: also measure the Python peer (benches/python_peer) the same way.
        #[arg(long)]
        python_peer: Option<String>,
    },
}

/// An event per function that is answered without any network call (so the cold start measures the
/// runtime, configuration and client construction, not DynamoDB).
fn no_io_event(bin: &std::path::Path) -> PathBuf {
    let name = bin.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    PathBuf::from(match name {
        "accept-invite" => "events/accept-invite.get-invalid-member-id.json",
        "enroll-authenticator" => "events/enroll-authenticator.get-unauthenticated.json",
        _ => "events/save-event.missing-key.json",
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postflow: {e}");
            ExitCode::from(2)
        }
    }
}

async fn open(args: &BackendArgs) -> Result<(Backend, Session), String> {
    let config = cli_config();
    if args.aws {
        return Ok((Backend::aws(&config, args.create).await?, Session::default()));
    }
    let backend = Backend::embedded();
    let session = match (&args.state, &backend.memory, &backend.memory_stream) {
        (Some(path), Some(mem), Some(stream)) => state::load(path, mem, stream)?,
        _ => Session::default(),
    };
    Ok((backend, session))
}

fn close(args: &BackendArgs, backend: &Backend, session: &Session) -> Result<(), String> {
    if let (Some(path), Some(mem), Some(stream)) = (&args.state, &backend.memory, &backend.memory_stream) {
        state::save(path, mem, stream, session)?;
    }
    Ok(())
}

async fn seed_file(table: &dyn Table, file: &std::path::Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let seed: Seed = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    load_seed(table, &seed, postflow::scenario::now_secs() * 1000)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Seed { file, backend: args } => {
            let (backend, session) = open(&args).await?;
            let n = seed_file(backend.table.as_ref(), &file).await?;
            close(&args, &backend, &session)?;
            println!("seeded {n} items from {} into the {}", file.display(), backend.description);
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke { function, event, backend: args } => {
            let (backend, mut session) = open(&args).await?;
            let app = App::new(&backend, cli_config());
            let result = run_event(&app, &mut session, &event, None).await;
            close(&args, &backend, &session)?;
            if result.function.is_some_and(|f| f != function) {
                return Err(format!(
                    "{} is an event for {}, not {}",
                    event.display(),
                    result.function.map(Function::name).unwrap_or("?"),
                    function.name()
                ));
            }
            if result.status.is_none() {
                return Err(result.failure.unwrap_or_default());
            }
            // A closed pipe (`| head`) is not an error worth a panic.
            use std::io::Write;
            let _ = writeln!(
                std::io::stdout(),
                "{}",
                serde_json::to_string_pretty(&result.response).map_err(|e| e.to_string())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { paths, backend: args, verbose } => replay(paths, args, verbose).await,
        Command::Bench { which } => {
            match which {
                BenchCommand::Pipeline { events, iterations, relay_python } => {
                    postflow::bench::pipeline(&events, iterations, relay_python.as_deref())?
                }
                BenchCommand::Lookups { events, rounds } => postflow::bench::lookups(&events, rounds)?,
                BenchCommand::Growth { events } => postflow::bench::growth(events).await?,
                BenchCommand::Limits { secs, one: Some(case) } => {
                    let _ = secs;
                    postflow::bench_limits::limits_one(case).await?
                }
                BenchCommand::Limits { secs, one: None } => postflow::bench_limits::limits(secs).await?,
                BenchCommand::Throughput { clients, secs } => {
                    postflow::bench::throughput(clients, secs).await?
                }
                BenchCommand::Storm { rate, secs, groups, shards, transactions } => {
                    postflow::bench_storm::storm(postflow::bench_storm::StormOptions {
                        rate,
                        secs,
                        groups,
                        shards,
                        transactions,
                    })
                    .await?
                }
                BenchCommand::ColdStart { bins, runs, python_peer } => {
                    let bins = if bins.is_empty() {
                        ["accept-invite", "enroll-authenticator", "save-event"]
                            .iter()
                            .map(|b| PathBuf::from("target/release").join(b))
                            .collect()
                    } else {
                        bins
                    };
                    println!(
                        "cold start under a local Lambda Runtime API emulator, {runs} runs each; each function gets a request it answers without network I/O"
                    );
                    println!("{}", postflow::bench::COLD_START_HEADER);
                    for bin in &bins {
                        postflow::bench::cold_start(std::slice::from_ref(bin), &no_io_event(bin), runs)
                            .await?;
                    }
                    if let Some(py) = python_peer {
                        postflow::bench::cold_start_python_peer(&py, runs).await?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tail { json, backend: args } => {
            let (backend, _session) = open(&args).await?;
            let records = backend.records().await?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for r in &records {
                let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap_or(serde_json::Value::Null);
                let line = if json {
                    v.to_string()
                } else {
                    format!(
                        "{}  key={:<34} {:<11} event={} group={} is_new={} regression={} new_env={}",
                        r.sequence_number,
                        r.partition_key,
                        v[2]["data"]["type"].as_str().unwrap_or("?"),
                        v[2]["event_id"].as_str().unwrap_or("?"),
                        v[2]["group_id"],
                        v[3]["is_new"],
                        v[3]["is_regression"],
                        v[3]["is_new_group_environment"],
                    )
                };
                if writeln!(out, "{line}").is_err() {
                    break;
                }
            }
            let _ = writeln!(out, "{} records on the {}", records.len(), backend.description);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { port, seed, backend: args } => {
            let (backend, session) = open(&args).await?;
            for f in &seed {
                let n = seed_file(backend.table.as_ref(), f).await?;
                println!("seeded {n} items from {}", f.display());
            }
            let app = std::sync::Arc::new(App::new(&backend, cli_config()));
            let listener = postflow::serve::bind(port)
                .await
                .map_err(|e| format!("cannot bind 127.0.0.1:{port}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("postflow serve on http://{addr} ({})", backend.description);
            println!(
                "LOCAL ONLY: JWT signatures are not verified; claims come from X-Postflow-Claims or the bearer token payload."
            );
            for f in Function::ALL {
                for (methods, path) in f.routes() {
                    println!("  {:<10} {path}  -> {}", methods.join(","), f.name());
                }
            }
            // With --state: saved every 5 s while serving and on Ctrl-C /
            // SIGTERM, so `postflow tail --state FILE` in another shell sees what was served.
            let save = |why: &str| -> Result<(), String> {
                close(&args, &backend, &session)?;
                if let Some(p) = &args.state {
                    tracing::debug!(state = %p.display(), why, "state saved");
                }
                Ok(())
            };
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
            let aggregating = app.clone();
            let periodic = async {
                // Expired markers and counters go, as DynamoDB's TTL sweeper removes them: a pass over
                // the table every 5 s, in slices of 10,000 items every 100 ms (a pass over more than
                // 500,000 items takes longer), each slice a short hold of the table's lock rather than
                // one walk of all of it.
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
                tick.tick().await;
                let (mut cursor, mut pass_started) = (None, std::time::Instant::now());
                for n in 1u64.. {
                    tick.tick().await;
                    if let Some(m) = &backend.memory
                        && (cursor.is_some() || pass_started.elapsed() >= std::time::Duration::from_secs(5))
                    {
                        if cursor.is_none() {
                            pass_started = std::time::Instant::now();
                        }
                        cursor =
                            m.sweep_expired_step(postflow::scenario::now_secs(), cursor.as_ref(), 10_000).1;
                    }
                    // Every second, the aggregation counts what no request's drain took (a drain that
                    // failed or was dropped with its connection, or a drainer at its last run).
                    if n % 10 == 0 {
                        aggregating.aggregate().await;
                    }
                    if n % 50 == 0
                        && let Err(e) = save("periodic")
                    {
                        eprintln!("postflow: {e}");
                    }
                }
            };
            tokio::select! {
                r = postflow::serve::serve(listener, app) => r.map_err(|e| e.to_string())?,
                () = periodic => {}
                _ = tokio::signal::ctrl_c() => println!("stopped"),
                _ = term.recv() => println!("stopped (SIGTERM)"),
            }
            aggregating.aggregate().await;
            save("shutdown")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn replay(paths: Vec<PathBuf>, args: BackendArgs, verbose: bool) -> Result<ExitCode, String> {
    let files = plan(&paths)?;
    let (backend, mut loose_session) = open(&args).await?;
    let app = App::new(&backend, cli_config());
    println!("postflow replay on the {}", backend.description);

    // Count steps first, for the progress bar.
    let mut work: Vec<(PathBuf, Option<postflow::scenario::Scenario>, PathBuf)> = Vec::new();
    let mut total = 0;
    for f in files {
        if is_scenario(&f) {
            let (s, dir) = load_scenario(&f)?;
            total += s.steps.len();
            work.push((f, Some(s), dir));
        } else {
            total += 1;
            work.push((f, None, PathBuf::new()));
        }
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if total < 20 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results: Vec<StepResult> = Vec::new();
    let print = |r: &StepResult, bar: &indicatif::ProgressBar| {
        let mark = if r.failure.is_none() { "ok  " } else { "FAIL" };
        let line = format!(
            "{mark} {:<21} {:<5} {:<58} {:>3} {:>7.1} ms{}",
            r.function.map(Function::name).unwrap_or("-"),
            r.method,
            r.path,
            r.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            r.millis,
            r.failure.as_ref().map(|f| format!("  {f} ({})", r.source)).unwrap_or_default()
        );
        bar.suspend(|| println!("{line}"));
        if verbose {
            bar.suspend(|| println!("     {}", r.response["body"].as_str().unwrap_or_default()));
        }
        bar.inc(1);
    };
    for (file, scenario, dir) in work {
        match scenario {
            Some(s) => {
                bar.suspend(|| {
                    println!("== {} — {}", file.display(), s.description.as_deref().unwrap_or(""))
                });
                if let Some(seed) = &s.seed {
                    let n = seed_file(backend.table.as_ref(), &dir.join(seed)).await?;
                    bar.suspend(|| println!("   seeded {n} items from {seed}"));
                }
                let mut session = Session::default();
                for step in &s.steps {
                    let r = run_event(&app, &mut session, &dir.join(&step.event), step.expect.as_ref()).await;
                    print(&r, &bar);
                    results.push(r);
                }
            }
            None => {
                let r = run_event(&app, &mut loose_session, &file, None).await;
                print(&r, &bar);
                results.push(r);
            }
        }
    }
    bar.finish_and_clear();
    close(&args, &backend, &loose_session)?;
    summary(&results);
    Ok(if results.iter().all(|r| r.failure.is_none()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn summary(results: &[StepResult]) {
    let mut by_fn: BTreeMap<&str, (usize, usize, Vec<f64>)> = BTreeMap::new();
    for r in results {
        let e = by_fn.entry(r.function.map(Function::name).unwrap_or("(unrouted)")).or_default();
        e.0 += 1;
        if r.failure.is_some() {
            e.1 += 1;
        }
        e.2.push(r.millis);
    }
    println!(
        "\n{:<22} {:>6} {:>7} {:>7} {:>10} {:>10}",
        "function", "steps", "passed", "failed", "median ms", "max ms"
    );
    for (f, (n, failed, mut ms)) in by_fn {
        ms.sort_by(f64::total_cmp);
        let median = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
        let max = ms.last().copied().unwrap_or(0.0);
        println!("{f:<22} {n:>6} {:>7} {failed:>7} {median:>10.1} {max:>10.1}", n - failed);
    }
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    println!("{} passed, {} failed", results.len() - failed, failed);
}
