//! Integration tests: each starts the real application on port 0 with a fresh database and
//! talks to it over the network.

mod auth;
mod channels;
mod cli;
mod config;
mod directory;
mod drain;
mod frames;
mod fuzz;
mod garbage;
mod health;
mod helpers;
mod history;
mod invitations;
mod metrics;
mod postgres;
mod publish;
mod rawws;
mod sessions;
mod sio;
mod workspace;
mod ws;
