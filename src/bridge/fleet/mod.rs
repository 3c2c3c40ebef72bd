//! Switchyard as a peer of a running Node Socket.IO fleet (`NODE_FLEET`): Node servers with
//! `@socket.io/redis-adapter` 8.x on the same Redis, behind the same load balancer, so that a
//! team can move its connections over one instance at a time.
//!
//! - [`NodeMirror`]: every publication a Switchyard instance accepts also reaches the sockets on
//!   Node servers, once, as a broadcast of the adapter's format from a uid no Node server can
//!   have (`switchyard:{instance}`); room operations sent through Switchyard reach them as the
//!   adapter's requests. What instances read back of their own mirrors is dropped.
//! - [`NodeFleet`]: what Node servers send. A broadcast with one JSON argument is published by
//!   the one instance that claims it, numbered and logged like any publication (so opted-in
//!   clients resume it); any other broadcast is delivered by each instance to its own sockets,
//!   as the emitter's are. Requests are answered as a Node peer answers them: socket ids,
//!   rooms, fetched sockets (secrets of the handshake redacted), server-side emits (answered
//!   `null`: Switchyard has no server-side handlers), broadcasts with acknowledgements, and
//!   room operations, the older one-socket forms included.
//!
//! - [`wire`]: the adapter's messages.

pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::admin::report;
use crate::bridge::emitter;
use crate::cluster::Bus;
use crate::cluster::node_fleet::NodeChannel;
use crate::hub::Hub;
use crate::publication::{Audience, Payload, Publication, RoomOp, Source};
use crate::publish::{Mirror, Publisher};
use crate::rooms::{self, Room};

use self::wire::{Ask, Request};

/// What Switchyard's uids start with; a Node adapter's uid is six URL-safe characters.
const UID_PREFIX: &str = "switchyard:";
/// The Node emitter's uid: its broadcasts are delivered by every instance, as they always were.
const EMITTER_UID: &str = "emitter";
/// How long an instance keeps counting a broadcast it saw (idle that long, it forgets); the
/// highest claim is kept for less, so that every instance starts again from one together.
const FORGET_COUNT: Duration = Duration::from_secs(10);
const CLAIM_KEPT: Duration = Duration::from_secs(5);

/// This instance's uid as Node servers see it.
pub fn uid(instance: &str) -> String {
    format!("{UID_PREFIX}{instance}")
}

/// Hands Switchyard's publications and room operations to the Node servers.
pub struct NodeMirror {
    uid: String,
    bus: Bus,
}

impl NodeMirror {
    pub fn new(bus: Bus) -> Self {
        NodeMirror { uid: uid(bus.instance()), bus }
    }
}

#[async_trait::async_trait]
impl Mirror for NodeMirror {
    /// A publication this instance accepted, for the Node servers' sockets (not what came from
    /// Node servers or the emitter, which they read themselves).
    async fn publication(&self, publication: &Publication) {
        if matches!(publication.source, Source::Emitter | Source::NodeServer | Source::Cluster) {
            return;
        }
        let one_room = match publication.audience.rooms.as_slice() {
            [room] if publication.audience.except.is_empty() => Some(room.name()),
            _ => None,
        };
        let channel = NodeChannel::Broadcast { one_room: one_room.as_deref() };
        self.bus.tell_node_servers(channel, wire::broadcast(&self.uid, publication)).await;
    }

    /// A room operation sent through this instance, for the Node servers' sockets.
    async fn room_op(&self, op: &RoomOp) {
        self.bus.tell_node_servers(NodeChannel::Requests, wire::room_request(&self.uid, op)).await;
    }
}

/// Reads what Node servers send and answers them, for this instance.
pub struct NodeFleet {
    bus: Bus,
    hub: Arc<Hub>,
    publisher: Publisher,
    /// How many times each broadcast (by digest) was seen lately, and when last.
    seen: Mutex<HashMap<String, (u64, Instant)>>,
}

impl NodeFleet {
    pub fn new(bus: Bus, hub: Arc<Hub>, publisher: Publisher) -> Self {
        NodeFleet { bus, hub, publisher, seen: Mutex::default() }
    }

