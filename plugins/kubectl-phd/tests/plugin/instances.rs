//! `kubectl phd instance ...` against the real control plane after `argo
//! install`, with the stand-ins for Argo's controllers of phd-testkit.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::ApiResource;
use phd_common::argo;
use phd_testkit::argo::{ApplicationController, Verdict, WorkflowController};
use phd_testkit::{ControlPlane, unique_name, unreachable_kubeconfig};
use serde_json::Value;

use common::{ATLAS_PRIVATE, ROOT_PASSWORD, Repo, STORAGE_KEY, STORAGE_SECRET};

async fn cluster() -> &'static ControlPlane {
    common::control_plane_with_argo().await
}

fn resource(kind: argo::Kind) -> ApiResource {
    kind.resource()
}

async fn workflows(client: &kube::Client, namespace: &str) -> BTreeMap<String, DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource(argo::Kind::Workflow));
    api.list(&ListParams::default())
        .await
        .expect("list workflows")
        .items
        .into_iter()
        .map(|w| (w.metadata.name.clone().unwrap_or_default(), w))
        .collect()
}

async fn application(client: &kube::Client, name: &str) -> Option<DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "argocd", &resource(argo::Kind::Application));
    api.get_opt(name).await.expect("get application")
}

/// The instance's config.yml, parsed.
fn parsed_config(repo: &Repo, name: &str) -> Value {
    let text = std::fs::read_to_string(repo.instances().join(name).join("config.yml"))
        .expect("config.yml");
    serde_saphyr::from_str(&text).expect("config.yml is YAML")
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
    let controller = WorkflowController::start(client.clone(), &name);

    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "create",
            &name,
            "--platform-name",
            "Académie «Test» & Co: l’école",
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
    // The site's pods (the default ServiceAccount) get no API token, and
    // cannot reach the cloud's instance metadata service.
    let default = accounts.get("default").await.expect("default account");
    assert_eq!(default.automount_service_account_token, Some(false));
    let egress = Api::<NetworkPolicy>::namespaced(client.clone(), &name)
        .get("phd-deny-metadata-egress")
        .await
        .expect("egress policy")
        .spec
        .expect("spec");
    assert_eq!(egress.policy_types, Some(vec!["Egress".to_owned()]));
    let blocks: Vec<_> = egress.egress.expect("rules")[0]
        .to
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|peer| peer.ip_block)
        .collect();
    assert!(
        blocks.iter().any(|b| b.cidr == "0.0.0.0/0"
            && b.except.as_deref() == Some(&["169.254.169.254/32".to_owned()][..])),
        "{blocks:?}"
    );
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
    // Developers may run Workflows here (issue 14.6).
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(client.clone(), &name);
    let developers = bindings
        .get("phd-argo-developers")
        .await
        .expect("developers' binding");
    assert_eq!(developers.role_ref.name, "phd-argo-workflow-runner");
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
        // Only the reference, no arguments (issue 29): the template reads
        // its target from the Secret phd-provisioning, as phd wrote it.
        let keys: Vec<&String> = workflow.data["spec"]
            .as_object()
            .expect("spec")
            .keys()
            .collect();
        assert_eq!(keys, ["workflowTemplateRef"]);
    }
    let seen = controller
        .surroundings(&format!("mysql-provision-{name}"))
        .expect("the stand-in completed the MySQL Workflow");
    let admin = seen.provisioning.expect("admin credentials while it ran");
    assert_eq!(admin["mysql-host"], "mysql.example.internal");
    let config = parsed_config(&repo, &name);
    assert_eq!(
        Some(admin["mysql-database"].as_str()),
        config["OPENEDX_MYSQL_DATABASE"].as_str()
    );
    assert_eq!(
        Some(admin["bucket"].as_str()),
        config["STORAGE_BUCKET_NAME"].as_str()
    );
    assert_eq!(admin["storage-versioning"], "false");

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
    assert_eq!(parsed["PLATFORM_NAME"], "Académie «Test» & Co: l’école");
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

    // An instance whose Application is gone (deleted by hand, or with a
    // renamed ApplicationSet) still runs, unmanaged: doctor names it.
    let applications = argo::applications(&client);
    let application_name = format!("{name}-production");
    applications
        .patch(
            &application_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop the finalizer");
    applications
        .delete(&application_name, &Default::default())
        .await
        .expect("delete the Application");
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["doctor", "-o", "json"])
        .output()
        .expect("doctor");
    let report: Value = serde_json::from_slice(&output.stdout).expect("doctor -o json");
    let check = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "instances")
        .unwrap_or_else(|| panic!("no instances check: {report}"));
    assert_eq!(check["status"], "warning", "{check}");
    let detail = check["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("without an Argo CD Application") && detail.contains(&name),
        "{detail}"
    );
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
    // Issue 19.3: status says failed, in the table and in JSON, with phase
    // and message apart and every key present.
    let status = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "status", &name, "-o", "json"])
        .output()
        .expect("status");
    let json: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(json["workflows"][&mysql]["phase"], "Failed", "{json}");
    assert!(
        json["workflows"][&mysql]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Access denied")),
        "{json}"
    );
    for key in ["environment", "application", "sync", "health", "host"] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let table = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "status", &name])
        .output()
        .expect("status");
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("failed") && !row.contains("succeeded"),
        "{table}"
    );
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
    // What Argo CD would deploy from env/, as Argo CD tracks it.
    let deployed = deploy_env(
        &plane.admin_kubeconfig,
        &repo.instances().join(&name).join("env"),
        &format!("{name}-production"),
    );
    assert!(deployed > 20, "{deployed} objects deployed");

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
        stderr.contains("so its namespace is kept") && stderr.contains("AccessDenied"),
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
    // Argo CD took what it deployed; the namespace and its credentials stay
    // for the deprovisioning that is still to finish.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &name);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    assert!(
        secrets
            .get_opt("phd-instance-credentials")
            .await
            .expect("get")
            .is_some()
    );

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
    // And again: everything is already gone, which is an error unless
    // --ignore-not-found (as with kubectl).
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes"])
        .assert()
        .code(1);
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes", "--ignore-not-found"])
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
    for kind in [argo::Kind::Workflow, argo::Kind::Application] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind));
        let kind = kind.names().0;
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
    // A preview needs no admin credentials (from a trial: it demanded them);
    // it names the ones a real run will need, and a real run still refuses.
    for dry_run in [true, false] {
        let mut command = repo.phd(&plane.admin_kubeconfig);
        command
            .env_remove("PHD_MYSQL_ROOT_PASSWORD")
            .env_remove("PHD_STORAGE_SECRET_ACCESS_KEY")
            .args(["instance", "create", &name]);
        if dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().expect("run");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let missing = "PHD_MYSQL_ROOT_PASSWORD, PHD_STORAGE_SECRET_ACCESS_KEY";
        if dry_run {
            assert!(output.status.success(), "{stderr}");
            assert!(
                stdout.contains(&format!("# not set, required without --dry-run: {missing}")),
                "{stdout}"
            );
        } else {
            assert!(!output.status.success());
            assert!(
                stderr.contains(&format!(
                    "missing required environment variables: {missing}"
                )),
                "{stderr}"
            );
        }
    }
    // Other tests create objects meanwhile; none of this test's may appear.
    let after = snapshot(&client).await;
    let new: Vec<&String> = after
        .iter()
        .filter(|o| !before.contains(o) && o.contains(&name))
        .collect();
    assert!(new.is_empty(), "dry run created {new:?}");
    assert!(!repo.instances().exists(), "dry run wrote no file");
}

/// Issue 30: without an Argo Workflows controller processing Workflows (the
/// control plane runs no Deployment's pods), `create` and `delete` end
/// within `--timeout` with the cause on the first line, call a timeout a
/// timeout, keep the admin credentials the pending Workflows need, and
/// `delete` names what may be left by kind, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_without_a_workflows_controller_end_with_the_cause() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("stuck");
    let repo = Repo::new();
    let _argocd = ApplicationController::start(client.clone());
    let started = std::time::Instant::now();
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "5s"])
        .output()
        .expect("run");
    assert!(started.elapsed() < std::time::Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let first = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first.contains(&format!(
            "provisioning of instance {name} timed out after 5s"
        )) && first.contains("no Argo Workflows controller processes Workflows")
            && first.contains("argo/workflow-controller"),
        "{stderr}"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    assert!(
        secrets
            .get_opt("phd-provisioning")
            .await
            .expect("get")
            .is_some(),
        "the pending Workflows lost their credentials"
    );

    let git_dir = repo.instances().join(&name);
    std::fs::remove_dir_all(&git_dir).expect("remove the files");
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes", "--timeout", "5s"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let first = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        first.contains(&format!(
            "deprovisioning instance {name} timed out after 5s"
        )) && first.contains("no Argo Workflows controller processes Workflows"),
        "{stderr}"
    );
    assert!(
        !first.contains("failed"),
        "a timeout is not a failure: {first}"
    );
    let left = format!(
        "what may be left: MySQL database phd-{name}-openedx, MongoDB databases phd-{name}-openedx and phd-{name}-forum, bucket phd-{name}-"
    );
    assert!(first.contains(&left), "{first}");
    assert_eq!(first.matches("MySQL database").count(), 1, "{first}");
    assert!(
        secrets
            .get_opt("phd-provisioning")
            .await
            .expect("get")
            .is_some()
    );
}

