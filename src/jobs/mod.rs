//! Background jobs. Each has a `run_once` that tests call directly, and a schedule that
//! [`spawn_all`] starts with the server and stops at shutdown.

pub mod invitation_expiry;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::AppState;

pub fn spawn_all(state: &AppState, tasks: &TaskTracker, shutdown: &CancellationToken) {
    tasks.spawn(invitation_expiry::schedule(state.clone(), shutdown.clone()));
}