    /// A broadcast on the adapter's channel (see the module doc).
    pub async fn broadcast(&self, payload: &[u8]) -> Result<(), String> {
        let Some(broadcast) = emitter::decode_broadcast(payload)? else { return Ok(()) };
        if broadcast.uid.starts_with(UID_PREFIX) {
            return Ok(()); // A Switchyard instance's mirror: delivered through the bus already.
        }
        let from_emitter = broadcast.uid == EMITTER_UID;
        let mut publication = emitter::publication(broadcast)?;
        let json = match &publication.data {
            Payload::Emitted { args, json: Some(json) } if args.len() == 1 && !from_emitter => json.clone(),
            _ => {
                self.publisher.deliver_received(&publication).await;
                return Ok(());
            }
        };
        let digest = sha1_smol::Sha1::from(payload).digest().to_string();
        if !self.bus.claim_occurrence(&format!("node-broadcast:{digest}"), self.occurrence(digest), CLAIM_KEPT).await {
            return Ok(());
        }
        publication.data = Payload::Json(json);
        publication.source = Source::NodeServer;
        publication.ephemeral = false;
        self.publisher.publish(publication).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The how-manieth time this broadcast is seen (forgetting those idle for [`FORGET_COUNT`]).
    fn occurrence(&self, digest: String) -> u64 {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap();
        seen.retain(|_, (_, last)| now.duration_since(*last) < FORGET_COUNT);
        let entry = seen.entry(digest).or_insert((0, now));
        *entry = (entry.0 + 1, now);
        entry.0
    }

    /// A request on the adapter's request channel, answered on the asker's own response
    /// channel. A broadcast with acknowledgements is answered as they come, without holding up
    /// the messages after it.
    pub async fn request(self: &Arc<Self>, payload: &[u8]) -> Result<(), String> {
        let Request { uid, request_id, ask } = wire::request(payload)?;
        if uid.starts_with(UID_PREFIX) {
            return Ok(()); // A Switchyard instance's mirror of a room operation it applied already.
        }
        let answer = |fields: Value| {
            let (bus, uid) = (self.bus.clone(), uid.clone());
            let payload = request_id.as_deref().map(|id| wire::answer(id, fields));
            async move {
                if let Some(payload) = payload {
                    bus.tell_node_servers(NodeChannel::Response { uid: &uid }, payload).await;
                }
            }
        };
        match ask {
            Ask::SocketIds(audience) => {
                let ids: Vec<String> = self.hub.sockets_in(&audience).iter().map(|s| s.id.to_string()).collect();
                answer(json!({"sockets": ids})).await;
            }
            Ask::AllRooms => answer(json!({"rooms": self.hub.socket_rooms().await})).await,
            Ask::Rooms(op) => self.publisher.apply_received(&op).await,
            Ask::OneSocket { sid, action } => {
                let held = sid.parse().ok().and_then(|sid| self.hub.socket(sid)).is_some();
                if held {
                    let target = Audience::rooms(vec![Room::connection(&sid)]);
                    self.publisher.apply_received(&RoomOp { target, action }).await;
                    answer(json!({})).await;
                }
            }
            Ask::Fetch(audience) => {
                let sockets: Vec<Value> = self.hub.sockets_in(&audience).iter().map(fetched).collect();
                answer(json!({"sockets": sockets})).await;
            }
            Ask::ServerSideEmit => answer(json!({"type": 6, "data": null})).await,
            Ask::BroadcastWithAck { event, args, audience, timeout } => {
                let Some(request_id) = request_id else {
                    return Err("a broadcast with acks without a requestId".into());
                };
                let fleet = self.clone();
                tokio::spawn(async move {
                    fleet.broadcast_with_acks(&uid, &request_id, (&event, &args), &audience, timeout).await
                });
            }
            Ask::Unknown(kind) => tracing::debug!(kind, "a Node adapter request of a type this version does not know"),
        }
        Ok(())
    }

    /// Sends the event to the audience's sockets here, says to how many, then forwards each
    /// acknowledgement as it comes.
    async fn broadcast_with_acks(
        &self,
        uid: &str,
        request_id: &str,
        (event, args): (&str, &[rmpv::Value]),
        audience: &Audience,
        timeout: Duration,
    ) {
        let (count, acks) = self.hub.emit_with_acks(audience, event, args, timeout).await;
        let to = NodeChannel::Response { uid };
        self.bus.tell_node_servers(to, wire::client_count(request_id, count)).await;
        let Some(acks) = acks else { return };
        let mut acks = std::pin::pin!(acks);
        while let Some((_, ack)) = acks.next().await {
            if let Ok(arg) = ack {
                self.bus.tell_node_servers(to, wire::acknowledgement(request_id, arg)).await;
            }
        }
    }
}

/// A socket as a Node server's `fetchSockets()` reads it: id, handshake (its secrets
/// redacted, as the admin UI shows it), rooms and data.
fn fetched(socket: &socketioxide::extract::SocketRef) -> Value {
    let mut described = report::socket(socket, "/");
    if let Some(handshake) = described.get_mut("handshake").and_then(Value::as_object_mut) {
        handshake.insert("auth".into(), json!({}));
    }
    if let Some(rooms) = described.get_mut("rooms").and_then(Value::as_array_mut) {
        rooms.retain(|r| !r.as_str().is_some_and(rooms::is_bookkeeping));
    }
    described
}
