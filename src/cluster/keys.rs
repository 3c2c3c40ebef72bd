//! The Redis keyspace: every key and channel Switchyard uses, each named here once, all behind
//! `REDIS_CHANNEL_PREFIX` so that deployments (and test runs) can share one Redis.
//!
//! | name                                   | kind    | what                                      |
//! |----------------------------------------|---------|-------------------------------------------|
//! | `switchyard#deliver`                   | channel | numbered publications, to every instance  |
//! | `switchyard#rooms`                     | channel | room operations and count queries         |
//! | `switchyard#reply:{instance}`          | channel | answers to one instance's count queries, and its own probes |
//! | `switchyard:offset:{room}`             | string  | a room's last history offset              |
//! | `switchyard:claim:{name}`              | string  | a cluster-wide lock (`SET NX PX`)         |
//! | `switchyard:instances`                 | set     | instances that have sent a heartbeat      |
//! | `switchyard:instance:{instance}`       | string  | an instance's heartbeat (expires)         |
//! | `switchyard:instance-users:{instance}` | set     | users with a connection on that instance  |
//! | `switchyard:presence:{user}`           | hash    | a user's connections, by instance         |
//! | `switchyard:presence-rooms:{user}`     | string  | JSON list of the rooms his status goes to |
//! | `switchyard:log`                       | stream  | recorded publications, for the recovery window |
//! | `switchyard:generation`                | string  | the log's generation: new after a change of master |
//! | `switchyard:sessions:{instance}`       | hash    | resumable sessions connected to that instance |
//! | `switchyard:session:{id}`              | string  | a disconnected session, for the window    |
//! | `switchyard:session-home:{id}`         | string  | the instance a connected session is on    |
//! | `invitation-updates`, `notifications`, `switchyard:publish` | channels | backends' JSON messages |
//! | `socket.io#/#…`, `socket.io-request#/#` | channels | the Node `@socket.io/redis-emitter`      |

/// The JSON channels backends publish to, as the contracts name them.
pub const INVITATION_UPDATES: &str = "invitation-updates";
pub const NOTIFICATIONS: &str = "notifications";
pub const PUBLISH: &str = "switchyard:publish";
/// The Node emitter's default key.
const EMITTER_KEY: &str = "socket.io";

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

/// Names, with the prefix applied.
#[derive(Debug, Clone)]
pub struct Keyspace {
    prefix: String,
    instance: String,
}

impl Keyspace {
    pub fn new(prefix: &str, instance: &str) -> Self {
        Keyspace { prefix: prefix.to_owned(), instance: instance.to_owned() }
    }

    pub fn deliver_channel(&self) -> String {
        format!("{}switchyard#deliver", self.prefix)
    }
    pub fn rooms_channel(&self) -> String {
        format!("{}switchyard#rooms", self.prefix)
    }
    /// Where instances tell every admin UI what they hold (stats, sockets coming and going).
    pub fn admin_channel(&self) -> String {
        format!("{}switchyard#admin", self.prefix)
    }
    /// Where this instance hears answers to its queries.
    pub fn reply_channel(&self) -> String {
        format!("{}switchyard#reply:{}", self.prefix, self.instance)
    }
    pub fn offset(&self, room: &str) -> String {
        format!("{}switchyard:offset:{room}", self.prefix)
    }
    pub fn claim(&self, name: &str) -> String {
        format!("{}switchyard:claim:{name}", self.prefix)
    }
    pub fn instances(&self) -> String {
        format!("{}switchyard:instances", self.prefix)
    }
    pub fn heartbeat(&self, instance: &str) -> String {
        format!("{}switchyard:instance:{instance}", self.prefix)
    }
    pub fn instance_users(&self, instance: &str) -> String {
        format!("{}switchyard:instance-users:{instance}", self.prefix)
    }
    pub fn presence(&self, user: &str) -> String {
        format!("{}switchyard:presence:{user}", self.prefix)
    }
    pub fn presence_rooms(&self, user: &str) -> String {
        format!("{}switchyard:presence-rooms:{user}", self.prefix)
    }
    pub fn log(&self) -> String {
        format!("{}switchyard:log", self.prefix)
    }
    pub fn generation(&self) -> String {
        format!("{}switchyard:generation", self.prefix)
    }
    pub fn sessions(&self, instance: &str) -> String {
        format!("{}switchyard:sessions:{instance}", self.prefix)
    }
    pub fn session(&self, id: &str) -> String {
        format!("{}switchyard:session:{id}", self.prefix)
    }
    pub fn session_home(&self, id: &str) -> String {
        format!("{}switchyard:session-home:{id}", self.prefix)
    }

    fn json_channel(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
    fn emitter_broadcasts(&self) -> String {
        format!("{}{EMITTER_KEY}#/#", self.prefix)
    }
    fn emitter_requests(&self) -> String {
        format!("{}{EMITTER_KEY}-request#/#", self.prefix)
    }

    /// Every channel the subscriber subscribes to, and the one pattern (emitter broadcasts).
    pub fn subscriptions(&self) -> (Vec<String>, String) {
        let channels = vec![
            self.deliver_channel(),
            self.rooms_channel(),
            self.reply_channel(),
            self.admin_channel(),
            self.json_channel(INVITATION_UPDATES),
            self.json_channel(NOTIFICATIONS),
            self.json_channel(PUBLISH),
            self.emitter_requests(),
        ];
        (channels, format!("{}*", self.emitter_broadcasts()))
    }

    /// What a message on `channel` is; `None` for a channel this instance does not read.
    pub fn classify(&self, channel: &str) -> Option<Incoming> {
        if channel.starts_with(&self.emitter_broadcasts()) {
            return Some(Incoming::Backend(BackendChannel::EmitterBroadcast));
        }
        let bare = channel.strip_prefix(self.prefix.as_str())?;
        Some(match bare {
            "switchyard#deliver" => Incoming::Deliver,
            "switchyard#rooms" => Incoming::Rooms,
            "switchyard#admin" => Incoming::Admin,
            _ if channel == self.reply_channel() => Incoming::Reply,
            INVITATION_UPDATES => Incoming::Backend(BackendChannel::InvitationUpdates),
            NOTIFICATIONS => Incoming::Backend(BackendChannel::Notifications),
            PUBLISH => Incoming::Backend(BackendChannel::Publish),
            _ if channel == self.emitter_requests() => Incoming::Backend(BackendChannel::EmitterRequest),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscribed_channel_is_classified_as_what_it_carries() {
        let keys = Keyspace::new("t1:", "i1");
        let (channels, pattern) = keys.subscriptions();
        let kinds: Vec<_> = channels.iter().map(|c| keys.classify(c)).collect();
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
                Some(Incoming::Backend(BackendChannel::EmitterRequest)),
            ]
        );
        assert_eq!(pattern, "t1:socket.io#/#*");
        assert_eq!(keys.classify("t1:socket.io#/#org:1#"), Some(Incoming::Backend(BackendChannel::EmitterBroadcast)));
        assert_eq!(keys.classify("t1:switchyard#reply:other"), None, "another instance's replies");
        assert_eq!(keys.classify("t2:switchyard#deliver"), None, "another prefix");
    }
}
