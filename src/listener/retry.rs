//! The `EADDRINUSE` back-off of [`bind_reuseport`](super::bind_reuseport): a short
//! doubling schedule, and a retry loop with the sleep and the retry report injected (so
//! tests run it without sleeping).

use std::io;
use std::time::Duration;

/// Doubling back-off for `EADDRINUSE`: `first`, `2*first`, … capped at `max`,
/// `retries` delays in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub first: Duration,
    pub max: Duration,
    pub retries: u32,
}

impl Default for RetrySchedule {
    /// 250 µs doubling up to 32 ms, 7 retries: 250 µs … 16 ms, ~32 ms total.
    fn default() -> Self {
        Self {
            first: Duration::from_micros(250),
            max: Duration::from_millis(32),
            retries: 7,
        }
    }
}

impl RetrySchedule {
    /// The delays to sleep before each retry, in order (`retries` items).
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        let (first, max) = (self.first, self.max);
        (0..self.retries).map(move |i| {
            let factor = 1u32.checked_shl(i).unwrap_or(u32::MAX);
            first.saturating_mul(factor).min(max)
        })
    }
}

/// Run `attempt` until it succeeds. On an error whose `raw_os_error` is
/// `EADDRINUSE` only, sleep the next delay (via the injected `sleep`), call
/// `on_retry(n)` (`n` = 1-based retry number), then retry. Any other error is
/// returned at once; when the delays run out, the last error is returned.
pub fn retry_on_addr_in_use<T>(
    schedule: &RetrySchedule,
    mut attempt: impl FnMut() -> io::Result<T>,
    mut sleep: impl FnMut(Duration),
    mut on_retry: impl FnMut(u32),
) -> io::Result<T> {
    let mut delays = schedule.delays();
    let mut n = 0u32;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => match delays.next() {
                Some(d) => {
                    sleep(d);
                    n += 1;
                    on_retry(n);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn os_err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn default_delays_double_up_to_16ms() {
        let d: Vec<_> = RetrySchedule::default().delays().collect();
        assert_eq!(
            d,
            [250, 500, 1000, 2000, 4000, 8000, 16000].map(us).to_vec()
        );
    }

    #[test]
    fn delays_are_capped_at_max_and_never_overflow() {
        let s = RetrySchedule {
            first: Duration::from_millis(10),
            max: Duration::from_millis(32),
            retries: 40,
        };
        let d: Vec<_> = s.delays().collect();
        assert_eq!(d.len(), 40);
        assert_eq!(&d[..4], &[10, 20, 32, 32].map(Duration::from_millis));
        assert!(d[2..].iter().all(|&x| x == Duration::from_millis(32)));
    }

    #[test]
    fn retries_addr_in_use_then_succeeds() {
        for fails in 0..=7u32 {
            let mut calls = 0u32;
            let sleeps = RefCell::new(Vec::new());
            let retries = RefCell::new(Vec::new());
            let r = retry_on_addr_in_use(
                &RetrySchedule::default(),
                || {
                    calls += 1;
                    if calls <= fails {
                        Err(os_err(libc::EADDRINUSE))
                    } else {
                        Ok(calls)
                    }
                },
                |d| sleeps.borrow_mut().push(d),
                |n| retries.borrow_mut().push(n),
            );
            assert_eq!(r.unwrap(), fails + 1);
            let expected: Vec<_> = RetrySchedule::default()
                .delays()
                .take(fails as usize)
                .collect();
            assert_eq!(*sleeps.borrow(), expected);
            assert_eq!(*retries.borrow(), (1..=fails).collect::<Vec<_>>());
        }
        // Spot-check the exact values for N = 3.
        let mut n = 0;
        let mut sleeps = Vec::new();
        retry_on_addr_in_use(
            &RetrySchedule::default(),
            || {
                n += 1;
                if n <= 3 {
                    Err(os_err(libc::EADDRINUSE))
                } else {
                    Ok(())
                }
            },
            |d| sleeps.push(d),
            |_| {},
        )
        .unwrap();
        assert_eq!(sleeps, vec![us(250), us(500), us(1000)]);
    }

    #[test]
    fn other_errors_return_at_once() {
        let mut calls = 0;
        let mut slept = 0;
        let mut retried = 0;
        let r: io::Result<()> = retry_on_addr_in_use(
            &RetrySchedule::default(),
            || {
                calls += 1;
                Err(os_err(libc::EACCES))
            },
            |_| slept += 1,
            |_| retried += 1,
        );
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EACCES));
        assert_eq!((calls, slept, retried), (1, 0, 0));
    }

    #[test]
    fn exhausted_retries_return_last_error() {
        let mut calls = 0u32;
        let mut sleeps = Vec::new();
        let mut last_retry = 0;
        let r: io::Result<()> = retry_on_addr_in_use(
            &RetrySchedule::default(),
            || {
                calls += 1;
                Err(os_err(libc::EADDRINUSE))
            },
            |d| sleeps.push(d),
            |n| last_retry = n,
        );
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EADDRINUSE));
        assert_eq!(calls, 8, "1 attempt + 7 retries");
        assert_eq!(sleeps.len(), 7);
        assert_eq!(
            sleeps,
            RetrySchedule::default().delays().collect::<Vec<_>>()
        );
        assert_eq!(last_retry, 7);
    }
}
