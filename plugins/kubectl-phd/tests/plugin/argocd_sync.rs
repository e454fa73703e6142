//! GitOps end to end with the real Argo CD (issue 16): `argo install` from
//! the upstream manifests, Argo CD's application controller and repo server
//! running against the test control plane, the cluster repository served by
//! a git server on loopback. `instance create`, commit and push: Argo CD
//! renders the instance with kustomize and syncs it into its namespace.
//! `instance delete`: Argo CD prunes what it deployed and lets the
//! Application go (its resources finalizer), then phd deprovisions and the
//! namespace goes.
//!
//! In the first test workloads come to life without a kubelet: kube-scheduler
//! and kwok (`phd_testkit::kwok`) run the pods, so Argo CD walks Drydock's
//! waves and hooks to Synced and Healthy; the ingress controller is the one
//! stand-in, at its boundary (it writes the Ingresses' address). Its
//! provisioning Workflows run under the real Argo Workflows controller
//! (`phd_testkit::workflows`), their pods on kwok's node; the second test
//! keeps the Workflows stand-in (`phd_testkit::argo::WorkflowController`).

use crate::common;

use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::Repo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, DynamicObject};
use phd_common::argo;
use phd_common::config::{DEFAULT_ARGOCD_VERSION, DEFAULT_WORKFLOWS_VERSION};
use phd_testkit::ControlPlane;
use phd_testkit::argo::WorkflowController;
use phd_testkit::argocd::{self, ArgoCd, GitServer};
use phd_testkit::kwok::{self, AutoscalerStandIn, IngressStandIn, Kwok};
use phd_testkit::workflows::WorkflowsController;
use serde_json::Value;

fn git(dir: &Path, args: &[&str]) {
    let output = Process::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=phd test",
            "-c",
            "user.email=phd@example.org",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Commits everything in `dir` and pushes it, as an operator does.
fn push(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["push", "-q", "origin", "main"]);
}

/// Commits everything in repository `dir` and serves it as `cluster.git` of
/// the git server whose root is `served`.
fn publish(dir: &Path, served: &Path) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &["commit", "-q", "--allow-empty", "-m", "Cluster repository"],
    );
    let source = dir.display().to_string();
    git(served, &["clone", "-q", "--bare", &source, "cluster.git"]);
}

/// Runs `command`, asserts it succeeded, and returns its stderr.
fn succeeded(command: &mut assert_cmd::Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{what}: {stderr}");
    stderr
}

/// `kubectl phd argo install` with the upstream manifests of the pinned releases.
fn argo_install(mut command: assert_cmd::Command) {
    command
        .args(["argo", "install", "--argocd-manifest"])
        .arg(common::argocd_manifest())
        .arg("--workflows-manifest")
        .arg(common::workflows_manifest())
        .write_stdin("");
    succeeded(&mut command, "argo install");
}

/// Whether Argo CD's sync of an instance has applied Drydock's wave 0 and now
/// waits for its health (which takes a kubelet, storage and an ingress
/// controller this control plane does not have).
fn waiting_on_wave_zero(status: Option<&Value>) -> bool {
    status.is_some_and(|s| {
        s["operationState"]["phase"] == "Running"
            && s["operationState"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("waiting for healthy state"))
    })
}

fn applications(client: &kube::Client) -> Api<DynamicObject> {
    argo::applications(client)
}

/// Whether Application `name` exists.
async fn exists(client: &kube::Client, name: &str) -> bool {
    applications(client)
        .get_opt(name)
        .await
        .expect("get Application")
        .is_some()
}

/// Waits up to `timeout` for `check` on the Application (None when it does
/// not exist) to hold; panics with its status and Argo CD's logs otherwise.
async fn wait_for(
    client: &kube::Client,
    argocd: &ArgoCd,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(Option<&Value>) -> bool,
) {
    let api = applications(client);
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        let application = api.get_opt(name).await.expect("get Application");
        let status = application.as_ref().map(|a| a.data["status"].clone());
        if check(status.as_ref()) {
            return;
        }
        last = status;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "Application {name}: not {what} within {timeout:?}; status: {}\n{}",
        serde_json::to_string_pretty(&last).unwrap_or_default(),
        argocd.logs(15)
    );
}

/// A cluster repository as `cluster create` writes it, served by a git
/// server on loopback and bootstrapped with `argo install` (without
/// `cluster/apps/harmony.yml`, whose chart comes from the internet), on a
/// control plane of its own, with Argo CD's controllers and its
/// ApplicationSet controller running. Argo CD's own revision cache is off
/// (3 minutes by default, as in a cluster whose git host sends no webhook:
/// a reconcile soon after a push would see the old commit).
struct GitOpsCluster {
    argocd: ArgoCd,
    client: kube::Client,
    home: Repo,
    root: std::path::PathBuf,
    _server: GitServer,
    _served: tempfile::TempDir,
    plane: ControlPlane,
}

