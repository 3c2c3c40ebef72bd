//! The operator's screen: the official `@socket.io/admin-ui` connects to the `/admin`
//! namespace and is told what its own Node server would tell it: `config` (the features it may
//! use), `all_sockets`, `server_stats` every 2 s, and sockets connecting and disconnecting. Its
//! commands (`join`, `leave`, `_disconnect`, `emit`) become room operations and publications on
//! the one road, so they reach sockets on every instance.
//!
//! On when `ADMIN_USERNAME` and `ADMIN_PASSWORD` are set; otherwise every connection to
//! `/admin` is refused with `admin_disabled`. Logins are throttled per client address
//! (`ADMIN_LOGIN_RATE`, [`login`]). Across instances, everything the UI is told goes
//! through the cluster bus ([`Bus::tell_admins`]): each instance reports its own stats and
//! sockets, and one that sees a new admin UI asks the others to introduce their sockets to it
//! (a roll call), so the UI shows the whole cluster.
//!
//! - [`report`]: the shapes the UI reads.
//! - [`login`]: how often an address may try to log in, and one password check at a time.

pub mod login;
pub mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio_util::sync::CancellationToken;

use self::login::{LoginGate, TooMany};
use self::report::{ConnectedAt, Tally};
use crate::cluster::{self, Bus};
use crate::config::AdminLogin;
use crate::event::EventName;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::publication::{Audience, Publication, RoomAction, RoomOp, Source, SpreadArgs};
use crate::publish::Publisher;
use crate::sessions::{TrustedProxies, digest};

pub const NAMESPACE: &str = "/admin";
/// How often each instance reports its `server_stats` (the UI marks a server unhealthy after
/// 10 s of silence).
const REPORT_EVERY: Duration = Duration::from_secs(2);
/// Every feature of the admin UI's protocol, development mode included (the Sockets, Rooms,
/// Clients and Events pages).
const FEATURES: [&str; 9] =
    ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"];

/// The events the admin UI listens for (besides `config` and `all_sockets`, sent on connect).
const SERVER_STATS: &str = "server_stats";
const SOCKET_CONNECTED: &str = "socket_connected";
const SOCKET_DISCONNECTED: &str = "socket_disconnected";
const ROOM_JOINED: &str = "room_joined";
const ROOM_LEFT: &str = "room_left";

/// Why a connection to `/admin` was refused (the message is what the UI shows).
#[derive(Debug, thiserror::Error)]
pub enum AdminRefusal {
    #[error("admin_disabled: the admin UI is off on this server; set ADMIN_USERNAME and ADMIN_PASSWORD to turn it on")]
    Disabled,
    /// The exact words the admin UI recognizes (it then shows "Invalid credentials").
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Over `ADMIN_LOGIN_RATE` from this address: refused without checking the password.
    #[error("admin_login_rate: too many login attempts from this address; retry in {}s", .0.retry_in.as_secs())]
    TooManyAttempts(TooMany),
}

/// What instances tell the admin UIs: events for every UI (or one), or a roll call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    Events {
        /// One admin UI's socket id; every admin UI when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        events: Vec<(String, Vec<Value>)>,
    },
    /// A new admin UI on instance `from`: every other instance introduces its sockets to it.
    RollCall { reply_to: String, from: String },
}

pub struct Admin {
    login: Option<AdminLogin>,
    gate: LoginGate,
    io: SocketIo,
    bus: Option<Bus>,
    publisher: Publisher,
    /// This instance's connections, counted for the report.
    hub: Arc<Hub>,
    instance: String,
    started: Instant,
    hostname: String,
    tally: Tally,
}

