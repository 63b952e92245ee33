//! The server's own account of a run, from its Prometheus endpoint: a blocking
//! `GET` (HTTP/1.1, `Connection: close`, bounded in time and size) and a parser for
//! the text exposition format that sums a counter family by its `reason` label.
//!
//! `fanout --metrics-url` scrapes before the connections open and after the run and
//! reports the difference of `*connections_closed_total{reason}` (why the server ended
//! connections, e.g. `slow_consumer`) and `*frames_dropped_total{reason}` (frames it
//! discarded, e.g. `drop_newest`). Names are matched by suffix, so any
//! `--metrics-prefix` works; other labels (constant ones, `shard`) are summed over.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::Serialize;

use crate::cli::HttpUrl;

/// Counter family of connections the server ended, by `reason`.
pub const CLOSED_SUFFIX: &str = "connections_closed_total";
/// Counter family of frames the server dropped, by `reason`.
pub const DROPPED_SUFFIX: &str = "frames_dropped_total";
/// Largest response accepted (a metrics page is a few KiB).
const MAX_RESPONSE: u64 = 4 << 20;
/// Connect, read and write timeout of one scrape.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The counters of one scrape: family suffix → reason → value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// `connections_closed_total` by reason.
    pub closed: BTreeMap<String, f64>,
    /// `frames_dropped_total` by reason.
    pub dropped: BTreeMap<String, f64>,
}

/// What the server did during the run: counter increases by reason (zero ones left out).
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerCounters {
    /// The endpoint scraped.
    pub metrics_url: String,
    /// Connections the server ended, by `reason` label (e.g. `slow_consumer`,
    /// `pong_timeout`, `normal`).
    pub connections_closed: BTreeMap<String, u64>,
    /// Frames the server dropped, by `reason` label (`drop_newest`, `drop_oldest`,
    /// `connection_closed`).
    pub frames_dropped: BTreeMap<String, u64>,
}

impl ServerCounters {
    /// `after − before` per reason; reasons that did not increase are left out.
    pub fn delta(url: &HttpUrl, before: &Counters, after: &Counters) -> Self {
        let diff = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            a.iter()
                .filter_map(|(k, v)| {
                    let d = v - b.get(k).copied().unwrap_or(0.0);
                    (d >= 0.5).then(|| (k.clone(), d.round() as u64))
                })
                .collect()
        };
        ServerCounters {
            metrics_url: url.to_string(),
            connections_closed: diff(&after.closed, &before.closed),
            frames_dropped: diff(&after.dropped, &before.dropped),
        }
    }

    /// `connections_closed` for `reason` (0 if absent).
    pub fn closed(&self, reason: &str) -> u64 {
        self.connections_closed.get(reason).copied().unwrap_or(0)
    }

    /// `frames_dropped` for `reason` (0 if absent).
    pub fn dropped(&self, reason: &str) -> u64 {
        self.frames_dropped.get(reason).copied().unwrap_or(0)
    }
}

/// Scrapes `url` and parses the two counter families.
pub fn scrape(url: &HttpUrl) -> Result<Counters, String> {
    let body = get(url).map_err(|e| format!("scrape {url}: {e}"))?;
    Ok(parse(&body))
}

/// `GET url` → the body of a `200` response.
pub fn get(url: &HttpUrl) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&url.addr, TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        url.path, url.host
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(raw).map_err(|_| "response is not UTF-8".to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "incomplete HTTP response".to_string())?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("HTTP status {status:?}"));
    }
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err("chunked responses are not supported".into());
    }
    Ok(body.to_string())
}

/// Sums the samples of every `*connections_closed_total` and `*frames_dropped_total`
/// family by their `reason` label (samples without one count as reason `""`).
pub fn parse(text: &str) -> Counters {
    let mut c = Counters::default();
    for line in text.lines() {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let into = if name.ends_with(CLOSED_SUFFIX) {
            &mut c.closed
        } else if name.ends_with(DROPPED_SUFFIX) {
            &mut c.dropped
        } else {
            continue;
        };
        let reason = label(labels, "reason").unwrap_or_default();
        *into.entry(reason).or_insert(0.0) += value;
    }
    c
}