impl GitOpsCluster {
    /// The cluster repository of cluster `title` (`cluster create TITLE`).
    async fn start(title: &str) -> Self {
        let plane = ControlPlane::start().await.expect("control plane");
        let client = plane.client().await.expect("client");
        let kubeconfig = &plane.admin_kubeconfig;
        let served = tempfile::tempdir().expect("git server root");
        let server = GitServer::start(served.path()).expect("git server");
        let url = server.url("cluster.git");
        let home = Repo::new();
        let output = home
            .phd(kubeconfig)
            .args(["cluster", "create", title, "lms.example.org"])
            .args(["--github-repo", &url, "--output-dir"])
            .arg(home.dir.path())
            .output()
            .expect("cluster create");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let slug = title.to_lowercase().replace(' ', "-");
        let root = home.dir.path().join(format!("phd-{slug}-cluster"));
        std::fs::remove_file(root.join("cluster/apps/harmony.yml")).expect("harmony.yml");
        publish(&root, served.path());
        git(&root, &["remote", "set-url", "origin", &url]);
        argo_install(in_repository(&home, kubeconfig, &root));
        let argocd = ArgoCd::start_with(
            kubeconfig,
            DEFAULT_ARGOCD_VERSION,
            &argocd::Options {
                resync: 5,
                revision_cache: None,
                applicationsets: true,
            },
        )
        .expect("start Argo CD");
        Self {
            argocd,
            client,
            home,
            root,
            _server: server,
            _served: served,
            plane,
        }
    }

    /// `kubectl phd` inside the repository, whose context.json is the setting.
    fn phd(&self) -> assert_cmd::Command {
        in_repository(&self.home, &self.plane.admin_kubeconfig, &self.root)
    }
}

