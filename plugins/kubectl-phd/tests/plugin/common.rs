//! Helpers shared by the modules of the plugin's tests: the control plane
//! with Argo installed, cluster repositories, expected result keys.

use assert_cmd::Command;
use phd_testkit::ControlPlane;
use std::path::{Path, PathBuf};
use std::process::Output;

use tokio::sync::OnceCell;

/// The control plane shared by the tests that need Argo installed, with
/// `kubectl phd argo install` run on it once per test binary from the
/// upstream install manifests (not the bare `ControlPlane::shared`, whose
/// tests expect no Argo).
pub async fn control_plane_with_argo() -> &'static ControlPlane {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    let plane = ControlPlane::shared_named("argo").await;
    INSTALLED
        .get_or_init(|| async { install_argo(plane) })
        .await;
    plane
}

/// The real install manifest of the Argo CD release phd installs by default.
pub fn argocd_manifest() -> PathBuf {
    phd_testkit::argocd_install_manifest(phd_common::config::DEFAULT_ARGOCD_VERSION)
}

/// The real cluster install manifest of the Argo Workflows release phd
/// installs by default.
pub fn workflows_manifest() -> PathBuf {
    phd_testkit::workflows_install_manifest(phd_common::config::DEFAULT_WORKFLOWS_VERSION)
}

/// Runs `kubectl phd argo install` on `plane` from the upstream install manifests.
pub fn install_argo(plane: &ControlPlane) {
    let output = argo_install(plane, &workflows_manifest(), &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `kubectl phd argo install ARGS` on `plane` with the upstream Argo CD
/// manifest and `workflows` as the Argo Workflows one, without a terminal.
pub fn argo_install(plane: &ControlPlane, workflows: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("kubectl-phd")
        .expect("binary")
        .current_dir(std::env::temp_dir())
        .env_remove("KUBECONFIG_CONTENT")
        .env_remove("PHD_ARGO_ADMIN_PASSWORD")
        .env("PHD_CLUSTER_DOMAIN", "lms.example.org")
        .env(
            "PHD_CLUSTER_REPOSITORY",
            "https://github.com/example/phd-demo-cluster.git",
        )
        .arg("--kubeconfig")
        .arg(&plane.admin_kubeconfig)
        .args(["argo", "install", "--argocd-manifest"])
        .arg(argocd_manifest())
        .arg("--workflows-manifest")
        .arg(workflows)
        .args(args)
        .write_stdin("")
        .output()
        .expect("run kubectl-phd argo install")
}

pub const ROOT_PASSWORD: &str = "root-Pw-7a1c'\"$`\\ x";
pub const STORAGE_KEY: &str = "AKIA-storage-key-1f2e";
pub const STORAGE_SECRET: &str = "storage-secret-9d8c7b6a";
pub const ATLAS_PRIVATE: &str = "atlas-private-5e4d3c";

/// A cluster repository of its own for one test, and the environment the
/// instance commands need (fake credentials that tests look for in output).
pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("repository dir"),
        }
    }

    pub fn instances(&self) -> PathBuf {
        self.dir.path().join("instances")
    }

    pub fn phd(&self, kubeconfig: &Path) -> Command {
        Command::from_std(self.command(kubeconfig))
    }

    /// The same command as a [`std::process::Command`], to start without waiting.
    pub fn command(&self, kubeconfig: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("kubectl-phd"));
        command
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG_CONTENT")
            .env_remove("PHD_MONGODB_CLUSTER_ID")
            .env_remove("PHD_DIGITALOCEAN_TOKEN")
            .env("PHD_CLUSTER_DOMAIN", "lms.example.org")
            .env(
                "PHD_CLUSTER_REPOSITORY",
                "https://github.com/example/phd-demo-cluster.git",
            )
            .env("PHD_INSTANCES_DIRECTORY", self.instances())
            .env("PHD_MYSQL_ROOT_PASSWORD", ROOT_PASSWORD)
            .env("PHD_MYSQL_HOST", "mysql.example.internal")
            .env("PHD_STORAGE_ACCESS_KEY_ID", STORAGE_KEY)
            .env("PHD_STORAGE_SECRET_ACCESS_KEY", STORAGE_SECRET)
            .env("PHD_MONGODB_PROVIDER", "atlas")
            .env("PHD_ATLAS_PUBLIC_KEY", "atlas-public")
            .env("PHD_ATLAS_PRIVATE_KEY", ATLAS_PRIVATE)
            .env("PHD_ATLAS_PROJECT_ID", "project-1")
            .env("PHD_ATLAS_CLUSTER_NAME", "cluster-1")
            // Tutor's virtual environment, installed once for every test.
            .env("PHD_CACHE_DIR", phd_testkit::cache_dir())
            .env_remove("PHD_INGRESS_CLASS")
            .env_remove("PHD_CLUSTER_ISSUER")
            .env_remove("PHD_INGRESS_NAMESPACE")
            .arg("--kubeconfig")
            .arg(kubeconfig);
        command
    }
}

