//! The Redis keyspace: every key and channel Switchyard uses, each named here once, all behind
//! `REDIS_CHANNEL_PREFIX` so that deployments (and test runs) can share one Redis.
//!
//! On one server (or a Sentinel-watched master) the names start `{prefix}switchyard`. On a
//! Redis Cluster they start `{{prefix}switchyard}`: one hash tag, so that every key and every
//! channel the bus uses is in one slot, and each numbering script (a publication's rooms, its
//! log entries, its channels) runs on one shard; the bus's channels are then sharded
//! (`SPUBLISH`/`SSUBSCRIBE`). Backends' channels keep their contract names on every topology.
//!
//! | name (after the prefix)                | kind    | what                                      |
//! |----------------------------------------|---------|-------------------------------------------|
//! | `switchyard#room:{room}`               | channel | numbered publications to a room, read by the instances with a member in it |
//! | `switchyard#everyone`                  | channel | numbered publications to everyone, read by every instance |
//! | `switchyard#deliver`                   | channel | every publication, as builds before interest-based delivery read them (see below) |
//! | `switchyard#rooms`                     | channel | room operations and count queries         |
//! | `switchyard#reply:{instance}`          | channel | answers to one instance's count queries, and its own probes |
//! | `switchyard#admin`                     | channel | what instances tell the admin UIs         |
//! | `switchyard:offset:{room}`             | string  | a room's last history offset              |
//! | `switchyard:claim:{name}`              | string  | a cluster-wide lock (`SET NX PX`)         |
//! | `switchyard:instances`                 | set     | instances that have sent a heartbeat      |
//! | `switchyard:instance:{instance}`       | string  | an instance's heartbeat (expires)         |
//! | `switchyard:instance-users:{instance}` | set     | users with a connection on that instance  |
//! | `switchyard:presence:{user}`           | hash    | a user's connections, by instance         |
//! | `switchyard:presence-rooms:{user}`     | string  | JSON list of the rooms his status goes to |
//! | `switchyard:log:room:{room}`           | stream  | recorded publications to a room, for the recovery window |
//! | `switchyard:log:everyone`              | stream  | recorded publications to everyone         |
//! | `switchyard:log-last`                  | string  | the newest log position (positions are one sequence across streams) |
//! | `switchyard:log-generation`            | string  | the log's generation: new after a change of master |
//! | `switchyard:sessions:{instance}`       | hash    | resumable sessions connected to that instance |
//! | `switchyard:session:{id}`              | string  | a disconnected session, for the window    |
//! | `switchyard:session-home:{id}`         | string  | the instance a connected session is on    |
//! | `invitation-updates`, `notifications`, `switchyard:publish` | channels | backends' JSON messages |
//! | `socket.io#/#…`, `socket.io-request#/#` | patterns | the Node `@socket.io/redis-emitter` and Node servers' `@socket.io/redis-adapter` (the request channel read by pattern, so Node's adapter does not count this instance as a peer; subscribed as a channel with `NODE_FLEET`, when it answers as one) |
//! | `socket.io-response#/#{uid}#` | channel | answers to one Node server's requests (published only) |

//!
//! During a rolling upgrade from a build before interest-based delivery (its instances publish
//! and read `switchyard#deliver` only, and log in `switchyard:log`), instances of this build read
//! that channel too, and while one of the older instances is subscribed they publish there as
//! well; each instance delivers a publication once however many copies it reads. The log's
//! generation has a key of its own, so a session moved between the two builds resumes with
//! `recovered: false` rather than from a log the other build does not write.

use crate::config::NODE_ADAPTER_KEY;

/// The JSON channels backends publish to, as the contracts name them.
pub const INVITATION_UPDATES: &str = "invitation-updates";
pub const NOTIFICATIONS: &str = "notifications";
pub const PUBLISH: &str = "switchyard:publish";

/// A channel backends (not instances) publish to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChannel {
    InvitationUpdates,
    Notifications,
    Publish,
    /// An emitter broadcast (msgpack), on `socket.io#/#` or `socket.io#/#{room}#`.
    EmitterBroadcast,
    /// An emitter request (JSON): `socketsJoin`, `socketsLeave`, `disconnectSockets`.
    EmitterRequest,
}

