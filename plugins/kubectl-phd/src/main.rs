fn main() -> std::process::ExitCode {
    kubectl_phd::run()
}
