//! Clean shutdown on SIGINT / SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Sets `stop` when the process receives SIGINT (Ctrl-C) or SIGTERM. The caller polls `stop` and
/// closes its `KafkaStreams`, so tasks commit and write their checkpoints before the process exits.
pub fn on_shutdown_signal(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    tracing::warn!("cannot listen for SIGINT/SIGTERM");
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("shutdown signal received; closing");
                stop.store(true, Ordering::SeqCst);
            });
        })?;
    Ok(())
}
