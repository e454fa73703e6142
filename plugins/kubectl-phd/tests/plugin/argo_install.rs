//! `kubectl phd argo install` against the real control plane, with the
//! real upstream install manifests of the pinned releases (fetched through
//! the Go module proxy, see tests/support/src/upstream.rs), from a path and
//! over HTTP.

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use phd_common::argo;
use phd_testkit::{ControlPlane, serve};

use crate::common;
use serde_json::Value;

fn phd(kubeconfig: &Path, home: &Path) -> Command {
    let mut command = Command::cargo_bin("kubectl-phd").expect("binary");
    command
        .current_dir(home)
        .env("HOME", home)
        .env_remove("KUBECONFIG_CONTENT")
        .env_remove("PHD_ARGO_ADMIN_PASSWORD")
        .env_remove("PHD_ENVIRONMENT")
        .env("PHD_CLUSTER_DOMAIN", "lms.example.org")
        .env(
            "PHD_CLUSTER_REPOSITORY",
            "https://github.com/example/phd-demo-cluster.git",
        )
        .arg("--kubeconfig")
        .arg(kubeconfig);
    command
}

fn install(kubeconfig: &Path, home: &Path, extra: &[&str]) -> Command {
    let mut command = phd(kubeconfig, home);
    command
        .args(["argo", "install", "--argocd-manifest"])
        .arg(common::argocd_manifest())
        .arg("--workflows-manifest")
        .arg(common::workflows_manifest())
        .args(extra);
    command
}

fn report(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "argo install failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("-o json prints JSON")
}

async fn admin_password_hash(client: &kube::Client) -> (String, String) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
    let data = secrets
        .get("argocd-secret")
        .await
        .expect("argocd-secret")
        .data
        .unwrap_or_default();
    let text = |key: &str| {
        String::from_utf8(data.get(key).map(|b| b.0.clone()).unwrap_or_default()).expect("utf-8")
    };
    (text("admin.password"), text("admin.passwordMtime"))
}

