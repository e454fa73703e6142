//! The real Argo Workflows controller (built by `scripts/install-test-tools`
//! at the release `argo install` pins), for a control plane whose pods kwok
//! runs ([`crate::kwok`]): it reads the `argo` namespace's
//! `workflow-controller-configmap` as `argo install` wrote it (Strict template
//! references, the pod defaults), resolves each Workflow's WorkflowTemplate,
//! makes its pods, and follows them to the Workflow's phase.
//!
//! What kwok cannot do is run the steps: a Workflow's pod "succeeds" without
//! its script running (kwok's `pod-complete` stage, applied to pods owned by a
//! Workflow instead of a Job), and no executor reports outputs. The scripts
//! themselves are tested against real services in `provisioning_scripts.rs`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use kube::api::{Api, DynamicObject, ListParams};
use tokio::task::JoinHandle;

use crate::{Children, cache_dir};

/// Where `scripts/install-test-tools` puts the controller of `version`.
pub fn controller_binary(version: &str) -> std::path::PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("workflow-controller-{version}"))
}

/// kwok's `pod-complete` stage (text of its module's
/// `kustomize/stage/pod/fast/pod-complete.yaml`) made to complete the pods of
/// Workflows instead of Jobs.
pub fn workflow_pod_complete_stage(job_stage: &str) -> Result<String> {
    let owner = "      - 'Job'";
    if !job_stage.contains(owner) || !job_stage.contains("name: pod-complete") {
        bail!("kwok's pod-complete stage changed shape; update workflows.rs");
    }
    Ok(job_stage
        .replace(owner, "      - 'Workflow'")
        .replace("name: pod-complete", "name: workflow-pod-complete"))
}

/// The Argo Workflows controller, running against one control plane; and
/// what it did to Workflows, watched from the side. Stops when dropped.
pub struct WorkflowsController {
    children: Children,
    phases: Arc<Mutex<BTreeMap<String, String>>>,
    watch: JoinHandle<()>,
    // One controller at a time in a test process: each listens on fixed
    // ports (metrics :9090, profiling :6060), and a second one exits. Last,
    // so it is released after the controller has stopped.
    _alone: std::sync::MutexGuard<'static, ()>,
}

impl WorkflowsController {
    /// Starts the controller of Argo Workflows `version` against the cluster
    /// of `kubeconfig`, where `argo install` has installed that release.
    pub fn start(kubeconfig: &Path, version: &str, client: kube::Client) -> Result<Self> {
        let binary = controller_binary(version);
        if !binary.is_file() {
            bail!(
                "the Argo Workflows controller {version} is not built: run scripts/install-test-tools ({} is missing)",
                binary.display()
            );
        }
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        // A test that failed while holding it leaves it poisoned, not locked.
        let alone = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut children = Children::new()?;
        let home = children.dir().to_owned();
        children.spawn(
            "workflow-controller",
            Command::new(&binary)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--namespace", "argo", "--executor-image"])
                .arg(format!("quay.io/argoproj/argoexec:{version}"))
                .env("LEADER_ELECTION_DISABLE", "true")
                .env("HOME", &home),
        )?;
        // A controller that cannot start (a flag, its ConfigMap) exits at once.
        std::thread::sleep(Duration::from_secs(1));
        if let Some(status) = children.exited("workflow-controller") {
            bail!(
                "workflow-controller exited with {status}:\n{}",
                children.logs(40)
            );
        }

        let phases = Arc::new(Mutex::new(BTreeMap::new()));
        let seen = Arc::clone(&phases);
        let resource = phd_common::argo::Kind::Workflow.resource();
        let api: Api<DynamicObject> = Api::all_with(client, &resource);
        let watch = tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for workflow in list.items {
                        let name = format!(
                            "{}/{}",
                            workflow.metadata.namespace.unwrap_or_default(),
                            workflow.metadata.name.unwrap_or_default()
                        );
                        let phase = workflow.data["status"]["phase"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        if let Ok(mut phases) = seen.lock() {
                            phases.insert(name, phase);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Ok(Self {
            children,
            phases,
            watch,
            _alone: alone,
        })
    }

    /// The last phase seen of every Workflow (`namespace/name` → phase, empty
    /// before the controller has set one), including those since deleted.
    pub fn phases(&self) -> BTreeMap<String, String> {
        self.phases
            .lock()
            .map(|phases| phases.clone())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the controller's log.
    pub fn logs(&self, lines: usize) -> String {
        self.children.logs(lines)
    }
}

impl Drop for WorkflowsController {
    fn drop(&mut self) {
        self.watch.abort();
    }
}
