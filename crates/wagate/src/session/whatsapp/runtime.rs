//! The runtime each session's client runs on: Tokio, inside the
//! session's tracing span.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;
use wacore::runtime::{AbortHandle, Runtime};
use whatsapp_rust::TokioRuntime;

/// Tokio, with every task the client spawns (its run loop, the handlers of
/// what the server sends, keepalives) inside the session's tracing span: in
/// a gateway holding thousands of sessions, a client log line that does not
/// say which session it is about is no use.
pub(super) struct SessionRuntime {
    pub(super) span: tracing::Span,
}

#[async_trait]
impl Runtime for SessionRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        TokioRuntime.spawn(Box::pin(future.instrument(self.span.clone())))
    }

    fn spawn_detached(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        TokioRuntime.spawn_detached(Box::pin(future.instrument(self.span.clone())));
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        TokioRuntime.sleep(duration)
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        TokioRuntime.spawn_blocking(f)
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        TokioRuntime.yield_now()
    }

    fn yield_frequency(&self) -> u32 {
        TokioRuntime.yield_frequency()
    }
}