/// What `kubectl __complete phd WORDS...` offers (kubectl's plugin
/// completion, which runs `kubectl_complete-phd` from PATH), with KUBECONFIG
/// naming `kubeconfig`, in an empty directory (no cluster repository):
/// the candidates without their descriptions, then `:DIRECTIVE`.
pub fn kubectl_complete(kubeconfig: &Path, words: &[&str]) -> Vec<String> {
    let temp = tempfile::tempdir().expect("temporary directory");
    let binary = Path::new(env!("CARGO_BIN_EXE_kubectl-phd"));
    for name in ["kubectl-phd", "kubectl_complete-phd"] {
        std::os::unix::fs::symlink(binary, temp.path().join(name)).expect("link");
    }
    let path = std::env::join_paths(std::iter::once(temp.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let output = std::process::Command::new("kubectl")
        .args(["__complete", "phd"])
        .args(words)
        .env("PATH", &path)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(temp.path())
        .output()
        .expect("kubectl");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

/// The result object of a mutating command (docs/output.md): its keys are
/// exactly the shared ones plus `own`, every one present whatever happened.
pub fn assert_result_keys(result: &serde_json::Value, own: &[&str]) {
    let mut found: Vec<&str> = result
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    found.sort_unstable();
    let mut expected = vec!["action", "cluster", "external", "kind", "name", "objects"];
    expected.extend(own);
    expected.sort_unstable();
    assert_eq!(found, expected, "{result}");
}

/// A config.yml as `instance create NAME` writes it, without the comments.
pub fn config(name: &str) -> String {
    format!(
        r#"PHD_TUTOR_VERSION: "22.0.3"
ID: {name}
PLUGINS:
  - mfe
  - forum
  - drydock
  - phd
K8S_NAMESPACE: {name}
PLATFORM_NAME: "Open edX Instance for {name}"
ENABLE_HTTPS: true
ENABLE_WEB_PROXY: false
LMS_HOST: {name}.lms.example.org
CMS_HOST: studio.{name}.lms.example.org
PREVIEW_LMS_HOST: preview.{name}.lms.example.org
MFE_HOST: apps.{name}.lms.example.org
MEILISEARCH_API_KEY_UID: "6f1c2a8e-0d4b-4d1e-9a53-7c2b1e0f9a11"
RUN_MYSQL: false
MYSQL_HOST: mysql.example.org
MYSQL_PORT: 3306
OPENEDX_MYSQL_DATABASE: phd-{name}-openedx
OPENEDX_MYSQL_USERNAME: phd-{name}
RUN_MONGODB: false
MONGODB_HOST: mongodb.example.org
MONGODB_PORT: 27017
MONGODB_DATABASE: phd-{name}-openedx
FORUM_MONGODB_DATABASE: phd-{name}-forum
MONGODB_USERNAME: phd-{name}
MONGODB_USE_SSL: true
MONGODB_AUTH_MECHANISM: SCRAM-SHA-1
MONGODB_AUTH_SOURCE: admin
MONGODB_REPLICA_SET: ""
STORAGE_TYPE: s3
STORAGE_REGION: us-east-1
STORAGE_BUCKET_NAME: phd-{name}-a1b2c3d
STORAGE_ENDPOINT_URL: ""
"#
    )
}

/// `config` with `key: value` in place of the line of `key`, else appended.
pub fn with_setting(config: &str, key: &str, value: &str) -> String {
    let line = format!("{key}: {value}");
    let mut lines: Vec<String> = config.lines().map(str::to_owned).collect();
    match lines.iter().position(|l| l.starts_with(&format!("{key}:"))) {
        Some(index) => lines[index] = line,
        None => lines.push(line),
    }
    lines.join("\n") + "\n"
}

/// A repository with instance `name` written by hand (config.yml and
/// application.yml), not rendered yet.
pub fn repo_with(name: &str, config_text: &str) -> (Repo, PathBuf) {
    let repo = Repo::new();
    let dir = repo.instances().join(name);
    std::fs::create_dir_all(&dir).expect("instance dir");
    std::fs::write(dir.join("config.yml"), config_text).expect("config.yml");
    std::fs::write(
        dir.join("application.yml"),
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}-production\n  namespace: argocd\nspec:\n  project: phd-production\n  source:\n    repoURL: https://github.com/example/phd-demo-cluster.git\n    path: instances/{name}/env\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n"
        ),
    )
    .expect("application.yml");
    (repo, dir)
}

pub fn update(repo: &Repo, name: &str, args: &[&str]) -> Output {
    repo.phd(&repo.dir.path().join("none.kubeconfig"))
        .args(["instance", "update", name, "--files-only"])
        .args(args)
        // What a CI job or an operator's shell may hold: none of it may reach Tutor.
        .env("PHD_MYSQL_ROOT_PASSWORD", "root-secret-7d1e")
        .env("TUTOR_PLATFORM_NAME", "{{ 7 * 191 }}")
        .output()
        .expect("run kubectl-phd")
}

pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every file below `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).expect("below").to_path_buf());
            }
        }
    }
    found.sort();
    found
}
