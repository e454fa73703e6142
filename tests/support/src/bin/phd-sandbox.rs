//! Starts the tests' local control plane for a person to use, prints the
//! `export KUBECONFIG=...` line, and stops it on Ctrl-C.
//!
//! `phd-sandbox --prepare` only builds (or finds) the cached binaries and prints their path.

use phd_testkit::{ControlPlane, KUBERNETES_VERSION};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--prepare") {
        println!("{}", phd_testkit::binary()?.display());
        return Ok(());
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
    Ok(())
}
