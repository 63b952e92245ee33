//! [`DeflateConfig`]: the shard's permessage-deflate settings (RFC 7692; `--deflate`,
//! `--deflate-min-size`), and what they decide for one upgrade and one outgoing
//! message.

use crate::proto::deflate::{negotiate, Agreement};
use crate::proto::handshake::UpgradeRequest;

/// The `Sec-WebSocket-Extensions` request field (RFC 6455 §11.3.2), lower case as
/// [`UpgradeRequest::headers`] keeps names.
const EXTENSIONS_FIELD: &str = "sec-websocket-extensions";

/// permessage-deflate settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Accept permessage-deflate offers (default on). Off: every connection is plain.
    pub enabled: bool,
    /// Messages shorter than this many bytes (payload; default 64) are sent
    /// uncompressed (RSV1 clear) even to a client that negotiated the extension.
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            min_size: 64,
        }
    }
}

impl DeflateConfig {
    /// The agreement for an upgrade request: its first acceptable offer when the
    /// extension is on (see [`crate::proto::deflate::negotiate`]), else `None`.
    pub fn negotiate(&self, request: &UpgradeRequest) -> Option<Agreement> {
        if !self.enabled {
            return None;
        }
        negotiate(
            request
                .headers
                .iter()
                .filter(|(name, _)| name == EXTENSIONS_FIELD)
                .map(|(_, value)| value.as_str()),
        )
    }

    /// The smallest message to compress for a connection, `None` when it gets plain
    /// frames only (it did not negotiate the extension, or limited our window).
    pub fn min_size_for(&self, compresses: bool) -> Option<usize> {
        compresses.then_some(self.min_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::HeadParse;
    use crate::proto::request::parse_upgrade;

    fn request(extensions: &[&str]) -> UpgradeRequest {
        let mut head = String::from(
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
        for e in extensions {
            head.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
        }
        head.push_str("\r\n");
        match parse_upgrade(head.as_bytes(), 8192) {
            Ok(HeadParse::Complete { request, .. }) => request,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offers_are_read_from_every_field_line_in_order() {
        let on = DeflateConfig::default();
        let r = request(&[
            "permessage-deflate; bogus",
            "permessage-deflate; client_no_context_takeover",
        ]);
        assert_eq!(
            on.negotiate(&r).map(|a| a.client_no_context_takeover),
            Some(true)
        );
        assert_eq!(on.negotiate(&request(&[])), None);
        let off = DeflateConfig {
            enabled: false,
            ..on
        };
        assert_eq!(off.negotiate(&r), None);
        assert_eq!(on.min_size_for(true), Some(64));
        assert_eq!(on.min_size_for(false), None);
    }
}