/// `kubectl phd` of `home` inside the cluster repository `root`.
fn in_repository(home: &Repo, kubeconfig: &Path, root: &Path) -> assert_cmd::Command {
    let mut command = home.phd(kubeconfig);
    command
        .current_dir(root)
        .env_remove("PHD_INSTANCES_DIRECTORY")
        .env_remove("PHD_CLUSTER_DOMAIN")
        .env_remove("PHD_CLUSTER_REPOSITORY");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_syncs_an_instance_from_git_and_prunes_it_on_delete() {
    // Workloads come to life: kube-scheduler places pods on kwok's node, kwok
    // makes them Ready (Jobs' pods Succeeded) and binds volumes; the stand-in
    // ingress controller gives Ingresses their address.
    let plane = ControlPlane::start_with_controllers(kwok::WORKLOAD_CONTROLLERS)
        .await
        .expect("control plane");
    let client = plane.client().await.expect("client");
    let kubeconfig = &plane.admin_kubeconfig;
    let nodes = Kwok::start(&plane).await.expect("kwok");
    let _ingress = IngressStandIn::start(client.clone());
    let _autoscaler = AutoscalerStandIn::start(client.clone());

    // The cluster repository, pushed to a git server as an operator would.
    let repo = Repo::new();
    let served = tempfile::tempdir().expect("git server root");
    git(repo.dir.path(), &["init", "-q", "-b", "main"]);
    publish(repo.dir.path(), served.path());
    let server = GitServer::start(served.path()).expect("git server");
    let url = server.url("cluster.git");
    git(repo.dir.path(), &["remote", "add", "origin", &url]);

    let mut install = repo.phd(kubeconfig);
    install.env("PHD_CLUSTER_REPOSITORY", &url);
    argo_install(install);
    let argocd = ArgoCd::start(kubeconfig, DEFAULT_ARGOCD_VERSION, 5).expect("start Argo CD");

    let name = "sync1";
    let application = format!("{name}-production");
    // The real Argo Workflows controller runs the provisioning Workflows
    // (their pods on kwok's node; no script runs there).
    let workflows =
        WorkflowsController::start(kubeconfig, DEFAULT_WORKFLOWS_VERSION, client.clone())
            .expect("start the Argo Workflows controller");
    succeeded(
        repo.phd(kubeconfig)
            .env("PHD_CLUSTER_REPOSITORY", &url)
            .args(["instance", "create", name, "--timeout", "120s"]),
        "instance create",
    );
    push(repo.dir.path(), "Add instance sync1");

    // Argo CD renders instances/sync1/env with kustomize and syncs it in
    // Drydock's waves: wave 0 (settings, Services, Ingresses, volumes, the
    // backing Deployments), each wave once the one before is healthy, the
    // init Jobs, then the Open edX Deployments: Synced and Healthy.
    wait_for(
        &client,
        &argocd,
        &application,
        "Synced and Healthy",
        Duration::from_secs(300),
        |status| {
            status.is_some_and(|s| {
                s["sync"]["status"] == "Synced"
                    && s["health"]["status"] == "Healthy"
                    && s["operationState"]["phase"] == "Succeeded"
            })
        },
    )
    .await;
    let status = applications(&client)
        .get(&application)
        .await
        .expect("get")
        .data["status"]
        .clone();
    assert_eq!(status["sourceType"], "Kustomize");
    let commit = String::from_utf8(
        Process::new("git")
            .current_dir(repo.dir.path())
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git")
            .stdout,
    )
    .expect("utf-8");
    assert_eq!(
        status["sync"]["revision"],
        commit.trim(),
        "the pushed commit"
    );
    let urls = status["summary"]["externalURLs"].to_string();
    assert!(urls.contains("https://sync1.lms.example.org/"), "{urls}");
    // Drydock's init Jobs are Sync hooks, each in its own wave: run to
    // completion (kwok completes their pods), then deleted by their
    // HookSucceeded policy.
    let results = status["operationState"]["syncResult"]["resources"]
        .as_array()
        .expect("sync result")
        .clone();
    let hooks: Vec<_> = results.iter().filter(|r| r["hookType"] == "Sync").collect();
    for hook in &hooks {
        assert_eq!(hook["kind"], "Job", "{hook}");
        assert_eq!(hook["hookPhase"], "Succeeded", "{hook}");
    }
    for service in ["lms", "cms"] {
        let prefix = format!("drydock-{service}-job-");
        assert!(
            hooks
                .iter()
                .any(|h| h["name"].as_str().is_some_and(|n| n.starts_with(&prefix))),
            "{prefix}*: {hooks:?}"
        );
    }
    // Every other resource as Argo CD sees it: as git says, and healthy.
    let resources = status["resources"].as_array().expect("resources").clone();
    for resource in resources.iter().filter(|r| r["kind"] != "Job") {
        assert_eq!(resource["status"], "Synced", "{resource}");
        assert!(
            resource["health"].is_null() || resource["health"]["status"] == "Healthy",
            "{resource}"
        );
    }
    let has = |kind: &str, name: &str| {
        resources
            .iter()
            .any(|r| r["kind"] == kind && r["name"] == name)
    };
    for (kind, name) in [
        ("Service", "lms"),
        ("Ingress", "lms"),
        ("Deployment", "redis"),
        ("Deployment", "meilisearch"),
        ("PersistentVolumeClaim", "meilisearch-v1-36-0"),
        ("Deployment", "lms"),
        ("Deployment", "cms"),
        ("Deployment", "lms-worker"),
    ] {
        assert!(has(kind, name), "{kind} {name}: {resources:?}");
    }
    // In the cluster: the Open edX Deployments available (kwok's pods), the
    // init Jobs run, with Argo CD's tracking of this Application.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), name);
    let lms = deployments.get("lms").await.expect("lms Deployment");
    assert!(
        lms.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .is_some_and(|n| n >= 1),
        "{:?}\n{}",
        lms.status,
        nodes.logs(20)
    );
    let redis = deployments.get("redis").await.expect("redis Deployment");
    let tracking = redis
        .metadata
        .annotations
        .unwrap_or_default()
        .get("argocd.argoproj.io/tracking-id")
        .cloned()
        .unwrap_or_default();
    assert!(
        tracking.starts_with(&format!("{application}:")),
        "{tracking}"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), name);
    assert!(services.get_opt("lms").await.expect("get").is_some());

    // Delete: Argo CD prunes, the Application goes, phd deprovisions, the
    // namespace goes. Watched from the side: what Argo CD deployed must be
    // gone before the namespace starts terminating (else it was the
    // namespace's deletion, not Argo CD, that removed it).
    let order = {
        let client = client.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &name);
            let namespaces: Api<Namespace> = Api::all(client);
            let mut seen = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(240) {
                let terminating = namespaces
                    .get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some());
                if terminating && !seen.contains(&"namespace terminating") {
                    seen.push("namespace terminating");
                }
                let redis_gone = deployments.get_opt("redis").await.ok().flatten().is_none();
                if redis_gone && !seen.contains(&"redis gone") {
                    seen.push("redis gone");
                }
                if seen.len() == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            seen
        })
    };
    let output = repo
        .phd(kubeconfig)
        .env("PHD_CLUSTER_REPOSITORY", &url)
        .args(["instance", "delete", name, "--yes", "--timeout", "180s"])
        .output()
        .expect("instance delete");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        argocd.logs(40)
    );
    // Synced and Healthy, no sync runs: nothing to stop.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("stopped the sync in progress"), "{stderr}");
    assert!(!exists(&client, &application).await);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(name).await.expect("get").is_none());
    let order = order.await.expect("watcher");
    assert_eq!(
        order,
        ["redis gone", "namespace terminating"],
        "pruned by Argo CD first"
    );
    // Provisioned and deprovisioned by the controller, Workflows of the
    // WorkflowTemplates `argo install` put in place, Strict references on.
    let phases = workflows.phases();
    for operation in ["-provision-", "-deprovision-"] {
        let done: Vec<_> = phases
            .iter()
            .filter(|(name, phase)| name.contains(operation) && *phase == "Succeeded")
            .collect();
        assert!(
            done.len() >= 2,
            "{operation}: {phases:?}\n{}",
            workflows.logs(30)
        );
    }
    assert!(
        phases.values().all(|phase| phase == "Succeeded"),
        "{phases:?}\n{}",
        workflows.logs(30)
    );
}