/// Issue 30 (a newcomer's trial, M4): the preview shows what the real run
/// does: the same bucket name (not a new random one each time), and, in a
/// cluster repository whose ApplicationSet makes the Applications, no
/// Application object but the line saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_bucket_and_objects_the_real_run_uses() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("same");
    let repo = Repo::new();
    let bucket_line = |stdout: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with("# bucket "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no bucket line in {stdout}"))
    };
    let preview = |repo: &Repo| {
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "create", &name, "--dry-run"])
            .output()
            .expect("run");
        assert!(output.status.success(), "{}", common::text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = bucket_line(&preview(&repo));
    assert_eq!(
        bucket_line(&preview(&repo)),
        first,
        "two previews, two buckets"
    );
    let _controller = WorkflowController::start(client.clone(), &name);
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "60s"])
        .assert()
        .success();
    let bucket = parsed_config(&repo, &name)["STORAGE_BUCKET_NAME"]
        .as_str()
        .expect("bucket")
        .to_owned();
    assert!(
        first.starts_with(&format!("# bucket {bucket} ")),
        "{first} vs {bucket}"
    );

    // In a cluster repository with the instances' ApplicationSet.
    let home = Repo::new();
    home.phd(&plane.admin_kubeconfig)
        .args([
            "cluster",
            "create",
            "Dry Test",
            "lms.example.org",
            "--github-repo",
            "https://github.com/example/phd-dry-test-cluster.git",
            "--output-dir",
        ])
        .arg(home.dir.path())
        .assert()
        .success();
    let root = home.dir.path().join("phd-dry-test-cluster");
    assert!(root.join("cluster/apps/instances.yml").is_file());
    let output = home
        .phd(&plane.admin_kubeconfig)
        .current_dir(&root)
        .env_remove("PHD_INSTANCES_DIRECTORY")
        .env_remove("PHD_CLUSTER_DOMAIN")
        .env_remove("PHD_CLUSTER_REPOSITORY")
        .args(["instance", "create", "demo", "--dry-run"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", common::text(&output));
    assert!(!stdout.contains("kind: Application\n"), "{stdout}");
    assert!(
        stdout.contains(
            "# Argo CD Application demo-production: made by ApplicationSet phd-instances-production once instances/demo is pushed"
        ),
        "{stdout}"
    );
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

/// Issue 15.1: an instance's namespace has its name and `instance delete`
/// deletes it, so system and Argo namespaces are refused by every verb
/// before anything is read or changed.
#[test]
fn system_namespace_names_are_refused_by_every_verb() {
    let repo = Repo::new();
    let kubeconfig = unreachable_kubeconfig(repo.dir.path()).expect("kubeconfig");
    for reserved in [
        "argocd",
        "argo",
        "default",
        "kube-system",
        "kube-public",
        "cert-manager",
        "harmony",
        "ingress-nginx",
    ] {
        for verb in [
            &["instance", "create", reserved, "--no-wait"][..],
            &["instance", "delete", reserved, "--yes"][..],
            &["instance", "update", reserved][..],
        ] {
            let output = repo.phd(&kubeconfig).args(verb).output().expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{verb:?}: {stderr}");
            assert!(stderr.contains("is reserved"), "{verb:?}: {stderr}");
            assert!(!stderr.contains("cannot reach"), "{verb:?}: {stderr}");
        }
    }
    // Before any other input: without the admin credentials too.
    let output = repo
        .phd(&kubeconfig)
        .env_remove("PHD_MYSQL_ROOT_PASSWORD")
        .args(["instance", "create", "argocd", "--no-wait"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("is reserved"));
    // The cluster's own ingress namespace, whatever it is called.
    let output = repo
        .phd(&kubeconfig)
        .env("PHD_INGRESS_NAMESPACE", "edge")
        .args(["instance", "create", "edge", "--no-wait"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("the ingress controller's namespace"));
    assert!(!repo.instances().exists());
}

/// Issue 15.1: a namespace phd did not make is neither taken over by
/// `instance create` nor deleted by `instance delete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_phd_did_not_create_is_never_taken_or_deleted() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("team");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let foreign: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "team": "data" } }
    }))
    .expect("namespace");
    namespaces
        .create(&Default::default(), &foreign)
        .await
        .expect("create namespace");
    let repo = Repo::new();
    for verb in [
        &["instance", "create", &name, "--no-wait"][..],
        &["instance", "delete", &name, "--yes"][..],
    ] {
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(verb)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{verb:?}: {stderr}");
        assert!(
            stderr.contains("is not the namespace of a phd instance"),
            "{verb:?}: {stderr}"
        );
    }
    let kept = namespaces.get(&name).await.expect("namespace kept");
    assert!(kept.metadata.deletion_timestamp.is_none());
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
    assert!(
        policies
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "nothing may be written into a foreign namespace"
    );
    assert!(!repo.instances().join(&name).exists());
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

    let user = parsed_config(&repo, &name)["MONGODB_USERNAME"]
        .as_str()
        .expect("MONGODB_USERNAME")
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

/// Every file below `dir`, relative path → bytes.
fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                files.insert(path.strip_prefix(dir).expect("below").to_path_buf(), bytes);
            }
        }
    }
    files
}

fn run_ok(command: &mut Command) -> (String, String) {
    let output = command.output().expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    (stdout, stderr)
}

