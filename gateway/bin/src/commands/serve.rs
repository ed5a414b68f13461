//! `vaultgate serve`: loads the configuration, starts logging, runs the gateway with the admin
//! REST API ([`crate::compose::admin_api`]) until SIGTERM or SIGINT, then shuts down gracefully.

use std::process::ExitCode;

use crate::settings::{Settings, init_logging};

/// Serves until a signal: exit 0 after a clean shutdown, 1 when the configuration is invalid or
/// start-up fails. Its own log lines keep the target `vaultgate`.
pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let cfg = settings.load()?;
    init_logging(&cfg.log_level);
    let server = gateway::server::start(cfg, crate::compose::admin_api)
        .await
        .inspect_err(|e| tracing::error!(target: "vaultgate", error = %e, "start-up failed"))?;
    // machine-readable line for scripts (stdout, exactly one JSON object)
    println!(
        "{}",
        serde_json::json!({
            "msg": "listening",
            "s3_addr": server.s3_addr.to_string(),
            "admin_addr": server.admin_addr.to_string(),
        })
    );
    wait_for_signal().await;
    tracing::info!(target: "vaultgate", "signal received; shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
    {
        let _ = ctrl_c.await;
    }
}
