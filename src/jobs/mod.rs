//! Background jobs. Each has a `run_once` that tests call directly with the database and the
//! Publisher, and a schedule that [`spawn_all`] starts with the server and stops at shutdown.

pub mod invitation_expiry;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::publish::Publisher;

pub fn spawn_all(
    db: &DatabaseConnection,
    publisher: &Publisher,
    metrics: &Arc<Metrics>,
    settings: &Settings,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    tasks.spawn(invitation_expiry::schedule(
        db.clone(),
        publisher.clone(),
        metrics.clone(),
        settings.invitation_expiry_cron.clone(),
        shutdown.clone(),
    ));
}