#[tokio::test]
async fn install_configures_everything_and_is_idempotent() {
    // A control plane of its own: this is the first install, whose results
    // other tests' installs would change.
    let plane = ControlPlane::start().await.expect("own control plane");
    let client = plane.client().await.expect("client");
    let home = tempfile::tempdir().expect("home");
    let workflows_url =
        serve(std::fs::read(common::workflows_manifest()).expect("manifest")).expect("serve");

    // First run: everything created, a password generated and shown once.
    let output = phd(&plane.admin_kubeconfig, home.path())
        .args([
            "argo",
            "install",
            "-o",
            "json",
            "--workflows-ingress",
            "--argocd-manifest",
        ])
        .arg(common::argocd_manifest())
        .args(["--workflows-manifest", &workflows_url])
        .output()
        .expect("run");
    let first = report(&output);
    assert_eq!(first["argocd"]["adminPassword"]["status"], "generated");
    let password = first["argocd"]["adminPassword"]["password"]
        .as_str()
        .expect("password")
        .to_owned();
    assert_eq!(password.len(), 24);
    assert_eq!(first["workflows"]["manifest"], workflows_url);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(&password),
        "the password must not go to the log stream"
    );

    let (hash, mtime) = admin_password_hash(&client).await;
    assert!(
        bcrypt::verify(&password, &hash).expect("bcrypt hash"),
        "stored hash verifies"
    );
    assert!(
        mtime.ends_with('Z') && mtime.len() == 20,
        "RFC 3339 mtime: {mtime}"
    );

    // Every object of the upstream manifests is in the cluster: kubectl reads
    // each manifest on its own and finds each object, as many as upstream
    // ships (top-level `kind:` lines), and the report lists them all.
    for (part, manifest, namespace) in [
        ("argocd", common::argocd_manifest(), "argocd"),
        ("workflows", common::workflows_manifest(), "argo"),
    ] {
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let shipped = text.lines().filter(|l| l.starts_with("kind: ")).count();
        let shipped_definitions = text
            .lines()
            .filter(|l| *l == "kind: CustomResourceDefinition")
            .count();
        let found = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&plane.admin_kubeconfig)
            .args(["get", "-n", namespace, "-o", "name", "-f"])
            .arg(&manifest)
            .output()
            .expect("kubectl get");
        assert!(
            found.status.success(),
            "{part}: {}",
            String::from_utf8_lossy(&found.stderr)
        );
        let found = String::from_utf8_lossy(&found.stdout);
        assert_eq!(found.lines().count(), shipped, "{part}: {found}");
        let reported = first[part]["objects"].as_array().expect("objects");
        let reported_definitions = reported
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .count();
        assert_eq!(reported_definitions, shipped_definitions, "{part}");
        assert!(reported.len() > shipped, "{part}: upstream's and phd's own");
    }
    // Argo CD ships its three definitions (Application, ApplicationSet, AppProject).
    assert_eq!(
        std::fs::read_to_string(common::argocd_manifest())
            .expect("manifest")
            .lines()
            .filter(|l| *l == "kind: CustomResourceDefinition")
            .count(),
        3
    );

    // Argo CD settings.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
    let data = |cm: ConfigMap| cm.data.unwrap_or_default();
    let argocd_cm = data(config_maps.get("argocd-cm").await.expect("argocd-cm"));
    assert_eq!(argocd_cm["users.anonymous.enabled"], "false");
    assert_eq!(argocd_cm["url"], "https://argocd.lms.example.org");
    let rbac = data(
        config_maps
            .get("argocd-rbac-cm")
            .await
            .expect("argocd-rbac-cm"),
    );
    assert_eq!(rbac["policy.default"], "");
    for role in ["role:phd-admin", "role:phd-developer", "role:phd-readonly"] {
        assert!(rbac["policy.csv"].contains(role), "{role} defined");
    }
    let params = data(
        config_maps
            .get("argocd-cmd-params-cm")
            .await
            .expect("params"),
    );
    assert_eq!(
        params["server.insecure"], "true",
        "TLS ends at the ingress, no passthrough"
    );

    // The project of the environment, restricted to the cluster repository and this cluster.
    let projects = argo::Kind::AppProject.resource();
    let projects: Api<DynamicObject> = Api::namespaced_with(client.clone(), "argocd", &projects);
    let project = projects
        .get("phd-production")
        .await
        .expect("AppProject phd-production");
    assert_eq!(
        project.data["spec"]["sourceRepos"],
        serde_json::json!(["https://github.com/example/phd-demo-cluster.git"])
    );
    assert_eq!(
        project.data["spec"]["destinations"][0]["server"],
        "https://kubernetes.default.svc"
    );
    // No instance deploys into Kubernetes', Argo's or the edge's namespaces.
    let denied: Vec<&str> = project.data["spec"]["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .filter_map(|d| d["namespace"].as_str()?.strip_prefix('!'))
        .collect();
    for namespace in ["kube-*", "argocd", "argo", "default", "cert-manager"] {
        assert!(
            denied.contains(&namespace),
            "{namespace} not denied: {denied:?}"
        );
    }

    // Ingresses, with cert-manager TLS and no passthrough.
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(client.clone(), "argocd");
    let ingress = ingresses
        .get("argocd-server")
        .await
        .expect("argocd ingress");
    let annotations = ingress.metadata.annotations.unwrap_or_default();
    assert!(annotations.contains_key("cert-manager.io/cluster-issuer"));
    assert!(!annotations.keys().any(|k| k.contains("ssl-passthrough")));
    let spec = ingress.spec.expect("spec");
    assert_eq!(
        spec.rules.expect("rules")[0].host.as_deref(),
        Some("argocd.lms.example.org")
    );
    let workflow_ingresses: Api<k8s_openapi::api::networking::v1::Ingress> =
        Api::namespaced(client.clone(), "argo");
    assert!(
        workflow_ingresses
            .get_opt("argo-server")
            .await
            .expect("get")
            .is_some()
    );

    // Argo Workflows settings.
    let controller: Api<ConfigMap> = Api::namespaced(client.clone(), "argo");
    let controller = data(
        controller
            .get("workflow-controller-configmap")
            .await
            .expect("controller configmap"),
    );
    assert!(controller["workflowDefaults"].contains("runAsNonRoot: true"));
    assert!(controller["executor"].contains("allowPrivilegeEscalation: false"));
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "argo");
    let server = deployments.get("argo-server").await.expect("argo-server");
    let args = server
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(args.contains(&"--auth-mode=client".to_owned()), "{args:?}");

    // Every ClusterWorkflowTemplate shipped in manifests/.
    let templates = argo::Kind::ClusterWorkflowTemplate.resource();
    let templates: Api<DynamicObject> = Api::all_with(client.clone(), &templates);
    let installed = templates
        .list(&ListParams::default())
        .await
        .expect("list templates")
        .items
        .len();
    assert_eq!(installed, phd_common::manifests::workflow_templates().len());

    // No binding to cluster-admin anywhere.
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for binding in bindings
        .list(&ListParams::default())
        .await
        .expect("bindings")
        .items
    {
        let subjects = binding.subjects.unwrap_or_default();
        let touches_argo = subjects
            .iter()
            .any(|s| matches!(s.namespace.as_deref(), Some("argo" | "argocd")));
        assert!(
            !(touches_argo && binding.role_ref.name == "cluster-admin"),
            "{:?} binds cluster-admin",
            binding.metadata.name
        );
    }

    // Second run: nothing changes, the password stays. A manifest given
    // says which release is installed, whatever the version setting says.
    let second = report(
        &install(
            &plane.admin_kubeconfig,
            home.path(),
            &[
                "-o",
                "json",
                "--argocd-version",
                "v9.9.9",
                "--workflows-version",
                "v9.9.8",
            ],
        )
        .output()
        .expect("run"),
    );
    assert_eq!(
        second["argocd"]["version"],
        phd_common::config::DEFAULT_ARGOCD_VERSION
    );
    assert_eq!(
        second["workflows"]["version"],
        phd_common::config::DEFAULT_WORKFLOWS_VERSION
    );
    assert_eq!(second["argocd"]["adminPassword"]["status"], "unchanged");
    for part in ["argocd", "workflows"] {
        let objects = second[part]["objects"].as_array().expect("objects");
        let changed: Vec<&Value> = objects
            .iter()
            .filter(|o| o["outcome"] != "unchanged")
            .collect();
        // The workflows ingress of the first run is not asked for again, so it is left as it is.
        assert!(changed.is_empty(), "{part}: {changed:?}");
    }
    assert_eq!(
        admin_password_hash(&client).await,
        (hash.clone(), mtime.clone())
    );

    // --admin-password-stdin replaces it; the same password again changes nothing.
    let new_password = "correct horse battery staple $'\"`";
    let third = report(
        &install(
            &plane.admin_kubeconfig,
            home.path(),
            &["-o", "json", "--admin-password-stdin"],
        )
        .write_stdin(format!("{new_password}\n"))
        .output()
        .expect("run"),
    );
    assert_eq!(third["argocd"]["adminPassword"]["status"], "set");
    let (new_hash, _) = admin_password_hash(&client).await;
    assert!(bcrypt::verify(new_password, &new_hash).expect("bcrypt"));
    assert!(!bcrypt::verify(&password, &new_hash).expect("bcrypt"));
    let fourth = report(
        &install(
            &plane.admin_kubeconfig,
            home.path(),
            &["-o", "json", "--admin-password-stdin"],
        )
        .write_stdin(new_password)
        .output()
        .expect("run"),
    );
    assert_eq!(fourth["argocd"]["adminPassword"]["status"], "unchanged");
}