/// The path docs/instances.md gives an operator: a cluster repository from
/// `cluster create`, bootstrapped by `argo install` (its root Application and
/// the instances' ApplicationSet), the real ApplicationSet controller making
/// each instance's Application from git. `instance create` leaves the
/// Application to the ApplicationSet; once pushed, Argo CD makes and syncs
/// it. `instance delete` refuses while the instance is still in the
/// repository (the ApplicationSet would bring it back); after the removal is
/// pushed it deletes, and the Application stays gone. The cluster services'
/// Application (cluster/apps/harmony.yml) is left out: its Helm chart is on
/// the internet, which the tests cannot reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_repository_applicationset_deploys_a_pushed_instance() {
    let cluster = GitOpsCluster::start("Sync Test").await;
    let (client, argocd, root) = (
        cluster.client.clone(),
        &cluster.argocd,
        cluster.root.clone(),
    );
    let phd = || cluster.phd();
    let set = "phd-instances-production";

    let name = "sync2";
    let application = format!("{name}-production");
    let workflows = WorkflowController::start(client.clone(), name);
    let stderr = succeeded(
        phd().args(["instance", "create", name, "--timeout", "120s"]),
        "instance create",
    );
    assert!(
        stderr.contains(
            "made by ApplicationSet phd-instances-production once instances/sync2 is pushed"
        ),
        "{stderr}"
    );
    push(&root, "Add instance sync2");
    // What Argo CD's webhook handler does on a push from the git host.
    argo::refresh(
        &client,
        argo::Refresh::ApplicationSet,
        set,
        Duration::from_secs(60),
    )
    .await
    .expect("refresh the ApplicationSet");

    // The ApplicationSet makes the Application from git; Argo CD syncs it.
    wait_for(
        &client,
        argocd,
        &application,
        "made and waiting on wave 0's health",
        Duration::from_secs(180),
        waiting_on_wave_zero,
    )
    .await;
    let made = applications(&client).get(&application).await.expect("get");
    let owners = made.metadata.owner_references.unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o.kind == "ApplicationSet" && o.name == "phd-instances-production"),
        "{owners:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), name);
    assert!(deployments.get_opt("redis").await.expect("get").is_some());

    // Still in the repository: refused, nothing deleted.
    let output = phd()
        .args(["instance", "delete", name, "--yes"])
        .output()
        .expect("instance delete");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("remove it there first"), "{stderr}");
    assert!(exists(&client, &application).await);

    // Removed only from the local copy: Argo CD, reading the repository
    // anew, still finds it there; refused before anything is deleted.
    std::fs::remove_dir_all(root.join("instances").join(name)).expect("remove locally");
    let output = phd()
        .args(["instance", "delete", name, "--yes", "--timeout", "60s"])
        .output()
        .expect("instance delete");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("instance sync2 is still in the repository Argo CD reads"),
        "{stderr}"
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(namespaces.get_opt(name).await.expect("get").is_some());
    assert!(
        applications(&client)
            .get(&application)
            .await
            .expect("get")
            .metadata
            .deletion_timestamp
            .is_none()
    );
    git(&root, &["checkout", "--", "instances"]);

    // Removed and pushed (no webhook): deleted for good. The sync still waiting on wave 0
    // cannot be terminated by Argo CD any more (its source is gone from
    // git); phd ends it after the grace period and Argo CD prunes.
    git(&root, &["rm", "-q", "-r", &format!("instances/{name}")]);
    push(&root, "Remove instance sync2");
    let output = phd()
        .args(["instance", "delete", name, "--yes", "--timeout", "180s"])
        .output()
        .expect("instance delete");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", argocd.logs(40));
    assert!(stderr.contains("stopped the sync in progress"), "{stderr}");
    assert!(namespaces.get_opt(name).await.expect("get").is_none());
    // The ApplicationSet reconciles after the deletion and does not bring it back.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!exists(&client, &application).await);
    let seen = workflows.seen();
    assert!(seen.iter().any(|w| w.contains("deprovision")), "{seen:?}");
}

