//! Faults injected into the API server of a control plane of this binary's
//! own (issue 15): frozen with SIGSTOP, killed with SIGKILL and started again
//! on the same etcd. Every command ends within its deadline with one clear
//! error, and a re-run afterwards finishes the job to the state of a clean
//! run. The scenarios share one control plane and run one after another.

use crate::common;

use std::collections::BTreeSet;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::Repo;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use phd_common::argo;
use phd_testkit::argo::{ApplicationController, WorkflowController};
use phd_testkit::{ControlPlane, unique_name};

fn workflow_resource() -> ApiResource {
    argo::Kind::Workflow.resource()
}

/// Starts `kubectl phd ARGS` in `repo` without waiting for it.
fn spawn(repo: &Repo, plane: &ControlPlane, args: &[&str]) -> Child {
    repo.command(&plane.admin_kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl-phd")
}

/// Waits at most `limit` for `child`; a child still running then is a hang.
fn finish_within(child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().expect("poll child").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{what} still ran after {limit:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the provisioning Workflows of `namespace` exist.
async fn workflows_submitted(client: &kube::Client, namespace: &str) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &workflow_resource());
    for _ in 0..600 {
        if let Ok(list) = api.list(&ListParams::default()).await
            && list.items.len() == 3
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the Workflows of {namespace} were never submitted");
}

/// What a finished instance holds in its namespace, with its name replaced,
/// so two instances can be compared.
async fn end_state(client: &kube::Client, name: &str) -> BTreeSet<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), name, &workflow_resource());
    let mut state = BTreeSet::new();
    for secret in secrets.list(&ListParams::default()).await.expect("secrets") {
        let keys: Vec<String> = secret
            .data
            .unwrap_or_default()
            .into_keys()
            .collect::<Vec<_>>();
        state.insert(format!(
            "Secret {} {keys:?}",
            secret.metadata.name.unwrap_or_default()
        ));
    }
    for workflow in workflows.list(&ListParams::default()).await.expect("wf") {
        state.insert(format!(
            "Workflow {} {}",
            workflow.metadata.name.unwrap_or_default(),
            workflow.data["status"]["phase"].as_str().unwrap_or("none")
        ));
    }
    state
        .into_iter()
        .map(|line| line.replace(name, "NAME"))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_killed_api_server_ends_commands_clearly_and_re_runs_finish() {
    let mut plane = ControlPlane::start().await.expect("control plane");
    common::install_argo(&plane);
    let repo = Repo::new();

    // A clean run, the state every faulted run must end in.
    let clean = unique_name("clean");
    {
        let client = plane.client().await.expect("client");
        let _controller = WorkflowController::start(client.clone(), &clean);
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "create", &clean, "--timeout", "60s"])
            .output()
            .expect("run");
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let client = plane.client().await.expect("client");
    let expected = end_state(&client, &clean).await;
    assert!(
        !expected
            .iter()
            .any(|line| line.contains("phd-provisioning")),
        "{expected:?}"
    );

    // 1. Frozen while `instance create` waits: ends by its --timeout, says so.
    let frozen = unique_name("frozen");
    let child = spawn(
        &repo,
        &plane,
        &[
            "instance",
            "create",
            &frozen,
            "--timeout",
            "15s",
            "--request-timeout",
            "5s",
        ],
    );
    workflows_submitted(&client, &frozen).await;
    plane.pause_api_server().expect("SIGSTOP");
    let output = finish_within(child, Duration::from_secs(45), "instance create");
    plane.resume_api_server().expect("SIGCONT");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let first = text.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(first.contains("did not answer"), "{text}");
    assert!(first.contains("phd-provisioning"), "{text}");
    assert!(first.contains("again"), "{text}");

    // 2. Frozen before a command starts: the connection check gives up.
    plane.pause_api_server().expect("SIGSTOP");
    let started = Instant::now();
    let child = spawn(
        &repo,
        &plane,
        &["user", "create", "carol", "--request-timeout", "3s"],
    );
    let output = finish_within(child, Duration::from_secs(30), "user create");
    plane.resume_api_server().expect("SIGCONT");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot reach the Kubernetes API server"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{text}");

    // 3. Killed while `instance create` waits: exit 1 (not SIGPIPE's 141),
    // the lost connection and what was left named in the first line.
    let killed = unique_name("killed");
    let child = spawn(
        &repo,
        &plane,
        &["instance", "create", &killed, "--timeout", "60s"],
    );
    workflows_submitted(&client, &killed).await;
    plane.kill_api_server().expect("SIGKILL");
    let output = finish_within(child, Duration::from_secs(60), "instance create");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let first = text.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(
        first.contains("lost the connection to the API server"),
        "{text}"
    );
    assert!(first.contains("phd-provisioning"), "{text}");
    plane.restart_api_server().await.expect("restart");

    // Re-runs after each fault finish the job to a clean run's state.
    let client = plane.client().await.expect("client");
    for name in [&frozen, &killed] {
        let _controller = WorkflowController::start(client.clone(), name);
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "create", name, "--timeout", "60s"])
            .output()
            .expect("run");
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(end_state(&client, name).await, expected, "{name}");
    }

    // 4. Frozen while `instance delete` waits for deprovisioning: ends by its
    // --timeout; the re-run deletes the instance.
    let _applications = ApplicationController::start(client.clone());
    let child = spawn(
        &repo,
        &plane,
        &[
            "instance",
            "delete",
            &frozen,
            "--yes",
            "--timeout",
            "10s",
            "--request-timeout",
            "3s",
        ],
    );
    let deprovisioning: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &frozen, &workflow_resource());
    for _ in 0..600 {
        if deprovisioning
            .get_opt(&format!("storage-deprovision-{frozen}"))
            .await
            .ok()
            .flatten()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    plane.pause_api_server().expect("SIGSTOP");
    let output = finish_within(child, Duration::from_secs(35), "instance delete");
    plane.resume_api_server().expect("SIGCONT");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let first = text.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(first.contains("did not answer"), "{text}");
    let _controller = WorkflowController::start(client.clone(), &frozen);
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args(["instance", "delete", &frozen, "--yes", "--timeout", "60s"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(&frozen).await.expect("get").is_none());
}

/// Issue 14.1, as an operator meets it: a cluster the original tool set up
/// with client-side `kubectl apply`, with a field the manifest no longer
/// has. `argo install` takes the fields over and removes it; a re-run is
/// unchanged. On a control plane of its own: it changes argocd-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_install_takes_over_a_client_side_install() {
    let plane = ControlPlane::start().await.expect("control plane");
    let upstream = std::fs::read_to_string(common::argocd_manifest()).expect("manifest");
    let mut server: serde_json::Value = phd_common::manifest::parse("install.yaml", &upstream)
        .expect("parse")
        .into_iter()
        .map(|document| document.object)
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "argocd-server")
        .expect("argocd-server Deployment");
    server["metadata"]["namespace"] = "argocd".into();
    server["spec"]["template"]["spec"]["containers"][0]["env"] =
        serde_json::json!([{"name": "LEGACY_FLAG", "value": "1"}]);
    let kubectl = |args: &[&str], input: Option<&str>| {
        let mut child = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&plane.admin_kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("kubectl");
        if let Some(input) = input {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
        }
        drop(child.stdin.take());
        assert!(child.wait().expect("kubectl").success(), "kubectl {args:?}");
    };
    kubectl(&["create", "namespace", "argocd"], None);
    kubectl(&["apply", "-f", "-"], Some(&server.to_string()));

    let install = || {
        let output = common::argo_install(&plane, &common::workflows_manifest(), &["-o", "json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("json")
    };
    install();
    let client = plane.client().await.expect("client");
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "argocd");
    let live = deployments.get("argocd-server").await.expect("get");
    let env = serde_json::to_value(&live.spec).expect("json")["template"]["spec"]["containers"][0]
        ["env"]
        .clone();
    assert!(!env.to_string().contains("LEGACY_FLAG"), "{env}");
    let again = install();
    let objects: Vec<&serde_json::Value> = ["argocd", "workflows"]
        .iter()
        .flat_map(|part| again[part]["objects"].as_array().into_iter().flatten())
        .collect();
    assert!(!objects.is_empty());
    let changed: Vec<&&serde_json::Value> = objects
        .iter()
        .filter(|o| o["outcome"] != "unchanged")
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

/// Issue 15.4: when the Argo Workflows part of `argo install` fails after
/// Argo CD's admin password was generated and stored, the password is shown
/// anyway (and works); the re-run keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_admin_password_survives_a_failed_workflows_install() {
    let plane = ControlPlane::start().await.expect("control plane");
    let dir = tempfile::tempdir().expect("dir");
    let mut broken = std::fs::read_to_string(common::workflows_manifest()).expect("manifest");
    broken.push_str(
        "\n---\n{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"phd-bad-port\"}, \"spec\": {\"ports\": [{\"port\": 99999}]}}\n",
    );
    let broken_path = dir.path().join("workflows.yaml");
    std::fs::write(&broken_path, broken).expect("write");
    let install = |workflows: &std::path::Path| common::argo_install(&plane, workflows, &[]);
    let output = install(&broken_path);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let shown = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(!shown.is_empty(), "no password shown: {}", stderr(&output));
    let client = plane.client().await.expect("client");
    let stored = || async {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
        let data = secrets
            .get("argocd-secret")
            .await
            .expect("argocd-secret")
            .data
            .unwrap_or_default();
        String::from_utf8(data["admin.password"].0.clone()).expect("utf-8")
    };
    assert!(bcrypt::verify(&shown, &stored().await).expect("bcrypt"));
    let output = install(&common::workflows_manifest());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "a re-run shows no new password");
    assert!(bcrypt::verify(&shown, &stored().await).expect("bcrypt"));
}

