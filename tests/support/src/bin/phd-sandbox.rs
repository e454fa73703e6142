//! Starts the tests' local control plane for a person to use, prints the
//! `export KUBECONFIG=...` line, and stops it on Ctrl-C.
//!
//! `phd-sandbox --prepare` only builds (or finds) the cached binaries and prints their path.

use phd_testkit::{ControlPlane, KUBERNETES_VERSION};

const USAGE: &str = "usage: phd-sandbox [--prepare]

Starts the tests' local control plane (etcd, kube-apiserver,
kube-controller-manager), prints `export KUBECONFIG=...` on stdout, and
stops it and removes its files on Ctrl-C.

  --prepare   only build (or find) the cached binaries and print their path
  -h, --help  print this help";

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => {}
        ["--prepare"] => {
            println!("{}", phd_testkit::binary()?.display());
            return Ok(std::process::ExitCode::SUCCESS);
        }
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        other => {
            eprintln!("error: unexpected arguments {other:?}\n\n{USAGE}");
            return Ok(std::process::ExitCode::from(2));
        }
    }
    eprintln!("starting etcd, kube-apiserver and kube-controller-manager {KUBERNETES_VERSION}...");
    let started = std::time::Instant::now();
    let plane = ControlPlane::start().await?;
    eprintln!(
        "control plane ready at {} in {:.1}s (logs in {})",
        plane.server,
        started.elapsed().as_secs_f64(),
        plane.dir().display()
    );
    eprintln!("use it from another shell with:");
    println!("export KUBECONFIG={}", plane.admin_kubeconfig.display());
    eprintln!("press Ctrl-C to stop it and remove its files");
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping...");
    drop(plane);
    Ok(std::process::ExitCode::SUCCESS)
}
