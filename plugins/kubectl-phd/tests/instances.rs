//! `kubectl phd instance ...` against the real control plane after `argo
//! install`, with the stand-ins for Argo's controllers of phd-testkit.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use phd_testkit::argo::{ApplicationController, Verdict, WorkflowController};
use phd_testkit::{ControlPlane, unique_name, unreachable_kubeconfig};
use serde_json::Value;

const ROOT_PASSWORD: &str = "root-Pw-7a1c'\"$`\\ x";
const STORAGE_KEY: &str = "AKIA-storage-key-1f2e";
const STORAGE_SECRET: &str = "storage-secret-9d8c7b6a";
const ATLAS_PRIVATE: &str = "atlas-private-5e4d3c";

/// A cluster repository of its own for one test.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("repository dir"),
        }
    }

    fn instances(&self) -> PathBuf {
        self.dir.path().join("instances")
    }

    fn phd(&self, kubeconfig: &Path) -> Command {
        let mut command = Command::cargo_bin("kubectl-phd").expect("binary");
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
            .arg("--kubeconfig")
            .arg(kubeconfig);
        command
    }
}

async fn cluster() -> &'static ControlPlane {
    common::control_plane_with_argo().await
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind),
        plural,
    )
}

async fn workflows(client: &kube::Client, namespace: &str) -> BTreeMap<String, DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("Workflow", "workflows"),
    );
    api.list(&ListParams::default())
        .await
        .expect("list workflows")
        .items
        .into_iter()
        .map(|w| (w.metadata.name.clone().unwrap_or_default(), w))
        .collect()
}

async fn application(client: &kube::Client, name: &str) -> Option<DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &resource("Application", "applications"),
    );
    api.get_opt(name).await.expect("get application")
}