async fn exists<K>(client: &kube::Client, name: &str) -> bool
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    api.get_opt(name).await.expect("get").is_some()
}

#[tokio::test]
async fn argocd_only_installs_only_argocd_after_refusing_bad_input() {
    let plane = ControlPlane::start().await.expect("own control plane");
    let client = plane.client().await.expect("client");
    let home = tempfile::tempdir().expect("home");

    // Missing domain: a clear error naming the variable, and nothing created.
    install(&plane.admin_kubeconfig, home.path(), &["--argocd-only"])
        .env_remove("PHD_CLUSTER_DOMAIN")
        .assert()
        .code(1)
        .stderr(predicates::str::contains("PHD_CLUSTER_DOMAIN"));
    // A manifest that binds cluster-admin is refused whole.
    let dir = tempfile::tempdir().expect("dir");
    let greedy = dir.path().join("greedy.yaml");
    let mut text = std::fs::read_to_string(common::argocd_manifest()).expect("manifest");
    text.push_str("---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: greedy\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: argocd-server\n  namespace: argocd\n");
    std::fs::write(&greedy, text).expect("write");
    phd(&plane.admin_kubeconfig, home.path())
        .args(["argo", "install", "--argocd-only", "--argocd-manifest"])
        .arg(&greedy)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("binds cluster-admin"));
    assert!(
        !exists::<Namespace>(&client, "argocd").await,
        "nothing may be created by refused runs"
    );

    install(&plane.admin_kubeconfig, home.path(), &["--argocd-only"])
        .assert()
        .success();
    assert!(exists::<Namespace>(&client, "argocd").await);
    assert!(exists::<CustomResourceDefinition>(&client, "applications.argoproj.io").await);
    assert!(!exists::<Namespace>(&client, "argo").await);
    assert!(!exists::<CustomResourceDefinition>(&client, "workflows.argoproj.io").await);
}

#[tokio::test]
async fn workflows_only_installs_only_workflows() {
    let plane = ControlPlane::start().await.expect("own control plane");
    let client = plane.client().await.expect("client");
    let home = tempfile::tempdir().expect("home");
    // Neither the domain nor the repository is needed for Argo Workflows alone.
    // -o name: every object applied, as `kubectl apply -o name` prints them.
    let output = install(
        &plane.admin_kubeconfig,
        home.path(),
        &["--workflows-only", "-o", "name"],
    )
    .env_remove("PHD_CLUSTER_DOMAIN")
    .env_remove("PHD_CLUSTER_REPOSITORY")
    .output()
    .expect("run");
    assert!(output.status.success(), "{output:?}");
    let names = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "namespace/argo",
        "customresourcedefinition/clusterworkflowtemplates.argoproj.io",
        "deployment/workflow-controller",
    ] {
        assert!(
            names.lines().any(|line| line == expected),
            "{expected} in {names}"
        );
    }
    assert!(names.lines().all(|line| line.contains('/')), "{names}");
    assert!(exists::<Namespace>(&client, "argo").await);
    assert!(
        exists::<CustomResourceDefinition>(&client, "clusterworkflowtemplates.argoproj.io").await
    );
    assert!(!exists::<Namespace>(&client, "argocd").await);
    assert!(!exists::<CustomResourceDefinition>(&client, "applications.argoproj.io").await);
}

#[test]
fn only_flags_conflict() {
    let home = tempfile::tempdir().expect("home");
    Command::cargo_bin("kubectl-phd")
        .expect("binary")
        .current_dir(home.path())
        .args(["argo", "install", "--argocd-only", "--workflows-only"])
        .assert()
        .code(2);
}

fn argo_object(kind: argo::Kind) -> ApiResource {
    kind.resource()
}

