//! What a plain WebSocket connection's own handlers send it (a reply to one of its messages), and
//! the registry they reach it through: the hub's, the only writer to connections.

use crate::hub::plain::PlainConnections;
use crate::state::AppState;

pub(super) fn reply(state: &AppState, id: &str, frame: String) {
    connections(state).send_to(id, frame.into());
}

pub(super) fn connections(state: &AppState) -> &PlainConnections {
    state.hub.plain()
}
