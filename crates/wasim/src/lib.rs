//! wasim: a protocol-level WhatsApp simulator.
//!
//! It speaks the real wire protocol (Noise over WebSocket, binary nodes,
//! protobuf, Signal) so that the real `whatsapp-rust` client links, chats and
//! fails against it on loopback. [`Simulator::start`] runs one in-process;
//! the `wasim` binary runs one standalone with an admin HTTP API.

#![forbid(unsafe_code)]

mod admin;
mod calls;
mod conn;
mod error;
mod faults;
#[doc(hidden)]
pub mod fuzzing;
mod groups;
mod history;
mod iq;
mod media;
mod media_crypto;
mod noise;
mod pair_code;
mod pairing;
mod phone;
mod phone_media;
mod prekeys;
mod presence;
mod profile;
pub mod raw_client;
mod relay;
mod server;
mod stanza;
mod syncd;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use calls::PhoneCall;
pub use error::SimError;
pub use faults::StatsSnapshot;
pub use groups::{GroupInfo, ParticipantResult};
pub use history::{HistoryChat, HistoryMessage, HistorySeed, PushName, SentChunk};
pub use media::LoopbackHttpClient;
pub use pair_code::CodeOutcome;
pub use phone::inbox::{PhoneChatState, PhoneMessage, PhoneReceipt};
pub use phone::{ChatAction, PhoneChat};
pub use phone_media::{Attachment, AttachmentKind, SentMedia};
pub use presence::Typing;
use server::Server;

/// Settings of one simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one.
    pub bind: SocketAddr,
    /// How many QR refs a new device gets (WhatsApp sends 6).
    pub qr_refs: usize,
    /// Delay of every stanza the server sends, and its jitter: a real
    /// network's latency for the sandbox and benchmarks (zero by default).
    pub latency: Duration,
    pub latency_jitter: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            qr_refs: 6,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
        }
    }
}

/// A linked device as the admin API reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    pub phone: String,
    pub device: u16,
    pub jid: String,
    pub push_name: String,
    pub platform: String,
    /// Whether the device has a connection open (at most one: a newer
    /// login replaces the older).
    pub connected: bool,
    /// How many of its connections a newer login of the same device
    /// replaced (`<stream:error><conflict type="replaced"/>`).
    pub replaced: u64,
    pub last_seen: u64,
    /// The last presence the device sent about itself (`available`,
    /// `unavailable`); `None` until it sends one.
    pub presence: Option<String>,
}

/// A running simulator. Dropping it stops it.
pub struct Simulator {
    addr: SocketAddr,
    handle: SimHandle,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let (latency, jitter) = (config.latency, config.latency_jitter);
        let server = Arc::new(Server::new(config));
        server.faults.set_latency(latency, jitter);
        server.world().media_host = addr.to_string();
        let app = router(server.clone());
        let shutdown = CancellationToken::new();
        let (phone_tx, phone_rx) = tokio::sync::mpsc::unbounded_channel();
        server.world().phone_tx = Some(phone_tx);
        tokio::spawn(phone::run(
            Arc::downgrade(&server),
            phone_rx,
            shutdown.clone(),
        ));
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(Self {
            addr,
            handle: SimHandle { server },
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL a client's WebSocket transport dials.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// The base URL of the admin API and the media endpoint.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Stops accepting and closes every connection.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        self.handle.drop_all();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/ws/chat", get(chat_socket))
        .merge(admin::routes())
        .merge(media::routes())
        .with_state(server)
}

async fn chat_socket(State(server): State<Arc<Server>>, ws: WebSocketUpgrade) -> Response {
    if server.faults.in_outage() {
        server.stats.connection_refused();
        return (StatusCode::SERVICE_UNAVAILABLE, "outage").into_response();
    }
    // Small socket buffers: a linked device is idle most of the time, and
    // thousands of them are the point of a load test.
    ws.max_message_size(16 << 20)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| conn::serve(socket, server))
}

/// Control over a running simulator: the fake phones' actions and the faults.
#[derive(Clone)]
pub struct SimHandle {
    server: Arc<Server>,
}

impl SimHandle {
    /// The phone `phone` scans a QR code a client showed.
    pub fn scan_qr(&self, phone: &str, qr: &str) -> Result<(), SimError> {
        check_phone(phone)?;
        self.server.scan_qr(phone, qr)
    }

