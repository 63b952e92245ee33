//! Progress display: an `indicatif` bar when stderr is a terminal, plain lines (at most
//! one per second) otherwise, so CI logs and redirected runs stay readable.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress reporter for one phase at a time.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line_ns: u64,
    label: String,
    total: u64,
}

impl Progress {
    /// Bar on a terminal (unless `plain`), lines otherwise.
    pub fn new(plain: bool) -> Self {
        let bar = (!plain && crate::sys::stderr_is_tty()).then(|| {
            let b = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
                )
                .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            bar,
            last_line_ns: 0,
            label: String::new(),
            total: 0,
        }
    }

    /// Starts a phase with `total` steps.
    pub fn phase(&mut self, label: &str, total: u64) {
        self.label = label.to_string();
        self.last_line_ns = 0;
        self.total = total;
        if let Some(b) = &self.bar {
            b.set_prefix(label.to_string());
            b.set_length(total.max(1));
            b.set_position(0);
            b.set_message("");
        } else {
            eprintln!("[{label}] start ({total})");
        }
    }

    /// Updates the current phase.
    pub fn update(&mut self, pos: u64, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
            b.set_message(msg.to_string());
            return;
        }
        let now = crate::sys::now_ns();
        if now.saturating_sub(self.last_line_ns) >= 1_000_000_000 {
            self.last_line_ns = now;
            eprintln!("[{}] {pos}/{}: {msg}", self.label, self.total);
        }
    }

    /// Removes the bar (before printing the summary).
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
