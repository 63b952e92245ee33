//! A tokio-tungstenite broadcast server written the way a typical Rust user writes one:
//! the peer that `make compare-peers` compares ringcast with.
//!
//! One current-thread tokio runtime (the benchmark pins the server to one core), one
//! `tokio::sync::broadcast` channel for the whole server. Each accepted connection is
//! upgraded on any path and split: a reader task pushes every data message (text or
//! binary) into the channel, a writer loop sends everything the channel yields, so every
//! client gets every message, its own included. A writer that falls more than
//! [`CHANNEL_CAPACITY`] messages behind skips what it missed (`RecvError::Lagged`), as
//! such servers usually do; the load generator reports that as loss.
//!
//! Usage: `peer-tokio-tungstenite PORT` (listens on 127.0.0.1:PORT; 0 = any free port;
//! the first line printed names the address).

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_tungstenite::tungstenite::Message;

/// Messages the broadcast channel keeps for its slowest receiver.
const CHANNEL_CAPACITY: usize = 1024;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|e| std::io::Error::other(format!("port {p}: {e}")))?,
        None => 9001,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "tokio-tungstenite peer listening on {}",
        listener.local_addr()?
    );
    let (tx, _) = broadcast::channel::<Message>(CHANNEL_CAPACITY);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, tx.clone()));
    }
}

/// One client: upgrade, then relay its data messages into `tx` and the channel's
/// messages to it until either side ends.
async fn serve(stream: TcpStream, tx: broadcast::Sender<Message>) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut write, mut read) = ws.split();
    let mut rx = tx.subscribe();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = read.next().await {
            match msg {
                Message::Text(_) | Message::Binary(_) => {
                    let _ = tx.send(msg);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    loop {
        match rx.recv().await {
            Ok(msg) => {
                if write.send(msg).await.is_err() {
                    break;
                }
            }
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        }
        if reader.is_finished() {
            break;
        }
    }
    reader.abort();
}