/// `kubectl kustomize` of an instance's env/, as JSON objects.
pub(crate) fn kustomize(env: &Path) -> (String, Vec<Value>) {
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(env)
        .output()
        .expect("kubectl kustomize");
    assert!(
        output.status.success(),
        "kustomize: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let objects = phd_common::manifest::parse("kustomize", &text)
        .expect("kustomize output parses")
        .into_iter()
        .map(|document| document.object)
        .collect();
    (text, objects)
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

/// Every container of a workload (Deployment or Job).
fn containers(object: &Value) -> Vec<&Value> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|list| list.iter().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_renders_open_edx_that_reads_every_credential_from_the_secret() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("edx");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    // One cluster ingress setting, not the defaults: the Ingresses and the
    // NetworkPolicy both follow it.
    let with_ingress = |command: &mut Command| {
        command
            .env("PHD_INGRESS_CLASS", "edge")
            .env("PHD_CLUSTER_ISSUER", "edge-letsencrypt")
            .env("PHD_INGRESS_NAMESPACE", "edge-system");
    };
    let mut create = repo.phd(&plane.admin_kubeconfig);
    with_ingress(&mut create);
    let (stdout, stderr) = run_ok(create.args(["instance", "create", &name, "--timeout", "60s"]));
    let dir = repo.instances().join(&name);
    let env = dir.join("env");
    assert!(env.join("kustomization.yml").is_file(), "{stderr}");

    let (rendered, objects) = kustomize(&env);
    let release = phd_common::tutor::default_release();

    // Every object is accepted by the API server, then really applied.
    for dry_run in [true, false] {
        phd_testkit::kubectl_apply(
            &plane.admin_kubeconfig,
            &rendered,
            "argocd-stand-in",
            dry_run,
        );
    }

    // An Ingress with TLS for every host Caddy serves to browsers, with the
    // cluster's class and issuer, and Caddy's upload limits at the edge.
    let hosts = assert_ingress_per_caddy_site(&env, &objects, "edge", "edge-letsencrypt");
    assert!(
        hosts.contains(&format!("meilisearch.{name}.lms.example.org")),
        "{hosts:?}"
    );
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &name);
    let policy = policies
        .get("phd-default-deny-ingress")
        .await
        .expect("network policy");
    let admitted: Vec<String> = policy.spec.expect("spec").ingress.expect("rules")[0]
        .from
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|peer| peer.namespace_selector?.match_labels?.into_values().next())
        .collect();
    assert!(admitted.contains(&"edge-system".to_owned()), "{admitted:?}");

    // The Namespace is phd's, not in what Argo CD syncs, prunes or deletes.
    assert!(!objects.iter().any(|o| o["kind"] == "Namespace"));
    assert!(
        objects
            .iter()
            .all(|o| o["metadata"]["namespace"] == name.as_str())
    );

    // Init and migrations are Argo CD sync hooks; Tutor's template Jobs are skipped.
    let jobs: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Job").collect();
    assert!(jobs.iter().any(|job| {
        job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "Sync"
            && containers(job)
                .iter()
                .any(|c| c["args"].to_string().contains("migrate"))
    }));
    for job in &jobs {
        let hook = &job["metadata"]["annotations"]["argocd.argoproj.io/hook"];
        let job_name = job["metadata"]["name"].as_str().unwrap_or_default();
        if job_name.starts_with("drydock-") {
            assert_eq!(hook, "Sync", "{job_name}");
        } else {
            assert_eq!(hook, "Skip", "{job_name} would be applied as a plain Job");
        }
        // Database admin credentials never reach the instance.
        assert!(!job_name.starts_with("drydock-mysql") && !job_name.starts_with("drydock-mongodb"));
    }

    // Upstream images of the pinned Tutor release.
    for deployment in ["lms", "cms", "lms-worker", "cms-worker"] {
        let object = named(&objects, "Deployment", deployment);
        assert_eq!(
            containers(object)[0]["image"],
            format!("docker.io/overhangio/openedx:{}", release.tutor).as_str()
        );
    }

    // Every credential by reference to a key of the Secret instance create made.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let credentials = secrets
        .get("phd-instance-credentials")
        .await
        .expect("credentials");
    let keys = credentials.data.clone().unwrap_or_default();
    let mut workloads: Vec<&Value> = ["lms", "cms", "lms-worker", "cms-worker", "meilisearch"]
        .iter()
        .map(|d| named(&objects, "Deployment", d))
        .collect();
    workloads.extend(jobs.iter().filter(|j| {
        j["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("drydock-"))
    }));
    let mut referenced = BTreeMap::new();
    for workload in &workloads {
        for container in containers(workload) {
            for variable in container["env"].as_array().into_iter().flatten() {
                let value = variable["value"].as_str().unwrap_or_default();
                assert!(
                    !value.contains("${PHD_"),
                    "{} has an unresolved literal {value}",
                    variable["name"]
                );
                if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
                    assert_eq!(reference["name"], "phd-instance-credentials");
                    let key = reference["key"].as_str().expect("key");
                    assert!(keys.contains_key(key), "{key} is not in the Secret");
                    referenced.insert(
                        variable["name"].as_str().unwrap_or_default().to_owned(),
                        key.to_owned(),
                    );
                }
            }
        }
    }
    let lms_variables: Vec<String> = containers(named(&objects, "Deployment", "lms"))[0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    // Every reference the rendered settings make is a variable the containers get.
    let settings_dir = env.join("apps/openedx");
    let mut python_files = Vec::new();
    for (path, bytes) in files_of(&settings_dir) {
        let text = String::from_utf8_lossy(&bytes);
        let mut rest = text.as_ref();
        while let Some(start) = rest.find("${PHD_") {
            let end = rest[start..].find('}').expect("closing brace") + start;
            let variable = &rest[start + 2..end];
            assert!(
                lms_variables.iter().any(|v| v == variable),
                "{} refers to {variable}, which the lms container lacks",
                path.display()
            );
            rest = &rest[end..];
        }
        if path.extension().is_some_and(|e| e == "py") {
            python_files.push(settings_dir.join(path));
        }
    }
    assert!(
        referenced.contains_key("PHD_MYSQL_PASSWORD")
            && referenced.contains_key("PHD_OPENEDX_SECRET_KEY")
    );

    // The rendered settings compile, and resolve every reference from the
    // environment, JWT keys included.
    let python = phd_testkit::cache_dir().join("venv/bin/python");
    let pycache = tempfile::tempdir().expect("pycache");
    let compile = std::process::Command::new(&python)
        .env("PYTHONPYCACHEPREFIX", pycache.path())
        .args(["-m", "py_compile"])
        .args(&python_files)
        .output()
        .expect("py_compile");
    assert!(
        compile.status.success(),
        "{}",
        String::from_utf8_lossy(&compile.stderr)
    );
    let production = std::fs::read_to_string(settings_dir.join("settings/lms/production.py"))
        .expect("production.py");
    let start = production
        .find("# kubectl-phd: credentials")
        .expect("phd settings");
    let end = production
        .find("_phd_resolve_credentials(globals())")
        .expect("phd settings end");
    let resolver = &production[start..end];
    let check = format!(
        "{resolver}\nns = {{'SECRET_KEY': '${{PHD_OPENEDX_SECRET_KEY}}', 'DATABASES': {{'default': {{'PASSWORD': '${{PHD_MYSQL_PASSWORD}}'}}}}, 'JWT_AUTH': {{}}, 'lower': '${{PHD_X}}'}}\n_phd_resolve_credentials(ns)\nimport json\nprint(json.dumps([ns['SECRET_KEY'], ns['DATABASES']['default']['PASSWORD'], json.loads(ns['JWT_AUTH']['JWT_PUBLIC_SIGNING_JWK_SET'])['keys'][0]['kty'], ns['lower']]))\n"
    );
    let mut environment: Vec<(String, String)> = Vec::new();
    for (variable, key) in &referenced {
        let value = String::from_utf8(keys[key].0.clone()).expect("utf-8");
        environment.push((variable.clone(), value));
    }
    let resolved = std::process::Command::new(&python)
        .args(["-c", &check])
        .envs(environment.iter().cloned())
        .output()
        .expect("python");
    assert!(
        resolved.status.success(),
        "{}",
        String::from_utf8_lossy(&resolved.stderr)
    );
    let values: Vec<String> = serde_json::from_slice(&resolved.stdout).expect("json");
    assert_eq!(values[0], secret_text(&credentials, "openedx-secret-key"));
    assert_eq!(values[1], secret_text(&credentials, "mysql-password"));
    assert_eq!(values[2], "RSA");
    assert_eq!(values[3], "${PHD_X}", "lower-case settings are left alone");

    // No secret value in any file of the instance, nor in what was printed
    // (without an SMTP relay its password is empty).
    assert_eq!(secret_text(&credentials, "smtp-password"), "");
    let files = files_of(&dir);
    let mut secret_values: Vec<String> = keys
        .values()
        .map(|v| String::from_utf8(v.0.clone()).expect("utf-8"))
        .filter(|v| !v.is_empty())
        .collect();
    // The key's body, line by line, not only the whole PEM.
    let jwt = secret_text(&credentials, "jwt-rsa-private-key");
    assert!(jwt.contains("PRIVATE KEY"));
    secret_values.extend(
        jwt.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    secret_values
        .extend([ROOT_PASSWORD, STORAGE_KEY, STORAGE_SECRET, ATLAS_PRIVATE].map(str::to_owned));
    assert!(secret_values.len() > 10);
    for secret in &secret_values {
        for (path, bytes) in &files {
            assert!(
                !String::from_utf8_lossy(bytes).contains(secret.as_str()),
                "a secret value is in {}",
                path.display()
            );
        }
        assert!(!stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()));
    }

    // status shows the site: its addresses, images and release.
    let (status, _) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "status", &name, "-o", "json"]),
    );
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(
        status["urls"][0],
        format!("https://{name}.lms.example.org").as_str()
    );
    let urls: Vec<String> = hosts.iter().map(|h| format!("https://{h}")).collect();
    assert_eq!(
        status["urls"],
        serde_json::json!(urls),
        "every browser host"
    );
    assert_eq!(status["tutorVersion"], release.tutor);
    assert!(
        status["images"]
            .as_array()
            .expect("images")
            .contains(&Value::String(format!(
                "docker.io/overhangio/openedx:{}",
                release.tutor
            ))),
        "{status}"
    );
    assert!(status["hooks"].is_object());

    // Re-runs with nothing new change no file; the Secret keeps its values.
    let before = files_of(&dir);
    let mut again = repo.phd(&plane.admin_kubeconfig);
    with_ingress(&mut again);
    run_ok(again.args(["instance", "create", &name, "--timeout", "60s"]));
    let after = files_of(&dir);
    let differing: Vec<&PathBuf> = after
        .keys()
        .chain(before.keys())
        .filter(|path| after.get(*path) != before.get(*path))
        .collect();
    assert!(
        differing.is_empty(),
        "instance create changed {differing:?}"
    );
    let mut update = repo.phd(&plane.admin_kubeconfig);
    with_ingress(&mut update);
    let (_, update_err) = run_ok(update.args(["instance", "update", &name]));
    assert!(
        files_of(&dir) == before,
        "instance update changed files: {update_err}"
    );
    let kept = secrets
        .get("phd-instance-credentials")
        .await
        .expect("credentials");
    assert_eq!(kept.data, credentials.data);

    // Another Tutor release: config.yml changes in one setting, the images follow.
    let other = phd_common::tutor::RELEASES[1];
    let mut update = repo.phd(&plane.admin_kubeconfig);
    with_ingress(&mut update);
    run_ok(update.args(["instance", "update", &name, "--tutor-version", other.tutor]));
    let after = files_of(&dir);
    let old_config = String::from_utf8(before[Path::new("config.yml")].clone()).expect("utf-8");
    let new_config = String::from_utf8(after[Path::new("config.yml")].clone()).expect("utf-8");
    let changed: Vec<(&str, &str)> = old_config
        .lines()
        .zip(new_config.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        changed,
        [(
            format!("PHD_TUTOR_VERSION: \"{}\"", release.tutor).as_str(),
            format!("PHD_TUTOR_VERSION: \"{}\"", other.tutor).as_str()
        )]
    );
    let (_, objects) = kustomize(&env);
    assert_eq!(
        containers(named(&objects, "Deployment", "lms"))[0]["image"],
        format!("docker.io/overhangio/openedx:{}", other.tutor).as_str()
    );
    assert_ingress_per_caddy_site(&env, &objects, "edge", "edge-letsencrypt");
}

/// The site addresses of a rendered Caddyfile, each with the `max_size`
/// texts of its block: top-level blocks other than the global options `{`
/// and snippets `(name) {`, hosts without scheme, port or `{$placeholder}`;
/// sites with no host (`:80`) are left out.
fn caddy_sites(caddyfile: &str) -> Vec<(String, Vec<String>)> {
    let mut sites: Vec<(String, Vec<String>)> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut depth = 0i32;
    for line in caddyfile.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let bare = without_placeholders(line);
        if depth == 0 && bare.trim_end().ends_with('{') {
            current.clear();
            let address = line.trim_end().trim_end_matches('{').trim();
            if !address.is_empty() && !address.starts_with('(') {
                for token in address.split([',', ' ']).filter(|t| !t.is_empty()) {
                    let token = token.rsplit("://").next().unwrap_or(token);
                    let host = without_placeholders(token);
                    let host = host.split(':').next().unwrap_or_default();
                    if !host.is_empty() {
                        current.push(sites.len());
                        sites.push((host.to_lowercase(), Vec::new()));
                    }
                }
            }
        } else if depth > 0
            && let Some(size) = bare.trim().strip_prefix("max_size ")
        {
            for index in &current {
                sites[*index].1.push(size.trim().to_owned());
            }
        }
        depth += bare.matches('{').count() as i32 - bare.matches('}').count() as i32;
    }
    assert_eq!(depth, 0, "unbalanced Caddyfile:\n{caddyfile}");
    sites
}

