//! Progress on long waits: a spinner with the elapsed time and what is being
//! waited for on a terminal, a line per change otherwise (CI logs).

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
    what: String,
    last: Mutex<String>,
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
            last: Mutex::new(String::new()),
        }
    }

    pub fn update(&self, message: &str) {
        match &self.spinner {
            Some(bar) => bar.set_message(message.to_owned()),
            None => {
                let Ok(mut last) = self.last.lock() else {
                    return;
                };
                if *last != message {
                    eprintln!("{}: {message}", self.what);
                    message.clone_into(&mut last);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}
