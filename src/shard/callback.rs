//! Handler callbacks with panic isolation: a callback runs with a [`Context`] that
//! borrows the shard's state; a panic is caught, logged (with the connection's id and
//! rooms), counted, and closes only that connection with 1011.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::conn::DisconnectReason;
use crate::handler::Handler;
use crate::proto::close::codes;
use crate::wire::ConnKey;

use super::context::Context;
use super::Shard;

impl Shard {
    /// Run a handler callback for `key` with panic isolation.
    pub(super) fn call(&mut self, key: ConnKey, f: impl FnOnce(&dyn Handler, &mut Context<'_>)) {
        let handler = self.handler.clone();
        let mut cx = Context {
            state: &mut self.state,
            key,
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(&*handler, &mut cx))) {
            self.report_panic(key, "callback", panic);
            if let Some(slot) = self.state.slots.get_mut(key) {
                slot.conn.record_reason(DisconnectReason::Panic);
            }
            self.state
                .close(key, codes::INTERNAL_ERROR, "internal error");
        }
    }

    /// Log and count a panic of the handler `during` a callback for `key`.
    pub(super) fn report_panic(
        &self,
        key: ConnKey,
        during: &str,
        panic: Box<dyn std::any::Any + Send>,
    ) {
        self.state.metrics().panic(self.state.id);
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        let rooms = self.state.rooms_of(key);
        let conn = self.state.conn_id(key);
        if self.config().log_peer_addr {
            let peer = self
                .state
                .slots
                .get(key)
                .and_then(|s| crate::sys::peer_addr(s.fd).ok())
                .map_or_else(|| "unknown".to_string(), |a| a.to_string());
            tracing::error!(%conn, ?rooms, during, panic = %message, %peer, "handler panicked; connection closed with 1011");
        } else {
            tracing::error!(%conn, ?rooms, during, panic = %message, "handler panicked; connection closed with 1011");
        }
    }
}