/// The cluster repository's `cluster/` folder, as `cluster create` writes it,
/// applied by `argo install` run inside the repository with the real Argo CD
/// install manifest (its CRDs check every field): the services' project and
/// root Application, the Harmony Application, and the ApplicationSet that
/// gives each committed instance its Application back on a rebuilt cluster.
#[tokio::test]
async fn argo_install_applies_the_cluster_repository_services_and_instances() {
    // A control plane of its own: this Argo CD has another domain and the
    // real CRDs, which the other tests of this binary must not see change.
    let plane = ControlPlane::start().await.expect("control plane");
    let client = plane.client().await.expect("client");
    let home = tempfile::tempdir().expect("home");
    let repository_url = "https://github.com/example/phd-gitops-cluster.git";
    phd(&plane.admin_kubeconfig, home.path())
        .args(["cluster", "create", "GitOps", "gitops.example.org"])
        .args([
            "--github-repo",
            repository_url,
            "--acme-email",
            "ops@example.org",
        ])
        .args(["--no-git", "--output-dir"])
        .arg(home.path())
        .assert()
        .success();
    let repo = home.path().join("phd-gitops-cluster");
    let manifest = common::argocd_manifest();
    let run = || {
        phd(&plane.admin_kubeconfig, home.path())
            .current_dir(&repo)
            .env_remove("PHD_CLUSTER_DOMAIN")
            .env_remove("PHD_CLUSTER_REPOSITORY")
            .args(["argo", "install", "--argocd-only", "--argocd-manifest"])
            .arg(&manifest)
            .args(["-o", "json"])
            .output()
            .expect("run")
    };
    let first = report(&run());
    let applied: Vec<String> = first["argocd"]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for expected in [
        "AppProject/phd-cluster",
        "Application/phd-cluster",
        "Application/harmony",
        "ApplicationSet/phd-instances-production",
    ] {
        assert!(
            applied.contains(&expected.to_owned()),
            "{expected} not in {applied:?}"
        );
    }
    // A second run changes nothing.
    let second = report(&run());
    let changed: Vec<&Value> = second["argocd"]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter(|o| o["outcome"] != "unchanged")
        .collect();
    assert!(changed.is_empty(), "{changed:?}");

    // The services: the Harmony chart, pinned, with the cluster's ingress setting.
    let context: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("context.json")).expect("context"))
            .expect("json");
    let applications: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &argo_object(argo::Kind::Application),
    );
    let harmony = applications.get("harmony").await.expect("harmony");
    let source = &harmony.data["spec"]["source"];
    assert_eq!(source["chart"], "harmony-chart");
    assert!(
        source["targetRevision"]
            .as_str()
            .is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    );
    let values = &source["helm"]["valuesObject"];
    assert_eq!(values["notificationEmail"], "ops@example.org");
    assert_eq!(values["clusterDomain"], "gitops.example.org");
    assert_eq!(
        values["ingress-nginx"]["controller"]["ingressClassResource"]["name"],
        context["ingress_class"]
    );
    assert_eq!(
        harmony.data["spec"]["destination"]["namespace"],
        context["ingress_namespace"]
    );
    assert_eq!(context["cluster_issuer"], "harmony-letsencrypt-global");
    let root = applications.get("phd-cluster").await.expect("root");
    assert_eq!(root.data["spec"]["source"]["path"], "cluster/apps");
    assert!(repo.join("cluster/apps/harmony.yml").is_file());

    // The ApplicationSet's generator matches the repository's layout: for
    // each directory instances/<name>/, the Application it would make is the
    // one `instance create` writes into instances/<name>/application.yml.
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &argo_object(argo::Kind::ApplicationSet),
    );
    let set = sets
        .get("phd-instances-production")
        .await
        .expect("applicationset");
    let generator = &set.data["spec"]["generators"][0]["git"];
    assert_eq!(generator["repoURL"], repository_url);
    assert_eq!(generator["directories"][0]["path"], "instances/*");
    assert_eq!(
        set.data["spec"]["syncPolicy"]["applicationsSync"],
        "create-update"
    );
    let instance = "demo";
    let instance_dir = format!("instances/{instance}");
    let render = |text: &str| {
        text.replace("{{ .path.basename }}", instance)
            .replace("{{ .path.path }}", &instance_dir)
    };
    let template = &set.data["spec"]["template"];
    let generated: Value = serde_json::from_str(&render(&template.to_string())).expect("template");
    // application.yml of an instance, rendered from the instance scaffold.
    let scaffold: Value = {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../templates/instance/{{cookiecutter.instance_slug}}/application.yml"),
        )
        .expect("application.yml template");
        let rendered = text
            .replace("{{ cookiecutter.instance_slug }}", instance)
            .replace("{{ cookiecutter.environment }}", "production")
            .replace(
                "{{ cookiecutter.cluster_repository | tojson }}",
                &serde_json::to_string(repository_url).expect("json"),
            )
            .replace(
                "{{ cookiecutter.cluster_repository_branch | tojson }}",
                "\"main\"",
            );
        serde_saphyr::from_str(&rendered).expect("application.yml is YAML")
    };
    assert_eq!(generated["metadata"]["name"], scaffold["metadata"]["name"]);
    assert_eq!(
        generated["spec"], scaffold["spec"],
        "the two definitions of an instance's Application differ"
    );
    assert_eq!(
        generated["metadata"]["labels"]["kubectl-phd/instance"],
        scaffold["metadata"]["labels"]["kubectl-phd/instance"]
    );
    // Deleting the ApplicationSet must not delete the sites: its Applications
    // carry no cascade finalizer (phd's own application.yml does; `instance
    // delete` adds it to an ApplicationSet's Application it deletes).
    assert_eq!(
        set.data["spec"]["syncPolicy"]["preserveResourcesOnDeletion"],
        true
    );
    assert!(generated["metadata"]["finalizers"].is_null(), "{generated}");
    assert!(
        scaffold["metadata"]["finalizers"]
            .as_array()
            .expect("finalizers")
            .iter()
            .any(|f| f == "resources-finalizer.argocd.argoproj.io")
    );
    // A commit regenerates only the instances it changes.
    for application in [&generated, &scaffold] {
        assert_eq!(
            application["metadata"]["annotations"]["argocd.argoproj.io/manifest-generate-paths"],
            "."
        );
    }

    // Volumes: DigitalOcean Kubernetes has its default StorageClass, so this
    // repository adds none; an AWS one adds the default gp3 class of the EBS
    // CSI driver its infrastructure module installs (EKS has no default).
    let classes: Api<StorageClass> = Api::all(client.clone());
    assert!(classes.get_opt("gp3").await.expect("get").is_none());
    phd(&plane.admin_kubeconfig, home.path())
        .args(["cluster", "create", "On AWS", "aws.example.org"])
        .args(["--provider", "aws", "--github-repo", repository_url])
        .args(["--no-git", "--output-dir"])
        .arg(home.path())
        .assert()
        .success();
    let output = phd(&plane.admin_kubeconfig, home.path())
        .current_dir(home.path().join("phd-on-aws-cluster"))
        .env_remove("PHD_CLUSTER_DOMAIN")
        .env_remove("PHD_CLUSTER_REPOSITORY")
        .args(["argo", "install", "--argocd-only", "--argocd-manifest"])
        .arg(&manifest)
        .args(["-o", "json"])
        .output()
        .expect("run");
    let report = report(&output);
    assert!(
        report["argocd"]["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .any(|o| o["kind"] == "StorageClass" && o["name"] == "gp3"),
        "{report}"
    );
    let gp3 = classes.get("gp3").await.expect("gp3 StorageClass");
    assert_eq!(gp3.provisioner, "ebs.csi.aws.com");
    assert_eq!(
        gp3.metadata
            .annotations
            .unwrap_or_default()
            .get("storageclass.kubernetes.io/is-default-class")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        gp3.parameters
            .unwrap_or_default()
            .get("type")
            .map(String::as_str),
        Some("gp3")
    );
    assert_eq!(
        gp3.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
}

#[test]
fn a_cluster_repository_without_its_url_is_refused_before_any_change() {
    let home = tempfile::tempdir().expect("home");
    let kubeconfig = phd_testkit::unreachable_kubeconfig(home.path()).expect("kubeconfig");
    let created = phd(&kubeconfig, home.path())
        .args([
            "cluster",
            "create",
            "Nourl",
            "nourl.example.org",
            "--no-git",
            "--output-dir",
        ])
        .arg(home.path())
        .output()
        .expect("cluster create");
    assert!(created.status.success());
    // Its next steps name every place the URL goes, not only context.json.
    let steps = String::from_utf8_lossy(&created.stderr);
    assert!(
        steps.contains("context.json and as the empty repoURL and sourceRepos entries of cluster/"),
        "{steps}"
    );
    let output = phd(&kubeconfig, home.path())
        .current_dir(home.path().join("phd-nourl-cluster"))
        .args(["argo", "install", "--argocd-only", "--argocd-manifest"])
        .arg(common::argocd_manifest())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // One run names every file that lacks the URL.
    assert!(
        stderr.contains("the cluster repository's URL is empty"),
        "{stderr}"
    );
    for file in [
        "cluster/project.yml",
        "cluster/root.yml",
        "cluster/apps/instances.yml",
    ] {
        assert!(stderr.contains(file), "{file}: {stderr}");
    }
}

fn kubectl_apply(kubeconfig: &Path, objects: &[Value]) {
    let stream: String = objects
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).expect("json")))
        .collect();
    phd_testkit::kubectl_apply(kubeconfig, &stream, "test", false);
}