/// `text` without Caddy placeholders: `{...}` holding no space or brace
/// (`{$default_site_port}`, `{args.0}`), which open no block.
fn without_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find(|c: char| c == '}' || c == '{' || c.is_whitespace()) {
            Some(end) if after[end..].starts_with('}') => rest = &after[end + 1..],
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Bytes of a size as Caddy (`250MB`, humanize units) or ingress-nginx
/// (`250m`, nginx units, or bare bytes) writes it.
fn bytes_of(size: &str, nginx: bool) -> u64 {
    let digits: String = size.chars().take_while(char::is_ascii_digit).collect();
    let number: u64 = digits.parse().unwrap_or_else(|_| panic!("size {size}"));
    let unit = size[digits.len()..].trim().to_lowercase();
    let factor: u64 = match (unit.as_str(), nginx) {
        ("" | "b", _) => 1,
        ("k", true) | ("kib" | "ki", false) => 1 << 10,
        ("m", true) | ("mib" | "mi", false) => 1 << 20,
        ("g", true) | ("gib" | "gi", false) => 1 << 30,
        ("kb" | "k", false) => 1_000,
        ("mb" | "m", false) => 1_000_000,
        ("gb" | "g", false) => 1_000_000_000,
        _ => panic!("unknown size {size}"),
    };
    number * factor
}

/// Every site of the instance's rendered Caddyfile has an Ingress of `class`
/// with TLS from `issuer` for its host, routed to Caddy, whose ingress-nginx
/// body limit is at least the largest of Caddy's on that site (at least
/// 250 MB on Studio's); no other Ingress. Returns the hosts in the
/// Caddyfile's order.
fn assert_ingress_per_caddy_site(
    env: &Path,
    objects: &[Value],
    class: &str,
    issuer: &str,
) -> Vec<String> {
    let caddyfile = std::fs::read_to_string(env.join("apps/caddy/Caddyfile")).expect("Caddyfile");
    let sites = caddy_sites(&caddyfile);
    assert!(sites.len() >= 3, "{sites:?}");
    let ingresses: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Ingress").collect();
    let mut hosts = Vec::new();
    for (host, sizes) in &sites {
        let ingress = ingresses
            .iter()
            .find(|i| i["spec"]["rules"][0]["host"] == host.as_str())
            .unwrap_or_else(|| panic!("no Ingress for Caddy's site {host}"));
        assert_eq!(ingress["spec"]["ingressClassName"], class);
        let annotations = &ingress["metadata"]["annotations"];
        assert_eq!(annotations["cert-manager.io/cluster-issuer"], issuer);
        let tls = &ingress["spec"]["tls"][0];
        assert_eq!(tls["hosts"][0], host.as_str());
        assert!(tls["secretName"].as_str().is_some_and(|s| !s.is_empty()));
        let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
        assert_eq!(backend["name"], "caddy");
        let caddy_limit = sizes.iter().map(|s| bytes_of(s, false)).max();
        let edge_limit = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
            .as_str()
            .map(|s| bytes_of(s, true));
        if let Some(caddy_limit) = caddy_limit {
            let edge_limit = edge_limit.unwrap_or_else(|| panic!("{host}: no body limit"));
            assert!(
                edge_limit >= caddy_limit,
                "{host}: {edge_limit} < {caddy_limit}"
            );
        }
        hosts.push(host.clone());
    }
    assert_eq!(
        ingresses.len(),
        sites.len(),
        "an Ingress Caddy does not serve"
    );
    let studio = named(objects, "Ingress", "cms");
    let limit = studio["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        .as_str()
        .expect("Studio's body limit");
    assert!(bytes_of(limit, true) >= 250_000_000, "Studio: {limit}");
    hosts
}

#[test]
fn update_refuses_secrets_and_unknown_releases_before_any_change() {
    let repo = Repo::new();
    let kubeconfig = repo.dir.path().join("none.kubeconfig");
    for (args, expected) in [
        (vec!["--set", "OPENEDX_SECRET_KEY=x"], "holds a secret"),
        (vec!["--set", "SMTP_PASSWORD=x"], "holds a secret"),
        (
            vec!["--set", "K8S_NAMESPACE=other"],
            "fixed when the instance was created",
        ),
        (
            vec!["--set", "PLUGINS=[mfe, forum]"],
            "PLUGINS must keep drydock and phd",
        ),
        (
            vec!["--tutor-version", "12.0.0"],
            "is not a release kubectl-phd renders",
        ),
    ] {
        let output = repo
            .phd(&kubeconfig)
            .args(["instance", "update", "demo"])
            .args(&args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(!repo.instances().exists());
    // A malformed --set is a usage error (exit 2), like any bad flag.
    let output = repo
        .phd(&kubeconfig)
        .args(["instance", "update", "demo", "--set", "PLATFORM_NAME"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected KEY=VALUE"));
}

/// Applies what `kubectl kustomize env` renders, annotated as Argo CD tracks
/// the objects of Application `app`; returns how many objects.
pub(crate) fn deploy_env(kubeconfig: &Path, env: &Path, app: &str) -> usize {
    let (_, mut objects) = kustomize(env);
    for object in &mut objects {
        let id = format!(
            "{app}:{}/{}:{}/{}",
            object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default(),
        );
        object["metadata"]["annotations"][phd_testkit::argo::TRACKING_ANNOTATION] =
            Value::String(id);
    }
    let stream: String = objects
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).expect("json")))
        .collect();
    phd_testkit::kubectl_apply(kubeconfig, &stream, "argocd-stand-in", false);
    objects.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_credentials_become_an_image_pull_secret() {
    use base64::Engine as _;
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("pull");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let token = "ghp-registry-token-31f5";
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("bot:{token}"));

    // Not base64 of user:token: refused before anything changes.
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .env("PHD_DOCKER_REGISTRY_CREDENTIALS", "not-base64!")
        .args(["instance", "create", &name, "--no-wait"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("base64 of user:token"));
    assert!(!repo.instances().exists());

    let (stdout, stderr) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_DOCKER_REGISTRY_CREDENTIALS", &credentials)
            .env("PHD_DOCKER_REGISTRY", "registry.example.org")
            .args(["instance", "create", &name, "--timeout", "60s"]),
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let secret = secrets
        .get("phd-docker-registry")
        .await
        .expect("pull secret");
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    let config: Value =
        serde_json::from_str(&secret_text(&secret, ".dockerconfigjson")).expect("json");
    assert_eq!(
        config["auths"]["registry.example.org"]["auth"],
        credentials.as_str()
    );

    let dir = repo.instances().join(&name);
    let (_, objects) = kustomize(&dir.join("env"));
    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        assert_eq!(
            deployment["spec"]["template"]["spec"]["imagePullSecrets"][0]["name"],
            "phd-docker-registry",
            "{}",
            deployment["metadata"]["name"]
        );
    }
    for (path, bytes) in files_of(&dir) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(token) && !text.contains(&credentials),
            "{}",
            path.display()
        );
    }
    assert!(!stdout.contains(&credentials) && !stderr.contains(&credentials));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_application_set_the_application_has_one_owner() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("owned");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    // The cluster repository's ApplicationSet, for an environment of this test only.
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &resource(argo::Kind::ApplicationSet),
    );
    let set: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "phd-instances-owned", "namespace": "argocd"},
        "spec": {"generators": [], "template": {"metadata": {}, "spec": {
            "project": "phd-owned",
            "source": {"repoURL": "https://github.com/example/phd-demo-cluster.git", "path": "instances"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "owned"},
        }}},
    }))
    .expect("object");
    let set = sets
        .create(&kube::api::PostParams::default(), &set)
        .await
        .expect("create applicationset");

    let (_, stderr) = run_ok(repo.phd(&plane.admin_kubeconfig).args([
        "instance",
        "create",
        &name,
        "--environment",
        "owned",
        "--timeout",
        "60s",
    ]));
    assert!(
        stderr.contains("made by ApplicationSet phd-instances-owned"),
        "{stderr}"
    );
    let application_name = format!("{name}-owned");
    assert!(
        application(&client, &application_name).await.is_none(),
        "phd applied it too"
    );
    let (status, _) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "status", &name, "-o", "json"]),
    );
    assert!(
        status.contains("ApplicationSet phd-instances-owned makes it once the instance is pushed"),
        "{status}"
    );

    // Not made yet (nothing pushed): delete refuses already, since the
    // ApplicationSet would make it from git.
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ApplicationSet phd-instances-owned"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    assert!(
        secrets
            .get_opt("phd-instance-credentials")
            .await
            .expect("get")
            .is_some()
    );

    // The ApplicationSet made it (as Argo CD would after the push): while the
    // instance is in the repository, delete refuses before any change.
    let applications: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "argocd", &resource(argo::Kind::Application));
    let owned: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": application_name,
            "namespace": "argocd",
            "labels": {"kubectl-phd/instance": name, "kubectl-phd/environment": "owned"},
            "ownerReferences": [{
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationSet",
                "name": "phd-instances-owned",
                "uid": set.metadata.uid.clone().expect("uid"),
            }],
        },
        "spec": {"project": "phd-owned", "destination": {"namespace": name}},
    }))
    .expect("object");
    applications
        .create(&kube::api::PostParams::default(), &owned)
        .await
        .expect("create application");
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ApplicationSet phd-instances-owned") && stderr.contains("git rm -r"),
        "{stderr}"
    );
    assert!(application(&client, &application_name).await.is_some());
    assert!(repo.instances().join(&name).exists());
}

/// A client for the identity of `kubeconfig`.
async fn client_of(kubeconfig: &Path) -> kube::Client {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    kube::Client::try_from(config).expect("client")
}

