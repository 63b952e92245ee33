//! The cap on detached sessions (`--session-max-detached`), through real sockets on both
//! backends: over the shard's share, the oldest detached session ends early (rooms
//! left, `on_close` once, `session_evicted` counted) and its token answers `expired`,
//! while the newer ones still resume with what they missed; and a connect-and-reset
//! loop never makes the shard hold more detached sessions than its share (the
//! `sessions_detached` gauge, at its highest).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::session::*;
use common::*;
use ringcast::shard::session::RESUME_HEADER;
use ringcast::{CloseInfo, Config, Context, Handler, Message as AppMessage, UpgradeRequest};

/// Joins `news` on open; counts `on_close` calls.
#[derive(Default)]
struct JoinNews {
    closed: Arc<AtomicUsize>,
}

impl Handler for JoinNews {
    fn on_open(&self, cx: &mut Context<'_>, _request: &UpgradeRequest) {
        cx.join("news").unwrap();
    }

    fn on_message(&self, _cx: &mut Context<'_>, _message: AppMessage<'_>) {}

    fn on_close(&self, _cx: &mut Context<'_>, _info: &CloseInfo) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sessions on (a long grace: nothing expires during a test), at most `max_detached`.
fn capped(backend: ringcast::BackendChoice, max_detached: usize) -> Config {
    let mut cfg = session_config(backend, 1, Duration::from_secs(60));
    cfg.shard.sessions.max_detached = max_detached;
    cfg
}

#[test]
fn over_the_cap_the_oldest_detached_sessions_end_and_the_newest_resume() {
    for backend in BACKENDS {
        let handler = JoinNews::default();
        let closed = handler.closed.clone();
        let (server, rec) = start_recorded(capped(backend, 3), handler);
        let addr = server.local_addr();
        let mut tokens = Vec::new();
        for i in 0..5 {
            let (c, response) = connect_with(addr, "/s", None);
            tokens.push(token_of(&response));
            reset(c);
            // One at a time, so they detach in this order.
            assert!(poll_until(TIMEOUT, || rec.get("closed:reset") == i + 1));
        }
        assert!(poll_until(TIMEOUT, || rec
            .get("session_ended:session_evicted")
            == 2));
        assert_eq!(rec.level("detached"), 3, "{backend:?}");
        assert_eq!(rec.peak("detached"), 3, "{backend:?}: never over the cap");
        assert_eq!(
            closed.load(Ordering::SeqCst),
            2,
            "on_close once per evicted"
        );
        assert_eq!(rec.get("session_ended:grace_expired"), 0);

        server
            .publisher()
            .publish("news", AppMessage::Text("while away"))
            .unwrap();
        assert!(poll_until(TIMEOUT, || rec.get("published") == 1));
        assert_eq!(rec.get("recipients"), 0, "detached sessions only");
        // Kept open to the end: a dropped client would detach again.
        let mut open = Vec::new();
        for token in &tokens[..2] {
            let (c, response) = connect_with(addr, "/s", Some(token));
            assert_eq!(
                header(&response, RESUME_HEADER),
                Some("expired"),
                "{backend:?}"
            );
            assert_ne!(&token_of(&response), token, "a fresh session");
            open.push(c);
        }
        for token in &tokens[2..] {
            let (mut c, response) = connect_with(addr, "/s", Some(token));
            assert_eq!(
                header(&response, RESUME_HEADER),
                Some("resumed"),
                "{backend:?}"
            );
            assert_eq!(text(&mut c), "while away", "{backend:?}: still in news");
            open.push(c);
        }
        assert_eq!(
            (rec.get("resume:expired"), rec.get("resume:resumed")),
            (2, 3)
        );
        assert_eq!(rec.level("detached"), 0);
        assert_eq!(closed.load(Ordering::SeqCst), 2);
        server.shutdown().unwrap();
    }
}

#[test]
fn a_connect_and_reset_loop_never_holds_more_detached_sessions_than_the_cap() {
    const CYCLES: u64 = 2000;
    const CAP: u64 = 100;
    for backend in BACKENDS {
        let (server, rec) = start_recorded(capped(backend, CAP as usize), JoinNews::default());
        let addr = server.local_addr();
        let mut tokens = Vec::new();
        for _ in 0..CYCLES {
            let (c, response) = connect_with(addr, "/s", None);
            tokens.push(token_of(&response));
            reset(c);
        }
        assert!(poll_until(TIMEOUT, || rec.get("closed:reset") == CYCLES));
        assert_eq!(
            rec.get("session_ended:session_evicted"),
            CYCLES - CAP,
            "{backend:?}"
        );
        assert_eq!(rec.level("detached"), CAP, "{backend:?}");
        assert_eq!(rec.level("sessions"), CAP, "{backend:?}");
        assert!(
            rec.peak("detached") <= CAP,
            "{backend:?}: the gauge reached {}",
            rec.peak("detached")
        );
        // Expiry records are capped at the share too: the most recent evictions answer
        // `expired`, the oldest ones were forgotten (`unknown`).
        let newest_evicted = &tokens[(CYCLES - CAP - 1) as usize];
        let (_c, response) = connect_with(addr, "/s", Some(newest_evicted));
        assert_eq!(
            header(&response, RESUME_HEADER),
            Some("expired"),
            "{backend:?}"
        );
        let (_c, response) = connect_with(addr, "/s", Some(&tokens[0]));
        assert_eq!(
            header(&response, RESUME_HEADER),
            Some("unknown"),
            "{backend:?}"
        );
        server.shutdown().unwrap();
    }
}