impl BackendChannel {
    /// The contract's name of a JSON channel (for logs and claims).
    pub fn name(self) -> &'static str {
        match self {
            BackendChannel::InvitationUpdates => INVITATION_UPDATES,
            BackendChannel::Notifications => NOTIFICATIONS,
            BackendChannel::Publish => PUBLISH,
            BackendChannel::EmitterBroadcast => "emitter broadcast",
            BackendChannel::EmitterRequest => "emitter request",
        }
    }
}

/// What a message on a subscribed channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    Deliver,
    Rooms,
    Reply,
    /// What the admin UI shows, from every instance.
    Admin,
    Backend(BackendChannel),
}

/// Who an instance is on the bus, and what its names start with.
pub struct Names<'a> {
    /// Goes before every key and channel (`REDIS_CHANNEL_PREFIX`).
    pub prefix: &'a str,
    pub instance: &'a str,
    /// The Node adapter's and emitter's key (`NODE_ADAPTER_KEY`).
    pub node_adapter_key: &'a str,
    /// Whether this instance answers Node servers as their adapter's peer (`NODE_FLEET`).
    pub node_peer: bool,
}

/// Names, with the prefix applied.
#[derive(Debug, Clone)]
pub struct Keyspace {
    prefix: String,
    /// What every bus key and channel starts with: `{prefix}switchyard`, hash-tagged on a Cluster.
    base: String,
    instance: String,
    sharded: bool,
    /// The Node adapter's key (`socket.io`), after the prefix.
    node_key: String,
    /// Whether this instance answers Node servers' requests as an adapter peer (`NODE_FLEET`).
    node_peer: bool,
}

/// Where a numbered publication travels: its rooms' channels (and log streams), or everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream<'a> {
    Room(&'a str),
    Everyone,
}

impl Keyspace {
    /// `sharded`: on a Redis Cluster (one hash tag, sharded channels).
    pub fn new(prefix: &str, instance: &str, sharded: bool) -> Self {
        let base = if sharded { format!("{{{prefix}switchyard}}") } else { format!("{prefix}switchyard") };
        Keyspace {
            prefix: prefix.to_owned(),
            base,
            instance: instance.to_owned(),
            sharded,
            node_key: format!("{prefix}{NODE_ADAPTER_KEY}"),
            node_peer: false,
        }
    }

    /// The Node adapter's `key` (after the prefix), and whether this instance is its peer.
    pub fn with_node_adapter(self, key: &str, peer: bool) -> Self {
        Keyspace { node_key: format!("{}{key}", self.prefix), node_peer: peer, ..self }
    }

    /// Whether the bus's channels are sharded (published with `SPUBLISH`).
    pub fn sharded(&self) -> bool {
        self.sharded
    }