fn secret_text(secret: &Secret, key: &str) -> String {
    String::from_utf8(
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .unwrap_or_default(),
    )
    .expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_makes_everything_and_leaks_no_secret() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("site");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);

    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "create",
            &name,
            "--platform-name",
            "Académie \"Test\" & Co",
            "--timeout",
            "60s",
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");

    // Namespace with labels, executor RBAC with only what the emissary executor needs.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = namespaces.get(&name).await.expect("namespace");
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("kubectl-phd/instance"), Some(&name));
    assert_eq!(
        labels.get("kubectl-phd/environment").map(String::as_str),
        Some("production")
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    accounts
        .get("workflow-executor")
        .await
        .expect("executor service account");
    let roles: Api<Role> = Api::namespaced(client.clone(), &name);
    let rules = roles
        .get("workflow-executor")
        .await
        .expect("role")
        .rules
        .unwrap_or_default();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].resources,
        Some(vec!["workflowtaskresults".to_owned()])
    );
    assert_eq!(rules[0].verbs, ["create", "patch"]);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
    let policy = policies
        .get("phd-default-deny-ingress")
        .await
        .expect("network policy")
        .spec
        .expect("spec");
    assert_eq!(policy.policy_types, Some(vec!["Ingress".to_owned()]));
    assert_eq!(
        policy.ingress.expect("rules")[0]
            .from
            .as_ref()
            .map(Vec::len),
        Some(2)
    );

    // Secrets: the instance's passwords stay; the admin credentials are gone.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let credentials = secrets
        .get("phd-instance-credentials")
        .await
        .expect("credentials");
    let mysql_password = secret_text(&credentials, "mysql-password");
    assert_eq!(mysql_password.len(), 32);
    assert!(
        secrets
            .get_opt("phd-provisioning")
            .await
            .expect("get")
            .is_none(),
        "admin credentials removed after provisioning"
    );

    // Three Workflows referencing the templates, with no secret among their parameters.
    let submitted = workflows(&client, &name).await;
    let expected: Vec<String> = ["mongodb", "mysql", "storage"]
        .iter()
        .map(|r| format!("{r}-provision-{name}"))
        .collect();
    assert_eq!(submitted.keys().cloned().collect::<Vec<_>>(), expected);
    for workflow in submitted.values() {
        let reference = &workflow.data["spec"]["workflowTemplateRef"];
        assert_eq!(reference["clusterScope"], true);
        assert!(
            reference["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-provision-template"))
        );
        assert_eq!(
            workflow.data["spec"]["serviceAccountName"],
            "workflow-executor"
        );
    }
    let mysql =
        &submitted[&format!("mysql-provision-{name}")].data["spec"]["arguments"]["parameters"];
    assert!(
        mysql
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["name"] == "host" && p["value"] == "mysql.example.internal")
    );

    // The Application.
    let app = application(&client, &format!("{name}-production"))
        .await
        .expect("application");
    assert_eq!(app.data["spec"]["project"], "phd-production");
    assert_eq!(
        app.data["spec"]["source"]["path"],
        format!("instances/{name}/env")
    );
    assert_eq!(app.data["spec"]["destination"]["namespace"], name);
    assert_eq!(app.data["spec"]["syncPolicy"]["automated"]["prune"], true);
    assert_eq!(
        app.data["spec"]["syncPolicy"]["automated"]["selfHeal"],
        true
    );
    assert!(
        app.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"resources-finalizer.argocd.argoproj.io".to_owned())
    );

    // The files, with --platform-name in PLATFORM_NAME and no "None" anywhere.
    let dir = repo.instances().join(&name);
    let config = std::fs::read_to_string(dir.join("config.yml")).expect("config.yml");
    let application_file =
        std::fs::read_to_string(dir.join("application.yml")).expect("application.yml");
    let parsed: Value = serde_saphyr::from_str(&config).expect("config.yml is YAML");
    assert_eq!(parsed["PLATFORM_NAME"], "Académie \"Test\" & Co");
    assert_eq!(parsed["LMS_HOST"], format!("{name}.lms.example.org"));
    assert!(
        parsed["STORAGE_BUCKET_NAME"]
            .as_str()
            .is_some_and(|b| b.starts_with(&format!("phd-{name}-")) && b.len() <= 63)
    );
    assert!(!config.contains("None") && !application_file.contains("None"));

    // No secret value anywhere: Workflows, Application, files, output.
    let haystacks = [
        serde_json::to_string(&submitted.values().map(|w| &w.data).collect::<Vec<_>>())
            .expect("json"),
        serde_json::to_string(&app.data).expect("json"),
        config,
        application_file,
        stdout,
        stderr,
    ];
    for secret in [
        ROOT_PASSWORD,
        STORAGE_KEY,
        STORAGE_SECRET,
        ATLAS_PRIVATE,
        mysql_password.as_str(),
    ] {
        for (index, haystack) in haystacks.iter().enumerate() {
            assert!(
                !haystack.contains(secret),
                "secret found in haystack {index}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_provisioning_is_reported_kept_and_fixed_by_a_re_run() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("flaky");
    let repo = Repo::new();
    let controller = WorkflowController::start(client.clone(), &name);
    let mysql = format!("mysql-provision-{name}");
    controller.set(
        &mysql,
        Verdict::Fail {
            step: "create-user".into(),
            message: "Access denied for user 'root'@'10.0.0.7'".into(),
        },
    );

    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "60s"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "Workflow {mysql}: step create-user failed: Access denied"
        )),
        "{stderr}"
    );
    let kept = workflows(&client, &name).await;
    assert_eq!(
        kept[&mysql].data["status"]["phase"], "Failed",
        "the failed Workflow is kept"
    );
    let first_uid = kept[&mysql].metadata.uid.clone();
    assert!(
        application(&client, &format!("{name}-production"))
            .await
            .is_none(),
        "no Application before provisioning succeeds"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    assert!(
        secrets
            .get_opt("phd-provisioning")
            .await
            .expect("get")
            .is_none(),
        "admin credentials removed after a failure too"
    );
    let credentials = secrets
        .get("phd-instance-credentials")
        .await
        .expect("credentials")
        .data;
    let config =
        std::fs::read_to_string(repo.instances().join(&name).join("config.yml")).expect("config");

    controller.set(&mysql, Verdict::Succeed);
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "60s"])
        .assert()
        .success();
    let replaced = workflows(&client, &name).await;
    assert_eq!(replaced[&mysql].data["status"]["phase"], "Succeeded");
    assert_ne!(
        replaced[&mysql].metadata.uid, first_uid,
        "the failed Workflow was replaced"
    );
    assert_eq!(
        secrets
            .get("phd-instance-credentials")
            .await
            .expect("credentials")
            .data,
        credentials,
        "same passwords"
    );
    assert_eq!(
        std::fs::read_to_string(repo.instances().join(&name).join("config.yml")).expect("config"),
        config,
        "same bucket name"
    );
    assert!(
        application(&client, &format!("{name}-production"))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_asks_deprovisions_and_finishes_after_a_failure() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("gone");
    let repo = Repo::new();
    let controller = WorkflowController::start(client.clone(), &name);
    let _argocd = ApplicationController::start(client.clone());
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "60s"])
        .assert()
        .success();

    // Without a terminal and without --yes: refused, nothing touched.
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--yes"));
    assert!(
        application(&client, &format!("{name}-production"))
            .await
            .is_some()
    );

    // Storage deprovisioning fails: the namespace and files stay, and the message says what is left.
    let storage = format!("storage-deprovision-{name}");
    controller.set(
        &storage,
        Verdict::Fail {
            step: "delete-bucket".into(),
            message: "AccessDenied".into(),
        },
    );
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes", "--timeout", "60s"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("namespace and files are kept") && stderr.contains("AccessDenied"),
        "{stderr}"
    );
    assert!(
        application(&client, &format!("{name}-production"))
            .await
            .is_none(),
        "the Application went first"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&name).await.expect("get").is_some());
    assert!(repo.instances().join(&name).exists());

    // Fixed: the re-run finishes the job.
    controller.set(&storage, Verdict::Succeed);
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes", "--timeout", "60s"])
        .assert()
        .success();
    assert!(
        namespaces.get_opt(&name).await.expect("get").is_none(),
        "namespace finalised and gone"
    );
    assert!(!repo.instances().join(&name).exists());
    let seen = controller.seen();
    for resource in ["mysql", "mongodb", "storage"] {
        assert!(
            seen.contains(&format!("{resource}-deprovision-{name}")),
            "{resource} deprovisioned: {seen:?}"
        );
    }
    // And again: everything is already gone.
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes"])
        .assert()
        .success();
}

