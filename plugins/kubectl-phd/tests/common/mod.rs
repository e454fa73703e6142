//! Helpers shared by the integration tests that need Argo installed.

use assert_cmd::Command;
use phd_testkit::{ControlPlane, fixture};
use tokio::sync::OnceCell;

/// The shared control plane, with `kubectl phd argo install` run on it once
/// per test binary from the local install manifests.
pub async fn control_plane_with_argo() -> &'static ControlPlane {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    let plane = ControlPlane::shared().await;
    INSTALLED
        .get_or_init(|| async {
            Command::cargo_bin("kubectl-phd")
                .expect("binary")
                .current_dir(std::env::temp_dir())
                .env_remove("KUBECONFIG_CONTENT")
                .env("PHD_CLUSTER_DOMAIN", "lms.example.org")
                .env(
                    "PHD_CLUSTER_REPOSITORY",
                    "https://github.com/example/phd-demo-cluster.git",
                )
                .arg("--kubeconfig")
                .arg(&plane.admin_kubeconfig)
                .args(["argo", "install", "--argocd-manifest"])
                .arg(fixture("argocd-install.yaml"))
                .arg("--workflows-manifest")
                .arg(fixture("argo-workflows-install.yaml"))
                .assert()
                .success();
        })
        .await;
    plane
}