impl Admin {
    /// `proxies` and `metrics`: to read a login's client address, and to count refused ones.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        login: Option<AdminLogin>,
        io: SocketIo,
        bus: Option<Bus>,
        publisher: Publisher,
        hub: Arc<Hub>,
        instance: &str,
        started: Instant,
        proxies: TrustedProxies,
        metrics: Arc<Metrics>,
    ) -> Admin {
        let per_minute = login.as_ref().map_or(1, |l| l.attempts_per_minute);
        Admin {
            gate: LoginGate::new(per_minute, proxies, metrics),
            login,
            io,
            bus,
            publisher,
            hub,
            instance: instance.to_owned(),
            started,
            hostname: report::hostname(),
            tally: Tally::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.login.is_some()
    }

    /// A socket of the main namespace connected: every admin UI hears of it.
    pub fn socket_connected(self: &Arc<Self>, socket: &SocketRef) {
        self.tally.opened();
        // Kept whether or not the admin UI is on: Node servers' fetchSockets read it too.
        socket.extensions.insert(ConnectedAt(report::now_ms()));
        if !self.enabled() {
            return;
        }
        let event = (SOCKET_CONNECTED.to_owned(), vec![report::socket(socket, "/"), report::timestamp()]);
        self.spawn_tell(None, vec![event]);
    }

    /// A socket of the main namespace disconnected (called before it leaves its rooms): every
    /// admin UI hears of it, and of each room it left.
    pub fn socket_disconnected(self: &Arc<Self>, socket: &SocketRef, reason: &str) {
        self.tally.closed();
        if !self.enabled() {
            return;
        }
        let (id, at) = (socket.id.to_string(), report::timestamp());
        let mut events = vec![(SOCKET_DISCONNECTED.to_owned(), vec![json!("/"), json!(id), json!(reason), at.clone()])];
        for room in socket.rooms() {
            events.push((ROOM_LEFT.to_owned(), vec![json!("/"), json!(room.to_string()), json!(id), at.clone()]));
        }
        self.spawn_tell(None, events);
    }

    /// Reports this instance's `server_stats` every [`REPORT_EVERY`] until `stop`.
    pub async fn report_periodically(self: Arc<Self>, stop: CancellationToken) {
        if !self.enabled() {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REPORT_EVERY) => {}
            }
            let stats = self.server_stats();
            self.tell(None, vec![(SERVER_STATS.to_owned(), vec![stats])]).await;
        }
    }

    fn server_stats(&self) -> Value {
        let sockets = self.io.of("/").map(|ns| ns.sockets()).unwrap_or_default();
        let admins = self.io.of(NAMESPACE).map(|ns| ns.sockets()).unwrap_or_default();
        let polling = sockets
            .iter()
            .chain(&admins)
            .filter(|s| s.transport_type() == socketioxide::TransportType::Polling)
            .count();
        let plain = self.hub.connection_counts().plain;
        json!({
            "serverId": format!("{}#{}", self.hostname, self.instance),
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": sockets.len() + admins.len() + plain,
            "pollingClientsCount": polling,
            "aggregatedEvents": self.tally.take(),
            "namespaces": [
                {"name": "/", "socketsCount": sockets.len()},
                {"name": NAMESPACE, "socketsCount": admins.len()},
                {"name": "/ws (plain WebSocket)", "socketsCount": plain},
            ],
        })
    }

    /// Every local socket (both namespaces), as `socket_connected` events or one list.
    fn local_sockets(&self) -> Vec<Value> {
        let main = self.io.of("/").map(|ns| ns.sockets()).unwrap_or_default();
        let main = main.into_iter().map(|s| report::socket(&s, "/"));
        let admins = self.io.of(NAMESPACE).map(|ns| ns.sockets()).unwrap_or_default();
        main.chain(admins.iter().map(|s| report::socket(s, NAMESPACE))).collect()
    }

    fn spawn_tell(self: &Arc<Self>, to: Option<String>, events: Vec<(String, Vec<Value>)>) {
        let admin = self.clone();
        tokio::spawn(async move { admin.tell(to, events).await });
    }

    /// Tells the admin UIs of every instance (this one alone without Redis or while it is down).
    async fn tell(&self, to: Option<String>, events: Vec<(String, Vec<Value>)>) {
        let message = Message::Events { to, events };
        if let Some(bus) = self.bus.as_ref().filter(|b| b.is_connected()) {
            let payload = serde_json::to_string(&message).expect("JSON values serialize");
            match bus.tell_admins(payload).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(error = %e, "admin: Redis unreachable; telling local admin UIs only"),
            }
        }
        self.show(message).await;
    }

    /// Emits events to this instance's admin UIs.
    async fn show(&self, message: Message) {
        let Message::Events { to, events } = message else { return };
        let Some(admins) = self.io.of(NAMESPACE) else { return };
        for (event, args) in events {
            let args = SpreadArgs(&args);
            let result = match &to {
                Some(id) => match id.parse().ok().and_then(|sid| admins.get_socket(sid)) {
                    Some(socket) => socket.emit(&event, &args).map_err(|e| e.to_string()),
                    None => return,
                },
                None => admins.clone().emit(&event, &args).await.map_err(|e| e.to_string()),
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, event, "admin: event not shown");
            }
        }
    }

    /// Checks an admin UI's login (`auth: {username, password}`), within the address's rate.
    async fn admit(&self, socket: &SocketRef, auth: Option<Value>) -> Result<(), AdminRefusal> {
        let Some(login) = self.login.clone() else { return Err(AdminRefusal::Disabled) };
        let field = |name: &str| auth.as_ref().and_then(|a| a.get(name)).and_then(Value::as_str).map(str::to_owned);
        let (Some(username), Some(password)) = (field("username"), field("password")) else {
            return Err(AdminRefusal::InvalidCredentials);
        };
        self.gate.attempt(socket).map_err(AdminRefusal::TooManyAttempts)?;
        // The password is checked whatever the username: the time taken tells neither.
        let matches = self
            .gate
            .check(move || {
                let password_matches = login.password.matches(&password);
                password_matches && username == login.username
            })
            .await;
        matches.then_some(()).ok_or(AdminRefusal::InvalidCredentials)
    }

    /// A new admin UI: its configuration and every socket (this instance's at once, the
    /// others' by roll call), then its commands.
    async fn welcome(self: Arc<Self>, socket: SocketRef) {
        socket.extensions.insert(ConnectedAt(report::now_ms()));
        tracing::info!(socket = %digest(socket.id), "admin UI connected");
        let _ = socket.emit("config", &json!({"supportedFeatures": FEATURES}));
        let _ = socket.emit("all_sockets", &self.local_sockets());
        for command in ["join", "leave", "_disconnect", "emit"] {
            let admin = self.clone();
            socket.on(command, move |TryData(args): TryData<Arguments>| {
                let admin = admin.clone();
                async move {
                    match args {
                        Ok(Arguments(args)) => admin.command(command, args).await,
                        Err(e) => tracing::info!(command, error = %e, "admin: unreadable command"),
                    }
                }
            });
        }
        if let Some(bus) = &self.bus {
            let call = Message::RollCall { reply_to: socket.id.to_string(), from: self.instance.clone() };
            let payload = serde_json::to_string(&call).expect("JSON values serialize");
            if let Err(e) = bus.tell_admins(payload).await {
                tracing::debug!(error = %e, "admin: roll call not sent; this instance's sockets only");
            }
        }
    }

    /// One command of the admin UI, for the main namespace: `join(nsp, room, filter?)`,
    /// `leave(nsp, room, filter?)`, `_disconnect(nsp, close, filter?)`, `emit(nsp, filter, event,
    /// ...args)`. A filter is a room name (a socket's id is a room holding that socket alone);
    /// without one, every socket of the namespace.
    async fn command(&self, command: &str, args: Vec<Value>) {
        let text = |i: usize| args.get(i).and_then(Value::as_str).map(str::to_owned);
        if text(0).as_deref() != Some("/") {
            tracing::info!(command, namespace = ?text(0), "admin: commands apply to the `/` namespace only");
            return;
        }
        let filter_at = if command == "emit" { 1 } else { 2 };
        let target = Audience::from_names(&text(filter_at).into_iter().collect::<Vec<_>>(), &[]);
        tracing::info!(command, target = ?target.room_names(), "admin command");
        let action = match (command, text(1)) {
            ("join", Some(room)) => RoomAction::Join(vec![room]),
            ("leave", Some(room)) => RoomAction::Leave(vec![room]),
            ("_disconnect", _) => RoomAction::Disconnect,
            ("emit", _) => return self.emit(target, args.get(2..).unwrap_or_default()).await,
            _ => return tracing::info!(command, "admin: command without a room"),
        };
        let room_event = match &action {
            RoomAction::Join(rooms) => Some((ROOM_JOINED, rooms[0].clone())),
            RoomAction::Leave(rooms) => Some((ROOM_LEFT, rooms[0].clone())),
            _ => None,
        };
        self.publisher.apply(RoomOp { target, action }).await;
        // The UI learns of room changes from events; for one socket, tell it.
        if let (Some((event, room)), Some(socket)) = (room_event, text(2)) {
            let args = vec![json!("/"), json!(room), json!(socket), report::timestamp()];
            self.tell(None, vec![(event.to_owned(), args)]).await;
        }
    }

    /// `emit`: a publication of `args[0]` with `args[1]` as its data, through the one road.
    async fn emit(&self, target: Audience, args: &[Value]) {
        let Some(event) = args.first().and_then(Value::as_str).and_then(|e| EventName::parse(e).ok()) else {
            return tracing::info!("admin: emit without a valid event name");
        };
        let data = args.get(1).cloned().unwrap_or(Value::Null);
        if let Err(e) = self.publisher.publish(Publication::new(event, target, data, Source::Admin)).await {
            tracing::warn!(error = %e, "admin: emit failed");
        }
    }
}