    /// The command that publishes on the bus's channels.
    pub fn publish_command(&self) -> &'static str {
        if self.sharded { "SPUBLISH" } else { "PUBLISH" }
    }

    /// Where publications to `stream` are published.
    pub fn deliver_channel(&self, stream: Stream) -> String {
        match stream {
            Stream::Room(room) => format!("{}#room:{room}", self.base),
            Stream::Everyone => format!("{}#everyone", self.base),
        }
    }
    /// Where builds before interest-based delivery publish and read every publication.
    pub fn legacy_deliver_channel(&self) -> String {
        format!("{}#deliver", self.base)
    }
    pub fn rooms_channel(&self) -> String {
        format!("{}#rooms", self.base)
    }
    /// Where instances tell every admin UI what they hold (stats, sockets coming and going).
    pub fn admin_channel(&self) -> String {
        format!("{}#admin", self.base)
    }
    /// Where this instance hears answers to its queries.
    pub fn reply_channel(&self) -> String {
        format!("{}#reply:{}", self.base, self.instance)
    }
    pub fn offset(&self, room: &str) -> String {
        format!("{}:offset:{room}", self.base)
    }
    pub fn claim(&self, name: &str) -> String {
        format!("{}:claim:{name}", self.base)
    }
    pub fn instances(&self) -> String {
        format!("{}:instances", self.base)
    }
    pub fn heartbeat(&self, instance: &str) -> String {
        format!("{}:instance:{instance}", self.base)
    }
    pub fn instance_users(&self, instance: &str) -> String {
        format!("{}:instance-users:{instance}", self.base)
    }
    pub fn presence(&self, user: &str) -> String {
        format!("{}:presence:{user}", self.base)
    }
    pub fn presence_rooms(&self, user: &str) -> String {
        format!("{}:presence-rooms:{user}", self.base)
    }
    /// The recovery log of `stream`.
    pub fn log(&self, stream: Stream) -> String {
        match stream {
            Stream::Room(room) => format!("{}:log:room:{room}", self.base),
            Stream::Everyone => format!("{}:log:everyone", self.base),
        }
    }
    /// The newest position handed out in any log stream.
    pub fn log_last(&self) -> String {
        format!("{}:log-last", self.base)
    }
    pub fn generation(&self) -> String {
        format!("{}:log-generation", self.base)
    }
    pub fn sessions(&self, instance: &str) -> String {
        format!("{}:sessions:{instance}", self.base)
    }
    pub fn session(&self, id: &str) -> String {
        format!("{}:session:{id}", self.base)
    }
    pub fn session_home(&self, id: &str) -> String {
        format!("{}:session-home:{id}", self.base)
    }

    fn json_channel(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    /// Where Node servers and the emitter broadcast (`…#{room}#` after it for one room).
    pub fn node_broadcasts(&self) -> String {
        format!("{}#/#", self.node_key)
    }
    /// Where Node servers ask their peers, and the emitter sends room operations.
    pub fn node_requests(&self) -> String {
        format!("{}-request#/#", self.node_key)
    }
    /// Where the Node server whose adapter is `uid` hears answers meant for it alone.
    pub fn node_response(&self, uid: &str) -> String {
        format!("{}-response#/#{uid}#", self.node_key)
    }

    /// The bus's own channels every instance reads (sharded on a Cluster); room channels come
    /// and go with the rooms that have members here.
    pub fn bus_channels(&self) -> Vec<String> {
        let mut channels = vec![
            self.deliver_channel(Stream::Everyone),
            self.rooms_channel(),
            self.reply_channel(),
            self.admin_channel(),
        ];
        if !self.sharded {
            channels.push(self.legacy_deliver_channel());
        }
        channels
    }

    /// The backends' channels (never sharded: backends publish with `PUBLISH`), and the
    /// patterns: the Node broadcasts (`socket.io#/#*`) and the request channel. `PUBSUB NUMSUB`
    /// of the request channel is how a Node server's `@socket.io/redis-adapter` counts its peers
    /// (and then waits for each one's answer): an instance that answers them (`NODE_FLEET`)
    /// subscribes it as a channel, one that does not reads it through an exact pattern, which
    /// that count leaves out.
    pub fn backend_channels(&self) -> (Vec<String>, Vec<String>) {
        let mut channels =
            vec![self.json_channel(INVITATION_UPDATES), self.json_channel(NOTIFICATIONS), self.json_channel(PUBLISH)];
        let mut patterns = vec![format!("{}*", glob_escaped(&self.node_broadcasts()))];
        if self.node_peer {
            channels.push(self.node_requests());
        } else {
            patterns.push(glob_escaped(&self.node_requests()));
        }
        (channels, patterns)
    }

    /// What a message on `channel` is; `None` for a channel this instance does not read.
    pub fn classify(&self, channel: &str) -> Option<Incoming> {
        if channel.starts_with(&self.node_broadcasts()) {
            return Some(Incoming::Backend(BackendChannel::EmitterBroadcast));
        }
        let bus = channel.strip_prefix(self.base.as_str()).and_then(|bus| match bus {
            "#everyone" | "#deliver" => Some(Incoming::Deliver),
            _ if bus.starts_with("#room:") => Some(Incoming::Deliver),
            "#rooms" => Some(Incoming::Rooms),
            "#admin" => Some(Incoming::Admin),
            _ if channel == self.reply_channel() => Some(Incoming::Reply),
            _ => None,
        });
        if bus.is_some() {
            return bus;
        }
        let bare = channel.strip_prefix(self.prefix.as_str())?;
        Some(match bare {
            INVITATION_UPDATES => Incoming::Backend(BackendChannel::InvitationUpdates),
            NOTIFICATIONS => Incoming::Backend(BackendChannel::Notifications),
            PUBLISH => Incoming::Backend(BackendChannel::Publish),
            _ if channel == self.node_requests() => Incoming::Backend(BackendChannel::EmitterRequest),
            _ => return None,
        })
    }
}

