//! Test support: the reference WebSocket server, the Python TLS server, the helper
//! that runs the binary and the real ringcast server.

pub mod ref_server;
pub mod run;
pub mod server;
pub mod wss_server;
