//! Organization and token administration, shared by the CLI and the
//! first-start bootstrap.

use crate::domain::{ApiToken, TokenId};
use crate::store::{Organization, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no organization named {0:?}")]
    UnknownOrg(String),
    #[error("no live token with id {0}")]
    UnknownToken(TokenId),
    #[error("organization name must be 1 to 100 characters")]
    InvalidOrgName,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A token as shown to the user exactly once.
#[derive(Debug)]
pub struct IssuedToken {
    pub id: TokenId,
    pub org: Organization,
    pub token: ApiToken,
}

pub async fn create_org(store: &dyn Store, name: &str) -> Result<Organization, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AdminError::InvalidOrgName);
    }
    Ok(store.orgs().create_org(name).await?)
}

pub async fn create_token(store: &dyn Store, org: &str) -> Result<IssuedToken, AdminError> {
    let org = store
        .orgs()
        .find_org(org)
        .await?
        .ok_or_else(|| AdminError::UnknownOrg(org.to_string()))?;
    issue_token(store, org).await
}

pub async fn revoke_token(store: &dyn Store, id: TokenId) -> Result<(), AdminError> {
    if store.orgs().revoke_token(id).await? {
        Ok(())
    } else {
        Err(AdminError::UnknownToken(id))
    }
}

/// On a fresh install there is nobody to run `org create`, so the first
/// `serve` makes an organization and a token itself.
pub async fn bootstrap(store: &dyn Store) -> Result<Option<IssuedToken>, AdminError> {
    if store.orgs().count_orgs().await? > 0 {
        return Ok(None);
    }
    // The organization and its token in one transaction: were they two,
    // a crash between them would leave an organization nobody holds a
    // token for, and this would never run again (there is one).
    let id = TokenId::new();
    let token = ApiToken::generate();
    let org = store
        .orgs()
        .create_org_with_token("default", id, &token.hash())
        .await?;
    Ok(Some(IssuedToken { id, org, token }))
}

async fn issue_token(store: &dyn Store, org: Organization) -> Result<IssuedToken, AdminError> {
    let id = TokenId::new();
    let token = ApiToken::generate();
    store.orgs().insert_token(id, org.id, &token.hash()).await?;
    Ok(IssuedToken { id, org, token })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// The first start makes one organization with a working token, once.
    #[tokio::test]
    async fn bootstrap_issues_the_first_organizations_token_once() -> Result<(), AdminError> {
        let store = SqliteStore::connect("sqlite::memory:").await?;
        let Some(issued) = bootstrap(&store).await? else {
            panic!("a fresh store is bootstrapped");
        };
        assert_eq!(issued.org.name, "default");
        let found = store.orgs().find_token(&issued.token.hash()).await?;
        assert!(
            found.is_some_and(|t| t.id == issued.id && t.org_id == issued.org.id && !t.revoked)
        );
        assert!(bootstrap(&store).await?.is_none(), "only on first start");
        assert_eq!(store.orgs().count_orgs().await?, 1);
        Ok(())
    }
}
