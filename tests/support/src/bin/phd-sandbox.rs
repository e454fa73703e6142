//! Starts the tests' local control plane for a person to use, prints the
//! `export KUBECONFIG=...` line, and stops it on Ctrl-C.

use phd_testkit::{ControlPlane, KUBERNETES_VERSION};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eprintln!("starting etcd, kube-apiserver and kube-controller-manager {KUBERNETES_VERSION}...");
    let plane = ControlPlane::start().await?;
    eprintln!(
        "control plane ready at {} (logs in {})",
        plane.server,
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
