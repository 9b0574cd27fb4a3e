//! Where a call for a session is carried out: here, when this node runs
//! the session (always, for a single process), or on the node that owns
//! its lease, through [`Peers`] (several nodes, `--nats`).
//!
//! The owner is read from the lease row. A session nobody owns yet (just
//! created) is claimed by this node's keeper when it has room; otherwise
//! every node is told, and the call waits (up to a lease time) for one to
//! take it. An owner that does not answer (gone, or NATS down) is looked
//! up once more, claiming the session if its lease expired meanwhile;
//! then the call fails with [`ManagerError::OwnerUnreachable`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use whatsapp_rust::Jid;
use whatsapp_rust::waproto::whatsapp as wa;

use super::{ManagerError, SessionManager};
use crate::domain::{ChatChange, OrgId, PresenceState, SessionId};
use crate::messages::{MediaKind, UploadedMedia};
use crate::session::leases::KeeperHandle;
use crate::session::messenger::{
    ContactCheck, ContactProfile, Messenger, OldestMessage, ProfilePicture, SendFailure, Typing,
};
use crate::session::remote::{Call, Peers, RemoteError, Reply, Request};
use crate::store::LeaseStore;

/// How a node of several reaches the others and its own keeper.
#[derive(Clone)]
pub(crate) struct ClusterLink {
    /// This node's id, as written on its leases.
    pub(crate) node: String,
    pub(crate) peers: Arc<dyn Peers>,
    pub(crate) keeper: KeeperHandle,
    pub(crate) leases: Arc<dyn LeaseStore>,
    /// The lease time: how long a call waits for a session to get an
    /// owner.
    pub(crate) lease: Duration,
}

enum Route {
    Here,
    Node(String),
}

impl From<RemoteError> for ManagerError {
    fn from(error: RemoteError) -> Self {
        match error {
            // Only met after the second try: nobody runs it.
            RemoteError::NotHere => Self::OwnerUnreachable,
            RemoteError::NotFound => Self::NotFound,
            RemoteError::Command(error) => Self::Command(error),
            RemoteError::NoQrCode(status) => Self::NoQrCode(status),
            RemoteError::QrNotReady => Self::QrNotReady,
            RemoteError::NotWorking(status) => Self::NotWorking(status),
            RemoteError::Upstream(failure) => Self::Upstream(failure),
            RemoteError::Internal(reason) => Self::Remote(reason),
        }
    }
}

