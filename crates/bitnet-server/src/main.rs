//! `bitnet-server` binary: parses flags, binds, loads the model in the background (`/ready`
//! turns green when it is loaded), and shuts down gracefully on SIGTERM or Ctrl-C: `/ready`
//! and new requests answer 503, the listener closes, running requests finish, exit 0.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use bitnet_server::{AppState, Args, Engine, Listen, LogFormat, ServerConfig, ServerError, bind};
use clap::Parser;

/// Logging as every BitNet-rs binary sets it up (level `info` unless RUST_LOG says otherwise;
/// a closed stderr never panics a thread).
fn init_logging(format: LogFormat) {
    let args = bitnet_app::LogArgs {
        verbose: 0,
        log_format: match format {
            LogFormat::Json => bitnet_app::LogFormat::Json,
            LogFormat::Text => bitnet_app::LogFormat::Text,
        },
    };
    bitnet_app::logging::init(&args, "info");
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version print and succeed; bad flags print clap's one-line error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(args.log_format);
    let config = match ServerConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            bitnet_app::report::print_error("bitnet-server", &e);
            return ExitCode::from(2);
        }
    };
    let listen = Listen {
        host: args.host,
        port: args.port,
        workers: args.http_workers,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
    };
    let result = actix_web::rt::System::new().block_on(run(config, listen));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            bitnet_app::report::print_error("bitnet-server", &e);
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ServerConfig, listen: Listen) -> Result<(), ServerError> {
    let state = web::Data::new(AppState::new(config.clone()));
    let (server, addr) = bind(state.clone(), &listen)?;
    // The one line on stdout: scripts and tests read the port from it.
    println!("bitnet-server listening on http://{addr}");
    tracing::info!(%addr, "listening; loading the model");
    if matches!(config.model, bitnet_engine::ModelRef::Embedded) {
        eprintln!(
            "bitnet-server: no --model given; serving the embedded model: {}",
            bitnet_default_model::DESCRIPTION
        );
    }
    let handle = server.handle();

    // Load in the background so /health answers (and /ready says 503) meanwhile.
    let load_error: Arc<Mutex<Option<ServerError>>> = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(Engine::load(&config));
    });
    {
        let state = state.clone();
        let handle = handle.clone();
        let load_error = Arc::clone(&load_error);
        actix_web::rt::spawn(async move {
            let err = match done_rx.await {
                Ok(Ok(engine)) => state.install(engine).err(),
                Ok(Err(e)) => Some(e),
                Err(_) => Some(ServerError::io(
                    "loading the model",
                    std::io::Error::other("the loader thread died"),
                )),
            };
            if let Some(e) = err {
                tracing::error!(error = %bitnet_app::chain(&e), "could not load the model");
                *load_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                handle.stop(false).await;
            }
        });
    }
    {
        let state = state.clone();
        let handle = handle.clone();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: finishing running requests");
            state.begin_shutdown();
            handle.stop(true).await;
        });
    }
    server
        .await
        .map_err(|e| ServerError::io("running the HTTP server", e))?;
    // Requests still held by the scheduler (only after a grace timeout) are finished here.
    let st = state.clone();
    let _ = web::block(move || st.finish_shutdown()).await;
    tracing::info!("stopped");
    if let Some(e) = load_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
    {
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
