//! The `echarging` binary: read settings, start logging, serve until SIGTERM or ctrl-c (or run
//! a maintenance command such as `rebuild-projections`).

use std::process::ExitCode;

use echarging::app::Application;
use echarging::settings::{self, Invocation};
use echarging::telemetry;
use tokio_util::sync::CancellationToken;

// mimalloc, not glibc's malloc: every row sqlx returns is copied column by column, and every
// frame and message is allocated and freed on the runtime's thread. Under 10,000 charging
// chargers glibc's malloc, free and their consolidation passes took ~15% of the server's CPU;
// with mimalloc the same run used 70% of the core instead of 77%, and the StartTransaction p99
// fell from 21 to 14 ms (docs/benchmarks.md). The library leaves the choice to the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let (settings, rebuild) = match settings::from_args_and_env() {
        Ok(Invocation::Serve(s)) => (s, false),
        Ok(Invocation::RebuildProjections(s)) => (s, true),
        Err(line) => {
            eprintln!("echarging: {line}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echarging: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if rebuild {
        return runtime.block_on(async move {
            match echarging::app::rebuild_projections(&settings).await {
                Ok(events) => {
                    println!("my page rebuilt from {events} events");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("echarging: {e:#}");
                    ExitCode::FAILURE
                }
            }
        });
    }
    runtime.block_on(async move {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("echarging: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let stop = CancellationToken::new();
        tokio::spawn(signal_to(stop.clone()));
        match app.run_until_stopped(stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("echarging: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Cancel `stop` on SIGTERM (how orchestrators stop us) or ctrl-c.
async fn signal_to(stop: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("stop requested");
    stop.cancel();
}
