//! Runs the test reference server (tungstenite, thread per connection) on a fixed
//! loopback port for manual runs:
//! `cargo run -p ringcast-load --example ref_server -- 9001 [seconds]`.
//! Serves `/ws/{room}` (broadcast to all members) and `/echo`; exits after `seconds`
//! (default 600) so it never outlives a session.

#[path = "../tests/support/ref_server.rs"]
mod ref_server;

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9001);
    let secs: u64 = args.next().and_then(|p| p.parse().ok()).unwrap_or(600);
    let addr = ref_server::start_on(&format!("127.0.0.1:{port}"), ref_server::Options::default());
    eprintln!(
        "reference server on {addr} (pid {}) for {secs} s",
        std::process::id()
    );
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