/// Deleting the instances' ApplicationSet (an edit of cluster/apps/, an
/// environment rename) deletes its Applications, Kubernetes' garbage
/// collector following their owner reference; with the real Argo CD
/// controllers running, the sites they deployed stay: Deployments and
/// PersistentVolumeClaims of both instances are still there afterwards
/// (argoproj/argo-cd#9990: with the cascade finalizer on the Applications,
/// they would all be deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_applicationset_keeps_every_site() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;

    let cluster = GitOpsCluster::start("Keep Test").await;
    let (client, argocd, root) = (
        cluster.client.clone(),
        &cluster.argocd,
        cluster.root.clone(),
    );
    let phd = || cluster.phd();
    let set = "phd-instances-production";
    let names = ["keep1", "keep2"];
    let _workflows: Vec<WorkflowController> = names
        .iter()
        .map(|name| WorkflowController::start(client.clone(), name))
        .collect();
    for name in names {
        succeeded(
            phd().args(["instance", "create", name, "--timeout", "120s"]),
            "instance create",
        );
    }
    push(&root, "Add two instances");
    argo::refresh(
        &client,
        argo::Refresh::ApplicationSet,
        set,
        Duration::from_secs(60),
    )
    .await
    .expect("refresh the ApplicationSet");
    for name in names {
        wait_for(
            &client,
            argocd,
            &format!("{name}-production"),
            "made and waiting on wave 0's health",
            Duration::from_secs(240),
            waiting_on_wave_zero,
        )
        .await;
    }
    let deployed = |name: &'static str| {
        let client = client.clone();
        async move {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), name);
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, name);
            let deployments = deployments.list(&Default::default()).await.expect("list");
            let claims = claims.list(&Default::default()).await.expect("list");
            (
                deployments
                    .items
                    .iter()
                    .filter(|d| d.metadata.deletion_timestamp.is_none())
                    .count(),
                claims
                    .items
                    .iter()
                    .filter(|c| c.metadata.deletion_timestamp.is_none())
                    .count(),
            )
        }
    };
    let before = [deployed(names[0]).await, deployed(names[1]).await];
    for (deployments, claims) in before {
        assert!(deployments > 0 && claims > 0, "{before:?}");
    }

    // The ApplicationSet goes. Its Applications go with it (Kubernetes'
    // garbage collector, following their owner reference) or are let go
    // (Argo CD's ApplicationSet controller orphans them under the
    // create-update policy when it sees the deletion in time): either way,
    // none may take the site with it.
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        argo::ARGOCD_NAMESPACE,
        &argo::Kind::ApplicationSet.resource(),
    );
    let uid = sets
        .get(set)
        .await
        .expect("the ApplicationSet")
        .metadata
        .uid
        .expect("uid");
    // As `kubectl delete applicationset` does (background propagation). The
    // cluster's root Application makes it again from git a moment later: a
    // new object, with a new uid.
    sets.delete(set, &kube::api::DeleteParams::background())
        .await
        .expect("delete the ApplicationSet");
    let applications = applications(&client);
    let start = Instant::now();
    loop {
        let set_gone = sets
            .get_opt(set)
            .await
            .expect("get")
            .is_none_or(|current| current.metadata.uid.as_ref() != Some(&uid));
        let mut settled = set_gone;
        let mut seen = Vec::new();
        for name in names {
            if let Some(app) = applications
                .get_opt(&format!("{name}-production"))
                .await
                .expect("get")
            {
                let owned = app
                    .metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|owners| owners.iter().any(|o| o.uid == uid));
                settled &= !owned;
                seen.push(format!(
                    "{name}: owners {:?}, finalizers {:?}, deleting {}",
                    app.metadata.owner_references,
                    app.metadata.finalizers,
                    app.metadata.deletion_timestamp.is_some()
                ));
            }
        }
        if settled {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the ApplicationSet's deletion did not settle (ApplicationSet gone: {set_gone}): {seen:?}\n{}",
            argocd.logs(30)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Argo CD has had the time to prune, were it told to.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = [deployed(names[0]).await, deployed(names[1]).await];
    assert_eq!(before, after, "the sites lost objects\n{}", argocd.logs(30));
    // Whatever Application is there now (left behind, or made again by the
    // ApplicationSet that the cluster's root Application restores from git)
    // carries no cascade finalizer: deleting it would not take the site.
    for name in names {
        if let Some(app) = applications
            .get_opt(&format!("{name}-production"))
            .await
            .expect("get")
        {
            let finalizers = app.metadata.finalizers.unwrap_or_default();
            assert!(
                !finalizers.iter().any(|f| f == argo::RESOURCES_FINALIZER),
                "{name}: {finalizers:?}"
            );
        }
    }
}

