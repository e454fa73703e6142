fn main() -> std::process::ExitCode {
    restore_default_sigpipe();
    kubectl_phd::run()
}

/// Rust ignores SIGPIPE, which turns `kubectl phd ... | head` into a panic
/// on the next write; like other Unix tools, end quietly instead.
#[cfg(unix)]
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_default_sigpipe() {}
