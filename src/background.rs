//! Every piece of the running server's background work, started with it and stopped at
//! shutdown: the cluster bus's subscriber and the bridges it feeds, the scheduled jobs, history
//! pruning, presence upkeep (heartbeat, dead instances, leaving the cluster), token lifetimes
//! (warning and ending connections whose token expires), handing freed memory back to the
//! system, the admin UI's periodic report, and forgetting the owners of ended long-polling
//! sessions. Wiring: it acts through the application state.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::Bridge;
use crate::bridge::fleet::NodeFleet;
use crate::broker::Cluster;
use crate::history;
use crate::jobs;
use crate::lifetime::Due;
use crate::publication::Publication;
use crate::state::AppState;
use crate::{rawws, realtime};

pub fn spawn(state: &AppState, cluster: Option<Cluster>, tasks: &TaskTracker, stop: &CancellationToken) {
    if let Some(Cluster { bus, broker }) = cluster {
        let bridge = Bridge {
            publisher: state.publisher.clone(),
            db: state.db.clone(),
            catalogue: state.catalogue.clone(),
            events_allow_unknown: state.settings.events_allow_unknown,
            bus: bus.clone(),
            max_payload: state.settings.max_payload,
            fleet: state
                .settings
                .node_fleet
                .then(|| std::sync::Arc::new(NodeFleet::new(bus.clone(), state.hub.clone(), state.publisher.clone()))),
        };
        tasks.spawn(bus.run(broker, bridge, state.admin.clone(), stop.clone()));
    }
    jobs::spawn_all(&state.db, &state.publisher, &state.metrics, &state.settings, tasks, stop);
    tasks.spawn(history::prune_periodically(state.history.clone(), stop.clone()));
    tasks.spawn(maintain_presence(state.clone(), stop.clone()));
    let (due, expired) = tokio::sync::mpsc::channel(1024);
    let lifetimes = state.lifetimes.clone();
    let timer_stop = stop.clone();
    tasks.spawn(async move { lifetimes.run(due, timer_stop).await });
    tasks.spawn(end_expired(state.clone(), expired));
    tasks.spawn(release_freed_memory(stop.clone()));
    tasks.spawn(state.admin.clone().report_periodically(stop.clone()));
    tasks.spawn(forget_ended_sessions(state.clone(), stop.clone()));
}

/// Forgets the owners of the long-polling sessions that ended. A session is given its whole
/// namespace deadline and a heartbeat before it counts as ended without a socket.
async fn forget_ended_sessions(state: AppState, stop: CancellationToken) {
    let timing = state.settings.socketio_timing;
    let grace = timing.connect_timeout + timing.ping_interval + timing.ping_timeout;
    let every = grace.clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let forgotten = state.hub.sweep_sessions(grace);
        if forgotten > 0 {
            tracing::debug!(forgotten, "long-polling sessions forgotten");
        }
    }
}

/// How often freed heap memory is handed back to the system.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands the heap's free pages back to the system now and then. glibc's allocator returns only
/// the top of each arena by itself: after connections come and go, their freed memory stays
/// resident between live allocations (a 120 s soak grew RSS by 10% while the live heap grew by
/// 147 KB, measured with heaptrack). `malloc_trim` releases those pages; it walks the free
/// lists, a millisecond or so on this heap.
async fn release_freed_memory(stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(RELEASE_EVERY) => {}
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory; it takes no pointer of ours.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Warns the connections whose token is about to expire and ends those whose token expired.
async fn end_expired(state: AppState, mut due: tokio::sync::mpsc::Receiver<Due>) {
    while let Some(due) = due.recv().await {
        realtime::lifetime::came_due(&state, &due);
        rawws::came_due(&state, &due);
    }
}

/// Keeps this instance's presence heartbeat, announces the users of dead instances offline, and
/// at shutdown takes this instance out (its users are announced offline at once).
async fn maintain_presence(state: AppState, shutdown: CancellationToken) {
    let Some(every) = state.presence.maintenance_interval() else { return };
    let mut first = true;
    loop {
        for announcement in state.presence.maintain(first).await {
            publish_announcement(&state, announcement).await;
        }
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    for announcement in state.presence.leave().await {
        publish_announcement(&state, announcement).await;
    }
}

async fn publish_announcement(state: &AppState, announcement: Publication) {
    if let Err(e) = state.publisher.publish(announcement).await {
        tracing::warn!(error = %e, "presence announcement failed");
    }
}