/// Issue 29.3 with the real Argo Workflows controller: a Workflow that
/// references an admin template with arguments naming another instance's
/// database and a host of its submitter's choice, run where the admin
/// credentials are (after `instance create --no-wait`), is admitted and
/// started, and its pod acts on the target phd wrote in the Secret
/// `phd-provisioning` only: every target variable comes from that Secret,
/// and no argument appears anywhere in the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_naming_another_target_runs_on_the_secrets_target_only() {
    use k8s_openapi::api::core::v1::Pod;
    let plane = ControlPlane::start_with_controllers(kwok::WORKLOAD_CONTROLLERS)
        .await
        .expect("control plane");
    let client = plane.client().await.expect("client");
    let kubeconfig = &plane.admin_kubeconfig;
    let _nodes = Kwok::start(&plane).await.expect("kwok");
    let repo = Repo::new();
    argo_install(repo.phd(kubeconfig));
    let controller =
        WorkflowsController::start(kubeconfig, DEFAULT_WORKFLOWS_VERSION, client.clone())
            .expect("start the Argo Workflows controller");
    let name = "target1";
    succeeded(
        repo.phd(kubeconfig)
            .args(["instance", "create", name, "--no-wait"]),
        "instance create --no-wait",
    );

    let (database, host) = ("another-instance-openedx", "attacker.example.com");
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), name, &argo::Kind::Workflow.resource());
    let intruder: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "intruder", "namespace": name},
        "spec": {
            "workflowTemplateRef": {"name": "mysql-deprovision-template", "clusterScope": true},
            "arguments": {"parameters": [
                {"name": "database", "value": database},
                {"name": "username", "value": "another-instance"},
                {"name": "host", "value": host},
                {"name": "port", "value": "3307"},
            ]},
        },
    }))
    .expect("workflow");
    workflows
        .create(&kube::api::PostParams::default(), &intruder)
        .await
        .expect("submit");

    let pods: Api<Pod> = Api::namespaced(client.clone(), name);
    let started = Instant::now();
    let pod = loop {
        let listed = pods
            .list(
                &kube::api::ListParams::default().labels("workflows.argoproj.io/workflow=intruder"),
            )
            .await
            .expect("list pods");
        if let Some(pod) = listed.items.into_iter().next() {
            break pod;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the controller made no pod for the Workflow: {:?}\n{}",
            controller.phases(),
            controller.logs(40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let text = serde_json::to_string(&pod).expect("json");
    for argument in [database, host, "3307"] {
        assert!(
            !text.contains(argument),
            "{argument} reached the pod: {text}"
        );
    }
    let main = pod
        .spec
        .expect("spec")
        .containers
        .into_iter()
        .find(|container| container.name == "main")
        .expect("main container");
    for (variable, key) in [
        ("DATABASE", "mysql-database"),
        ("USERNAME", "mysql-user"),
        ("MYSQL_HOST", "mysql-host"),
        ("MYSQL_PORT", "mysql-port"),
        ("MYSQL_ROOT_PASSWORD", "mysql-root-password"),
    ] {
        let env = main
            .env
            .iter()
            .flatten()
            .find(|env| env.name == variable)
            .unwrap_or_else(|| panic!("no {variable}"));
        let reference = env
            .value_from
            .as_ref()
            .and_then(|from| from.secret_key_ref.as_ref())
            .unwrap_or_else(|| panic!("{variable} is not from a Secret: {env:?}"));
        assert_eq!(
            (reference.name.as_str(), reference.key.as_str()),
            ("phd-provisioning", key)
        );
    }
    // What those keys hold: the instance's own target, as phd wrote it.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), name);
    let admin = secrets
        .get("phd-provisioning")
        .await
        .expect("admin credentials");
    let value = |key: &str| {
        String::from_utf8(
            admin
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .expect(key)
                .0
                .clone(),
        )
        .expect("utf-8")
    };
    assert_eq!(value("mysql-host"), "mysql.example.internal");
    assert!(value("mysql-database").contains(name));
}

/// Issue 28: release upgrades with the real Argo CD controllers, kwok's
/// nodes and the real Argo Workflows controller (the restore points'
/// Workflows run there, their pods on kwok's node: no script runs; the
/// scripts are tested in `restore_points`).
///
/// Three instances on Tutor 21.0.9 are synced. `instance upgrade --all --to
/// 22.0.3 --wave 1 --push`: the first wave (up1) gets a restore point, is
/// rendered with 22.0.3 (Meilisearch on a volume of its new release),
/// committed, pushed and waited for until Synced and Healthy at that commit;
/// the second wave (up2), whose hook Jobs a ValidatingAdmissionPolicy
/// denies, fails in Argo CD: the run stops there, up3 is not started and
/// keeps 21.0.9. `instance status up2` shows Argo CD's message and the
/// commit (issue 30). Without the policy, `instance sync up2` finishes it
/// (auto-sync does not retry a failed commit), and the same upgrade command
/// continues with up3. A downgrade is refused before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_upgrades_in_waves_stops_at_a_failure_and_continues() {
    let plane = ControlPlane::start_with_controllers(kwok::WORKLOAD_CONTROLLERS)
        .await
        .expect("control plane");
    let client = plane.client().await.expect("client");
    let kubeconfig = &plane.admin_kubeconfig;
    let _nodes = Kwok::start(&plane).await.expect("kwok");
    let _ingress = IngressStandIn::start(client.clone());
    let _autoscaler = AutoscalerStandIn::start(client.clone());
    let repo = Repo::new();
    let served = tempfile::tempdir().expect("git server root");
    git(repo.dir.path(), &["init", "-q", "-b", "main"]);
    // phd commits with the operator's identity.
    git(repo.dir.path(), &["config", "user.name", "phd operator"]);
    git(
        repo.dir.path(),
        &["config", "user.email", "operator@example.org"],
    );
    publish(repo.dir.path(), served.path());
    let server = GitServer::start(served.path()).expect("git server");
    let url = server.url("cluster.git");
    git(repo.dir.path(), &["remote", "add", "origin", &url]);
    let phd = || {
        let mut command = repo.phd(kubeconfig);
        command
            .env("PHD_CLUSTER_REPOSITORY", &url)
            .env("PHD_BACKUP_BUCKET", "phd-test-backups");
        command
    };
    argo_install(phd());
    let argocd = ArgoCd::start(kubeconfig, DEFAULT_ARGOCD_VERSION, 5).expect("start Argo CD");
    let _workflows =
        WorkflowsController::start(kubeconfig, DEFAULT_WORKFLOWS_VERSION, client.clone())
            .expect("start the Argo Workflows controller");

    let names = ["up1", "up2", "up3"];
    for name in names {
        succeeded(
            phd().args([
                "instance",
                "create",
                name,
                "--tutor-version",
                "21.0.9",
                "--timeout",
                "180s",
            ]),
            "instance create",
        );
    }
    push(repo.dir.path(), "Add three instances");
    let settled = |status: Option<&Value>| {
        status.is_some_and(|s| {
            s["sync"]["status"] == "Synced"
                && s["health"]["status"] == "Healthy"
                && s["operationState"]["phase"] == "Succeeded"
        })
    };
    for name in names {
        wait_for(
            &client,
            &argocd,
            &format!("{name}-production"),
            "Synced and Healthy on 21.0.9",
            Duration::from_secs(420),
            settled,
        )
        .await;
    }

    // up2's hooks (Jobs) are refused by the API server.
    let policy = r#"---
{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicy","metadata":{"name":"deny-up2-jobs"},"spec":{"failurePolicy":"Fail","matchConstraints":{"resourceRules":[{"apiGroups":["batch"],"apiVersions":["v1"],"operations":["CREATE"],"resources":["jobs"]}]},"validations":[{"expression":"false","message":"jobs are frozen in up2"}]}}
---
{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingAdmissionPolicyBinding","metadata":{"name":"deny-up2-jobs"},"spec":{"policyName":"deny-up2-jobs","validationActions":["Deny"],"matchResources":{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"up2"}}}}}
"#;
    phd_testkit::kubectl_apply(kubeconfig, policy, "test", false);

    let head_before = git_head(repo.dir.path());
    let output = phd()
        .args([
            "instance",
            "upgrade",
            "--all",
            "--to",
            "22.0.3",
            "--wave",
            "1",
            "--push",
            "--timeout",
            "480s",
            "-o",
            "json",
        ])
        .output()
        .expect("instance upgrade");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stderr}\n{}",
        argocd.logs(30)
    );
    assert!(stderr.contains("stopped in wave 2 of 3"), "{stderr}");
    assert!(stderr.contains("sync of up2 failed"), "{stderr}");
    let table: Value = serde_json::from_slice(&output.stdout).expect("JSON table");
    let states: Vec<(String, String)> = table["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap_or_default().to_owned(),
                row["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("up1".to_owned(), "upgraded".to_owned()),
            ("up2".to_owned(), "failed".to_owned()),
            ("up3".to_owned(), "not started".to_owned()),
        ],
        "{table}"
    );
    assert!(
        table["items"][0]["restorePoint"]
            .as_str()
            .is_some_and(|p| p.starts_with("before-22-0-3-")),
        "{table}"
    );
    // Two commits pushed, one per wave; up3 untouched.
    assert_ne!(git_head(repo.dir.path()), head_before);
    let config = std::fs::read_to_string(repo.instances().join("up3/config.yml")).expect("read");
    assert!(!config.contains("22.0.3"), "{config}");
    let config = std::fs::read_to_string(repo.instances().join("up1/config.yml")).expect("read");
    assert!(config.contains("PHD_TUTOR_VERSION: \"22.0.3\""), "{config}");
    // up1 runs the new Meilisearch on a volume of its own release.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "up1");
    let meilisearch = deployments.get("meilisearch").await.expect("meilisearch");
    let spec = serde_json::to_value(&meilisearch.spec).expect("json");
    assert!(spec.to_string().contains("meilisearch-v1-36-0"), "{spec}");
    // The restore point is listed.
    let listed = phd()
        .args(["instance", "backups", "up1", "-o", "json"])
        .output()
        .expect("backups");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed["items"][0]["tutorVersion"], "21.0.9", "{listed}");

    // A downgrade is refused before anything changes.
    let head = git_head(repo.dir.path());
    let output = phd()
        .args(["instance", "upgrade", "up1", "--to", "21.0.9", "--push"])
        .output()
        .expect("instance upgrade");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("a downgrade"));
    assert_eq!(git_head(repo.dir.path()), head);

    // Issue 30: Argo CD's view of the failed sync, with its message and commit,
    // and what to do.
    let failed_at = git_head(repo.dir.path());
    let output = phd()
        .args(["instance", "status", "up2", "-o", "json"])
        .output()
        .expect("instance status");
    assert!(output.status.success());
    let status: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert!(
        matches!(
            status["argo"]["operation"].as_str(),
            Some("Failed" | "Error")
        ),
        "{status}"
    );
    assert_eq!(
        status["argo"]["operationRevision"],
        failed_at.as_str(),
        "{status}"
    );
    assert!(
        status["argo"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{status}"
    );
    assert!(
        status["problems"]
            .to_string()
            .contains("kubectl phd instance sync up2"),
        "{status}"
    );

    // The cause fixed, `instance sync` finishes up2 (auto-sync would not retry
    // that commit), and the same upgrade command continues with up3.
    let status = Process::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            "deny-up2-jobs",
        ])
        .status()
        .expect("kubectl delete");
    assert!(status.success());
    let output = phd()
        .args(["instance", "sync", "up2", "--timeout", "300s", "-o", "json"])
        .output()
        .expect("instance sync");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}\n{}", argocd.logs(30));
    let synced: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(synced["action"], "requested", "{synced}");
    assert_eq!(synced["sync"], "Synced", "{synced}");
    assert_eq!(synced["health"], "Healthy", "{synced}");
    assert_eq!(synced["operation"], "Succeeded", "{synced}");
    let output = phd()
        .args([
            "instance",
            "upgrade",
            "--all",
            "--to",
            "22.0.3",
            "--wave",
            "1",
            "--push",
            "--timeout",
            "480s",
            "-o",
            "json",
        ])
        .output()
        .expect("instance upgrade");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}\n{}", argocd.logs(30));
    let table: Value = serde_json::from_slice(&output.stdout).expect("JSON table");
    for row in table["items"].as_array().expect("items") {
        assert_eq!(row["state"], "upgraded", "{table}");
    }
}

fn git_head(dir: &Path) -> String {
    let output = Process::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("git");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