/// Sends `signal` (`INT`, `TERM`) to `child`, as Ctrl-C or `kill` would.
fn send(child: &Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{signal}");
}

/// Whether the admin credentials are in the instance namespace.
async fn provisioning_secret(client: &kube::Client, name: &str) -> bool {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    secrets
        .get_opt("phd-provisioning")
        .await
        .expect("get secret")
        .is_some()
}

/// Issue 29.10: SIGINT or SIGTERM during `instance create`'s or `instance
/// delete`'s waits exited at once, silently, leaving the admin credentials
/// in the namespace. Now the wait stops, the credentials are removed when no
/// Workflow needs them or named when one still does, the first error line
/// says "interrupted" and how to finish, and the exit code is the shell's
/// (130 for SIGINT, 143 for SIGTERM). Re-runs finish the job. No
/// WorkflowController runs while the signals are sent: the Workflows stay
/// Pending, as on a cluster whose nodes are busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_create_or_delete_stops_cleanly_and_names_what_is_left() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, PostParams};
    let plane = common::control_plane_with_argo().await;
    let client = plane.client().await.expect("client");
    let repo = Repo::new();
    let name = unique_name("ctrlc");
    let first_error = |output: &Output| {
        stderr(output)
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_default()
            .to_owned()
    };

    // 1. Ctrl-C while create waits for its Workflows: they still need the
    // credentials, which stay and are named.
    let child = spawn(
        &repo,
        plane,
        &["instance", "create", &name, "--timeout", "120s"],
    );
    workflows_submitted(&client, &name).await;
    send(&child, "INT");
    let output = finish_within(child, Duration::from_secs(30), "instance create");
    let first = first_error(&output);
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        first.starts_with("error: interrupted by SIGINT: admin credentials left in Secret")
            && first.contains(&format!("{name}/phd-provisioning"))
            && first.contains(&format!("kubectl phd instance create {name}")),
        "{}",
        stderr(&output)
    );
    assert!(provisioning_secret(&client, &name).await);

    // The re-run finishes: provisioned, credentials removed.
    {
        let _controller = WorkflowController::start(client.clone(), &name);
        let output = repo
            .phd(&plane.admin_kubeconfig)
            .args(["instance", "create", &name, "--timeout", "60s"])
            .output()
            .expect("run");
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(!provisioning_secret(&client, &name).await);

    // 2. Ctrl-C while delete waits for the deprovision Workflows: the same.
    let _applications = ApplicationController::start(client.clone());
    let child = spawn(
        &repo,
        plane,
        &["instance", "delete", &name, "--yes", "--timeout", "120s"],
    );
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &name, &workflow_resource());
    for _ in 0..600 {
        if workflows
            .get_opt(&format!("storage-deprovision-{name}"))
            .await
            .expect("get")
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&child, "INT");
    let output = finish_within(child, Duration::from_secs(30), "instance delete");
    let first = first_error(&output);
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        first.starts_with("error: interrupted by SIGINT: admin credentials left in Secret")
            && first.contains(&format!("kubectl phd instance delete {name}")),
        "{}",
        stderr(&output)
    );
    assert!(provisioning_secret(&client, &name).await);
    assert!(repo.instances().join(&name).exists(), "config.yml kept");

    // 3. SIGTERM while delete waits for the namespace (held by a finalizer):
    // the credentials were removed after deprovisioning; nothing is left
    // of them, and the message says so.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &name);
    let held: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}
    }))
    .expect("config map");
    config_maps
        .create(&PostParams::default(), &held)
        .await
        .expect("create");
    let controller = WorkflowController::start(client.clone(), &name);
    let child = spawn(
        &repo,
        plane,
        &["instance", "delete", &name, "--yes", "--timeout", "120s"],
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for _ in 0..600 {
        let namespace = namespaces.get(&name).await.expect("get");
        if namespace.metadata.deletion_timestamp.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&child, "TERM");
    let output = finish_within(child, Duration::from_secs(30), "instance delete");
    let first = first_error(&output);
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(
        first.starts_with("error: interrupted by SIGTERM while waiting for namespace")
            && first.contains("no admin credentials are left"),
        "{}",
        stderr(&output)
    );
    assert!(!provisioning_secret(&client, &name).await);
    assert!(
        controller
            .seen()
            .contains(&format!("mysql-deprovision-{name}"))
    );

    // The re-run, once the namespace can go, finishes the job.
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
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("deprovisioned before"));
    assert!(namespaces.get_opt(&name).await.expect("get").is_none());
    assert!(!repo.instances().join(&name).exists());
}