/// Splits a sample line `name{labels} value [timestamp]` (comments and malformed lines:
/// `None`).
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = closing_brace(line, open)?;
            (&line[..open], &line[open + 1..close], &line[close + 1..])
        }
        None => {
            let sp = line.find(char::is_whitespace)?;
            (&line[..sp], "", &line[sp..])
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name.trim(), labels, value))
}

/// Index of the `}` closing the label set opened at `open` (quoted values may hold
/// braces and escaped quotes).
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, ch) in line[open..].char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(open + i),
            _ => {}
        }
    }
    None
}

/// The unescaped value of label `key` in `a="x",b="y"`.
fn label(labels: &str, key: &str) -> Option<String> {
    let mut rest = labels;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        let eq = rest.find('=')?;
        let k = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, ch) = chars.next()?;
            match ch {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                other => value.push(other),
            }
        };
        if k == key {
            return Some(value);
        }
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP ringcast_connections_closed_total Connections ended, by reason.
# TYPE ringcast_connections_closed_total counter
ringcast_connections_closed_total{env="a\"b}c",reason="normal"} 3
ringcast_connections_closed_total{env="a\"b}c",reason="slow_consumer"} 10
ringcast_connections_closed_total{env="x",reason="slow_consumer"} 2
# TYPE ringcast_frames_dropped_total counter
ringcast_frames_dropped_total{reason="drop_newest"} 1.5e3
ringcast_frames_dropped_total{reason="connection_closed"} 7 1700000000000
ringcast_frames_dropped_total_other{reason="drop_newest"} 99
ringcast_connections_open 42
other_frames_dropped_total 5
broken_connections_closed_total{reason="x" 1
"#;

    #[test]
    fn parses_counters_by_reason_summing_other_labels() {
        let c = parse(PAGE);
        assert_eq!(c.closed.len(), 2, "{c:?}");
        assert_eq!(c.closed["normal"], 3.0);
        assert_eq!(c.closed["slow_consumer"], 12.0);
        assert_eq!(c.dropped["drop_newest"], 1500.0);
        assert_eq!(c.dropped["connection_closed"], 7.0);
        assert_eq!(c.dropped[""], 5.0, "a sample without a reason label");
    }

    #[test]
    fn labels_unescape_and_skip_other_keys() {
        assert_eq!(
            label(r#"env="a\"b\\c\nd",reason="slow""#, "reason").as_deref(),
            Some("slow")
        );
        assert_eq!(
            label(r#"env="a\"b\\c\nd""#, "env").as_deref(),
            Some("a\"b\\c\nd")
        );
        assert_eq!(label(r#"env="x""#, "reason"), None);
        assert_eq!(label(r#"reason="unterminated"#, "reason"), None);
    }

    #[test]
    fn delta_keeps_increases_only() {
        let url = crate::cli::parse_http_url("http://127.0.0.1:9100/metrics").unwrap();
        let before = parse(PAGE);
        let mut after = before.clone();
        *after.closed.get_mut("slow_consumer").unwrap() += 5.0;
        after.dropped.insert("drop_oldest".into(), 4.0);
        let d = ServerCounters::delta(&url, &before, &after);
        assert_eq!(d.connections_closed.len(), 1);
        assert_eq!(d.closed("slow_consumer"), 5);
        assert_eq!(d.closed("normal"), 0);
        assert_eq!(d.dropped("drop_oldest"), 4);
        assert_eq!(d.frames_dropped.len(), 1);
        assert_eq!(d.metrics_url, "http://127.0.0.1:9100/metrics");
    }

    #[test]
    fn get_reads_a_served_page_and_refuses_errors() {
        use std::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "404 Not Found"] {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                assert!(buf[..n].starts_with(b"GET /metrics HTTP/1.1\r\n"));
                let body = "x_connections_closed_total{reason=\"slow_consumer\"} 4\n";
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).unwrap();
            }
        });
        let url = crate::cli::parse_http_url(&format!("http://{addr}/metrics")).unwrap();
        let c = scrape(&url).unwrap();
        assert_eq!(c.closed["slow_consumer"], 4.0);
        let e = scrape(&url).unwrap_err();
        assert!(e.contains("404"), "{e}");
        server.join().unwrap();
    }
}