fn doctor_statuses(kubeconfig: &Path, home: &Path, repository: &str) -> BTreeMap<String, String> {
    let output = phd(kubeconfig, home)
        .env("PHD_CLUSTER_REPOSITORY", repository)
        .env("PHD_INGRESS_NAMESPACE", "harmony")
        .args(["doctor", "-o", "json"])
        .output()
        .expect("doctor");
    let report: Value = serde_json::from_slice(&output.stdout).expect("doctor JSON");
    let mut statuses = BTreeMap::new();
    for check in report["checks"].as_array().expect("checks") {
        let name = check["name"].as_str().unwrap_or_default().to_owned();
        // A later check of the same name (an Application that cannot read
        // its repository) wins.
        statuses.insert(
            name,
            check["status"].as_str().unwrap_or_default().to_owned(),
        );
    }
    statuses
}

/// Each check of the path to a site fails on a bare cluster and passes once
/// what it looks for is there; `argo repository` writes the Secret Argo CD
/// reads, idempotently, with its values never in arguments or output.
#[tokio::test]
async fn doctor_follows_the_path_to_a_site_and_repository_access_is_granted() {
    let plane = ControlPlane::start().await.expect("control plane");
    let kubeconfig = &plane.admin_kubeconfig;
    let client = plane.client().await.expect("client");
    let home = tempfile::tempdir().expect("home");
    let url = "git@github.com:example/phd-doctor-cluster.git";
    let site_checks = [
        "ingress class",
        "ClusterIssuer",
        "StorageClass",
        "repository access",
        "ApplicationSet",
    ];
    let before = doctor_statuses(kubeconfig, home.path(), url);
    for check in site_checks {
        assert_eq!(before[check], "warning", "{check}: {before:?}");
    }

    // Argo CD (real manifest), then repository access by deploy key.
    let manifest = common::argocd_manifest();
    phd(kubeconfig, home.path())
        .env("PHD_CLUSTER_REPOSITORY", url)
        .args(["argo", "install", "--argocd-only", "--argocd-manifest"])
        .arg(&manifest)
        .assert()
        .success();
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n";
    let key_file = home.path().join("deploy-key");
    std::fs::write(&key_file, key).expect("key");
    let grant = |extra: &[&str]| {
        let output = phd(kubeconfig, home.path())
            .env("PHD_CLUSTER_REPOSITORY", url)
            .args(["-v", "argo", "repository", "--ssh-key-file"])
            .arg(&key_file)
            .args(extra)
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    let first = grant(&["-o", "json"]);
    let first: Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(first["outcome"], "created");
    let again = grant(&["-o", "json"]);
    let again_json: Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again_json["outcome"], "unchanged");
    assert!(!String::from_utf8_lossy(&again.stderr).contains("b3BlbnNzaC1rZXkt"));
    // -o name: the object applied, as `kubectl apply -o name` prints it.
    let named = grant(&["-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&named.stdout),
        "secret/phd-cluster-repository\n"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
    let secret = secrets.get("phd-cluster-repository").await.expect("secret");
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("argocd.argoproj.io/secret-type")
            .map(String::as_str),
        Some("repository")
    );
    let data = secret.data.clone().unwrap_or_default();
    let field = |name: &str| String::from_utf8(data[name].0.clone()).expect("utf-8");
    assert_eq!(field("type"), "git");
    assert_eq!(field("url"), url);
    assert_eq!(field("sshPrivateKey"), key);

    // Bad input: refused before any change.
    for (args, expected) in [
        (
            vec![
                "--url",
                "https://github.com/example/x.git",
                "--ssh-key-file",
            ],
            "needs an ssh URL",
        ),
        (vec!["--token-stdin"], "a token needs an https URL"),
        (
            vec![
                "--url",
                "https://github.com/example/x y.git",
                "--token-stdin",
            ],
            "is not a repository URL",
        ),
    ] {
        let mut command = phd(kubeconfig, home.path());
        command
            .env("PHD_CLUSTER_REPOSITORY", url)
            .args(["argo", "repository"])
            .args(&args);
        if args.last() == Some(&"--ssh-key-file") {
            command.arg(&key_file);
        }
        let output = command.write_stdin("token-123\n").output().expect("run");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(expected),
            "{args:?}"
        );
    }
    let not_a_key = home.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello").expect("file");
    let output = phd(kubeconfig, home.path())
        .env("PHD_CLUSTER_REPOSITORY", url)
        .args(["argo", "repository", "--ssh-key-file"])
        .arg(&not_a_key)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("holds no PEM private key"));
    assert_eq!(
        secrets
            .get("phd-cluster-repository")
            .await
            .expect("secret")
            .data,
        secret.data,
        "a refused run changed the Secret"
    );
    // A token over https, from standard input only.
    let token = "github_pat_11AAAA-secret-token";
    let output = phd(kubeconfig, home.path())
        .args([
            "-vv",
            "argo",
            "repository",
            "--url",
            "https://github.com/example/other.git",
            "--token-stdin",
        ])
        .write_stdin(format!("{token}\n"))
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!printed.contains(token));
    let secret = secrets.get("phd-cluster-repository").await.expect("secret");
    let data = secret.data.unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&data["password"].0), token);
    assert_eq!(
        String::from_utf8_lossy(&data["username"].0),
        "x-access-token"
    );
    assert!(
        !data.contains_key("sshPrivateKey"),
        "the old method's key is gone"
    );
    // Credentials for another URL than the Applications': doctor says so.
    let output = phd(kubeconfig, home.path())
        .env("PHD_CLUSTER_REPOSITORY", url)
        .args(["doctor", "-o", "json"])
        .output()
        .expect("doctor");
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let access = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "repository access")
        .expect("check");
    assert!(
        access["detail"]
            .as_str()
            .is_some_and(|d| d.contains("https://github.com/example/other.git but not for")),
        "{access}"
    );
    // A GitHub App signs with an RSA key: an OpenSSH key, or a PKCS#8 key
    // that is not RSA, is refused.
    let app_key_refusal = |key: &Path| {
        let output = phd(kubeconfig, home.path())
            .args([
                "argo",
                "repository",
                "--url",
                "https://github.com/example/other.git",
            ])
            .args(["--github-app-id", "1", "--github-app-installation-id", "2"])
            .arg("--github-app-key-file")
            .arg(key)
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = app_key_refusal(&key_file);
    assert!(
        stderr.contains("holds a key of type OPENSSH; expected RSA or PKCS#8"),
        "{stderr}"
    );
    let ed25519 = home.path().join("ed25519.pem");
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&ed25519)
        .status()
        .expect("openssl");
    assert!(made.success());
    let stderr = app_key_refusal(&ed25519);
    assert!(stderr.contains("not RSA"), "{stderr}");
    // Back to the deploy key for the doctor below.
    grant(&[]);

    // The ingress controller's class, a Ready ClusterIssuer (the real
    // cert-manager CRD), a default StorageClass, the ApplicationSet.
    let cert_manager =
        phd_testkit::go_module_dir("github.com/cert-manager/cert-manager", "v1.16.2");
    let text = std::fs::read_to_string(cert_manager.join("deploy/crds/crd-clusterissuers.yaml"))
        .expect("cert-manager CRD");
    let mut crd: Value = serde_saphyr::from_str(&text).expect("CRD YAML");
    // The file is also a Helm template: its labels are template text.
    crd["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("labels");
    kubectl_apply(kubeconfig, &[crd]);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    kubectl_apply(
        kubeconfig,
        &[
            serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
            serde_json::json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "example.org/none"}),
            serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                "metadata": {"name": "harmony-letsencrypt-global"},
                "spec": {"acme": {"server": "https://acme-v02.api.letsencrypt.org/directory",
                    "privateKeySecretRef": {"name": "harmony-letsencrypt-global"},
                    "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]}}}),
            serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
                "metadata": {"name": "phd-instances-production", "namespace": "argocd"},
                "spec": {"generators": [], "template": {"metadata": {}, "spec": {
                    "project": "default", "destination": {"server": "https://kubernetes.default.svc"}}}}}),
        ],
    );
    let middle = doctor_statuses(kubeconfig, home.path(), url);
    assert_eq!(
        middle["ClusterIssuer"], "warning",
        "not Ready yet: {middle:?}"
    );
    // cert-manager's controller would set Ready; here the test does.
    let issuers: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("cert-manager.io", "v1", "ClusterIssuer"),
            "clusterissuers",
        ),
    );
    issuers
        .patch_status(
            "harmony-letsencrypt-global",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "ACMEAccountRegistered", "message": "ok"}]}})),
        )
        .await
        .expect("status");
    let after = doctor_statuses(kubeconfig, home.path(), url);
    for check in site_checks {
        assert_eq!(after[check], "ok", "{check}: {after:?}");
    }
}

