//! The simulated WhatsApp server: who is connected, and what happens to each
//! stanza a client sends.

use std::sync::{Mutex, MutexGuard};

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::conn::{Outbound, OutboundTx};
use crate::error::SimError;
use crate::faults::{Faults, Stats};
use crate::noise::ServerIdentity;
use crate::stanza;
use crate::world::{Conn, Role, World};
use crate::{SimConfig, calls, iq, pairing, presence, relay};

pub(crate) use crate::world::ConnId;

pub(crate) struct Server {
    pub identity: ServerIdentity,
    pub stats: Stats,
    pub faults: Faults,
    pub config: SimConfig,
    world: Mutex<World>,
}

impl Server {
    pub(crate) fn new(config: SimConfig) -> Self {
        Self {
            identity: ServerIdentity::generate(),
            stats: Stats::default(),
            faults: Faults::default(),
            config,
            world: Mutex::new(World::default()),
        }
    }

    /// The world's lock. A panic while holding it would be a simulator bug;
    /// recovering the data keeps the other connections served regardless.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, tx: OutboundTx) -> ConnId {
        let mut w = self.world();
        w.next_conn += 1;
        let id = w.next_conn;
        w.conns.insert(
            id,
            Conn {
                tx,
                role: None,
                active: false,
            },
        );
        id
    }

    pub(crate) fn deregister(&self, conn: ConnId) {
        let mut w = self.world();
        let Some(c) = w.conns.remove(&conn) else {
            return;
        };
        match c.role {
            Some(Role::Device { phone, device }) => {
                if let Some(d) = w
                    .accounts
                    .get_mut(&phone)
                    .and_then(|a| a.devices.get_mut(&device))
                    && d.connection == Some(conn)
                {
                    d.connection = None;
                    d.last_seen = stanza::now_secs();
                    // What it said about itself went with the connection.
                    d.presence = None;
                }
            }
            Some(Role::Pairing(p)) => {
                for r in &p.refs {
                    w.refs.remove(r);
                }
                w.code_requests.retain(|_, c| *c != conn);
            }
            None => {}
        }
    }

    /// The handshake is done: either a new device wants to link, or a linked
    /// one logs in.
    pub(crate) fn on_login(
        &self,
        conn: ConnId,
        client_static: [u8; 32],
        payload: wa::ClientPayload,
    ) {
        let mut w = self.world();
        if let Some(reg) = payload.device_pairing_data.as_option() {
            pairing::start(&mut w, conn, client_static, reg, self.config.qr_refs);
            return;
        }
        let (Some(username), Some(device)) = (payload.username, payload.device) else {
            close_with(&w, conn, failure("401", &[]));
            return;
        };
        let phone = username.to_string();
        let device = u16::try_from(device).unwrap_or(u16::MAX);
        let Some(account) = w.accounts.get_mut(&phone) else {
            close_with(&w, conn, failure("401", &[]));
            return;
        };
        if let Some(secs) = account.banned_for_secs {
            let expire = secs.to_string();
            close_with(
                &w,
                conn,
                failure("402", &[("code", "101"), ("expire", expire.as_str())]),
            );
            return;
        }
        let lid = account.lid_jid();
        let Some(d) = account.devices.get_mut(&device) else {
            close_with(&w, conn, failure("401", &[]));
            return;
        };
        if d.noise_pub != client_static {
            close_with(&w, conn, failure("401", &[]));
            return;
        }
        // A second connection for the same device replaces the first, as on WhatsApp.
        let replaced = d.connection.replace(conn).filter(|old| *old != conn);
        if replaced.is_some() {
            d.replaced += 1;
            self.stats.connection_replaced();
        }
        d.last_seen = stanza::now_secs();
        if let Some(name) = payload.push_name.as_deref().filter(|n| !n.is_empty()) {
            d.push_name = name.to_owned();
        }
        if let Some(c) = w.conns.get_mut(&conn) {
            c.role = Some(Role::Device {
                phone: phone.clone(),
                device,
            });
        }
        if let Some(old) = replaced {
            let conflict = NodeBuilder::new("stream:error")
                .children([NodeBuilder::new("conflict")
                    .attr("type", "replaced")
                    .build()])
                .build();
            close_with(&w, old, conflict);
        }
        w.send(
            conn,
            NodeBuilder::new("success")
                .attr("t", stanza::now_secs().to_string())
                .attr("lid", lid)
                .attr("props", "1")
                .build(),
        );
    }

    pub(crate) fn on_node(&self, conn: ConnId, node: Node) {
        let mut w = self.world();
        match node.tag.as_ref() {
            "iq" => {
                iq::handle(&mut w, conn, &node);
                if iq::is_digest_query(&node) {
                    self.stats.digest_answered();
                }
            }
            "message" => relay::on_message(&mut w, conn, &node),
            "receipt" => relay::on_receipt(&mut w, conn, &node),
            "ack" => relay::on_ack(&mut w, conn, &node),
            "chatstate" => relay::on_chatstate(&mut w, conn, &node),
            "presence" => presence::on_presence(&mut w, conn, &node),
            "call" => calls::on_call(&mut w, conn, &node),
            // Acks of what we delivered, unified session markers: nothing
            // the simulator needs to act on.
            _ => {}
        }
    }

    // ---- operations the admin API and the library handle expose ----

    pub(crate) fn scan_qr(&self, phone: &str, qr: &str) -> Result<(), SimError> {
        pairing::scan(&mut self.world(), phone, qr)
    }

    pub(crate) fn drop_device(&self, phone: &str, device: u16) -> Result<(), SimError> {
        let w = self.world();
        let conn = connection_of(&w, phone, device)?;
        if let Some(c) = w.conns.get(&conn) {
            let _ = c.tx.send(Outbound::Drop);
        }
        Ok(())
    }

    pub(crate) fn stall_device(&self, phone: &str, device: u16) -> Result<(), SimError> {
        let w = self.world();
        let conn = connection_of(&w, phone, device)?;
        if let Some(c) = w.conns.get(&conn) {
            let _ = c.tx.send(Outbound::Stall);
        }
        Ok(())
    }

    pub(crate) fn drop_all(&self) -> usize {
        let w = self.world();
        for c in w.conns.values() {
            let _ = c.tx.send(Outbound::Drop);
        }
        w.conns.len()
    }

    pub(crate) fn stream_error(&self, phone: &str, device: u16, code: u16) -> Result<(), SimError> {
        let w = self.world();
        let conn = connection_of(&w, phone, device)?;
        close_with(&w, conn, stanza::stream_error(code));
        Ok(())
    }

    /// Removes the device from its account (as "Log out" on the phone does)
    /// and tells it so if it is online.
    pub(crate) fn logout_device(&self, phone: &str, device: u16) -> Result<(), SimError> {
        let mut w = self.world();
        let removed = w
            .accounts
            .get_mut(phone)
            .and_then(|a| a.devices.remove(&device))
            .ok_or(SimError::NoSuchDevice)?;
        if let Some(conn) = removed.connection {
            let removed = NodeBuilder::new("stream:error")
                .children([NodeBuilder::new("conflict")
                    .attr("type", "device_removed")
                    .build()])
                .build();
            close_with(&w, conn, removed);
        }
        Ok(())
    }

    /// From now on, logins of this phone's devices get a temporary ban; those
    /// online are disconnected so they see it.
    pub(crate) fn ban(&self, phone: &str, secs: Option<u64>) -> Result<(), SimError> {
        let mut w = self.world();
        let account = w.accounts.get_mut(phone).ok_or(SimError::NoSuchPhone)?;
        account.banned_for_secs = secs;
        let online: Vec<ConnId> = account
            .devices
            .values()
            .filter_map(|d| d.connection)
            .collect();
        if secs.is_some() {
            for conn in online {
                if let Some(c) = w.conns.get(&conn) {
                    let _ = c.tx.send(Outbound::Drop);
                }
            }
        }
        Ok(())
    }

    /// Links a device without the pairing dance, for load tests whose
    /// clients are raw protocol clients rather than full WhatsApp clients.
    pub(crate) fn provision_device(&self, phone: &str, noise_pub: [u8; 32]) -> u16 {
        let mut w = self.world();
        let account = w.account_mut(phone);
        let id = account.next_device_id;
        account.next_device_id += 1;
        account.devices.insert(
            id,
            crate::world::Device {
                id,
                key_index: u32::from(id),
                noise_pub,
                prekeys: Default::default(),
                signed_identity: Vec::new(),
                platform: "provisioned".into(),
                push_name: String::new(),
                connection: None,
                replaced: 0,
                last_seen: 0,
                offline: Default::default(),
                presence: None,
                app_state_synced: Default::default(),
                full_sync: false,
            },
        );
        id
    }

    pub(crate) fn devices(&self) -> Vec<crate::DeviceInfo> {
        devices(&self.world())
    }
}

