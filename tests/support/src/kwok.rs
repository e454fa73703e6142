//! Nodes without a kubelet, for tests in which workloads must come to life:
//! kube-scheduler (from the control-plane binary) places pods on a node that
//! kwok (`sigs.k8s.io/kwok`, built by `scripts/install-test-tools`) keeps
//! Ready; kwok's own "fast" stages, read from its module as its project
//! publishes them, make pods Running and Ready, complete the pods of Jobs,
//! and provision and bind volumes for the `kwok-volume` StorageClass (made
//! the default). With kube-controller-manager's deployment, replicaset, job
//! and statefulset controllers ([`WORKLOAD_CONTROLLERS`]) Deployments report
//! available replicas and Jobs complete; no container runs.
//!
//! What kwok does not do, an ingress controller does: [`IngressStandIn`]
//! writes the load-balancer address into Ingress status, as ingress-nginx
//! would, so Argo CD can call an Ingress Healthy; what the autoscaler
//! controller with metrics-server does, [`AutoscalerStandIn`]: the status of
//! each HorizontalPodAutoscaler.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use crate::upstream::go_module_dir;
use crate::{Children, ControlPlane, binary, cache_dir};

/// The kwok release `scripts/install-test-tools` builds.
pub const KWOK_VERSION: &str = "v0.8.0";

/// kube-controller-manager's controllers that turn Deployments, Jobs and
/// StatefulSets into pods, the one that lifts a new node's `not-ready`
/// taint once kwok reports it Ready, and the disruption controller, which
/// writes a PodDisruptionBudget's status (Argo CD calls a budget without
/// one Progressing) (for
/// [`ControlPlane::start_with_controllers`]).
pub const WORKLOAD_CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "statefulset-controller",
    "node-lifecycle-controller",
    "disruption-controller",
];

/// kwok's stage files used, relative to its module: nodes become and stay
/// Ready; pods become Ready (or, owned by a Job, Succeeded; so do those of a
/// Workflow, by the same stage with that owner kind) and go when deleted;
/// claims of `kwok-volume` get a bound volume.
const STAGES: &[&str] = &[
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat/node-heartbeat.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
    "kustomize/stage/volume/fast/pvc-provision.yaml",
    "kustomize/stage/volume/fast/pv-bind.yaml",
    "kustomize/stage/volume/fast/pv-delete.yaml",
    "kustomize/stage/volume/fast/pvc-delete.yaml",
];

/// The node kwok manages.
pub const NODE: &str = "kwok-node-0";

/// Where `scripts/install-test-tools` puts kwok.
pub fn kwok_binary() -> PathBuf {
    cache_dir().join("bin").join(format!("kwok-{KWOK_VERSION}"))
}

/// kube-scheduler and kwok for one control plane, and the node they use.
/// Stops when dropped.
pub struct Kwok {
    children: Children,
}

