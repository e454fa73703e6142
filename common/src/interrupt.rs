//! Ctrl-C and `kill`: SIGINT and SIGTERM end a command cleanly instead of
//! killing it where it stands (issue 29: an interrupted `instance create`
//! left the database admin password in the instance namespace, silently).
//!
//! A command that cleans up after itself holds a [`Handling`] guard while
//! it may leave something behind: the first guard installs the handlers
//! (Tokio's), and from then on a signal no longer kills the process but is
//! recorded. The command checks [`check`] between steps and wraps its long
//! waits in [`or_interrupted`], which ends the wait at once with
//! [`Interrupted`]; it then cleans up or names what is left. A signal while
//! no guard is held (after the command's cleanup, before it exits), or a
//! second signal, ends the process at once with a line on standard error.
//! Commands that never take a guard keep the default: the signal ends them
//! (and the shell restores a terminal a password prompt had set to no echo).
//!
//! Exit codes follow the shell's 128 + signal number: 130 for SIGINT, 143
//! for SIGTERM ([`Signal::exit_code`]).

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// The signal that asked the command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C at the terminal.
    Interrupt,
    /// SIGTERM: `kill`, a CI runner cancelling the job, a pod stopping.
    Terminate,
}

impl Signal {
    /// The shell's exit status of a process ended by this signal.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        })
    }
}

/// A wait or step ended by SIGINT or SIGTERM. Its text is only
/// `interrupted`: the command's own context says what was left and how to
/// finish, and the plugin exits with [`Signal::exit_code`].
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted {
    pub signal: Signal,
}

static STATE: OnceLock<watch::Sender<Option<Signal>>> = OnceLock::new();
static HANDLERS: AtomicUsize = AtomicUsize::new(0);

fn state() -> &'static watch::Sender<Option<Signal>> {
    STATE.get_or_init(|| watch::channel(None).0)
}

/// Installs the SIGINT and SIGTERM handlers, once per process; must run
/// inside a Tokio runtime. A signal received while a [`Handling`] guard is
/// held is recorded for [`check`] and [`or_interrupted`]; one received
/// while none is held, or a second one, ends the process with
/// [`Signal::exit_code`] after a line on standard error.
fn listen() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    static LISTENING: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut listening = LISTENING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *listening {
        return Ok(());
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    *listening = true;
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                Some(()) = interrupt.recv() => Signal::Interrupt,
                Some(()) = terminate.recv() => Signal::Terminate,
                else => return,
            };
            if received().is_some() || HANDLERS.load(Ordering::SeqCst) == 0 {
                eprintln!("error: interrupted by {signal}");
                std::process::exit(i32::from(signal.exit_code()));
            }
            state().send_replace(Some(signal));
        }
    });
    Ok(())
}

/// The signal received, if any.
pub fn received() -> Option<Signal> {
    *state().borrow()
}

/// `Err` once a signal was received: for the steps between waits.
///
/// # Errors
/// [`Interrupted`] after SIGINT or SIGTERM.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted { signal }),
        None => Ok(()),
    }
}

/// Resolves when a signal is received (at once if one was).
pub async fn signalled() -> Signal {
    let mut receiver = state().subscribe();
    let signal = receiver
        .wait_for(Option::is_some)
        .await
        .map(|value| value.unwrap_or(Signal::Interrupt));
    match signal {
        Ok(signal) => signal,
        // The sender lives in a static: never dropped.
        Err(_) => std::future::pending().await,
    }
}

/// Runs `future` until it ends or a signal is received, whichever is
/// first; the future is dropped on a signal. A signal received before the
/// call ends it at once.
///
/// # Errors
/// [`Interrupted`] when a signal ended the wait.
pub async fn or_interrupted<F: Future>(future: F) -> Result<F::Output, Interrupted> {
    check()?;
    tokio::select! {
        biased;
        signal = signalled() => Err(Interrupted { signal }),
        output = future => Ok(output),
    }
}

/// Held while a command cleans up after a signal itself: a signal is then
/// recorded for it instead of ending the process.
pub struct Handling(());

impl Handling {
    /// Takes the signals over (installing the handlers the first time;
    /// must run inside a Tokio runtime).
    ///
    /// # Errors
    /// The handlers cannot be installed (no signal support): the signals
    /// then end the process as they would without phd's handling.
    pub fn start() -> std::io::Result<Self> {
        HANDLERS.fetch_add(1, Ordering::SeqCst);
        let guard = Self(());
        listen()?;
        Ok(guard)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        HANDLERS.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One test for the process-wide state: the signal is real, sent to
    /// this test process, and stays recorded.
    #[tokio::test]
    async fn a_signal_ends_a_wait_and_is_recorded() {
        assert!(check().is_ok());
        let quick = or_interrupted(async { 7 }).await;
        assert!(matches!(quick, Ok(7)));
        // Held: the signal is the command's to handle (without it, this
        // test process would exit).
        let _guard = Handling::start().expect("handlers");
        let waiting = tokio::spawn(or_interrupted(std::future::pending::<()>()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the wait ended")
            .expect("joined");
        assert!(matches!(
            ended,
            Err(Interrupted {
                signal: Signal::Terminate
            })
        ));
        assert_eq!(received(), Some(Signal::Terminate));
        assert!(check().is_err());
        // Later waits end at once.
        assert!(or_interrupted(std::future::pending::<()>()).await.is_err());
        assert_eq!(Signal::Interrupt.exit_code(), 130);
    }
}