/// Issue 14.10: the proxy variables behave as for kubectl: the API server
/// and manifest downloads go through `HTTPS_PROXY`/`HTTP_PROXY`, unless
/// `NO_PROXY` covers the host.
#[tokio::test]
async fn proxy_variables_are_honoured_and_no_proxy_bypasses_them() {
    let plane = ControlPlane::shared().await;
    let home = tempfile::tempdir().expect("home");
    let manifest =
        serve(std::fs::read(common::argocd_manifest()).expect("manifest")).expect("serve");
    let unreachable = phd_testkit::unreachable_kubeconfig(home.path()).expect("kubeconfig");
    for no_proxy in [None, Some("127.0.0.1"), Some("*")] {
        let proxy = phd_testkit::proxy::Proxy::start().expect("proxy");
        let with_proxy = |kubeconfig: &Path| {
            let mut command = phd(kubeconfig, home.path());
            command
                .env("HTTPS_PROXY", &proxy.url)
                .env("HTTP_PROXY", &proxy.url)
                .env_remove("https_proxy")
                .env_remove("http_proxy")
                .env_remove("no_proxy");
            match no_proxy {
                Some(list) => command.env("NO_PROXY", list),
                None => command.env_remove("NO_PROXY"),
            };
            command
        };
        let output = with_proxy(&plane.admin_kubeconfig)
            .arg("doctor")
            .output()
            .expect("doctor");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("answers, Kubernetes"),
            "{no_proxy:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The manifest is read before the (unreachable) cluster is touched.
        let output = with_proxy(&unreachable)
            .args([
                "argo",
                "install",
                "--argocd-only",
                "--argocd-manifest",
                &manifest,
            ])
            .output()
            .expect("argo install");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("cannot reach"), "{no_proxy:?}: {stderr}");
        let seen = proxy.seen();
        let server = plane.server.trim_start_matches("https://");
        let tunnelled = seen.iter().any(|s| s == &format!("CONNECT {server}"));
        let downloaded = seen.iter().any(|s| s == &format!("GET {manifest}"));
        if no_proxy.is_some() {
            assert!(seen.is_empty(), "{no_proxy:?}: {seen:?}");
        } else {
            assert!(tunnelled && downloaded, "{seen:?}");
        }
    }
}

