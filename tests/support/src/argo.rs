//! Stand-ins for the two Argo controllers, replaced only at their boundary:
//! they change the same fields of the same objects the real controllers
//! change. The real ones run in `argocd_sync.rs` (Argo CD's controllers,
//! [`crate::argocd`]; the Argo Workflows controller with kwok's nodes,
//! [`crate::workflows`]); these keep the other tests fast and let a test
//! choose a Workflow's failure, which needs a step that really fails.
//!
//! - [`WorkflowController`] moves each submitted Workflow to Succeeded, or to
//!   Failed with a failed step and message, as the test asks.
//! - [`ApplicationController`] removes the resources finalizer of an Argo CD
//!   Application being deleted, as Argo CD does once it has pruned.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use phd_common::argo;
use serde_json::json;
use tokio::task::JoinHandle;

/// What the stand-in does with a Workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Succeed,
    /// Fail, with the failed step's name and message.
    Fail {
        step: String,
        message: String,
    },
}

#[derive(Default)]
struct Rules {
    verdicts: HashMap<String, Verdict>,
    seen: BTreeSet<String>,
    surroundings: HashMap<String, Surroundings>,
}

/// The namespace as a Workflow found it when the stand-in completed it:
/// what its pod would have read, and who could submit Workflows beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Surroundings {
    /// The data of the Secret `phd-provisioning` (text values), if any.
    pub provisioning: Option<std::collections::BTreeMap<String, String>>,
    /// The subjects' names of the RoleBinding `phd-argo-developers`, if any.
    pub developers: Option<Vec<String>>,
}

/// Completes Workflows in one namespace. Stops when dropped.
pub struct WorkflowController {
    rules: Arc<Mutex<Rules>>,
    task: JoinHandle<()>,
}

fn workflows(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = argo::Kind::Workflow.resource();
    Api::namespaced_with(client.clone(), namespace, &resource)
}

impl WorkflowController {
    /// Starts completing every new Workflow in `namespace`: successfully
    /// unless [`WorkflowController::set`] says otherwise for its name. It runs
    /// on the caller's runtime, so a test that blocks on the binary needs the
    /// multi-threaded flavour of `#[tokio::test]`.
    pub fn start(client: kube::Client, namespace: &str) -> Self {
        let rules = Arc::new(Mutex::new(Rules::default()));
        let api = workflows(&client, namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
        let shared = Arc::clone(&rules);
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for workflow in list.items {
                        let phase = workflow.data["status"]["phase"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        if matches!(phase.as_str(), "Succeeded" | "Failed" | "Error") {
                            continue;
                        }
                        let name = workflow.metadata.name.clone().unwrap_or_default();
                        let surroundings = Surroundings {
                            provisioning: secrets
                                .get_opt("phd-provisioning")
                                .await
                                .ok()
                                .flatten()
                                .map(|secret| {
                                    secret
                                        .data
                                        .unwrap_or_default()
                                        .into_iter()
                                        .map(|(key, value)| {
                                            (key, String::from_utf8_lossy(&value.0).into_owned())
                                        })
                                        .collect()
                                }),
                            developers: bindings
                                .get_opt("phd-argo-developers")
                                .await
                                .ok()
                                .flatten()
                                .map(|binding| {
                                    binding
                                        .subjects
                                        .unwrap_or_default()
                                        .into_iter()
                                        .map(|subject| subject.name)
                                        .collect()
                                }),
                        };
                        let verdict = {
                            let Ok(mut rules) = shared.lock() else { return };
                            rules.seen.insert(name.clone());
                            rules.surroundings.insert(name.clone(), surroundings);
                            rules
                                .verdicts
                                .get(&name)
                                .cloned()
                                .unwrap_or(Verdict::Succeed)
                        };
                        let status = match verdict {
                            Verdict::Succeed => {
                                json!({"phase": "Succeeded", "progress": "1/1", "nodes": {
                                    name.clone(): {"id": name, "name": name, "displayName": name, "type": "Steps", "phase": "Succeeded"}
                                }})
                            }
                            Verdict::Fail { step, message } => {
                                json!({"phase": "Failed", "message": "child failed", "nodes": {
                                    name.clone(): {"id": name, "name": name, "displayName": name, "type": "Steps", "phase": "Failed", "message": "child failed"},
                                    format!("{name}-1"): {"id": format!("{name}-1"), "name": format!("{name}[0].{step}"), "displayName": step, "type": "Pod", "phase": "Failed", "message": message}
                                }})
                            }
                        };
                        let _ = api
                            .patch(
                                &name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"status": status})),
                            )
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { rules, task }
    }

    /// What to do with the Workflow `name` from now on.
    pub fn set(&self, name: &str, verdict: Verdict) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.verdicts.insert(name.to_owned(), verdict);
        }
    }

    /// The namespace as Workflow `name` found it when this stand-in
    /// completed it (the last time, when it was submitted again).
    pub fn surroundings(&self, name: &str) -> Option<Surroundings> {
        self.rules
            .lock()
            .ok()
            .and_then(|rules| rules.surroundings.get(name).cloned())
    }

    /// Names of every Workflow this stand-in has completed.
    pub fn seen(&self) -> BTreeSet<String> {
        self.rules
            .lock()
            .map(|rules| rules.seen.clone())
            .unwrap_or_default()
    }
}

impl Drop for WorkflowController {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Lets deleted Applications in `argocd` go, as Argo CD's resources finalizer
/// does: it first deletes the objects the Application deployed (those in its
/// destination namespace whose `argocd.argoproj.io/tracking-id` annotation
/// names it, of the kinds an Open edX instance renders), then removes the
/// finalizer.
pub struct ApplicationController {
    task: JoinHandle<()>,
}

/// Kinds whose objects the stand-in deletes: (group, version, kind, plural).
const DEPLOYED_KINDS: [(&str, &str, &str, &str); 8] = [
    ("apps", "v1", "Deployment", "deployments"),
    ("", "v1", "Service", "services"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("batch", "v1", "Job", "jobs"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    ("", "v1", "Secret", "secrets"),
];

/// The annotation Argo CD tracks its objects by: `<app>:<group>/<kind>:<namespace>/<name>`.
pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";

async fn delete_deployed(client: &kube::Client, application: &DynamicObject) {
    let app = application.metadata.name.clone().unwrap_or_default();
    let Some(namespace) = application.data["spec"]["destination"]["namespace"].as_str() else {
        return;
    };
    for (group, version, kind, plural) in DEPLOYED_KINDS {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for object in list.items {
            let tracked = object
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TRACKING_ANNOTATION))
                .is_some_and(|id| id.starts_with(&format!("{app}:")));
            if tracked {
                let name = object.metadata.name.clone().unwrap_or_default();
                let _ = api.delete(&name, &Default::default()).await;
            }
        }
    }
}

impl ApplicationController {
    pub fn start(client: kube::Client) -> Self {
        let resource = argo::Kind::Application.resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "argocd", &resource);
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = api.list(&ListParams::default()).await {
                    for application in list.items {
                        if application.metadata.deletion_timestamp.is_some() {
                            delete_deployed(&client, &application).await;
                            let name = application.metadata.name.clone().unwrap_or_default();
                            let patch = json!({"metadata": {"finalizers": null}});
                            let _ = api
                                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { task }
    }
}

impl Drop for ApplicationController {
    fn drop(&mut self) {
        self.task.abort();
    }
}
