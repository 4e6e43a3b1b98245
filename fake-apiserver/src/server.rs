//! The accept loop and per-connection HTTP/1.1 serving, built so that a
//! stop closes the listener and every open connection abruptly, and a
//! handler can ask for its own connection to be dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::Shared;
use crate::handlers;

/// Binds a listener with SO_REUSEADDR so the same port can be bound again after a stop.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds `addr`, retrying for a couple of seconds while the old socket goes away.
pub(crate) async fn bind_retrying(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..100 {
        match bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

/// A running accept loop. Connection tasks live in the loop's `JoinSet`, so
/// aborting the loop aborts (and thereby closes) every connection.
pub(crate) struct Running {
    task: JoinHandle<()>,
    /// Resolves (returns None) once every connection task has been dropped.
    alive_rx: mpsc::Receiver<()>,
}

impl Running {
    /// Spawns the accept loop on the current runtime.
    pub(crate) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let (alive_tx, alive_rx) = mpsc::channel(1);
        let task = tokio::spawn(accept_loop(listener, shared, alive_tx));
        Self { task, alive_rx }
    }

    /// Aborts without waiting.
    pub(crate) fn abort(self) {
        self.task.abort();
    }

    /// Aborts and waits until the listener and all connections are closed.
    pub(crate) async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.alive_rx.recv()).await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, alive: mpsc::Sender<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracing::debug!(%peer, "fake apiserver: connection accepted");
                    conns.spawn(serve_connection(stream, shared.clone(), alive.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "fake apiserver: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one connection until it ends or a handler asks for it to be killed.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, _alive: mpsc::Sender<()>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let svc_kill = kill.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let kill = svc_kill.clone();
        async move { Ok::<_, std::convert::Infallible>(handlers::handle(shared, kill, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        res = conn => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "fake apiserver: connection ended with error");
            }
        }
        _ = kill.notified() => {
            tracing::debug!("fake apiserver: connection dropped on purpose");
        }
    }
}