/// From a trial: with no cluster to reach, `argo install` reported a failed
/// manifest download first, which hid the real problem. The downloads and the
/// connection overlap; an unreachable cluster is named first.
#[test]
fn an_unreachable_cluster_is_named_before_a_failed_download() {
    let home = tempfile::tempdir().expect("home");
    let unreachable = phd_testkit::unreachable_kubeconfig(home.path()).expect("kubeconfig");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let url = format!(
        "http://{}/install.yaml",
        closed.local_addr().expect("address")
    );
    drop(closed);
    let output = phd(&unreachable, home.path())
        .args([
            "argo",
            "install",
            "--argocd-only",
            "--domain",
            "demo.example.org",
            "--repository",
            "https://git.example.org/demo.git",
            "--argocd-manifest",
            &url,
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("cannot reach"), "{stderr}");
    assert!(!stderr.contains("cannot download"), "{stderr}");
}

/// Issue 14.8: the first line of an error names what failed and the
/// underlying reason, without -v: the object and the API server's message
/// for a refused object, the plugin's own words for a failing credential
/// plugin (not a byte dump).
#[tokio::test]
async fn errors_name_their_cause_in_the_first_line() {
    // A control plane of its own: the broken install leaves part of Argo CD,
    // which the bare shared plane's tests must not see.
    let plane = ControlPlane::start().await.expect("own control plane");
    let home = tempfile::tempdir().expect("home");
    let mut manifest = std::fs::read_to_string(common::argocd_manifest()).expect("manifest");
    manifest.push_str(
        "\n---\n{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"phd-bad-port\"}, \"spec\": {\"ports\": [{\"port\": 99999}]}}\n",
    );
    let path = home.path().join("bad-install.yaml");
    std::fs::write(&path, manifest).expect("manifest");
    let output = phd(&plane.admin_kubeconfig, home.path())
        .args(["argo", "install", "--argocd-only", "--argocd-manifest"])
        .arg(&path)
        .write_stdin("")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    // What failed, the object (with the document it came from), and the API
    // server's message, on one line.
    assert!(first.contains("cannot install Argo CD"), "{stderr}");
    assert!(
        first.contains("bad-install.yaml, document ")
            && first.contains("cannot apply Service argocd/phd-bad-port"),
        "{stderr}"
    );
    assert!(first.contains("99999"), "{stderr}");
    assert!(first.contains("422"), "{stderr}");
    assert!(!stderr.contains("ErrorResponse"), "no debug dump: {stderr}");

    // A credential plugin that fails says why, in its own words.
    let script = home.path().join("failing-plugin");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'your session expired: run acme-login' >&2\nexit 3\n",
    )
    .expect("script");
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&script, executable).expect("chmod");
    let mut config: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(&plane.admin_kubeconfig).expect("kubeconfig"),
    )
    .expect("kubeconfig");
    config["users"][0]["user"] = serde_json::json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": script.display().to_string(),
        "interactiveMode": "Never",
    }});
    let kubeconfig = home.path().join("exec.kubeconfig");
    std::fs::write(&kubeconfig, config.to_string()).expect("write");
    for verbose in [false, true] {
        let mut command = phd(&kubeconfig, home.path());
        command.args(["user", "list"]);
        if verbose {
            command.arg("-v");
        }
        let output = command.output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            first.contains("your session expired: run acme-login"),
            "{stderr}"
        );
        assert!(!stderr.contains("Output {"), "no debug dump: {stderr}");
    }
}