/// Whether the API server lets the CI account do `verb` on `resource`.
async fn ci_may(
    client: &kube::Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("system:serviceaccount:phd-ci:phd-ci".into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:phd-ci".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    reviews
        .create(&kube::api::PostParams::default(), &review)
        .await
        .expect("subject access review")
        .status
        .is_some_and(|status| status.allowed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_credentials_do_what_the_workflows_do_and_nothing_else() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    let (first, _) = run_ok(repo.phd(&plane.admin_kubeconfig).arg("ci-credentials"));
    let config: Value = serde_saphyr::from_str(&first).expect("kubeconfig YAML");
    let user = &config["users"][0]["user"];
    assert!(user["token"].as_str().is_some_and(|t| t.len() > 20));
    assert!(user["exec"].is_null() && user["client-certificate-data"].is_null());
    let ci_kubeconfig = repo.dir.path().join("ci.kubeconfig");
    std::fs::write(&ci_kubeconfig, &first).expect("write");
    // The base64 form decodes to a kubeconfig of the same token.
    let (encoded, _) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .args(["ci-credentials", "--base64"]),
    );
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .expect("base64");
    assert_eq!(
        String::from_utf8(decoded).expect("utf-8"),
        first,
        "a re-run keeps the token"
    );

    // Authorisation, asked of the API server.
    for (verb, group, resource, namespace, name) in [
        ("create", "", "namespaces", None, None),
        ("delete", "", "namespaces", None, None),
        ("patch", "argoproj.io", "applications", Some("argocd"), None),
        (
            "create",
            "argoproj.io",
            "workflows",
            Some("any-instance"),
            None,
        ),
        (
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            Some("phd-ci-instance"),
        ),
    ] {
        assert!(
            ci_may(&client, verb, group, resource, namespace, name).await,
            "{verb} {resource} denied"
        );
    }
    for (verb, group, resource, namespace, name) in [
        ("get", "", "secrets", Some("kube-system"), None),
        ("get", "", "secrets", Some("argocd"), None),
        ("list", "", "secrets", Some("argo"), None),
        ("list", "", "secrets", None, None),
        ("patch", "", "configmaps", Some("argocd"), None),
        (
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
            None,
        ),
        (
            "patch",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            None,
        ),
        (
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            Some("phd-ci-instance"),
        ),
        (
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            Some("cluster-admin"),
        ),
        ("impersonate", "", "users", None, None),
        (
            "impersonate",
            "",
            "serviceaccounts",
            Some("kube-system"),
            None,
        ),
        ("create", "", "pods", Some("kube-system"), None),
        ("*", "*", "*", None, None),
    ] {
        assert!(
            !ci_may(&client, verb, group, resource, namespace, name).await,
            "{verb} {resource} in {namespace:?} is allowed"
        );
    }

    // What the create, update and delete workflows run works with it.
    let name = unique_name("ci");
    let _controller = WorkflowController::start(client.clone(), &name);
    let _argocd = ApplicationController::start(client.clone());
    run_ok(
        repo.phd(&ci_kubeconfig)
            .args(["instance", "create", &name, "--timeout", "60s"]),
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    assert!(
        secrets
            .get_opt("phd-instance-credentials")
            .await
            .expect("get")
            .is_some()
    );
    run_ok(repo.phd(&ci_kubeconfig).args(["instance", "update", &name]));
    run_ok(repo.phd(&ci_kubeconfig).args([
        "instance",
        "delete",
        &name,
        "--yes",
        "--timeout",
        "60s",
    ]));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&name).await.expect("get").is_none());

    // Outside instance namespaces the admission policy refuses its writes,
    // even the binding that would give it Secrets there.
    let ci = client_of(&ci_kubeconfig).await;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(ci.clone(), "default");
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "phd-ci"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "phd-ci-instance"},
        "subjects": [{"kind": "ServiceAccount", "name": "phd-ci", "namespace": "phd-ci"}],
    }))
    .expect("binding");
    let refused = bindings
        .create(&kube::api::PostParams::default(), &binding)
        .await
        .expect_err("a binding outside instance namespaces");
    assert!(
        refused.to_string().contains("instance namespaces"),
        "{refused}"
    );
    let ci_namespaces: Api<Namespace> = Api::all(ci.clone());
    let refused = ci_namespaces
        .patch(
            "kube-system",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": {"kubectl-phd/instance": "kube-system"}}})),
        )
        .await
        .expect_err("labelling kube-system as an instance");
    assert!(
        refused.to_string().contains("instance namespaces"),
        "{refused}"
    );

    // Inside an instance namespace, its Workflows may only run phd's
    // templates, and its Applications may only be instance Applications.
    let instance_namespace = unique_name("ci-ns");
    let admin_namespaces: Api<Namespace> = Api::all(client.clone());
    admin_namespaces
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {
                "name": instance_namespace,
                "labels": {"kubectl-phd/instance": instance_namespace}}}))
            .expect("namespace"),
        )
        .await
        .expect("create namespace");
    let workflow_resource = resource(argo::Kind::Workflow);
    let ci_workflows: Api<DynamicObject> =
        Api::namespaced_with(ci.clone(), &instance_namespace, &workflow_resource);
    let privileged: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "hostroot"},
        "spec": {"entrypoint": "main", "serviceAccountName": "workflow-executor", "templates": [{"name": "main",
            "container": {"image": "busybox", "securityContext": {"privileged": true}}}]},
    }))
    .expect("workflow");
    let refused = ci_workflows
        .create(&kube::api::PostParams::default(), &privileged)
        .await
        .expect_err("a Workflow with its own templates");
    assert!(
        refused
            .to_string()
            .contains("provisioning ClusterWorkflowTemplates"),
        "{refused}"
    );
    let application_resource = resource(argo::Kind::Application);
    let ci_applications: Api<DynamicObject> =
        Api::namespaced_with(ci.clone(), "argocd", &application_resource);
    let anywhere: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "evil", "labels": {"kubectl-phd/instance": instance_namespace}},
        "spec": {"project": "default", "source": {"repoURL": "https://example.org/x.git", "path": "."},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "kube-system"}},
    }))
    .expect("application");
    let refused = ci_applications
        .create(&kube::api::PostParams::default(), &anywhere)
        .await
        .expect_err("an Application outside the instance's namespace and project");
    assert!(
        refused
            .to_string()
            .contains("only manage instance Applications"),
        "{refused}"
    );
    let admin_applications: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "argocd", &application_resource);
    let services: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": unique_name("services")},
        "spec": {"project": "phd-cluster", "destination": {"server": "https://kubernetes.default.svc", "namespace": "argocd"}},
    }))
    .expect("application");
    let services = admin_applications
        .create(&kube::api::PostParams::default(), &services)
        .await
        .expect("create");
    let refused = ci_applications
        .delete(
            services.metadata.name.as_deref().unwrap_or_default(),
            &DeleteParams::default(),
        )
        .await
        .expect_err("deleting a cluster services Application");
    assert!(
        refused
            .to_string()
            .contains("only manage instance Applications"),
        "{refused}"
    );

    // --rotate: the old kubeconfig stops working, the new one works.
    let (rotated, _) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .args(["ci-credentials", "--rotate"]),
    );
    assert_ne!(rotated, first);
    // The API server caches a token's authentication for a few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let old = ci_namespaces.list(&ListParams::default()).await;
        if matches!(old, Err(kube::Error::Api(ref s)) if s.code == 401) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old token still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let new_kubeconfig = repo.dir.path().join("rotated.kubeconfig");
    std::fs::write(&new_kubeconfig, &rotated).expect("write");
    let new: Api<Namespace> = Api::all(client_of(&new_kubeconfig).await);
    new.list(&ListParams::default())
        .await
        .expect("the new token works");
}

fn bucket_in(config: &str) -> String {
    config
        .lines()
        .find_map(|line| line.strip_prefix("STORAGE_BUCKET_NAME: "))
        .expect("bucket line")
        .trim_matches('"')
        .to_owned()
}