impl Kwok {
    /// Starts kube-scheduler and kwok against `plane`, registers [`NODE`]
    /// (32 CPUs, 256 GiB, 250 pods) and the default StorageClass
    /// `kwok-volume`. The plane needs [`WORKLOAD_CONTROLLERS`] for
    /// Deployments and Jobs to make pods.
    pub async fn start(plane: &ControlPlane) -> Result<Self> {
        let kwok = kwok_binary();
        if !kwok.is_file() {
            bail!(
                "kwok {KWOK_VERSION} is not built: run scripts/install-test-tools ({} is missing)",
                kwok.display()
            );
        }
        let module = go_module_dir("sigs.k8s.io/kwok", KWOK_VERSION);
        let children = Children::new()?;
        let mut stages = String::new();
        for stage in STAGES {
            let text = std::fs::read_to_string(module.join(stage))
                .with_context(|| format!("read kwok's {stage}"))?;
            stages.push_str("---\n");
            stages.push_str(&text);
            stages.push('\n');
        }
        // Workflows' pods complete as Jobs' do.
        let job_stage =
            std::fs::read_to_string(module.join("kustomize/stage/pod/fast/pod-complete.yaml"))
                .context("read kwok's pod-complete.yaml")?;
        stages.push_str("---\n");
        stages.push_str(&crate::workflows::workflow_pod_complete_stage(&job_stage)?);
        stages.push('\n');
        let config = children.dir().join("stages.yaml");
        std::fs::write(&config, stages)?;
        let mut this = Self { children };

        let client = plane.client().await?;
        let class: StorageClass = serde_saphyr::from_str(
            &std::fs::read_to_string(module.join("kustomize/stage/volume/fast/storage-class.yaml"))
                .context("read kwok's storage-class.yaml")?,
        )
        .context("parse kwok's storage-class.yaml")?;
        create(&Api::<StorageClass>::all(client.clone()), &class).await?;
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "250"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "250"},
            },
        }))?;
        create(&Api::<Node>::all(client.clone()), &node).await?;

        this.children.spawn(
            "kube-scheduler",
            Command::new(binary()?)
                .arg("kube-scheduler")
                .arg(format!("--kubeconfig={}", plane.admin_kubeconfig.display()))
                .args(["--leader-elect=false", "--secure-port=0"]),
        )?;
        this.children.spawn(
            "kwok",
            Command::new(&kwok)
                .arg("--kubeconfig")
                .arg(&plane.admin_kubeconfig)
                .arg("--config")
                .arg(&config)
                .args([
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    "--node-ip=10.0.0.1",
                    "--cidr=10.0.0.0/16",
                    "--server-address=",
                ])
                .env("HOME", this.children.dir()),
        )?;

        // Ready once kwok has marked the node Ready.
        let nodes: Api<Node> = Api::all(client);
        let ready = kube::runtime::wait::await_condition(nodes, NODE, |node: Option<&Node>| {
            node.and_then(|n| n.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        match tokio::time::timeout(Duration::from_secs(60), ready).await {
            Ok(Ok(_)) => Ok(this),
            Ok(Err(error)) => bail!("cannot watch node {NODE}: {error}\n{}", this.logs(20)),
            Err(_) => bail!(
                "kwok did not make node {NODE} Ready within 60s\n{}",
                this.logs(20)
            ),
        }
    }

    /// The last `lines` lines of the scheduler's and kwok's logs.
    pub fn logs(&self, lines: usize) -> String {
        self.children.logs(lines)
    }

    /// Where the logs are.
    pub fn dir(&self) -> &Path {
        self.children.dir()
    }
}

async fn create<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Stands in for an ingress controller (ingress-nginx, a cloud load
/// balancer): every Ingress gets `status.loadBalancer.ingress[0].ip`, which
/// is all Argo CD's health check of an Ingress reads. Runs until dropped.
pub struct IngressStandIn {
    task: tokio::task::JoinHandle<()>,
}

impl IngressStandIn {
    /// The load balancer's address written into every Ingress's status.
    pub const ADDRESS: &str = "192.0.2.10";

    /// Starts writing [`Self::ADDRESS`] into every Ingress's status, every
    /// half second.
    pub fn start(client: kube::Client) -> Self {
        let task = tokio::spawn(async move {
            let ingresses: Api<Ingress> = Api::all(client);
            let status = serde_json::json!({
                "status": {"loadBalancer": {"ingress": [{"ip": Self::ADDRESS}]}}
            });
            loop {
                if let Ok(list) = ingresses.list(&ListParams::default()).await {
                    for ingress in list.items {
                        let has_address = ingress
                            .status
                            .as_ref()
                            .and_then(|s| s.load_balancer.as_ref())
                            .and_then(|l| l.ingress.as_ref())
                            .is_some_and(|i| !i.is_empty());
                        let (Some(name), Some(namespace)) =
                            (ingress.metadata.name, ingress.metadata.namespace)
                        else {
                            continue;
                        };
                        if !has_address {
                            let api: Api<Ingress> =
                                Api::namespaced(ingresses.clone().into_client(), &namespace);
                            let _ = api
                                .patch_status(
                                    &name,
                                    &PatchParams::default(),
                                    &Patch::Merge(&status),
                                )
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Self { task }
    }
}

impl Drop for IngressStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an autoscaler needs and the test cluster lacks (metrics-server and
/// kube-controller-manager's horizontal-pod-autoscaler controller, which
/// without metrics would report `FailedGetResourceMetric`): writes into
/// every HorizontalPodAutoscaler's status what that controller writes once
/// it reads metrics below the target, at the minimum replica count
/// (conditions AbleToScale, ScalingActive, ScalingLimited), so Argo CD can
/// call it Healthy. Stops when dropped.
pub struct AutoscalerStandIn {
    task: tokio::task::JoinHandle<()>,
}

impl AutoscalerStandIn {
    /// Starts writing the status, every half second, into each autoscaler
    /// that has none.
    pub fn start(client: kube::Client) -> Self {
        use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
        let task = tokio::spawn(async move {
            let all: Api<HorizontalPodAutoscaler> = Api::all(client.clone());
            loop {
                if let Ok(list) = all.list(&ListParams::default()).await {
                    for hpa in list.items {
                        let has_status = hpa
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| !c.is_empty());
                        let (Some(name), Some(namespace), Some(spec)) =
                            (hpa.metadata.name, hpa.metadata.namespace, hpa.spec)
                        else {
                            continue;
                        };
                        if has_status {
                            continue;
                        }
                        let replicas = spec.min_replicas.unwrap_or(1);
                        let condition = |kind: &str, status: &str, reason: &str| serde_json::json!({"type": kind, "status": status, "reason": reason});
                        let status = serde_json::json!({"status": {
                            "currentReplicas": replicas,
                            "desiredReplicas": replicas,
                            "conditions": [
                                condition("AbleToScale", "True", "ReadyForNewScale"),
                                condition("ScalingActive", "True", "ValidMetricFound"),
                                condition("ScalingLimited", "False", "DesiredWithinRange"),
                            ],
                        }});
                        let api: Api<HorizontalPodAutoscaler> =
                            Api::namespaced(client.clone(), &namespace);
                        let _ = api
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Self { task }
    }
}

impl Drop for AutoscalerStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