/// Messages for the admin UIs, from the cluster bus.
impl cluster::Operator for Arc<Admin> {
    async fn relay(&self, payload: &[u8]) -> Result<(), String> {
        match serde_json::from_slice::<Message>(payload).map_err(|e| format!("admin message: {e}"))? {
            Message::RollCall { reply_to, from } if from != self.instance => {
                let at = report::timestamp();
                let events = self
                    .local_sockets()
                    .into_iter()
                    .map(|s| (SOCKET_CONNECTED.to_owned(), vec![s, at.clone()]))
                    .collect::<Vec<_>>();
                if !events.is_empty() {
                    self.tell(Some(reply_to), events).await;
                }
            }
            Message::RollCall { .. } => {}
            message @ Message::Events { .. } => self.show(message).await,
        }
        Ok(())
    }
}

/// Registers the `/admin` namespace: the login check, then [`Admin::welcome`].
pub fn attach(admin: &Arc<Admin>, io: &SocketIo) {
    let checking = admin.clone();
    let check = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let admin = checking.clone();
        async move { admin.admit(&socket, auth.ok()).await.inspect_err(|e| tracing::info!(reason = %e, "admin UI refused")) }
    };
    let welcoming = admin.clone();
    let welcome = move |socket: SocketRef| welcoming.clone().welcome(socket);
    io.ns(NAMESPACE, welcome.with(check));
}

/// A command's arguments, however many the UI sent (socketioxide hands a tuple-like type every
/// argument; anything else, the first only).
struct Arguments(Vec<Value>);

impl<'de> Deserialize<'de> for Arguments {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Every;
        impl<'de> serde::de::Visitor<'de> for Every {
            type Value = Arguments;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the command's arguments")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Arguments, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Arguments(args))
            }
        }
        deserializer.deserialize_tuple_struct("Arguments", usize::MAX, Every)
    }
}
