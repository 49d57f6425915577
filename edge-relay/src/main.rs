//! `votemesh-relay`: run an edge relay.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::Parser;
use relay::{Config, LogFormat, Relay, RunArgs};

fn main() -> std::process::ExitCode {
    let args = RunArgs::parse();
    relay::report_exit(run(&args))
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = Config::load(args)?;
    init_logs(config.log_format);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        let relay = Relay::start(&config).await?;
        announce(&relay)?;
        relay.serve(shutdown_signal()).await.context("serving")
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// The start-up contract: exactly one line on stdout, flushed.
fn announce(relay: &Relay) -> anyhow::Result<()> {
    let line = format!(r#"{{"event":"listening","addr":"{}"}}"#, relay.local_addr());
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
                tracing::warn!(error = %e, "cannot watch SIGTERM; stop the relay with SIGINT");
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
