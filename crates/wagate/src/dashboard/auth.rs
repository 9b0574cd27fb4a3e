//! Cookie sessions. A signed-in browser holds a random cookie; the store
//! keeps only its SHA-256, with the user, the organization being viewed and
//! the session's CSRF token. A handler that takes [`CurrentUser`] only runs
//! for a live session, and one that takes [`Manager`] only for an owner or
//! admin of the current organization.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::DashError;
use crate::app::AppState;
use crate::domain::{Role, UserId};
use crate::store::{Membership, Organization, Store, UserRecord, WebSessionRecord};

pub const SESSION_COOKIE: &str = "wagate_session";
/// How long a sign-in lasts.
pub(crate) const SESSION_TTL: chrono::Duration = chrono::Duration::days(7);

/// 32 random bytes, hex: cookie values, CSRF tokens.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn hash_cookie(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached us over https, directly or through a
/// terminating proxy; only then may cookies be marked `Secure` (a browser
/// drops `Secure` cookies set over plain http).
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` header. `max_age` zero deletes the cookie.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    same_site: &str,
    secure: bool,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let header = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
    );
    // Every part is ours (hex values, fixed names), so this cannot fail;
    // an empty header is the harmless fallback.
    (
        SET_COOKIE,
        HeaderValue::from_str(&header).unwrap_or(HeaderValue::from_static("")),
    )
}

/// A signed-in user, looking at one of their organizations.
#[derive(Debug, Clone)]
pub(crate) struct CurrentUser {
    user: UserRecord,
    session: WebSessionRecord,
    memberships: Vec<Membership>,
    /// Index into `memberships` of the organization being viewed.
    current: usize,
}

impl CurrentUser {
    pub(crate) fn id(&self) -> UserId {
        self.user.id
    }

    pub(crate) fn email(&self) -> &str {
        self.user.email.as_str()
    }

    pub(crate) fn org(&self) -> &Organization {
        &self.memberships[self.current].org
    }

    pub(crate) fn role(&self) -> Role {
        self.memberships[self.current].role
    }

    pub(crate) fn memberships(&self) -> &[Membership] {
        &self.memberships
    }

    pub(crate) fn csrf(&self) -> &str {
        &self.session.csrf_token
    }

    pub(crate) fn session_hash(&self) -> &str {
        &self.session.id_hash
    }

    /// Loads the session named by the request's cookie, if it is live and
    /// its user still belongs to an organization.
    pub(crate) async fn load(
        store: &dyn Store,
        headers: &HeaderMap,
    ) -> Result<Option<Self>, DashError> {
        let Some(value) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let users = store.users();
        let hash = hash_cookie(value);
        let Some(session) = users.find_web_session(&hash).await? else {
            return Ok(None);
        };
        let Some(user) = users.get_user(session.user_id).await? else {
            return Ok(None);
        };
        let memberships = users.memberships(user.id).await?;
        // Removed from the organization being viewed: fall back to another.
        let current = match memberships.iter().position(|m| m.org.id == session.org_id) {
            Some(index) => index,
            None if memberships.is_empty() => return Ok(None),
            None => {
                users
                    .set_web_session_org(&hash, memberships[0].org.id)
                    .await?;
                0
            }
        };
        Ok(Some(Self {
            user,
            session,
            memberships,
            current,
        }))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = DashError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let user = Self::load(state.store.as_ref(), &parts.headers)
            .await?
            .ok_or(DashError::SignedOut)?;
        // A CSRF-checked form extracts the user too; load it once.
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// A [`CurrentUser`] who owns or administers the current organization.
/// Webhook, token and member management take this, so a member's request cannot
/// reach them.
#[derive(Debug, Clone)]
pub(crate) struct Manager(pub CurrentUser);

impl FromRequestParts<AppState> for Manager {
    type Rejection = DashError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        Self::try_from(user)
    }
}

/// For handlers that get their user from a CSRF-checked form.
impl TryFrom<CurrentUser> for Manager {
    type Error = DashError;

    fn try_from(user: CurrentUser) -> Result<Self, Self::Error> {
        if user.role().can_manage() {
            Ok(Self(user))
        } else {
            Err(DashError::Forbidden(
                "Only owners and admins of this organization can manage webhooks, API tokens and members.",
            ))
        }
    }
}

/// Starts a browser session for `user` in `org`; returns the cookie value.
pub async fn start_session(
    store: &dyn Store,
    user: UserId,
    org: crate::domain::OrgId,
) -> Result<String, DashError> {
    let value = random_token();
    let now = Utc::now();
    store
        .users()
        .insert_web_session(&WebSessionRecord {
            id_hash: hash_cookie(&value),
            user_id: user,
            org_id: org,
            csrf_token: random_token(),
            created_at: now,
            expires_at: now + SESSION_TTL,
        })
        .await?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; wagate_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cookies_are_http_only_and_secure_only_over_https() {
        let (_, plain) = set_cookie("n", "v", "/", 60, "Lax", false);
        let plain = plain.to_str().unwrap_or_default().to_string();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        let (_, secure) = set_cookie("n", "v", "/", 60, "Lax", true);
        assert!(secure.to_str().unwrap_or_default().ends_with("; Secure"));
    }
}
