//! Upstream install manifests, as their projects publish them, fetched through
//! the Go module proxy (no download site is needed) and cached by version:
//! what the tests and `bench/apply` install instead of hand-made stand-ins.
//!
//! - Argo CD: `manifests/install.yaml` of module `github.com/argoproj/argo-cd/v3`,
//!   the file its release attaches.
//! - Argo Workflows: `kubectl kustomize manifests/cluster-install` of module
//!   `github.com/argoproj/argo-workflows/v3` (or `/v4`), which is how its
//!   Makefile builds the release's `install.yaml`.

use std::path::PathBuf;
use std::process::Command;

use crate::cache_dir;

/// The Go toolchain that fetches modules: Argo CD 3.6 declares `go 1.27`,
/// which `go mod download` refuses to read with an older Go. The module proxy
/// serves this toolchain like any module.
pub const GO_TOOLCHAIN: &str = "go1.27.3";

/// The source directory of Go module `path` at `version`, fetched through
/// the Go module proxy (`go mod download`, cached in the module cache).
/// Panics naming what failed.
pub fn go_module_dir(path: &str, version: &str) -> PathBuf {
    let output = Command::new("go")
        .args(["mod", "download", "-json"])
        .arg(format!("{path}@{version}"))
        .current_dir(std::env::temp_dir())
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", GO_TOOLCHAIN)
        .output()
        .expect("go mod download (Go is needed for the tests)");
    assert!(
        output.status.success(),
        "go mod download {path}@{version}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let module: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("go mod download prints JSON");
    PathBuf::from(module["Dir"].as_str().expect("module directory"))
}

/// The real install manifest of Argo CD `version` (such as `v3.6.1`):
/// `manifests/install.yaml` of the `github.com/argoproj/argo-cd/v3` module.
pub fn argocd_install_manifest(version: &str) -> PathBuf {
    let path = go_module_dir(
        &format!("github.com/argoproj/argo-cd/{}", major(version)),
        version,
    )
    .join("manifests")
    .join("install.yaml");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// The real cluster install manifest of Argo Workflows `version` (such as
/// `v3.7.18`), built once with `kubectl kustomize` and kept in
/// `$PHD_CACHE_DIR/manifests/`.
pub fn workflows_install_manifest(version: &str) -> PathBuf {
    let dir = cache_dir().join("manifests");
    // "-pinned": earlier caches held the module's manifest with `:latest`.
    let path = dir.join(format!("argo-workflows-{version}-install-pinned.yaml"));
    if path.is_file() {
        return path;
    }
    let module = go_module_dir(
        &format!("github.com/argoproj/argo-workflows/{}", major(version)),
        version,
    );
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(module.join("manifests").join("cluster-install"))
        .output()
        .expect("kubectl kustomize (kubectl is needed for the tests)");
    assert!(
        output.status.success(),
        "kubectl kustomize of Argo Workflows {version}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The module's kustomization names Argo's images `:latest`; the
    // release's install.yaml (what operators apply) pins them to the
    // release, as its release build does with `kustomize edit set image`.
    let text = String::from_utf8(output.stdout).expect("the manifest is UTF-8");
    let mut pinned = text.clone();
    for image in ["argocli", "argoexec", "workflow-controller"] {
        pinned = pinned.replace(
            &format!("quay.io/argoproj/{image}:latest"),
            &format!("quay.io/argoproj/{image}:{version}"),
        );
    }
    assert!(
        !pinned.contains("quay.io/argoproj/workflow-controller:latest") && pinned != text,
        "the Argo Workflows {version} manifest names its images differently now"
    );
    std::fs::create_dir_all(&dir).expect("create the manifest cache");
    let partial = tempfile::NamedTempFile::new_in(&dir).expect("temporary file");
    std::fs::write(partial.path(), pinned).expect("write the manifest");
    partial.persist(&path).expect("keep the manifest");
    path
}

/// `v3` of `v3.6.1`: the suffix of a Go module path of that major version.
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

#[cfg(test)]
mod tests {
    #[test]
    fn major_version_suffix() {
        assert_eq!(super::major("v3.6.1"), "v3");
        assert_eq!(super::major("v4.0.5"), "v4");
    }
}
