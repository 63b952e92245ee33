//! SIGTERM shutdown test, in its own test binary because it installs
//! process-wide signal handlers and raises a real signal, which must not
//! disturb the unit tests in the library's test binary.

use std::sync::mpsc;
use std::time::Duration;

use ringcast::sys::install_shutdown_signals;

#[test]
fn sigterm_sets_requested_and_unblocks_wait() {
    let sig = install_shutdown_signals().expect("install handlers");
    // Installing twice returns the same instance.
    assert!(std::ptr::eq(sig, install_shutdown_signals().unwrap()));
    assert!(!sig.requested());

    // A thread already blocked in wait() must be released by the signal.
    let (started_tx, started_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        done_tx.send(sig.wait()).unwrap();
    });
    started_rx.recv().unwrap();
    assert!(
        done_rx.try_recv().is_err(),
        "wait() returned before any signal"
    );

    // SAFETY: raise() just delivers SIGTERM to this process; our handler is
    // installed, so the default (terminate) action does not run.
    let rc = unsafe { libc::raise(libc::SIGTERM) };
    assert_eq!(rc, 0);

    assert!(sig.requested());
    done_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("waiting thread was not woken")
        .expect("wait() failed");
    // Later waits return at once, and the fd stays readable for pollers.
    sig.wait().unwrap();
    let mut pfd = libc::pollfd {
        fd: sig.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, zero timeout; the fd is 'static.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 1);
}
