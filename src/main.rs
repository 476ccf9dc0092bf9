//! The `egress` binary: parses arguments and wires; everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use egress::cli::{Cli, Command};
use egress::config::Config;
use egress::server::{Listeners, ShutdownSignal};
use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Handler { dir, eos_timeout_secs } => {
            init_tracing();
            let code = egress::handler::main(dir, std::time::Duration::from_secs(eos_timeout_secs));
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Command::Serve { config } => {
            init_tracing();
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            match rt.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    // 3: the node ran but could not end its egresses in time; 2: it could not start.
                    match e.downcast_ref::<egress::server::NodeError>() {
                        Some(egress::server::NodeError::ShutdownDeadline) => ExitCode::from(3),
                        _ => ExitCode::from(2),
                    }
                }
            }
        }
        client_command => {
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            match rt.block_on(egress::cli::run_client(client_command)) {
                Ok(code) => ExitCode::from(code as u8),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Each running egress holds a few descriptors in the node (IPC connections, pipes): lift the soft limit to the
/// hard one so a large node is not capped by a login default of 1024.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "Cannot raise the open files limit.");
            }
        }
    }
}

async fn serve(config: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use anyhow::Context;
    let cfg = Config::load(config.as_deref())?;
    raise_open_files_limit();
    let metrics = egress::metrics::install()?;
    let api = tokio::net::TcpListener::bind(&cfg.api.listen)
        .await
        .with_context(|| format!("api.listen {}", cfg.api.listen))?;
    let http = tokio::net::TcpListener::bind(&cfg.metrics.listen)
        .await
        .with_context(|| format!("metrics.listen {}", cfg.metrics.listen))?;
    let term = signal(SignalKind::terminate())?;
    let int = signal(SignalKind::interrupt())?;
    // The first SIGTERM drains; a second one, or SIGINT, ends every egress at once.
    let signals = futures::stream::unfold((term, int, 0u32), |(mut term, mut int, terms)| async move {
        let (sig, terms) = tokio::select! {
            _ = term.recv() => (if terms == 0 { ShutdownSignal::Drain } else { ShutdownSignal::Immediate }, terms + 1),
            _ = int.recv() => (ShutdownSignal::Immediate, terms),
        };
        Some((sig, (term, int, terms)))
    });
    egress::server::run(cfg, Listeners { api, http }, metrics, signals.boxed()).await?;
    Ok(())
}