impl From<ManagerError> for RemoteError {
    fn from(error: ManagerError) -> Self {
        match error {
            // The asking node checked the session exists: if it has no
            // supervisor here, it runs elsewhere.
            ManagerError::NotFound => Self::NotHere,
            ManagerError::Command(error) => Self::Command(error),
            ManagerError::NoQrCode(status) => Self::NoQrCode(status),
            ManagerError::QrNotReady => Self::QrNotReady,
            ManagerError::NotWorking(status) => Self::NotWorking(status),
            ManagerError::Upstream(failure) => Self::Upstream(failure),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl SessionManager {
    pub(crate) fn cluster(&self) -> Option<&ClusterLink> {
        self.inner.cluster.get()
    }

    /// Makes this manager one node of several: calls for sessions it does
    /// not run go to their owners. Set once, before serving.
    pub(crate) fn join_cluster(&self, link: ClusterLink) {
        if self.inner.cluster.set(link).is_err() {
            tracing::warn!("the manager was joined to a cluster twice; the first link stays");
        }
    }

    /// Carries `call` out wherever the session runs.
    pub(crate) async fn perform(
        &self,
        org: OrgId,
        session: SessionId,
        call: Call,
    ) -> Result<Reply, ManagerError> {
        let Some(cluster) = self.cluster() else {
            return self.local(org, session, call).await;
        };
        // A node that owns the lease but has not started the session's
        // supervisor yet (it is taking it this moment) says so: asked
        // again, briefly, until a lease time has passed. A node that does
        // not answer at all is given one more look-up.
        let until = tokio::time::Instant::now() + cluster.lease;
        let mut pause = Duration::from_millis(20);
        let mut unanswered = false;
        loop {
            let not_yet = match self.route(cluster, session, unanswered).await? {
                Route::Here => match self.local(org, session, call.clone()).await {
                    Err(ManagerError::NotFound) => true,
                    other => return other,
                },
                Route::Node(node) => {
                    let request = Request {
                        org,
                        session,
                        call: call.clone(),
                    };
                    match cluster.peers.call(&node, &request).await {
                        Ok(Ok(reply)) => return Ok(reply),
                        Ok(Err(RemoteError::NotHere)) => true,
                        Ok(Err(error)) => return Err(error.into()),
                        Err(error) if !unanswered => {
                            tracing::info!(session_id = %session, %node, %error, "the owner did not answer; looking it up again");
                            unanswered = true;
                            false
                        }
                        Err(error) => {
                            tracing::warn!(session_id = %session, %node, %error, "the session's owner did not answer");
                            return Err(ManagerError::OwnerUnreachable);
                        }
                    }
                }
            };
            if not_yet {
                if tokio::time::Instant::now() + pause > until {
                    return Err(ManagerError::OwnerUnreachable);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
    }

    /// Tells the session's owner without waiting (an outbox to wake, a
    /// setting to read again); a lost notice is made up by the owner's
    /// own periodic pass.
    pub(super) async fn tell(&self, org: OrgId, session: SessionId, call: Call) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        match cluster.leases.lease(session).await {
            Ok(Some(lease)) => {
                if let Some(node) = lease.node.filter(|node| *node != cluster.node) {
                    let request = Request { org, session, call };
                    cluster.peers.tell(&node, &request).await;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(session_id = %session, %error, "could not read the session's owner");
            }
        }
    }

    /// Gives a session just created an owner: this node when it has room,
    /// else whichever node takes it first.
    pub(super) async fn place(&self, cluster: &ClusterLink, session: SessionId) {
        if !cluster.keeper.claim(session).await {
            cluster.peers.unowned().await;
        }
    }

    async fn route(
        &self,
        cluster: &ClusterLink,
        session: SessionId,
        retry: bool,
    ) -> Result<Route, ManagerError> {
        if self.inner.handles().contains_key(&session) {
            return Ok(Route::Here);
        }
        let owner = self.owner(cluster, session).await?;
        match owner {
            Some(node) if node == cluster.node => Ok(Route::Here),
            // Its owner did not answer: taken here if its lease expired.
            Some(node) if retry => {
                if cluster.keeper.claim(session).await {
                    Ok(Route::Here)
                } else {
                    Ok(Route::Node(node))
                }
            }
            Some(node) => Ok(Route::Node(node)),
            None => {
                if cluster.keeper.claim(session).await {
                    return Ok(Route::Here);
                }
                cluster.peers.unowned().await;
                match self.await_owner(cluster, session).await? {
                    Some(node) if node == cluster.node => Ok(Route::Here),
                    Some(node) => Ok(Route::Node(node)),
                    None => Err(ManagerError::OwnerUnreachable),
                }
            }
        }
    }

    async fn owner(
        &self,
        cluster: &ClusterLink,
        session: SessionId,
    ) -> Result<Option<String>, ManagerError> {
        Ok(cluster
            .leases
            .lease(session)
            .await?
            .and_then(|lease| lease.node))
    }

    /// Waits up to a lease time for another node to take the session.
    async fn await_owner(
        &self,
        cluster: &ClusterLink,
        session: SessionId,
    ) -> Result<Option<String>, ManagerError> {
        let until = tokio::time::Instant::now() + cluster.lease;
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(node) = self.owner(cluster, session).await? {
                return Ok(Some(node));
            }
            if tokio::time::Instant::now() + pause > until {
                return Ok(None);
            }
            // Polled: the taking node writes the row, nothing tells us.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// A `working` session's live calls made on the node that runs it.
    pub(super) fn remote_messenger(&self, org: OrgId, session: SessionId) -> Arc<dyn Messenger> {
        Arc::new(RemoteMessenger {
            manager: self.clone(),
            org,
            session,
        })
    }
}

/// The live connection of a session another node runs: each call goes to
/// that node. Sending and uploading stay with the owner's outbox.
struct RemoteMessenger {
    manager: SessionManager,
    org: OrgId,
    session: SessionId,
}

impl RemoteMessenger {
    async fn call(&self, call: Call) -> Result<Reply, SendFailure> {
        self.manager
            .perform(self.org, self.session, call)
            .await
            .map_err(|error| match error {
                ManagerError::Upstream(failure) => failure,
                ManagerError::OwnerUnreachable => SendFailure::OwnerUnreachable,
                other => SendFailure::Transient(other.to_string()),
            })
    }
}

#[async_trait]
impl Messenger for RemoteMessenger {
    async fn send(
        &self,
        _chat: &Jid,
        _wa_id: &str,
        _message: wa::Message,
    ) -> Result<(), SendFailure> {
        Err(SendFailure::Invalid(
            "messages are sent by the node that runs the session".into(),
        ))
    }

    fn own_jid(&self) -> Option<Jid> {
        None
    }

    async fn upload(
        &self,
        _bytes: Vec<u8>,
        _kind: MediaKind,
        _mime_type: String,
    ) -> Result<UploadedMedia, SendFailure> {
        Err(SendFailure::Invalid(
            "media is uploaded by the node that runs the session".into(),
        ))
    }

    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        wa_ids: &[String],
    ) -> Result<(), SendFailure> {
        self.call(Call::MarkRead {
            chat: chat.to_string(),
            sender: sender.map(ToString::to_string),
            wa_ids: wa_ids.to_vec(),
        })
        .await
        .map(drop)
    }

    async fn typing(&self, chat: &Jid, typing: Typing) -> Result<(), SendFailure> {
        self.call(Call::Typing {
            chat: chat.to_string(),
            typing,
        })
        .await
        .map(drop)
    }

    async fn check_contacts(&self, phones: &[String]) -> Result<Vec<ContactCheck>, SendFailure> {
        match self
            .call(Call::CheckContacts {
                phones: phones.to_vec(),
            })
            .await?
        {
            Reply::Contacts(checks) => Ok(checks),
            other => Err(unexpected(&other, "a contact check")),
        }
    }

    async fn change_chat(&self, chat: &Jid, change: ChatChange) -> Result<(), SendFailure> {
        self.call(Call::ChangeChat {
            chat: chat.to_string(),
            change,
        })
        .await
        .map(drop)
    }

    async fn request_history(
        &self,
        chat: &Jid,
        oldest: &OldestMessage,
        count: u32,
    ) -> Result<(), SendFailure> {
        self.call(Call::RequestHistory {
            chat: chat.to_string(),
            oldest: oldest.clone(),
            count,
        })
        .await
        .map(drop)
    }

    async fn set_presence(&self, presence: PresenceState) -> Result<(), SendFailure> {
        self.call(Call::SetPresence { presence }).await.map(drop)
    }

    async fn subscribe_presence(&self, contact: &Jid, subscribe: bool) -> Result<(), SendFailure> {
        self.call(Call::SubscribePresence {
            contact: contact.to_string(),
            subscribe,
        })
        .await
        .map(drop)
    }

    async fn reject_call(
        &self,
        call_id: &str,
        _peer: &str,
        _creator: &str,
    ) -> Result<(), SendFailure> {
        self.call(Call::Reject {
            call_id: call_id.to_string(),
        })
        .await
        .map(drop)
    }

    async fn contact_profile(&self, contact: &Jid) -> Result<ContactProfile, SendFailure> {
        match self
            .call(Call::ContactProfile {
                contact: contact.to_string(),
            })
            .await?
        {
            Reply::Profile(profile) => Ok(profile),
            other => Err(unexpected(&other, "a contact's profile")),
        }
    }

    async fn download_picture(&self, picture: &ProfilePicture) -> Result<Vec<u8>, SendFailure> {
        use base64::Engine as _;
        match self
            .call(Call::DownloadPicture {
                picture: picture.clone(),
            })
            .await?
        {
            Reply::Picture(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    SendFailure::Transient(format!("the owner sent a garbled picture: {e}"))
                }),
            other => Err(unexpected(&other, "a picture download")),
        }
    }

    async fn block(&self, contact: &Jid, block: bool) -> Result<(), SendFailure> {
        self.call(Call::Block {
            contact: contact.to_string(),
            block,
        })
        .await
        .map(drop)
    }
}

/// An answer of the wrong kind from the owner (a node of another build).
fn unexpected(reply: &Reply, asked: &str) -> SendFailure {
    SendFailure::Transient(format!("the owner answered {reply:?} to {asked}"))
}
