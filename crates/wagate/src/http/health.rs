//! Liveness and readiness probes; unauthenticated.

use axum::extract::State;
use serde::Serialize;

use super::error::ApiError;
use super::extract::Json;
use crate::app::AppState;

#[derive(Debug, Serialize)]
pub(crate) struct Health {
    pub status: &'static str,
}

/// The process is up.
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The gateway can serve requests: its database answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.store.orgs().count_orgs().await {
        Ok(_) => Ok(Json(Health { status: "ready" })),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::Unavailable)
        }
    }
}