    /// The phone `phone`'s user enters a pairing code a client showed (with or
    /// without its dash, any case). Resolves once the phone knows whether the
    /// code worked; a wrong code is an outcome, not an error.
    pub async fn enter_code(&self, phone: &str, code: &str) -> Result<CodeOutcome, SimError> {
        check_phone(phone)?;
        pair_code::enter(&self.server, phone, code).await
    }

    /// Drops one device's connection, as a network failure would.
    pub fn drop_device(&self, phone: &str, device: u16) -> Result<(), SimError> {
        self.server.drop_device(phone, device)
    }

    /// Makes one device's connection go silent while it stays open (a
    /// half-open connection): the device must notice by itself. Its next
    /// connection is served normally.
    pub fn stall_device(&self, phone: &str, device: u16) -> Result<(), SimError> {
        self.server.stall_device(phone, device)
    }

    /// Drops every connection; returns how many there were.
    pub fn drop_all(&self) -> usize {
        self.server.drop_all()
    }

    /// Refuses new connections for `duration` (zero ends the outage).
    pub fn outage(&self, duration: Duration) {
        self.server.faults.start_outage(duration);
    }

    /// Sends `<stream:error code=..>` to a device and closes its connection.
    pub fn stream_error(&self, phone: &str, device: u16, code: u16) -> Result<(), SimError> {
        self.server.stream_error(phone, device, code)
    }

    /// Unlinks a device, as "Log out" on the phone does.
    pub fn logout_device(&self, phone: &str, device: u16) -> Result<(), SimError> {
        self.server.logout_device(phone, device)
    }

    /// Bans the account temporarily (`None` lifts the ban).
    pub fn ban(&self, phone: &str, seconds: Option<u64>) -> Result<(), SimError> {
        self.server.ban(phone, seconds)
    }

    /// Delays every stanza the server sends.
    /// Every stanza the server sends waits `delay` ± `jitter`.
    pub fn set_latency(&self, delay: Duration, jitter: Duration) {
        self.server.faults.set_latency(delay, jitter);
    }

    pub fn set_response_delay(&self, delay: Duration) {
        self.server.faults.set_response_delay(delay);
    }

    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.server.devices()
    }

    /// Registers a linked device for `phone` that logs in with `noise_pub`,
    /// skipping the pairing flow (load tests); returns its device id.
    pub fn provision_device(&self, phone: &str, noise_pub: [u8; 32]) -> Result<u16, SimError> {
        check_phone(phone)?;
        Ok(self.server.provision_device(phone, noise_pub))
    }

    /// Registers `phone` on the simulated WhatsApp, as installing WhatsApp on
    /// a phone does: others can then find it (`is_on_whatsapp`), fetch its
    /// keys and message it. Any other use of a phone registers it too.
    pub fn register_phone(&self, phone: &str) -> Result<(), SimError> {
        check_phone(phone)?;
        let mut w = self.server.world();
        w.account_mut(phone);
        if phone::ensure_keys(&mut w, phone) {
            Ok(())
        } else {
            Err(SimError::Internal(
                "the phones' actor is not running".into(),
            ))
        }
    }

