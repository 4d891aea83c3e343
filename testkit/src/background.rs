//! Runs a test server on its own thread with its own tokio runtime, so sync and async tests can both use it.

use std::future::Future;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server running in the background until dropped.
pub(crate) struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Binds 127.0.0.1 on a free port and runs `serve` on that listener, on a thread called `name`.
    ///
    /// The port is bound before this returns, so the address can be handed out at once.
    pub(crate) fn serve<F, Fut>(name: &str, serve: F) -> (SocketAddr, Background)
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind {name}: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("make the {name} listener non-blocking: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{name} address: {e}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime for {name}: {e}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("register the listener with tokio");
                    tokio::select! {
                        _ = stopped => {}
                        () = serve(listener) => {}
                    }
                });
                // Dropping the runtime here cancels the answers still in flight (slow or hanging ones): a test
                // never waits for a client that keeps its connection open.
            })
            .unwrap_or_else(|e| panic!("spawn the {name} thread: {e}"));
        (addr, Background { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
