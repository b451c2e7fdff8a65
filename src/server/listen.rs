//! The webhook server's accept loop (instead of `axum::serve`, which has no read timeouts and waits
//! for idle clients on shutdown): at most `max_connections` open connections, a header read timeout
//! on each, and a close that finishes in-flight requests briefly, then drops every connection,
//! whatever idle or slow clients do.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::settings::ServerLimits;

/// How long in-flight requests get once the listener closes.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `close` turns true; returns once every connection is gone.
pub async fn serve(listener: TcpListener, router: Router, limits: ServerLimits, mut close: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let closed = async move {
        let _ = close.wait_for(|c| *c).await;
    };
    tokio::pin!(closed);
    let mut connections = JoinSet::new();
    let (closing_tx, closing_rx) = watch::channel(false);
    loop {
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut closed => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut closed => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut closing = closing_rx.clone();
        let header_timeout = limits.header_timeout;
        connections.spawn(async move {
            let _slot = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                    // Idle connections close now; a request in flight gets a moment to finish.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_GRACE + Duration::from_millis(500), all_closed).await.is_err() {
        connections.abort_all();
    }
}