    /// [`register_phone`](Self::register_phone), under the LID `lid`
    /// (digits) rather than the next one: so that a companion can have
    /// heard of the LID (in its history, say) before the number's account
    /// is there.
    pub fn register_phone_with_lid(&self, phone: &str, lid: &str) -> Result<(), SimError> {
        check_phone(phone)?;
        if lid.is_empty() || !lid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SimError::Invalid(format!("not a LID: {lid:?}")));
        }
        {
            let mut w = self.server.world();
            if w.accounts
                .values()
                .any(|a| a.lid == lid && a.phone != phone)
            {
                return Err(SimError::Invalid(format!("LID {lid} is another account's")));
            }
            w.account_mut(phone).lid = lid.to_owned();
        }
        self.register_phone(phone)
    }

    /// The phone sends a text message as its primary device to `to` (a phone
    /// number or a JID), and a copy to its own companions. Returns the
    /// message id once it is on its way to every device.
    pub async fn phone_send_text(
        &self,
        phone: &str,
        to: &str,
        text: &str,
    ) -> Result<String, SimError> {
        check_phone(phone)?;
        let message = waproto::whatsapp::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        let answer = phone::send(&mut self.server.world(), phone, to, message)?;
        answer
            .await
            .unwrap_or_else(|_| Err(SimError::Invalid("the simulator is shutting down".into())))
    }

    /// The phone sends any message as its primary device (a reaction, an
    /// edit, a poll, ...), as [`phone_send_text`](Self::phone_send_text)
    /// sends a text.
    pub async fn phone_send_message(
        &self,
        phone: &str,
        to: &str,
        message: waproto::whatsapp::Message,
    ) -> Result<String, SimError> {
        check_phone(phone)?;
        let answer = phone::send(&mut self.server.world(), phone, to, message)?;
        answer
            .await
            .unwrap_or_else(|_| Err(SimError::Invalid("the simulator is shutting down".into())))
    }

    /// Creates a group chat of these phone numbers (their accounts are
    /// created if need be), silently, as if it had always been there: the
    /// first is its creator and admin. Returns its JID. A linked device of a
    /// member receives what other members send to it.
    pub fn create_group(&self, participants: &[&str]) -> Result<String, SimError> {
        for phone in participants {
            check_phone(phone)?;
        }
        let mut w = self.server.world();
        for phone in participants {
            w.account_mut(phone);
        }
        w.groups_made += 1;
        // WhatsApp's group ids: the creation time and a counter, digits.
        let jid = format!("1203630{:011}@g.us", w.groups_made);
        let creator = participants.first().map(|p| (*p).to_owned());
        let invite = format!("sim{}", w.groups_made);
        w.groups.insert(
            jid.clone(),
            world::Group {
                participants: participants.iter().map(|p| (*p).to_owned()).collect(),
                admins: creator.iter().cloned().collect(),
                creator,
                subject: "Group".to_owned(),
                invite,
                ..Default::default()
            },
        );
        Ok(jid)
    }

    /// The phone `creator` creates a group with `subject`, as WhatsApp
    /// does: the members that can be added are, every member's linked
    /// devices are told; a result per person named.
    pub fn group_create(
        &self,
        creator: &str,
        subject: &str,
        members: &[&str],
    ) -> Result<(String, Vec<ParticipantResult>), SimError> {
        check_phone(creator)?;
        let mut w = self.server.world();
        w.account_mut(creator);
        let members: Vec<String> = members
            .iter()
            .map(|m| format!("{m}@s.whatsapp.net"))
            .collect();
        Ok(groups::create(&mut w, creator, subject, &members, None)?)
    }

    /// The phone `by` (an admin) adds, removes, promotes or demotes
    /// (`action`) people by phone number; a result per person.
    pub fn group_change(
        &self,
        group: &str,
        by: &str,
        action: &str,
        people: &[&str],
    ) -> Result<Vec<ParticipantResult>, SimError> {
        let action = match action {
            "add" => groups::Change::Add,
            "remove" => groups::Change::Remove,
            "promote" => groups::Change::Promote,
            "demote" => groups::Change::Demote,
            other => return Err(SimError::Invalid(format!("no group action {other:?}"))),
        };
        let people: Vec<String> = people
            .iter()
            .map(|m| format!("{m}@s.whatsapp.net"))
            .collect();
        Ok(groups::change(
            &mut self.server.world(),
            group,
            by,
            action,
            &people,
        )?)
    }

    /// The phone `by` renames the group.
    pub fn group_set_subject(&self, group: &str, by: &str, subject: &str) -> Result<(), SimError> {
        Ok(groups::set_subject(
            &mut self.server.world(),
            group,
            by,
            subject,
        )?)
    }

    /// The phone `by` (an admin) turns announce mode (only admins send) or
    /// the lock (only admins edit the info) on or off.
    pub fn group_set(
        &self,
        group: &str,
        by: &str,
        announce: Option<bool>,
        locked: Option<bool>,
    ) -> Result<(), SimError> {
        let mut w = self.server.world();
        if let Some(on) = announce {
            groups::set(&mut w, group, by, groups::Setting::Announce(on))?;
        }
        if let Some(on) = locked {
            groups::set(&mut w, group, by, groups::Setting::Locked(on))?;
        }
        Ok(())
    }

    /// The phone leaves the group.
    pub fn group_leave(&self, group: &str, phone: &str) -> Result<(), SimError> {
        Ok(groups::leave(&mut self.server.world(), group, phone)?)
    }

    /// The group's invite code as the phone `by` (an admin) sees it; with
    /// `reset`, a new one.
    pub fn group_invite(&self, group: &str, by: &str, reset: bool) -> Result<String, SimError> {
        Ok(groups::invite(&mut self.server.world(), group, by, reset)?)
    }

    /// The phone joins a group through an invite code; returns the group's
    /// JID (waiting for approval is an error naming it).
    pub fn group_join(&self, phone: &str, code: &str) -> Result<String, SimError> {
        check_phone(phone)?;
        let mut w = self.server.world();
        w.account_mut(phone);
        match groups::join(&mut w, phone, code)? {
            groups::Joined::Joined(jid) => Ok(jid),
            groups::Joined::Requested(jid) => Err(SimError::Invalid(format!(
                "joining {jid} waits for an admin's approval"
            ))),
        }
    }

    /// The phone uses an invite code: it joins, or, in an approval-mode
    /// group, asks to (every member's devices are told of the request).
    /// Returns the group's JID and whether it is in.
    pub fn group_join_or_ask(&self, phone: &str, code: &str) -> Result<(String, bool), SimError> {
        check_phone(phone)?;
        let mut w = self.server.world();
        w.account_mut(phone);
        Ok(match groups::join(&mut w, phone, code)? {
            groups::Joined::Joined(jid) => (jid, true),
            groups::Joined::Requested(jid) => (jid, false),
        })
    }

    /// The phone `by` (an admin) approves or rejects the membership
    /// requests of `people` (phone numbers); a result per person.
    pub fn group_answer_requests(
        &self,
        group: &str,
        by: &str,
        approve: bool,
        people: &[&str],
    ) -> Result<Vec<ParticipantResult>, SimError> {
        let people: Vec<String> = people
            .iter()
            .map(|m| format!("{m}@s.whatsapp.net"))
            .collect();
        Ok(groups::answer_requests(
            &mut self.server.world(),
            group,
            by,
            approve,
            &people,
        )?)
    }

    /// The phone `by` sets (`Some(jpeg)`) or removes the group's picture;
    /// every member's devices are told. Returns the new picture's id
    /// (empty on removal).
    pub fn group_set_picture(
        &self,
        group: &str,
        by: &str,
        jpeg: Option<Vec<u8>>,
    ) -> Result<String, SimError> {
        Ok(groups::set_picture(
            &mut self.server.world(),
            group,
            by,
            jpeg,
        )?)
    }

    /// The group's picture as the server keeps it.
    pub fn group_picture(&self, group: &str) -> Option<Vec<u8>> {
        self.server
            .world()
            .groups
            .get(group)
            .and_then(|g| g.picture.as_ref())
            .map(|p| p.jpeg.clone())
    }

    /// A group as the server keeps it.
    pub fn group_info(&self, group: &str) -> Option<GroupInfo> {
        groups::info(&self.server.world(), group)
    }

    /// The phone's privacy settings refuse (or allow again) being added to
    /// groups: an add is answered with an invite instead.
    pub fn set_group_add_restricted(&self, phone: &str, restricted: bool) -> Result<(), SimError> {
        check_phone(phone)?;
        let mut w = self.server.world();
        if restricted {
            w.add_restricted.insert(phone.to_owned());
        } else {
            w.add_restricted.remove(phone);
        }
        Ok(())
    }

    /// Most members a group takes (WhatsApp's 1024 by default).
    pub fn set_group_limit(&self, limit: usize) {
        self.server.world().group_limit = limit;
    }

    /// The server names the group's members by LID from now on; with
    /// `hide_phones`, without their numbers.
    pub fn set_group_lid_addressed(&self, group: &str, hide_phones: bool) -> Result<(), SimError> {
        let mut w = self.server.world();
        let g = w.groups.get_mut(group).ok_or(SimError::GroupRefused {
            code: 404,
            text: "item-not-found",
        })?;
        g.lid_addressed = true;
        g.hide_phones = hide_phones;
        Ok(())
    }

    /// The phone sends `message` to a group it is in (see
    /// [`phone::send_group`]). Returns the message id once it is on its
    /// way to every member's linked devices.
    pub async fn phone_send_group(
        &self,
        phone: &str,
        group: &str,
        message: waproto::whatsapp::Message,
    ) -> Result<String, SimError> {
        check_phone(phone)?;
        let answer = phone::send_group(&mut self.server.world(), phone, group, message)?;
        answer
            .await
            .unwrap_or_else(|_| Err(SimError::Invalid("the simulator is shutting down".into())))
    }

    /// The phone's user votes on a poll it received, ticking `options`
    /// (none: the vote is taken back); see [`phone::vote`]. Returns the
    /// vote's message id once it is on its way.
    pub async fn phone_vote(
        &self,
        phone: &str,
        poll_id: &str,
        options: &[&str],
    ) -> Result<String, SimError> {
        check_phone(phone)?;
        let answer = {
            let mut w = self.server.world();
            let (chat, message) = phone::vote(&w, phone, poll_id, options)?;
            phone::send(&mut w, phone, &chat, message)?
        };
        answer
            .await
            .unwrap_or_else(|_| Err(SimError::Invalid("the simulator is shutting down".into())))
    }

    /// The phone sends `message` again under an id it used before, freshly
    /// encrypted: what reaches a device twice when an ack was lost.
    pub async fn phone_resend_message(
        &self,
        phone: &str,
        to: &str,
        id: &str,
        message: waproto::whatsapp::Message,
    ) -> Result<String, SimError> {
        check_phone(phone)?;
        let answer = phone::send_as(
            &mut self.server.world(),
            phone,
            to,
            message,
            Some(id.to_owned()),
        )?;
        answer
            .await
            .unwrap_or_else(|_| Err(SimError::Invalid("the simulator is shutting down".into())))
    }

    /// The phone sends an attachment: encrypted and put in the blob store
    /// first, then the media message that points at it.
    pub async fn phone_send_media(
        &self,
        phone: &str,
        to: &str,
        attachment: &Attachment,
    ) -> Result<SentMedia, SimError> {
        check_phone(phone)?;
        let answer = {
            let mut w = self.server.world();
            let (message, direct_path) = phone_media::upload(&mut w, attachment)?;
            (phone::send(&mut w, phone, to, message)?, direct_path)
        };
        let (answer, direct_path) = answer;
        let id = answer
            .await
            .unwrap_or_else(|_| Err(SimError::Invalid("the simulator is shutting down".into())))?;
        Ok(SentMedia { id, direct_path })
    }

    /// The media store forgets a blob, as WhatsApp's CDN does some weeks
    /// after a message was sent: downloads of it get a 404. Returns
    /// whether there was one.
    pub fn expire_media(&self, direct_path: &str) -> bool {
        self.server.world().blobs.remove(direct_path).is_some()
    }

    /// What the phone received, decrypted, oldest first; each (chat,
    /// sender, id) once, with `arrivals` counting repeats.
    pub fn phone_messages(&self, phone: &str) -> Result<Vec<PhoneMessage>, SimError> {
        phone::messages(&self.server.world(), phone).ok_or(SimError::NoSuchPhone)
    }

    /// The decrypted attachment of the phone's message `id` (the bytes the
    /// sender uploaded, checked against the message's hashes).
    pub fn phone_media(&self, phone: &str, id: &str) -> Result<bytes::Bytes, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        let message = account
            .phone_inbox
            .find(id)
            .ok_or(SimError::NoSuchMessage)?;
        message.media.clone().ok_or(SimError::NoMedia)
    }

    /// Receipts the server delivered to the phone (for messages it or its
    /// companions sent), oldest first.
    pub fn phone_receipts(&self, phone: &str) -> Result<Vec<PhoneReceipt>, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        Ok(account.phone_inbox.receipts().to_vec())
    }

    /// Typing indicators the server forwarded to the phone, oldest first.
    pub fn phone_chat_states(&self, phone: &str) -> Result<Vec<PhoneChatState>, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        Ok(account.phone_inbox.chat_states().to_vec())
    }

    /// The phone calls `to` (a phone number or JID): every linked device
    /// of that number gets the offer. Returns the call id. What the
    /// devices answer, [`phone_calls`](Self::phone_calls) shows.
    pub fn phone_call(&self, phone: &str, to: &str, video: bool) -> Result<String, SimError> {
        check_phone(phone)?;
        calls::place(&mut self.server.world(), phone, to, video)
    }

    /// The phone's user comes online (`true`) or goes offline: the
    /// devices subscribed to their presence are told.
    pub fn set_phone_presence(&self, phone: &str, online: bool) -> Result<(), SimError> {
        check_phone(phone)?;
        presence::set_phone_presence(&mut self.server.world(), phone, online)
    }

    /// The phone's user types, records or stops in their chat with `to`
    /// (a number or JID): the devices of `to` subscribed to their presence
    /// see it.
    pub fn phone_typing(&self, phone: &str, to: &str, typing: Typing) -> Result<(), SimError> {
        check_phone(phone)?;
        presence::phone_typing(&mut self.server.world(), phone, to, typing)
    }

    /// The phone hangs up a call it placed (`phone_call`) before it was
    /// answered: the devices it rang see the caller give up.
    pub fn phone_hang_up(&self, phone: &str, call_id: &str) -> Result<(), SimError> {
        check_phone(phone)?;
        calls::hang_up(&mut self.server.world(), phone, call_id)
    }

    /// What the devices the phone called answered, oldest first.
    pub fn phone_calls(&self, phone: &str) -> Result<Vec<PhoneCall>, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        Ok(account.phone_inbox.calls().to_vec())
    }

    /// Waits up to `timeout` for a call signal at the phone that `pick`
    /// accepts.
    pub async fn wait_phone_call(
        &self,
        phone: &str,
        timeout: Duration,
        mut pick: impl FnMut(&PhoneCall) -> bool,
    ) -> Option<PhoneCall> {
        self.wait_phone(timeout, |w| {
            let inbox = &w.accounts.get(phone)?.phone_inbox;
            inbox.calls().iter().find(|c| pick(c)).cloned()
        })
        .await
    }

    /// Waits up to `timeout` until the linked devices satisfy `ready`
    /// (e.g. "the device said it is unavailable"); returns them.
    pub async fn wait_devices(
        &self,
        timeout: Duration,
        mut ready: impl FnMut(&[DeviceInfo]) -> bool,
    ) -> Option<Vec<DeviceInfo>> {
        self.wait_phone(timeout, |w| {
            let devices = server::devices(w);
            ready(&devices).then_some(devices)
        })
        .await
    }

    /// The phone's user reads these messages: one `read` receipt per
    /// sender goes to every device of that sender's account.
    pub fn phone_read(&self, phone: &str, ids: &[String]) -> Result<Vec<String>, SimError> {
        phone::read(&mut self.server.world(), phone, phone::Reading::Ids(ids))
    }

    /// The phone's user opens a chat: everything unread in it is read.
    /// Returns the ids that were unread.
    pub fn phone_read_chat(&self, phone: &str, chat: &str) -> Result<Vec<String>, SimError> {
        phone::read(&mut self.server.world(), phone, phone::Reading::Chat(chat))
    }

    /// The phone's user archives, pins, mutes or marks read `chat` (a
    /// number or JID) on the phone: WhatsApp's app state carries it to the
    /// companions. Returns once the patch is on the server.
    pub async fn phone_chat_action(
        &self,
        phone: &str,
        chat: &str,
        action: ChatAction,
    ) -> Result<(), SimError> {
        let answer = phone::chat_action(&mut self.server.world(), phone, &chat_jid(chat), action)?;
        answer
            .await
            .map_err(|_| SimError::Internal("the phone actor stopped".into()))?
    }

    /// The phone's user saves `contact` (a number or JID) in the address
    /// book under `name` (`None`: removes the name); the account's
    /// companions hear of it through the app state.
    pub async fn phone_save_contact(
        &self,
        phone: &str,
        contact: &str,
        name: Option<String>,
    ) -> Result<(), SimError> {
        let jid = chat_jid(contact);
        // WhatsApp's apps name the LID along with the number when they
        // know it.
        let lid = {
            let w = self.server.world();
            relay::parse_jid(&jid)
                .and_then(|addr| relay::phone_of(&w, &addr))
                .and_then(|p| w.accounts.get(&p).map(|a| a.lid.clone()))
        };
        self.phone_chat_action(phone, &jid, ChatAction::SaveContact { name, lid })
            .await
    }

    /// The LID of `phone`'s account (its digits).
    pub fn lid_of(&self, phone: &str) -> Result<String, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        Ok(account.lid.clone())
    }

    /// `phone`'s about text from now on (`None`: none).
    pub fn set_about(&self, phone: &str, about: Option<String>) -> Result<(), SimError> {
        profile::set_about(&mut self.server.world(), phone, about)
    }

    /// `phone`'s profile picture from now on (`None`: removed; `hidden`:
    /// shown to nobody); the companions of each of `notify` get WhatsApp's
    /// `picture` notification. Returns the new picture's id.
    pub fn set_picture(
        &self,
        phone: &str,
        image: Option<bytes::Bytes>,
        hidden: bool,
        notify: &[String],
    ) -> Result<Option<u64>, SimError> {
        profile::set_picture(&mut self.server.world(), phone, image, hidden, notify)
    }

    /// The JIDs `phone`'s account blocked.
    pub fn blocklist(&self, phone: &str) -> Result<Vec<String>, SimError> {
        profile::blocklist(&self.server.world(), phone)
    }

    /// The phone's view of `chat`'s settings (default when it has none).
    pub fn phone_chat(&self, phone: &str, chat: &str) -> Result<PhoneChat, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        Ok(account
            .phone_chats
            .get(&chat_jid(chat))
            .cloned()
            .unwrap_or_default())
    }

    /// Waits up to `timeout` until the phone's view of `chat` satisfies
    /// `ready` (a companion's patch applied); returns it.
    pub async fn wait_phone_chat(
        &self,
        phone: &str,
        chat: &str,
        timeout: Duration,
        mut ready: impl FnMut(&PhoneChat) -> bool,
    ) -> Option<PhoneChat> {
        let chat = chat_jid(chat);
        self.wait_phone(timeout, |w| {
            let view = w.accounts.get(phone)?.phone_chats.get(&chat)?;
            ready(view).then(|| view.clone())
        })
        .await
    }

    /// Waits up to `timeout` until the linked device has fetched every
    /// app-state collection of the account up to its current version: what
    /// a change made after it reaches the device by `server_sync`. (A
    /// client still in its first sync of a collection skips the
    /// notification and reads the version it had asked for.)
    pub async fn wait_app_state_synced(&self, phone: &str, device: u16, timeout: Duration) -> bool {
        self.wait_phone(timeout, |w| {
            syncd::device_synced(w, phone, device).then_some(())
        })
        .await
        .is_some()
    }

    /// The phone's user plays a voice note (or audio, or video): a
    /// `played` receipt goes to the sender's devices.
    pub fn phone_play(&self, phone: &str, id: &str) -> Result<(), SimError> {
        phone::play(&mut self.server.world(), phone, id)
    }

    /// The server refuses the next `count` messages addressed to `phone`
    /// with `<ack class="message" error="{code}">` instead of relaying them
    /// (0 clears a pending refusal).
    pub fn nack_messages_to(&self, phone: &str, count: u32, code: u16) -> Result<(), SimError> {
        check_phone(phone)?;
        self.server.world().nacks.set(phone, count, code);
        Ok(())
    }

    /// Waits up to `timeout` for the phone to have received a message that
    /// `pick` accepts (one already there counts).
    pub async fn wait_phone_message(
        &self,
        phone: &str,
        timeout: Duration,
        mut pick: impl FnMut(&PhoneMessage) -> bool,
    ) -> Option<PhoneMessage> {
        self.wait_phone(timeout, |w| {
            let inbox = &w.accounts.get(phone)?.phone_inbox;
            inbox.messages().iter().find(|m| pick(m)).cloned()
        })
        .await
    }

    /// Adds chats to the phone's history (`history::seed`): every
    /// companion linked from now on gets them as history-sync chunks.
    /// Returns how many messages the phone's history holds.
    pub fn seed_history(&self, phone: &str, seed: HistorySeed) -> Result<usize, SimError> {
        history::seed(&mut self.server.world(), phone, seed)
    }

    /// The history chunks the phone sent its companions, in order.
    pub fn history_chunks(&self, phone: &str) -> Result<Vec<SentChunk>, SimError> {
        let w = self.server.world();
        let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
        Ok(account.history_sent.clone())
    }

    /// Waits up to `timeout` until the chunks the phone sent satisfy
    /// `ready` (e.g. "every chunk acknowledged"); returns them.
    pub async fn wait_history_chunks(
        &self,
        phone: &str,
        timeout: Duration,
        mut ready: impl FnMut(&[SentChunk]) -> bool,
    ) -> Option<Vec<SentChunk>> {
        self.wait_phone(timeout, |w| {
            let chunks = &w.accounts.get(phone)?.history_sent;
            ready(chunks).then(|| chunks.clone())
        })
        .await
    }

    /// Waits up to `timeout` until the phone's messages as a whole satisfy
    /// `ready` (e.g. "three arrived", "the edit applied"); returns them.
    pub async fn wait_phone_messages(
        &self,
        phone: &str,
        timeout: Duration,
        mut ready: impl FnMut(&[PhoneMessage]) -> bool,
    ) -> Option<Vec<PhoneMessage>> {
        self.wait_phone(timeout, |w| {
            let messages = w.accounts.get(phone)?.phone_inbox.messages();
            ready(messages).then(|| messages.to_vec())
        })
        .await
    }

    /// Waits up to `timeout` for a receipt at the phone that `pick` accepts.
    pub async fn wait_phone_receipt(
        &self,
        phone: &str,
        timeout: Duration,
        mut pick: impl FnMut(&PhoneReceipt) -> bool,
    ) -> Option<PhoneReceipt> {
        self.wait_phone(timeout, |w| {
            let inbox = &w.accounts.get(phone)?.phone_inbox;
            inbox.receipts().iter().find(|r| pick(r)).cloned()
        })
        .await
    }

    /// Waits up to `timeout` for a chat state at the phone that `pick` accepts.
    pub async fn wait_phone_chat_state(
        &self,
        phone: &str,
        timeout: Duration,
        mut pick: impl FnMut(&PhoneChatState) -> bool,
    ) -> Option<PhoneChatState> {
        self.wait_phone(timeout, |w| {
            let inbox = &w.accounts.get(phone)?.phone_inbox;
            inbox.chat_states().iter().find(|s| pick(s)).cloned()
        })
        .await
    }

    /// Re-checks `look` each time any phone's records (or a device's
    /// presence) change, until it
    /// finds something or `timeout` passes.
    async fn wait_phone<T>(
        &self,
        timeout: Duration,
        mut look: impl FnMut(&world::World) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let events = self.server.world().phone_events.clone();
        loop {
            // Registered before looking, so a change landing in between still wakes us.
            let woken = events.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(found) = look(&self.server.world()) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return None;
            }
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.server.stats.snapshot()
    }

    /// Waits (without polling) until the connection counters satisfy `ready`.
    pub async fn wait_for_stats(&self, ready: impl FnMut(&StatsSnapshot) -> bool) {
        self.server.stats.wait_until(ready).await;
    }
}

/// A chat as a number (`+1 555 0001`) or a JID -> its JID.
pub(crate) fn chat_jid(chat: &str) -> String {
    if chat.contains('@') {
        chat.to_owned()
    } else {
        let digits: String = chat.chars().filter(char::is_ascii_digit).collect();
        format!("{digits}@s.whatsapp.net")
    }
}

/// Phone numbers are digits only, in international format.
fn check_phone(phone: &str) -> Result<(), SimError> {
    let ok = (7..=15).contains(&phone.len())
        && phone.bytes().all(|b| b.is_ascii_digit())
        && !phone.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(SimError::InvalidPhone(
            "use 7 to 15 digits, international format, no + or spaces".into(),
        ))
    }
}