/// Every object's identity and resourceVersion, for before/after comparisons.
async fn snapshot(client: &kube::Client) -> Vec<String> {
    let mut all = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces
        .list(&ListParams::default())
        .await
        .expect("namespaces")
        .items
    {
        all.push(format!(
            "ns {:?} {:?}",
            ns.metadata.name, ns.metadata.resource_version
        ));
    }
    let secrets: Api<Secret> = Api::all(client.clone());
    for s in secrets
        .list(&ListParams::default())
        .await
        .expect("secrets")
        .items
    {
        all.push(format!(
            "secret {:?}/{:?} {:?}",
            s.metadata.namespace, s.metadata.name, s.metadata.resource_version
        ));
    }
    for (kind, plural) in [("Workflow", "workflows"), ("Application", "applications")] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind, plural));
        for o in api.list(&ListParams::default()).await.expect("list").items {
            all.push(format!(
                "{kind} {:?}/{:?} {:?}",
                o.metadata.namespace, o.metadata.name, o.metadata.resource_version
            ));
        }
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("dry");
    let repo = Repo::new();
    let before = snapshot(&client).await;
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--dry-run"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("kind: Workflow")
            && stdout.contains("kind: Application")
            && stdout.contains("<redacted>")
    );
    assert!(!stdout.contains(ROOT_PASSWORD) && !stdout.contains(STORAGE_SECRET));
    // Other tests create objects meanwhile; none of this test's may appear.
    let after = snapshot(&client).await;
    let new: Vec<&String> = after
        .iter()
        .filter(|o| !before.contains(o) && o.contains(&name))
        .collect();
    assert!(new.is_empty(), "dry run created {new:?}");
    assert!(!repo.instances().exists(), "dry run wrote no file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_status_show_what_is_missing_on_either_side() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    let cluster_only = unique_name("clusteronly");
    let _controller = WorkflowController::start(client.clone(), &cluster_only);
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &cluster_only, "--timeout", "60s"])
        .assert()
        .success();
    std::fs::remove_dir_all(repo.instances().join(&cluster_only)).expect("remove files");

    // An instance only in the repository: its files, copied from a dry-run-free render elsewhere.
    let repo_only = unique_name("repoonly");
    let dir = repo.instances().join(&repo_only);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("config.yml"),
        format!("LMS_HOST: {repo_only}.lms.example.org\n"),
    )
    .expect("config");

    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "list", "-o", "json"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let states: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json");
    let find = |name: &str| {
        states
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let only_cluster = find(&cluster_only);
    assert_eq!(only_cluster["namespace"], true);
    assert_eq!(only_cluster["inRepository"], false);
    assert!(only_cluster["problems"].to_string().contains("not in"));
    let only_repo = find(&repo_only);
    assert_eq!(only_repo["namespace"], false);
    assert_eq!(only_repo["host"], format!("{repo_only}.lms.example.org"));
    assert!(
        only_repo["problems"]
            .to_string()
            .contains("no namespace in the cluster")
    );

    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "status", &cluster_only])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "Workflow mysql-provision-{cluster_only}: Succeeded"
        )),
        "{stdout}"
    );
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "status", "nosuchinstance"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("exists neither"));
}