/// Issue 19.5: doctor calls Argo "installed" only with its Deployments
/// ready; with none of their pods running it says which are not.
#[tokio::test]
async fn doctor_reports_argo_ready_only_when_its_deployments_are() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    // A control plane of its own: the install here must not generate the
    // admin password another test of this binary expects to generate.
    let plane = ControlPlane::start().await.expect("control plane");
    let client = plane.client().await.expect("client");
    let home = tempfile::tempdir().expect("home");
    install(&plane.admin_kubeconfig, home.path(), &[])
        .write_stdin("")
        .assert()
        .success();
    let detail = |report: &Value, name: &str| -> (String, String) {
        let check = report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default();
        (
            check["status"].as_str().unwrap_or_default().to_owned(),
            check["detail"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let doctor = || {
        let output = phd(&plane.admin_kubeconfig, home.path())
            .args(["doctor", "-o", "json"])
            .output()
            .expect("doctor");
        serde_json::from_slice::<Value>(&output.stdout).expect("doctor JSON")
    };
    // No kubelet here: no pod ever runs.
    let (status, text) = detail(&doctor(), "Argo Workflows");
    assert_eq!(status, "warning", "{text}");
    assert!(
        text.contains("not ready") && text.contains("workflow-controller"),
        "{text}"
    );
    // Mark the Deployments ready, as a kubelet and the controller would.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "argo");
    for deployment in deployments
        .list(&ListParams::default())
        .await
        .expect("list")
    {
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let replicas = deployment.spec.and_then(|s| s.replicas).unwrap_or(1);
        deployments
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"replicas": replicas, "readyReplicas": replicas}})),
            )
            .await
            .expect("status");
    }
    let (status, text) = detail(&doctor(), "Argo Workflows");
    assert_eq!(status, "ok", "{text}");
    assert!(text.contains("Deployments ready"), "{text}");
}
