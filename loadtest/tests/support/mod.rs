//! Test support: the reference WebSocket server.

pub mod ref_server;