/// Every linked device, by phone and device id.
pub(crate) fn devices(w: &World) -> Vec<crate::DeviceInfo> {
    let mut out: Vec<_> = w
        .accounts
        .values()
        .flat_map(|a| {
            a.devices.values().map(|d| crate::DeviceInfo {
                phone: a.phone.clone(),
                device: d.id,
                jid: format!("{}:{}@s.whatsapp.net", a.phone, d.id),
                push_name: d.push_name.clone(),
                platform: d.platform.clone(),
                connected: d.connection.is_some(),
                replaced: d.replaced,
                last_seen: d.last_seen,
                presence: d.presence.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.phone, a.device).cmp(&(&b.phone, b.device)));
    out
}

fn connection_of(w: &World, phone: &str, device: u16) -> Result<ConnId, SimError> {
    let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
    let d = account.devices.get(&device).ok_or(SimError::NoSuchDevice)?;
    d.connection.ok_or(SimError::DeviceOffline)
}

pub(crate) fn close_with(w: &World, conn: ConnId, node: Node) {
    if let Some(c) = w.conns.get(&conn) {
        let _ = c.tx.send(Outbound::NodeThenClose(node));
    }
}

fn failure(reason: &str, extra: &[(&'static str, &str)]) -> Node {
    let mut b = NodeBuilder::new("failure")
        .attr("reason", reason)
        .attr("location", "sim");
    for (k, v) in extra {
        b = b.attr(k, *v);
    }
    b.build()
}