#[test]
fn bad_names_are_rejected_before_any_change() {
    let repo = Repo::new();
    let kubeconfig = unreachable_kubeconfig(repo.dir.path()).expect("kubeconfig");
    let long = "a".repeat(29);
    for bad in [
        "Site",
        "my_site",
        "1site",
        "site-",
        "",
        "..",
        long.as_str(),
        "a b",
        "a.b",
    ] {
        let output = repo
            .phd(&kubeconfig)
            .args(["instance", "create", bad, "--no-wait"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1), "{bad:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("instance name"), "{bad:?}: {stderr}");
        assert!(
            !stderr.contains("cannot reach"),
            "{bad:?} must fail before connecting"
        );
        assert!(!repo.instances().exists(), "{bad:?} wrote files");
    }
    let output = repo
        .phd(&kubeconfig)
        .args(["instance", "create", &long])
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("at most 28 characters, because its MySQL user")
    );
    let output = repo
        .phd(&kubeconfig)
        .args(["instance", "delete", "Bad_Name", "--yes"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("instance name"));
}

/// DigitalOcean sets the password of the MongoDB user the Workflow creates;
/// create reads it through the API and stores it as the instance's
/// `mongodb-password`, keeping the other credentials, and prints it nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digitalocean_mongodb_password_is_stored_with_the_credentials() {
    use phd_testkit::http::{HttpStub, Response};
    const TOKEN: &str = "dop_v1_token-4b3a29";
    const GENERATED: &str = "AVNS_do-generated-8f7e6d";
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("ocean");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let api = HttpStub::start(|request| {
        let authorized = request.header("authorization") == Some(&format!("Bearer {TOKEN}"));
        match request.segments().as_deref() {
            _ if !authorized => Response::json(401, &serde_json::json!({"id": "unauthorized", "message": "Unable to authenticate you"})),
            Some([v2, databases, cluster, users, user])
                if request.method == "GET"
                    && v2 == "v2"
                    && databases == "databases"
                    && cluster == "do-mongo-1"
                    && users == "users" =>
            {
                Response::json(
                    200,
                    &serde_json::json!({"user": {"name": user, "role": "normal", "password": GENERATED}}),
                )
            }
            _ => Response::json(404, &serde_json::json!({"id": "not_found", "message": "The resource you were accessing could not be found."})),
        }
    })
    .expect("stub DigitalOcean API");

    let output = repo
        .phd(&plane.admin_kubeconfig)
        .env_remove("PHD_MONGODB_PROVIDER")
        .env("PHD_MONGODB_PROVIDER", "digitalocean")
        .env("PHD_MONGODB_CLUSTER_ID", "do-mongo-1")
        .env("PHD_DIGITALOCEAN_TOKEN", TOKEN)
        .env("PHD_DIGITALOCEAN_API_URL", api.url())
        .args(["instance", "create", &name, "--timeout", "60s"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "create failed: {stderr}");
    assert!(!stdout.contains(GENERATED) && !stderr.contains(GENERATED));
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));

    let mongodb_workflow = &workflows(&client, &name).await[&format!("mongodb-provision-{name}")];
    let user = mongodb_workflow.data["spec"]["arguments"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "username")
        .and_then(|p| p["value"].as_str())
        .expect("username parameter")
        .to_owned();
    let requests: Vec<(String, Option<Vec<String>>)> = api
        .exchanges()
        .iter()
        .map(|exchange| (exchange.request.method.clone(), exchange.request.segments()))
        .collect();
    assert_eq!(
        requests,
        [(
            "GET".to_owned(),
            Some(
                ["v2", "databases", "do-mongo-1", "users", user.as_str()]
                    .map(str::to_owned)
                    .to_vec()
            )
        )]
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let credentials = secrets
        .get("phd-instance-credentials")
        .await
        .expect("credentials");
    assert_eq!(secret_text(&credentials, "mongodb-password"), GENERATED);
    assert!(
        secret_text(&credentials, "mysql-password").len() >= 20,
        "the MySQL password is kept"
    );
}

/// `PHD_MYSQL_CA_CERTIFICATE` (PEM text or a file) reaches the provisioning
/// Secret the MySQL scripts read; anything that is not a certificate is
/// refused before any change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_ca_certificate_reaches_the_provisioning_secret() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    let ca = plane.ca_pem();

    let refused = unique_name("badca");
    let not_pem = repo.dir.path().join("not-a-certificate.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    for value in [
        not_pem.display().to_string(),
        "/nonexistent/ca.pem".to_owned(),
    ] {
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .env("PHD_MYSQL_CA_CERTIFICATE", &value)
            .args(["instance", "create", &refused, "--no-wait"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("PHD_MYSQL_CA_CERTIFICATE"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&refused).await.expect("get").is_none());

    let name = unique_name("withca");
    let file = repo.dir.path().join("ca.pem");
    std::fs::write(&file, &ca).expect("write");
    repo.phd(&plane.admin_kubeconfig)
        .env("PHD_MYSQL_CA_CERTIFICATE", &file)
        .args(["instance", "create", &name, "--no-wait"])
        .assert()
        .success();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let provisioning = secrets
        .get("phd-provisioning")
        .await
        .expect("provisioning secret");
    assert_eq!(secret_text(&provisioning, "mysql-ca-certificate"), ca);
}
