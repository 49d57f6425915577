//! `votemesh-node`: run a regional node, or the demo.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::{Parser, Subcommand};
use node::{Config, LogFormat, Node, RunArgs};

mod demo;

/// A votemesh regional node: verifies signed votes, stores them durably
/// (fsync before every acknowledgement) and serves the HTTP API.
///
/// Without a subcommand it runs the node. On start it prints one JSON line to
/// stdout, {"event":"listening","addr":..,"node":..,"p2p":..} ("p2p" only
/// when the replication mesh is on); logs go to stderr.
#[derive(Parser, Debug)]
#[command(
    name = "votemesh-node",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node (the default). Each flag can also come from the
    /// environment (VOTEMESH_<FLAG>) or the --config file; flags win over the
    /// environment, the environment over the file.
    Run(RunArgs),
    /// Run the demo.
    Demo(demo::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Run(args)) => run(&args),
        None => run(&cli.run),
    };
    relay::report_exit(done)
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    init_logs(config.log_format);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        let node = Node::start(&config).await?;
        announce(&node)?;
        node.serve(shutdown_signal()).await.context("serving")
    });
    // Connections cut off at the shutdown deadline may still have tasks: do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// The start-up contract: exactly one line on stdout, flushed.
fn announce(node: &Node) -> anyhow::Result<()> {
    // Written by hand: the field order is part of the contract.
    let mut line = format!(
        r#"{{"event":"listening","addr":"{}","node":"{}""#,
        node.local_addr(),
        node.public_key()
    );
    if let Some(p2p) = node.p2p_addr() {
        line.push_str(&format!(r#","p2p":"{p2p}""#));
    }
    line.push('}');
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; stop the node with SIGINT");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
