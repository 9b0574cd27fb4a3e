//! Creating dashboard users: from the CLI (`wagate user create`), on first
//! start, and from the members page. Passwords are generated and shown
//! once; only their argon2id hash is stored.

use crate::domain::{Email, InvalidEmail, Role};
use crate::secret::Secret;
use crate::store::{Organization, Store, StoreError};

use super::password::{self, HashError};

/// The first user's sign-in name.
pub const BOOTSTRAP_EMAIL: &str = "admin@localhost";

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no organization named {0:?}")]
    UnknownOrg(String),
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    #[error("{0} is already a member of this organization")]
    AlreadyMember(Email),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user just added to an organization.
#[derive(Debug)]
pub struct IssuedUser {
    pub email: Email,
    pub org: Organization,
    pub role: Role,
    /// Set when the account was created now; an existing account keeps
    /// its password.
    pub password: Option<Secret<String>>,
}

/// Adds `email` to `org` with `role`, creating the account (with a
/// generated password) if there is none.
pub async fn add_user(
    store: &dyn Store,
    org: Organization,
    email: Email,
    role: Role,
) -> Result<IssuedUser, AccountError> {
    let users = store.users();
    let password = match users.find_user(&email).await? {
        Some(user) => {
            match users.add_membership(user.id, org.id, role).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => return Err(AccountError::AlreadyMember(email)),
                Err(other) => return Err(other.into()),
            }
            None
        }
        None => {
            let password = password::generate();
            let plaintext = password.expose().clone();
            let hash = tokio::task::spawn_blocking(move || password::hash(&plaintext))
                .await
                .map_err(|e| StoreError::Corrupt(format!("hashing task failed: {e}")))??;
            // The account and its membership in one transaction: were
            // they two, a failure between them would leave an account
            // that belongs to no organization.
            users.create_member(&email, &hash, org.id, role).await?;
            Some(password)
        }
    };
    Ok(IssuedUser {
        email,
        org,
        role,
        password,
    })
}

/// `wagate user create --org ORG --email EMAIL --role ROLE`.
pub async fn create_user(
    store: &dyn Store,
    org: &str,
    email: &str,
    role: Role,
) -> Result<IssuedUser, AccountError> {
    let email = Email::try_from(email)?;
    let org = store
        .orgs()
        .find_org(org)
        .await?
        .ok_or_else(|| AccountError::UnknownOrg(org.to_string()))?;
    add_user(store, org, email, role).await
}

/// On a fresh install nobody could sign in, so the first start makes an
/// owner of the oldest organization (the bootstrapped one).
pub async fn bootstrap(store: &dyn Store) -> Result<Option<IssuedUser>, AccountError> {
    let users = store.users();
    if users.count_users().await? > 0 {
        return Ok(None);
    }
    let Some(org) = users.first_org().await? else {
        return Ok(None);
    };
    let email = Email::try_from(BOOTSTRAP_EMAIL)?;
    add_user(store, org, email, Role::Owner).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn bootstrap_creates_one_owner_once_and_cli_adds_more() -> Result<(), AccountError> {
        let store = SqliteStore::connect("sqlite::memory:").await?;
        assert!(bootstrap(&store).await?.is_none(), "no organization yet");
        store.orgs().create_org("default").await?;
        let first = bootstrap(&store).await?;
        let Some(first) = first else {
            panic!("first user");
        };
        assert_eq!(first.role, Role::Owner);
        let Some(password) = &first.password else {
            panic!("a new account has a password");
        };
        let stored = store.users().find_user(&first.email).await?;
        assert!(stored.is_some_and(|u| password::verify(password.expose(), &u.password_hash)));
        assert!(bootstrap(&store).await?.is_none(), "only on first start");

        store.orgs().create_org("acme").await?;
        let added = create_user(&store, "acme", "Admin@Localhost", Role::Member).await?;
        assert!(
            added.password.is_none(),
            "existing account keeps its password"
        );
        assert!(matches!(
            create_user(&store, "acme", "admin@localhost", Role::Member).await,
            Err(AccountError::AlreadyMember(_))
        ));
        assert!(matches!(
            create_user(&store, "nope", "x@y.z", Role::Member).await,
            Err(AccountError::UnknownOrg(_))
        ));
        Ok(())
    }
}