/// Issue 15.5: two `instance create` of one name at once agree on one
/// bucket: config.yml, the namespace's record and the storage Workflow;
/// a config.yml naming another bucket than the cluster's record is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_creates_of_one_instance_at_once_agree() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    for round in 0..2 {
        let name = unique_name(&format!("race{round}"));
        let children: Vec<std::process::Child> = (0..2)
            .map(|_| {
                repo.command(&plane.admin_kubeconfig)
                    .args(["instance", "create", &name, "--no-wait"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().expect("wait");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let config_path = repo.instances().join(&name).join("config.yml");
        let bucket = bucket_in(&std::fs::read_to_string(&config_path).expect("config"));
        let namespace = Api::<Namespace>::all(client.clone())
            .get(&name)
            .await
            .expect("namespace");
        let recorded: Vec<String> = namespace
            .metadata
            .annotations
            .unwrap_or_default()
            .into_values()
            .collect();
        assert!(recorded.contains(&bucket), "{bucket} not in {recorded:?}");
        // The bucket the storage Workflow makes: the Secret's (--no-wait
        // leaves it in the namespace).
        let admin = Api::<Secret>::namespaced(client.clone(), &name)
            .get("phd-provisioning")
            .await
            .expect("admin credentials");
        assert_eq!(secret_text(&admin, "bucket"), bucket);

        if round == 0 {
            // The cluster's record wins over a config.yml that names another bucket.
            let config = std::fs::read_to_string(&config_path).expect("config");
            std::fs::write(&config_path, config.replace(&bucket, &format!("{bucket}x")))
                .expect("write");
            let output = repo
                .phd(&plane.admin_kubeconfig)
                .args(["instance", "create", &name, "--no-wait"])
                .output()
                .expect("run");
            assert_eq!(output.status.code(), Some(1));
            assert!(
                String::from_utf8_lossy(&output.stderr)
                    .contains("exists in the cluster with bucket"),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // And so does every update: config.yml cannot re-target the
            // instance at another bucket.
            let output = repo
                .phd(&plane.admin_kubeconfig)
                .args(["instance", "update", &name])
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains("exists in the cluster with bucket"),
                "{stderr}"
            );
        }
    }
}

/// Issue 15.6 and 15.7: settings are checked before anything changes, and a
/// missing one says which variable sets it.
#[test]
fn bad_or_missing_settings_are_named_before_any_change() {
    let repo = Repo::new();
    let kubeconfig = unreachable_kubeconfig(repo.dir.path()).expect("kubeconfig");
    for (variable, value, expected) in [
        ("PHD_MYSQL_PORT", "abc", "is not a port number"),
        ("PHD_MYSQL_PORT", "99999", "is not a port number"),
        ("PHD_MONGODB_HOST", "db\nEVIL: 1", "is not a host name"),
        ("PHD_INGRESS_NAMESPACE", "Bad_NS", "is not a DNS label"),
        ("PHD_STORAGE_TYPE", "gcs", "is not one of: s3, spaces"),
        (
            "PHD_CLUSTER_DOMAIN",
            "",
            "the cluster domain is required: set PHD_CLUSTER_DOMAIN",
        ),
        // Issue 29: control characters in a credential, named, not shown.
        (
            "PHD_MYSQL_ROOT_PASSWORD",
            "rootpw-secret\nsecond",
            "(a line break) at character 14",
        ),
        (
            "PHD_STORAGE_SECRET_ACCESS_KEY",
            "storage-secret\u{1b}[0m",
            "(ESC) at character 15",
        ),
    ] {
        for dry_run in [true, false] {
            let mut command = repo.phd(&kubeconfig);
            command
                .env(variable, value)
                .args(["instance", "create", "demo"]);
            if dry_run {
                command.arg("--dry-run");
            }
            let output = command.output().expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{variable}={value:?}: {stderr}"
            );
            assert!(stderr.contains(expected), "{variable}={value:?}: {stderr}");
            if !value.is_empty() {
                assert!(stderr.contains(variable), "{stderr}");
            }
            assert!(!stderr.contains("pass set"), "{stderr}");
            assert!(!stderr.contains("-secret"), "a secret shown: {stderr}");
            assert!(!repo.instances().exists(), "{variable}: files written");
        }
    }
    // No MongoDB provider and no credentials: one error names both (from a
    // trial: they came out in two runs).
    let output = repo
        .phd(&kubeconfig)
        .env_remove("PHD_MONGODB_PROVIDER")
        .env_remove("PHD_ATLAS_PUBLIC_KEY")
        .env_remove("PHD_ATLAS_PRIVATE_KEY")
        .env_remove("PHD_ATLAS_PROJECT_ID")
        .env_remove("PHD_ATLAS_CLUSTER_NAME")
        .env_remove("PHD_MYSQL_ROOT_PASSWORD")
        .args(["instance", "create", "demo"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no MongoDB provider is configured")
            && stderr.contains("also missing: PHD_MYSQL_ROOT_PASSWORD"),
        "{stderr}"
    );
    assert!(!repo.instances().exists(), "files written");
    // A bad value is named even while required ones are missing (from a
    // trial: the missing ones hid it until they were set).
    for (variable, value, expected) in [
        (
            "PHD_STORAGE_MAKE_PUBLIC",
            "maybe",
            "is not one of: true, false",
        ),
        ("PHD_MYSQL_PORT", "99999", "is not a port number"),
        ("PHD_STORAGE_TYPE", "gcs", "is not one of: s3, spaces"),
    ] {
        let output = repo
            .phd(&kubeconfig)
            .env_remove("PHD_MONGODB_PROVIDER")
            .env_remove("PHD_ATLAS_PUBLIC_KEY")
            .env_remove("PHD_MYSQL_ROOT_PASSWORD")
            .env(variable, value)
            .args(["instance", "create", "demo", "--dry-run"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let first = stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("");
        assert!(
            first.contains(variable) && first.contains(expected),
            "{variable}={value}: {stderr}"
        );
    }
}

/// A dry run needs none of the admin credentials, the MongoDB provider's
/// included (from a trial: `PHD_MONGODB_PROVIDER=atlas` without its keys
/// stopped the preview); it names them, and a real run refuses without them.
#[test]
fn dry_run_previews_without_the_mongodb_provider_s_variables() {
    let repo = Repo::new();
    let kubeconfig = unreachable_kubeconfig(repo.dir.path()).expect("kubeconfig");
    let run = |dry_run: bool| {
        let mut command = repo.phd(&kubeconfig);
        command
            .env_remove("PHD_ATLAS_PUBLIC_KEY")
            .env_remove("PHD_ATLAS_PRIVATE_KEY")
            .args(["instance", "create", "demo"]);
        if dry_run {
            command.arg("--dry-run");
        }
        command.output().expect("run")
    };
    let preview = run(true);
    let stdout = String::from_utf8_lossy(&preview.stdout);
    assert!(preview.status.success(), "{preview:?}");
    let not_set = stdout
        .lines()
        .find(|line| line.starts_with("# not set, required without --dry-run:"))
        .unwrap_or_default();
    assert!(
        not_set.contains("PHD_ATLAS_PUBLIC_KEY") && not_set.contains("PHD_ATLAS_PRIVATE_KEY"),
        "{stdout}"
    );
    let real = run(false);
    let stderr = String::from_utf8_lossy(&real.stderr);
    assert_eq!(real.status.code(), Some(1), "{stderr}");
    let first = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    assert!(first.contains("PHD_ATLAS_PUBLIC_KEY"), "{stderr}");
    assert!(
        !stderr.contains("cannot reach"),
        "refused before connecting: {stderr}"
    );
    assert!(!repo.instances().exists(), "files written");
}

/// Issue 14.5: a namespace held Terminating by a finalizer. The timeout names
/// what Kubernetes reports as blocking; a re-run recognises the namespace is
/// already being deleted and only waits; once the finalizer goes, it finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_a_terminating_namespace_and_names_what_holds_it() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, PostParams};
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("held");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let _argocd = ApplicationController::start(client.clone());
    repo.phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "60s"])
        .assert()
        .success();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let held: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}
    }))
    .expect("config map");
    config_maps
        .create(&PostParams::default(), &held)
        .await
        .expect("create");
    for timeout in ["20s", "5s"] {
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "delete", &name, "--yes", "--timeout", timeout])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("example.com/hold"), "{timeout}: {stderr}");
        assert!(stderr.contains("still Terminating"), "{timeout}: {stderr}");
        assert!(!stderr.contains("cannot store"), "{timeout}: {stderr}");
        // Issue 14.9: without a terminal, a line when the state changes and
        // a heartbeat at most every 30 s, not one line per second.
        let waiting = stderr
            .lines()
            .filter(|line| line.starts_with("waiting for namespace"))
            .count();
        assert!(
            waiting <= 1,
            "{waiting} progress lines in {timeout}: {stderr}"
        );
    }
    config_maps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release");
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes", "--timeout", "60s"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&name)
            .await
            .expect("get")
            .is_none()
    );
    assert!(!repo.instances().join(&name).exists());
}

/// Issue 29.9: after `kubectl delete namespace demo --wait=false`, `instance
/// delete demo` said "its data was deprovisioned before" and removed
/// config.yml, though no deprovision Workflow ran. Now the namespace is
/// waited for (still Terminating) or found gone, made again, and the
/// deprovision Workflows run there with the names config.yml holds; only
/// then are the namespace and the files removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_deprovisions_the_data_of_a_namespace_deleted_outside_phd() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, PostParams};
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    let _argocd = ApplicationController::start(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (prefix, still_terminating) in [("outside", true), ("vanished", false)] {
        let name = unique_name(prefix);
        let controller = WorkflowController::start(client.clone(), &name);
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "create", &name, "--timeout", "60s"])
            .assert()
            .success();
        let config = repo.instances().join(&name).join("config.yml");
        let bucket = bucket_in(&std::fs::read_to_string(&config).expect("config"));
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
        if still_terminating {
            // Held Terminating for a few seconds, as a namespace with
            // objects still being cleaned up is.
            let held: ConfigMap = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "held", "finalizers": ["example.com/hold"]}
            }))
            .expect("config map");
            config_maps
                .create(&PostParams::default(), &held)
                .await
                .expect("create");
        }
        // `kubectl delete namespace NAME --wait=false`
        namespaces
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete namespace");
        let release = {
            let config_maps = config_maps.clone();
            let namespaces = namespaces.clone();
            let name = name.clone();
            tokio::spawn(async move {
                if still_terminating {
                    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
                    config_maps
                        .patch(
                            "held",
                            &PatchParams::default(),
                            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
                        )
                        .await
                        .expect("release");
                }
                for _ in 0..600 {
                    if namespaces.get_opt(&name).await.expect("get").is_none() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                panic!("namespace {name} was never finalised");
            })
        };
        let pending = if still_terminating {
            Some(release)
        } else {
            release.await.expect("gone");
            None
        };
        assert!(controller.seen().iter().all(|w| !w.contains("deprovision")));

        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "delete", &name, "--yes", "--timeout", "60s"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{prefix}: {stderr}");
        assert!(!stderr.contains("deprovisioned before"), "{stderr}");
        let said = if still_terminating {
            "is being deleted, but not by phd"
        } else {
            "is gone, but"
        };
        assert!(stderr.contains(said), "{prefix}: {stderr}");
        assert!(stderr.contains(&format!("bucket {bucket}")), "{stderr}");
        let seen = controller.seen();
        for resource in ["mysql", "mongodb", "storage"] {
            assert!(
                seen.contains(&format!("{resource}-deprovision-{name}")),
                "{prefix}: {resource} not deprovisioned: {seen:?}"
            );
        }
        assert!(namespaces.get_opt(&name).await.expect("get").is_none());
        assert!(!repo.instances().join(&name).exists());
        if let Some(release) = pending {
            release.await.expect("released");
        }
    }
}

