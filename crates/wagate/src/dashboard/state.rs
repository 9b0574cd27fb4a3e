//! The dashboard's own state, carried in `AppState` (so below it: it names
//! nothing of the handlers above).

use std::sync::Arc;

use super::ratelimit::SignInLimiter;

/// The dashboard's own state, carried in `AppState`.
#[derive(Clone, Default)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    limiter: SignInLimiter,
    #[cfg(feature = "sandbox")]
    sandbox: Option<wasim::SimHandle>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("sandbox", &self.is_sandbox())
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard whose session pages drive `sim`'s phones.
    #[cfg(feature = "sandbox")]
    pub fn with_sandbox(sim: wasim::SimHandle) -> Self {
        Self {
            inner: Arc::new(Inner {
                limiter: SignInLimiter::default(),
                sandbox: Some(sim),
            }),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        #[cfg(feature = "sandbox")]
        {
            self.inner.sandbox.is_some()
        }
        #[cfg(not(feature = "sandbox"))]
        {
            false
        }
    }

    #[cfg(feature = "sandbox")]
    pub(crate) fn sim(&self) -> Option<&wasim::SimHandle> {
        self.inner.sandbox.as_ref()
    }

    pub(crate) fn limiter(&self) -> &SignInLimiter {
        &self.inner.limiter
    }
}