/// `name` as a pattern that matches it alone (a prefix may hold `*`, `?`, `[` or `\\`).
fn glob_escaped(name: &str) -> String {
    let mut pattern = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscribed_channel_is_classified_as_what_it_carries() {
        for sharded in [false, true] {
            let keys = Keyspace::new("t1:", "i1", sharded);
            let (backend, patterns) = keys.backend_channels();
            let bus = keys.bus_channels();
            assert_eq!(bus.len(), if sharded { 4 } else { 5 }, "the older builds' channel on one server only");
            let channels = bus.into_iter().take(4).chain(backend);
            let kinds: Vec<_> = channels.map(|c| keys.classify(&c)).collect();
            assert_eq!(
                kinds,
                [
                    Some(Incoming::Deliver),
                    Some(Incoming::Rooms),
                    Some(Incoming::Reply),
                    Some(Incoming::Admin),
                    Some(Incoming::Backend(BackendChannel::InvitationUpdates)),
                    Some(Incoming::Backend(BackendChannel::Notifications)),
                    Some(Incoming::Backend(BackendChannel::Publish)),
                ]
            );
            assert_eq!(patterns, ["t1:socket.io#/#*", "t1:socket.io-request#/#"]);
            assert_eq!(
                keys.classify("t1:socket.io-request#/#"),
                Some(Incoming::Backend(BackendChannel::EmitterRequest))
            );
            let room = keys.deliver_channel(Stream::Room("org:1"));
            assert_eq!(keys.classify(&room), Some(Incoming::Deliver));
            assert_eq!(keys.classify(&keys.legacy_deliver_channel()), Some(Incoming::Deliver));
            assert_eq!(
                keys.classify("t1:socket.io#/#org:1#"),
                Some(Incoming::Backend(BackendChannel::EmitterBroadcast))
            );
            let other = Keyspace::new("t1:", "other", sharded);
            assert_eq!(keys.classify(&other.reply_channel()), None, "another instance's replies");
            let elsewhere = Keyspace::new("t2:", "i1", sharded);
            assert_eq!(keys.classify(&elsewhere.rooms_channel()), None, "another prefix");
        }
    }

    #[test]
    fn a_node_fleet_peer_subscribes_the_request_channel_itself() {
        let keys = Keyspace::new("t1:", "i1", false).with_node_adapter("app", true);
        let (channels, patterns) = keys.backend_channels();
        assert_eq!(channels.last().unwrap(), "t1:app-request#/#");
        assert_eq!(patterns, ["t1:app#/#*"]);
        assert_eq!(keys.classify("t1:app#/#"), Some(Incoming::Backend(BackendChannel::EmitterBroadcast)));
        assert_eq!(keys.classify("t1:app-request#/#"), Some(Incoming::Backend(BackendChannel::EmitterRequest)));
        assert_eq!(keys.node_response("AbC12x"), "t1:app-response#/#AbC12x#");
        assert_eq!(keys.classify("t1:socket.io#/#"), None, "the default key is not read under another");
    }

    #[test]
    fn a_prefix_with_glob_characters_matches_itself_only() {
        let (_, patterns) = Keyspace::new("a*[b]?:", "i1", false).backend_channels();
        assert_eq!(patterns, [r"a\*\[b\]\?:socket.io#/#*", r"a\*\[b\]\?:socket.io-request#/#"]);
    }

    #[test]
    fn on_a_cluster_every_bus_name_shares_one_hash_tag() {
        let keys = Keyspace::new("t1:", "i1", true);
        let names = [keys.offset("org:1"), keys.log(Stream::Room("user:2")), keys.deliver_channel(Stream::Everyone)];
        assert!(names.iter().all(|n| n.starts_with("{t1:switchyard}")), "{names:?}");
        assert_eq!(Keyspace::new("t1:", "i1", false).offset("org:1"), "t1:switchyard:offset:org:1");
    }
}