/// Issue 19.2: deleting an instance that does not exist (a typo) is an
/// error unless --ignore-not-found; `instance create` of an existing
/// instance with other values refuses and points at `instance update`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_change_only_what_was_asked() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    let missing = unique_name("typo");
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &missing, "--yes"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("deleted"), "{stderr}");
    repo.phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "delete",
            &missing,
            "--yes",
            "--ignore-not-found",
        ])
        .assert()
        .success();

    let name = unique_name("named");
    let _controller = WorkflowController::start(client.clone(), &name);
    repo.phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "create",
            &name,
            "--platform-name",
            "A",
            "--no-wait",
        ])
        .assert()
        .success();
    let config = repo.instances().join(&name).join("config.yml");
    let before = std::fs::read_to_string(&config).expect("config");
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "create",
            &name,
            "--platform-name",
            "B",
            "--no-wait",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("instance update"), "{stderr}");
    assert!(stderr.contains("PLATFORM_NAME"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).expect("config"), before);
    // The same values, or none: the re-run finishes the job.
    repo.phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "create",
            &name,
            "--platform-name",
            "A",
            "--timeout",
            "60s",
        ])
        .assert()
        .success();
}

/// The plugin with nothing of this process's environment but PATH: HOME,
/// the cache, the admin credentials, no MongoDB provisioning, and
/// `--kubeconfig`.
fn isolated_phd(home: &Path, kubeconfig: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("kubectl-phd"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("PHD_CACHE_DIR", phd_testkit::cache_dir())
        .env("PHD_MYSQL_ROOT_PASSWORD", ROOT_PASSWORD)
        .env("PHD_STORAGE_ACCESS_KEY_ID", STORAGE_KEY)
        .env("PHD_STORAGE_SECRET_ACCESS_KEY", STORAGE_SECRET)
        .env("PHD_MONGODB_PROVIDER", "disabled")
        .arg("--kubeconfig")
        .arg(kubeconfig);
    command
}

/// From a trial: in a cluster repository whose infrastructure gives no
/// outputs (a fresh clone, not `infra init`-ed), instance create fell back to
/// the generic hosts `mysql` and `mongodb` without a word. A real run stops
/// and says why; a dry run warns.
#[test]
fn unreadable_infrastructure_outputs_are_named_not_replaced_by_defaults() {
    let home = tempfile::tempdir().expect("home");
    let kubeconfig = unreachable_kubeconfig(home.path()).expect("kubeconfig");
    let phd = || isolated_phd(home.path(), &kubeconfig);
    let created = phd()
        .current_dir(home.path())
        .args([
            "cluster",
            "create",
            "Fresh",
            "fresh.example.org",
            "--no-git",
            "--github-org",
            "fresh",
        ])
        .output()
        .expect("cluster create");
    assert!(created.status.success());
    let repo = PathBuf::from(String::from_utf8_lossy(&created.stdout).trim());
    for dry_run in [false, true] {
        let mut command = phd();
        command
            .current_dir(&repo)
            .args(["instance", "create", "demo"]);
        if dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().expect("instance create");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(
                "the database hosts come from the cluster repository's infrastructure, but"
            ) && stderr.contains("kubectl phd infra init"),
            "{stderr}"
        );
        assert_eq!(output.status.success(), dry_run, "{stderr}");
        if !dry_run {
            assert!(!repo.join("instances/demo").exists(), "nothing written");
        }
    }
}

/// Issue 19.4: inside a DigitalOcean cluster repository in nyc3, an
/// instance's media go to Spaces in nyc3 and its databases are the
/// infrastructure's, by default; a variable that overrides one is named.
#[test]
fn defaults_come_from_the_cluster_repository() {
    let repo = tempfile::tempdir().expect("repository");
    std::fs::write(
        repo.path().join("context.json"),
        r#"{"cluster_name": "Ocean", "cluster_domain": "ocean.example", "provider": "digitalocean", "region": "nyc3", "repository": "https://github.com/example/phd-ocean-cluster.git"}"#,
    )
    .expect("context");
    let infrastructure = repo.path().join("infrastructure");
    std::fs::create_dir_all(&infrastructure).expect("infrastructure");
    std::fs::write(
        infrastructure.join("main.tf"),
        "output \"mysql_host\" { value = \"private-db.nyc3.example\" }\noutput \"mysql_port\" { value = 25060 }\noutput \"mongodb_host\" { value = \"mongo.nyc3.example\" }\noutput \"mysql_root_password\" {\n  value     = \"not-for-settings\"\n  sensitive = true\n}\n",
    )
    .expect("main.tf");
    for args in [
        &["init", "-input=false"][..],
        &["apply", "-input=false", "-auto-approve"],
    ] {
        let status = std::process::Command::new("tofu")
            .args(args)
            .current_dir(&infrastructure)
            .env("TF_IN_AUTOMATION", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("tofu");
        assert!(status.success(), "tofu {args:?}");
    }
    let home = tempfile::tempdir().expect("home");
    let kubeconfig = unreachable_kubeconfig(home.path()).expect("kubeconfig");
    let run = |mysql_host: Option<&str>| {
        let mut command = isolated_phd(home.path(), &kubeconfig);
        command
            .current_dir(repo.path())
            .args(["instance", "create", "demo", "--dry-run"]);
        if let Some(host) = mysql_host {
            command.env("PHD_MYSQL_HOST", host);
        }
        let output = command.output().expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (stdout, _) = run(None);
    // The targets, in the Secret phd-provisioning the Workflows read.
    for expected in [
        "storage-type: spaces",
        "storage-region: nyc3",
        "storage-endpoint-url: https://nyc3.digitaloceanspaces.com",
        "mysql-host: private-db.nyc3.example",
        "mysql-port: \"25060\"",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(!stdout.contains("us-east-1"), "{stdout}");
    assert!(!stdout.contains("not-for-settings"));
    let (stdout, stderr) = run(Some("elsewhere.example"));
    assert!(stdout.contains("mysql-host: elsewhere.example"), "{stdout}");
    assert!(
        stderr.contains("PHD_MYSQL_HOST") && stderr.contains("infrastructure output mysql_host"),
        "{stderr}"
    );
    // The MySQL admin's password too: without PHD_MYSQL_ROOT_PASSWORD, the
    // infrastructure's sensitive output is used (never printed), so the
    // operator's shell needs only the storage keys.
    let output = isolated_phd(home.path(), &kubeconfig)
        .current_dir(repo.path())
        .env_remove("PHD_MYSQL_ROOT_PASSWORD")
        .env_remove("PHD_STORAGE_ACCESS_KEY_ID")
        .env_remove("PHD_STORAGE_SECRET_ACCESS_KEY")
        .args(["instance", "create", "demo", "--dry-run"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "# not set, required without --dry-run: PHD_STORAGE_ACCESS_KEY_ID, PHD_STORAGE_SECRET_ACCESS_KEY\n"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("not-for-settings")
            && !String::from_utf8_lossy(&output.stderr).contains("not-for-settings")
    );
}

/// Issue 19.3: `instance create|update|delete -o json|yaml|name` print one
/// result object (docs/output.md, every key always present) naming the
/// cluster, the objects, the databases, the bucket and the hosts; a re-run
/// that changes nothing says `unchanged`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_update_and_delete_report_their_result() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("result");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let _argocd = ApplicationController::start(client.clone());
    let result = |args: &[&str]| -> Value {
        let (stdout, _) = run_ok(repo.phd(&plane.admin_kubeconfig).args(args));
        let value: Value = if args.contains(&"yaml") {
            serde_saphyr::from_str(&stdout).expect("only YAML on stdout")
        } else {
            serde_json::from_str(&stdout).expect("only JSON on stdout")
        };
        common::assert_result_keys(&value, &["environment", "urls"]);
        value
    };
    let has = |list: &Value, kind: &str, name: &str| {
        list.as_array()
            .expect("a list")
            .iter()
            .find(|entry| entry["kind"] == kind && entry["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name} in {list}"))
    };

    let created = result(&[
        "instance",
        "create",
        &name,
        "--timeout",
        "60s",
        "-o",
        "json",
    ]);
    assert_eq!(created["kind"], "Instance");
    assert_eq!(created["action"], "created");
    assert_eq!(created["environment"], "production");
    assert_eq!(created["cluster"]["context"], "phd-test");
    assert_eq!(
        has(&created["objects"], "Namespace", &name)["action"],
        "created"
    );
    assert!(has(&created["objects"], "Namespace", &name)["namespace"].is_null());
    let workflow = format!("mysql-provision-{name}");
    assert_eq!(
        has(&created["objects"], "Workflow", &workflow)["namespace"],
        name.as_str()
    );
    let application = format!("{name}-production");
    assert_eq!(
        has(&created["objects"], "Application", &application)["namespace"],
        "argocd"
    );
    let external = &created["external"];
    let config: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo.instances().join(&name).join("config.yml"))
            .expect("config.yml"),
    )
    .expect("YAML");
    let database = config["OPENEDX_MYSQL_DATABASE"].as_str().expect("database");
    assert_eq!(
        has(external, "mysqlDatabase", database)["location"],
        "mysql.example.internal:3306"
    );
    let bucket = config["STORAGE_BUCKET_NAME"]
        .as_str()
        .expect("bucket")
        .to_owned();
    assert!(
        has(external, "bucket", &bucket)["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("s3 ")),
        "{external}"
    );
    let host = config["LMS_HOST"].as_str().expect("LMS_HOST");
    has(external, "host", host);
    assert!(
        created["urls"]
            .as_array()
            .expect("urls")
            .contains(&Value::from(format!("https://{host}"))),
        "{created}"
    );

    let again = result(&[
        "instance",
        "create",
        &name,
        "--timeout",
        "60s",
        "-o",
        "yaml",
    ]);
    assert_eq!(again["action"], "unchanged", "{again}");

    let (named, _) = run_ok(repo.phd(&plane.admin_kubeconfig).args([
        "instance",
        "update",
        &name,
        "--set",
        "PLATFORM_NAME=Renamed",
        "-o",
        "name",
    ]));
    assert_eq!(named, format!("instance/{name}\n"));

    // Issue 19.6: kubectl completes the name from the cluster, outside the repository.
    let offered = common::kubectl_complete(&plane.admin_kubeconfig, &["instance", "status", ""]);
    assert!(offered.contains(&name), "{name} in {offered:?}");

    let deleted = result(&[
        "instance",
        "delete",
        &name,
        "--yes",
        "--timeout",
        "60s",
        "-o",
        "json",
    ]);
    assert_eq!(deleted["action"], "deleted");
    assert_eq!(
        has(&deleted["objects"], "Namespace", &name)["action"],
        "deleted"
    );
    assert_eq!(
        has(&deleted["objects"], "Application", &application)["action"],
        "deleted"
    );
    has(&deleted["external"], "bucket", &bucket);
    let directory = repo.instances().join(&name).display().to_string();
    has(&deleted["external"], "directory", &directory);

    let (nothing, _) = run_ok(repo.phd(&plane.admin_kubeconfig).args([
        "instance",
        "delete",
        &name,
        "--yes",
        "--ignore-not-found",
        "-o",
        "name",
    ]));
    assert_eq!(
        nothing, "",
        "kubectl prints nothing for what it did not find"
    );
}

/// The SMTP relay: its settings (PHD_SMTP_*) go into config.yml, its
/// password only into the instance's Secret (from PHD_SMTP_PASSWORD at
/// create, from standard input at update), and the Open edX containers read
/// it from there; no file of the instance and no output holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_password_is_in_the_secret_only() {
    const FIRST: &str = "smtp-first-9d2c41e7";
    const SECOND: &str = "smtp-second-5ab80f3c";
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("mail");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let (stdout, stderr) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .env("PHD_SMTP_HOST", "smtp.relay.example")
            .env("PHD_SMTP_PORT", "587")
            .env("PHD_SMTP_USE_TLS", "true")
            .env("PHD_SMTP_USERNAME", "phd-mailer")
            .env("PHD_SMTP_PASSWORD", FIRST)
            .args(["instance", "create", &name, "--timeout", "60s"]),
    );
    let mut printed = format!("{stdout}{stderr}");
    let dir = repo.instances().join(&name);
    let config: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(dir.join("config.yml")).expect("config.yml"),
    )
    .expect("config.yml parses");
    assert_eq!(config["SMTP_HOST"], "smtp.relay.example");
    assert_eq!(config["SMTP_PORT"], 587);
    assert_eq!(config["SMTP_USE_TLS"], true);
    assert_eq!(config["SMTP_USERNAME"], "phd-mailer");
    assert_eq!(config["RUN_SMTP"], false, "no mail server of Tutor's own");
    assert!(config.get("SMTP_PASSWORD").is_none());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let stored = || async {
        let secret = secrets
            .get("phd-instance-credentials")
            .await
            .expect("credentials");
        secret_text(&secret, "smtp-password")
    };
    assert_eq!(stored().await, FIRST);

    // The containers read it from the Secret; the settings name the variable.
    let env = dir.join("env");
    let (_, objects) = kustomize(&env);
    for deployment in ["lms", "cms", "lms-worker", "cms-worker"] {
        let variables = &containers(named(&objects, "Deployment", deployment))[0]["env"];
        assert!(
            variables.as_array().expect("env").iter().any(|v| {
                v["name"] == "PHD_SMTP_PASSWORD"
                    && v["valueFrom"]["secretKeyRef"]["key"] == "smtp-password"
            }),
            "{deployment}: {variables}"
        );
    }
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "smtp")
    );
    let lms_env =
        std::fs::read_to_string(env.join("apps/openedx/config/lms.env.yml")).expect("lms.env.yml");
    assert!(
        lms_env.contains("EMAIL_HOST_PASSWORD: \"${PHD_SMTP_PASSWORD}\"")
            && lms_env.contains("EMAIL_HOST: \"smtp.relay.example\""),
        "{lms_env}"
    );

    // Refused in config.yml; given on standard input, it replaces the first.
    let refused = repo
        .phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "update",
            &name,
            "--set",
            &format!("SMTP_PASSWORD={SECOND}"),
        ])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds a secret"));
    let (stdout, stderr) = run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "update", &name, "--smtp-password-stdin"])
            .write_stdin(format!("{SECOND}\n")),
    );
    printed.push_str(&stdout);
    printed.push_str(&stderr);
    assert!(stderr.contains("stored key smtp-password"), "{stderr}");
    assert_eq!(stored().await, SECOND);

    // An instance made before the key existed gets it, empty, at update
    // (its containers would not start without it).
    secrets
        .patch(
            "phd-instance-credentials",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"data": {"smtp-password": null}})),
        )
        .await
        .expect("remove the key");
    run_ok(
        repo.phd(&plane.admin_kubeconfig)
            .args(["instance", "update", &name]),
    );
    assert_eq!(stored().await, "");

    for (path, bytes) in files_of(&dir) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(FIRST) && !text.contains(SECOND),
            "the SMTP password is in {}",
            path.display()
        );
    }
    assert!(!printed.contains(FIRST) && !printed.contains(SECOND));
}

