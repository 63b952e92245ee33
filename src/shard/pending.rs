//! [`PendingPublish`]: what a slot keeps about an HTTP publish while its body is read
//! (see `http_publish.rs`); plain data, so the slot needs nothing else of that file.

/// A publish whose body is being read: where it goes and how its answer ends.
#[derive(Debug)]
pub struct PendingPublish {
    /// The room, decoded by the room-name rule.
    pub(super) room: String,
    /// `?binary=1`: a binary publication (else text, which must be UTF-8).
    pub(super) binary: bool,
    /// The connection persists after the 202.
    pub(super) keep_alive: bool,
    /// An HTTP/1.0 request (its keep-alive is announced in the 202).
    pub(super) http10: bool,
}
