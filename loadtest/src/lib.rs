//! ringcast-load: the load generator bundled with ringcast.
//!
//! A thread-per-core WebSocket client (one edge-triggered epoll loop per thread, no async
//! runtime) with three workloads — `fanout`, `connect` and `echo` — over `ws://` or
//! `wss://` (rustls; `fanout` subscribers may also be Server-Sent Events streams), and a report that says not only how the server did but also
//! whether the generator itself was the bottleneck (its own CPU use per thread).

pub mod cert;
pub mod cli;
pub mod codec;
pub mod conn;
pub mod connect;
pub mod deflate;
pub mod echo;
pub mod event_loop;
pub mod fanout;
pub mod floor;
pub mod message;
pub mod plot;
pub mod procfs;
pub mod progress;
pub mod prom;
pub mod report;
pub mod runner;
pub mod slow;
pub mod sse;
pub mod sys;
pub mod tls;
pub mod watch;
