//! Progress on long waits: a spinner with the elapsed time and what is being
//! waited for on a terminal; without one (CI logs), a line when what is
//! waited for changes and a heartbeat at most every [`HEARTBEAT`].
//!
//! The clock is this module's: callers pass the state ("mysql-provision-demo
//! Running"), never the elapsed time, so there is one clock and unchanged
//! states print nothing.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Without a terminal, an unchanged state is repeated at most this often.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

pub struct Progress {
    spinner: Option<ProgressBar>,
    what: String,
    started: Instant,
    /// The last state printed and when (no terminal only).
    last: Mutex<Option<(String, Instant)>>,
}

impl Progress {
    pub fn new(what: String) -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {msg}")
            {
                bar.set_style(style);
            }
            bar.set_prefix(what.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            spinner,
            what,
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    /// Shows the current state of what is waited for.
    pub fn update(&self, state: &str) {
        if let Some(bar) = &self.spinner {
            bar.set_message(state.to_owned());
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let now = Instant::now();
        let line = match last.as_ref() {
            Some((previous, _)) if previous != state => format!("{}: {state}", self.what),
            Some((_, printed)) if now.duration_since(*printed) >= HEARTBEAT => format!(
                "{}: {state} (still waiting after {}s)",
                self.what,
                self.started.elapsed().as_secs()
            ),
            Some(_) => return,
            None => format!("{}: {state}", self.what),
        };
        eprintln!("{line}");
        *last = Some((state.to_owned(), now));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}
