//! Feature `otel`: the binary, run with `--otlp-endpoint`, posts its lifecycle spans as
//! OTLP/HTTP protobuf to `/v1/traces` with `service.name = ringcast`, at the latest when
//! it stops on SIGTERM. The collector is a tiny HTTP listener in this test.

#![cfg(feature = "otel")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(20);

/// One request the collector received.
struct Export {
    request_line: String,
    content_type: String,
    body: Vec<u8>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Read one HTTP/1.1 request (Content-Length body) and answer 200 with an empty
/// protobuf body (an `ExportTraceServiceResponse` with nothing rejected).
fn serve_one(mut stream: TcpStream) -> Option<Export> {
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().ok()?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    Some(Export {
        request_line: head.lines().next().unwrap_or_default().to_owned(),
        content_type: header("content-type"),
        body: buf[head_end..head_end + length].to_vec(),
    })
}

#[test]
fn lifecycle_spans_reach_an_otlp_http_collector() {
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let (tx, exports) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in collector.incoming().take(64) {
            let Ok(stream) = stream else { break };
            if let Some(export) = serve_one(stream) {
                if tx.send(export).is_err() {
                    break;
                }
            }
        }
    });

    let mut server = common::process::ServerProcess::spawn(&[
        "--threads",
        "1",
        "--metrics-addr",
        "off",
        "--log-level",
        "warn",
        "--otlp-endpoint",
        &endpoint,
    ]);
    let addr = server.addr;

    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/echo")).unwrap();
    ws.send(tungstenite::Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hello"));
    ws.close(None).unwrap();
    while ws.read().is_ok() {} // until the server's close reply
    drop(ws);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "exit status");

    // The exporter flushed before the process exited; the collector thread may still be
    // handing the request over.
    let mut received = Vec::new();
    while let Ok(export) = exports.recv_timeout(if received.is_empty() {
        TIMEOUT
    } else {
        Duration::from_millis(200)
    }) {
        received.push(export);
    }
    assert!(!received.is_empty(), "no OTLP export arrived");
    for export in &received {
        assert_eq!(export.request_line, "POST /v1/traces HTTP/1.1");
        assert_eq!(export.content_type, "application/x-protobuf");
    }
    let all: Vec<u8> = received.iter().flat_map(|e| e.body.clone()).collect();
    // The resource's service.name and the lifecycle spans, by name.
    assert!(contains(&all, b"ringcast"), "no service name in the export");
    for span in ["listening", "shutdown requested", "stopped"] {
        assert!(contains(&all, span.as_bytes()), "no {span:?} span exported");
    }
    // Nothing per message: the echoed text is in no span.
    assert!(!contains(&all, b"hello"), "a message payload was exported");
}
