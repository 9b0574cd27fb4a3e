//! Bearer-token authentication. A handler that takes [`Authenticated`] can
//! only run for a live token, and only sees that token's organization.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::{OrgId, TokenHash};
use crate::store::Store;

/// Whether the token with this hash is still live.
pub(crate) async fn still_valid(store: &dyn Store, token: &TokenHash) -> Result<bool, ApiError> {
    Ok(store
        .orgs()
        .find_token(token)
        .await?
        .is_some_and(|t| !t.revoked))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated {
    org_id: OrgId,
}

impl Authenticated {
    pub(crate) fn org_id(&self) -> OrgId {
        self.org_id
    }
}

/// Checks a presented token against the stored hashes.
pub(crate) async fn authenticate(
    store: &dyn Store,
    presented: &str,
) -> Result<Authenticated, ApiError> {
    authenticate_hash(store, &TokenHash::of(presented)).await
}

async fn authenticate_hash(store: &dyn Store, hash: &TokenHash) -> Result<Authenticated, ApiError> {
    match store.orgs().find_token(hash).await? {
        Some(token) if !token.revoked => Ok(Authenticated {
            org_id: token.org_id,
        }),
        _ => Err(ApiError::InvalidToken),
    }
}

/// The token in an `Authorization: Bearer` header, if any.
pub(crate) fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::InvalidToken),
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or(ApiError::MissingToken)?;
        let hash = TokenHash::of(token);
        // Taken before the store is asked: a revocation during the lookup
        // leaves the entry stale.
        let generation = state.revocations.generation();
        let auth = match state.tokens.get(&hash, generation) {
            Some(org_id) => Authenticated { org_id },
            None => {
                let auth = authenticate_hash(state.store.as_ref(), &hash).await?;
                state.tokens.insert(hash, auth.org_id, generation);
                auth
            }
        };
        tracing::Span::current().record("org_id", tracing::field::display(auth.org_id));
        Ok(auth)
    }
}
