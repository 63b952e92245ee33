//! Session helpers shared by the `sessions*` tests: a session-enabled `Config`, a
//! WebSocket upgrade presenting a resume token, the session headers of a 101, reading
//! the next text message, and dropping a connection with a reset (SO_LINGER 0) so the
//! server sees a transport loss rather than a close.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringcast::shard::session::{SESSION_HEADER, TOKEN_HEADER};
use ringcast::{BackendChoice, Config};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{Request, Response};
use tungstenite::Message;

use super::{config, source_ip, tcp_from, Client};

/// [`config`] with sessions kept for `grace` after a transport loss.
pub fn session_config(backend: BackendChoice, threads: usize, grace: Duration) -> Config {
    let mut cfg = config(backend, threads);
    cfg.shard.sessions.grace = grace;
    cfg
}

/// The upgrade request for `ws://{addr}{path}`, presenting `token` (as the request
/// header) if given.
pub fn resume_request(addr: SocketAddr, path: &str, token: Option<&str>) -> Request {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert(TOKEN_HEADER, token.parse().unwrap());
    }
    request
}

/// A WebSocket to `path`, presenting `token` if given.
pub fn connect_with(addr: SocketAddr, path: &str, token: Option<&str>) -> (Client, Response) {
    let stream = tcp_from(addr, source_ip(0));
    tungstenite::client::client(resume_request(addr, path, token), stream)
        .expect("websocket handshake")
}

/// Response header `name`, if present.
pub fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// The resume token of a 101.
pub fn token_of(response: &Response) -> String {
    header(response, TOKEN_HEADER)
        .expect("resume token")
        .to_string()
}

/// (session id, resume token) of a 101.
pub fn session_of(response: &Response) -> (String, String) {
    (
        header(response, SESSION_HEADER)
            .expect("session id")
            .to_string(),
        token_of(response),
    )
}

/// The next text message, skipping pings and pongs; anything else panics.
pub fn text(c: &mut Client) -> String {
    loop {
        match c.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Make `stream`'s close a reset (SO_LINGER 0); dropping it then sends an RST.
pub fn linger_zero(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Drop the client's TCP connection with a reset (SO_LINGER 0), no close frame.
pub fn reset(c: Client) {
    linger_zero(c.get_ref());
}

/// Drop the SSE client's TCP connection with a reset (SO_LINGER 0).
pub fn reset_sse(c: super::sse::SseClient<TcpStream>) {
    linger_zero(&c.stream);
}
