fn main() -> std::process::ExitCode {
    end_quietly_on_closed_stdout();
    kubectl_phd::run()
}

/// `kubectl phd ... | head` closes standard output early; like ripgrep, end
/// quietly with success instead of a panic message. SIGPIPE itself stays
/// ignored (Rust's default): restoring its default action would also kill
/// the process, silently and with exit 141, when the API server drops a
/// connection the client is writing to.
fn end_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // std's `println!` ("failed printing to stdout: Broken pipe") and
        // clap_complete's writer ("... kind: BrokenPipe ...") panic on EPIPE.
        if message.contains("Broken pipe") || message.contains("BrokenPipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
