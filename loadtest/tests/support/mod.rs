//! Test support: the reference WebSocket server, the Python TLS server and the helper
//! that runs the binary.

pub mod ref_server;
pub mod run;
pub mod wss_server;