/// Whether developer `user` (made by `user create`) may create Workflows in
/// `namespace`, as the API server's authorizer answers.
async fn developer_may_submit(client: &kube::Client, user: &str, namespace: &str) -> bool {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:argo:phd-user-{user}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:argo".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("create".into()),
                group: Some("argoproj.io".into()),
                resource: Some("workflows".into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    reviews
        .create(&kube::api::PostParams::default(), &review)
        .await
        .expect("review")
        .status
        .is_some_and(|status| status.allowed)
}

/// Issue 29.3: developers run Workflows in an instance namespace only while
/// it holds no admin credentials. Where it does (during a wait, after
/// `--no-wait`), the API server refuses them; a Workflow one queued earlier
/// (here one naming another database and host) is deleted before the
/// credentials are stored; the provisioning Workflows read their target from
/// the Secret phd wrote; and the developers get the namespace back once the
/// credentials are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developers_cannot_run_workflows_where_admin_credentials_are() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("guard");
    let repo = Repo::new();
    let developer = unique_name("dev");
    repo.phd(&plane.admin_kubeconfig)
        .args(["user", "create", &developer, "--role", "developer"])
        .write_stdin("")
        .assert()
        .success();

    // Submitted, not waited for: the admin credentials stay in the namespace.
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--no-wait"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", common::text(&output));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let admin = secrets
        .get("phd-provisioning")
        .await
        .expect("admin credentials are there");
    assert_eq!(secret_text(&admin, "mysql-host"), "mysql.example.internal");
    assert!(
        !developer_may_submit(&client, &developer, &name).await,
        "a developer may create Workflows where the admin credentials are"
    );
    // A developer made now is not let in either.
    let later = unique_name("dev");
    repo.phd(&plane.admin_kubeconfig)
        .args(["user", "create", &later, "--role", "developer"])
        .write_stdin("")
        .assert()
        .success();
    assert!(!developer_may_submit(&client, &later, &name).await);

    // A Workflow queued before (by a developer, while they could): the
    // admin template, arguments naming another instance's database and a
    // host of the caller's choice.
    let intruder = format!("{name}-intruder");
    let workflows_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &name, &resource(argo::Kind::Workflow));
    let queued: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": intruder, "namespace": name,
                     "labels": {"app.kubernetes.io/managed-by": "kubectl-phd"}},
        "spec": {
            "workflowTemplateRef": {"name": "mysql-deprovision-template", "clusterScope": true},
            "arguments": {"parameters": [
                {"name": "database", "value": "another-instance-openedx"},
                {"name": "host", "value": "attacker.example.com"},
            ]},
        },
    }))
    .expect("workflow");
    workflows_api
        .create(&kube::api::PostParams::default(), &queued)
        .await
        .expect("queue a Workflow");

    // The run that waits: the queued Workflow is gone before the admin
    // credentials are stored again, phd's read the Secret's target, and the
    // developers are let in once the credentials are removed.
    let controller = WorkflowController::start(client.clone(), &name);
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "create", &name, "--timeout", "60s"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", common::text(&output));
    let left: Vec<String> = workflows(&client, &name).await.into_keys().collect();
    assert!(!left.contains(&intruder), "{left:?}");
    let mysql = format!("mysql-provision-{name}");
    let seen = controller.surroundings(&mysql).expect("completed");
    let target = seen.provisioning.expect("admin credentials while it ran");
    assert_eq!(target["mysql-host"], "mysql.example.internal");
    assert_ne!(target["mysql-database"], "another-instance-openedx");
    assert!(
        !seen
            .developers
            .unwrap_or_default()
            .iter()
            .any(|subject| subject.ends_with(&developer)),
        "the developers were bound while the admin credentials were there"
    );
    assert!(
        secrets
            .get_opt("phd-provisioning")
            .await
            .expect("get")
            .is_none()
    );
    assert!(developer_may_submit(&client, &developer, &name).await);
    assert!(developer_may_submit(&client, &later, &name).await);

    // Deprovisioning: the developers are out again while it runs.
    let _applications = ApplicationController::start(client.clone());
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &name, "--yes", "--timeout", "60s"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", common::text(&output));
    let seen = controller
        .surroundings(&format!("mysql-deprovision-{name}"))
        .expect("completed");
    assert!(seen.provisioning.is_some());
    assert!(
        !seen
            .developers
            .unwrap_or_default()
            .iter()
            .any(|subject| subject.ends_with(&developer))
    );
}
