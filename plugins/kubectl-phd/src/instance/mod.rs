//! `kubectl phd instance create|update|delete|list|status|backup|backups|restore` (SPEC.md section 7.4).
//!
//! An instance is a namespace with the RBAC its provisioning workflows need,
//! a database, a MongoDB database and a bucket made by those workflows, an
//! Argo CD Application, and `instances/<name>/` in the cluster repository.

pub mod backup;
mod clone;
mod create;
mod delete;
mod list;
mod render;
pub mod restore;
pub mod size;
mod sync;
mod update;
mod upgrade;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use phd_common::config::{Credential, MongodbProvider, Setting};
use phd_common::workflow::Phase;
use serde_json::{Value, json};

pub use backup::{backup, backups};
pub use clone::clone;
pub use create::create;
pub use delete::delete;
pub use list::{list, status};
pub use restore::restore;
pub use sync::sync;
pub use update::update;
pub use upgrade::upgrade;

use crate::outcome::{External, InstanceDetails};
use crate::session::Session;

pub const INSTANCE_LABEL: &str = "kubectl-phd/instance";
pub const ENVIRONMENT_LABEL: &str = "kubectl-phd/environment";
/// Admin credentials, present in the instance namespace only while workflows run.
pub const PROVISIONING_SECRET: &str = phd_common::rbac::ADMIN_SECRET;
/// The label, and its value, of every object phd makes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "kubectl-phd";
/// The instance's own database passwords, generated once.
pub const CREDENTIALS_SECRET: &str = "phd-instance-credentials";
/// Keys of the bucket's access key in both the provisioning Secret and the
/// credentials Secret: the Workflows create the bucket with them, the Open
/// edX containers store media with them.
pub const STORAGE_CREDENTIALS: [&str; 2] = ["storage-access-key-id", "storage-secret-access-key"];
pub const EXECUTOR: &str = "workflow-executor";
const ANNOTATION_PREFIX: &str = "kubectl-phd/";

/// The names of the instances in the cluster (the values of the instance
/// label on namespaces), sorted: shell completion's candidates.
pub async fn names_in_cluster(client: &kube::Client) -> Result<Vec<String>, kube::Error> {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    let list = namespaces
        .list_metadata(&kube::api::ListParams::default().labels(INSTANCE_LABEL))
        .await?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|namespace| namespace.metadata.labels?.remove(INSTANCE_LABEL))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Checks an instance name for every `instance` verb, before anything
/// changes: the name rules of [`phd_common::naming::check_instance_namespace`]
/// (a DNS label of at most 28 characters that is not a system, Argo,
/// cert-manager or ingress controller namespace). `ingress_namespace` is the
/// resolved ingress setting when the verb has one, else the settings' value.
pub fn check_name(
    session: &Session,
    name: &str,
    ingress_namespace: Option<&str>,
) -> anyhow::Result<()> {
    let ingress_namespace = match ingress_namespace {
        Some(namespace) => namespace.to_owned(),
        None => session.settings().ingress(None, None, None)?.namespace,
    };
    phd_common::naming::check_instance_namespace(name, &ingress_namespace)?;
    Ok(())
}

/// Serialises the commands that decide and write instances' files in one
/// cluster repository on this machine: an exclusive lock on the instances
/// directory (or, before it exists, the nearest existing parent), held
/// until the returned file is dropped. Two `instance create` of one name at
/// once then agree: the second reads the files the first wrote.
/// `value` of setting `key` may reach Tutor
/// ([`phd_common::tutor::check_value`]); the error names the flag that gave
/// it (`--platform-name`, `--set KEY`).
pub(super) fn check_plain(flag: &str, key: &str, value: &Value) -> anyhow::Result<()> {
    match phd_common::tutor::check_value(key, value) {
        Err(phd_common::tutor::TutorError::UnsafeValue { reason, .. }) => {
            bail!("{flag}: {reason}")
        }
        other => Ok(other?),
    }
}

/// [`render::check_hosts`] of instance `name`'s `config` against the other
/// instances of the repository and the cluster's own hosts (its domain, when
/// set).
pub(super) fn check_hosts(
    session: &Session,
    name: &str,
    config: &serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let domain = session
        .settings()
        .get(Setting::ClusterDomain, None)
        .ok()
        .flatten()
        .map(|resolved| resolved.value);
    render::check_hosts(name, config, &instances_dir(session)?, domain.as_deref())
}

pub fn lock_instances(session: &Session) -> anyhow::Result<std::fs::File> {
    let dir = instances_dir(session)?;
    let existing = dir
        .ancestors()
        .find(|candidate| candidate.is_dir())
        .unwrap_or_else(|| Path::new("."));
    let handle = std::fs::File::open(existing)
        .with_context(|| format!("cannot open {} to lock it", existing.display()))?;
    if let Err(std::fs::TryLockError::WouldBlock) = handle.try_lock() {
        crate::output::info(format!(
            "waiting for another kubectl phd command that writes {}",
            existing.display()
        ));
        handle
            .lock()
            .with_context(|| format!("cannot lock {}", existing.display()))?;
    }
    Ok(handle)
}

/// The instance's namespace if it exists, refusing one that phd did not
/// make for this instance (no label `kubectl-phd/instance=<name>`): phd never
/// changes or deletes a namespace it did not create.
pub async fn owned_namespace(
    client: &kube::Client,
    name: &str,
) -> anyhow::Result<Option<k8s_openapi::api::core::v1::Namespace>> {
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
        kube::Api::all(client.clone());
    let Some(namespace) = namespaces
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read namespace {name}"))?
    else {
        return Ok(None);
    };
    let owner = namespace
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(INSTANCE_LABEL));
    if owner.map(String::as_str) != Some(name) {
        bail!(
            "namespace {name} exists and is not the namespace of a phd instance (it has no label {INSTANCE_LABEL}={name}); phd never changes or deletes a namespace it did not create: choose another instance name"
        );
    }
    Ok(Some(namespace))
}

/// Removes the admin credentials from the instance namespace once the
/// Workflows are done (or the wait ended), and turns the outcome of the wait
/// and of the removal into one result. When either failed, the error says
/// what was left behind and that running `command` again finishes the job.
pub async fn finish_provisioning<T>(
    client: &kube::Client,
    name: &str,
    command: &str,
    waited: Result<T, phd_common::workflow::WorkflowError>,
) -> anyhow::Result<T> {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), name);
    let removed = match secrets
        .delete(PROVISIONING_SECRET, &kube::api::DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    };
    let left = format!(
        "the provisioning credentials (Secret {PROVISIONING_SECRET} in namespace {name}, with the database admin passwords) were left in the namespace; `{command}` again removes them"
    );
    match (waited, removed) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(error)) => Err(anyhow::Error::new(error).context(format!(
            "cannot remove the provisioning credentials of {name}: {left}"
        ))),
        (Err(error), Ok(())) => Err(anyhow::Error::new(error).context(format!(
            "waiting for the Workflows of {name} was interrupted; run `{command}` again to finish the job"
        ))),
        (Err(error), Err(_)) => Err(anyhow::Error::new(error).context(format!(
            "waiting for the Workflows of {name} was interrupted, and {left} and finishes the job"
        ))),
    }
}

/// Stops the command when SIGINT or SIGTERM was received
/// ([`phd_common::interrupt`]): the error says what is `done` and that
/// running `command` again finishes the job.
pub fn checkpoint(command: &str, done: &str) -> anyhow::Result<()> {
    phd_common::interrupt::check().map_err(|interrupted| {
        anyhow::Error::new(interrupted).context(format!(
            "interrupted by {}: {done}; run `{command}` again to finish",
            interrupted.signal
        ))
    })
}

/// After a signal ended the wait for the Workflows `names` of instance
/// `name`: removes the admin credentials (Secret `phd-provisioning`) when
/// no Workflow still needs them, else leaves them and names them with the
/// Workflows that still run. Returns the error the command ends with: its
/// first line starts with `interrupted` and ends with `command` to run again.
/// Waits, with progress (`what`: "provisioning", "deprovisioning"), for the
/// Workflows `names` of instance namespace `name`, up to `timeout`; then
/// removes the admin credentials ([`finish_provisioning`]) unless a Workflow
/// still runs after `timeout` (it still needs them: the caller says so). A SIGINT or
/// SIGTERM ends the wait: the error names what is left and `command`, which
/// finishes the job ([`interrupted_provisioning`]).
pub async fn wait_for_workflows(
    client: &kube::Client,
    name: &str,
    names: &[String],
    timeout: std::time::Duration,
    what: &str,
    command: &str,
) -> anyhow::Result<Vec<(String, Phase)>> {
    let progress = crate::progress::Progress::new(format!("{what} {name}"));
    let phases = phd_common::interrupt::or_interrupted(phd_common::workflow::wait_all(
        client,
        name,
        names,
        timeout,
        &|phases, _| progress.update(&summarise(phases)),
    ))
    .await;
    progress.finish();
    match phases {
        // Timed out: the Workflows that still run need the credentials
        // (issue 30), so they stay; the caller's error says so.
        Ok(Ok(phases)) if phases.iter().any(|(_, phase)| !phase.is_done()) => Ok(phases),
        Ok(phases) => finish_provisioning(client, name, command, phases).await,
        Err(interrupted) => {
            Err(interrupted_provisioning(client, name, names, command, interrupted).await)
        }
    }
}

pub async fn interrupted_provisioning(
    client: &kube::Client,
    name: &str,
    names: &[String],
    command: &str,
    interrupted: phd_common::interrupt::Interrupted,
) -> anyhow::Error {
    let signal = interrupted.signal;
    let phases = futures::future::join_all(
        names
            .iter()
            .map(|workflow| phd_common::workflow::phase(client, name, workflow)),
    )
    .await;
    // A Workflow whose phase cannot be read may still run: it keeps them.
    let running: Vec<&str> = names
        .iter()
        .zip(&phases)
        .filter(|(_, phase)| !phase.as_ref().is_ok_and(Phase::is_done))
        .map(|(workflow, _)| workflow.as_str())
        .collect();
    let message = if running.is_empty() {
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), name);
        match secrets
            .delete(PROVISIONING_SECRET, &kube::api::DeleteParams::default())
            .await
        {
            Ok(_) => format!(
                "interrupted by {signal}: the Workflows had ended and the admin credentials were removed; run `{command}` again to finish"
            ),
            Err(kube::Error::Api(status)) if status.code == 404 => format!(
                "interrupted by {signal}: the Workflows had ended and the admin credentials were removed; run `{command}` again to finish"
            ),
            Err(error) => format!(
                "interrupted by {signal}: admin credentials left in Secret {name}/{PROVISIONING_SECRET} (cannot remove them: {error}); run `{command}` again to finish"
            ),
        }
    } else {
        format!(
            "interrupted by {signal}: admin credentials left in Secret {name}/{PROVISIONING_SECRET} for Workflows {} that still run; run `{command}` again to finish (it waits for them and removes the credentials)",
            running.join(", ")
        )
    };
    anyhow::Error::new(interrupted).context(message)
}

/// Why Workflows of instance namespace `namespace` that are not done
/// (`unfinished`) do not progress, in one line, for the error a wait ends
/// with (issue 30): the Argo Workflows controller missing or not ready (and
/// why its pod is not), a Workflow the controller never picked up, a pod
/// that cannot be scheduled or cannot pull its image. `None` when nothing
/// explains it (the Workflows simply take longer).
pub async fn why_stuck(
    client: &kube::Client,
    namespace: &str,
    unfinished: &[&str],
) -> Option<String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    let controller_namespace = crate::argo::WORKFLOWS_NAMESPACE;
    let deployments: kube::Api<Deployment> =
        kube::Api::namespaced(client.clone(), controller_namespace);
    let pods_of =
        |namespace: &str| -> kube::Api<Pod> { kube::Api::namespaced(client.clone(), namespace) };
    // Why a pod does not run: unschedulable, or an image it cannot pull.
    let pod_problem = |pod: &Pod| -> Option<String> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref()?;
        if let Some(condition) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        {
            return Some(format!(
                "pod {name} cannot be scheduled: {}",
                condition
                    .message
                    .clone()
                    .unwrap_or_else(|| "no node fits".into())
            ));
        }
        status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
            .find_map(|container| {
                let waiting = container.state.as_ref()?.waiting.as_ref()?;
                let reason = waiting.reason.clone().unwrap_or_default();
                matches!(
                    reason.as_str(),
                    "ImagePullBackOff"
                        | "ErrImagePull"
                        | "InvalidImageName"
                        | "CreateContainerConfigError"
                )
                .then(|| {
                    format!(
                        "pod {name} cannot start container {} ({reason}): {}",
                        container.name,
                        waiting
                            .message
                            .clone()
                            .unwrap_or_else(|| container.image.clone())
                    )
                })
            })
    };
    match deployments.get_opt("workflow-controller").await {
        Ok(None) => {
            return Some(format!(
                "no Argo Workflows controller runs Workflows (no Deployment {controller_namespace}/workflow-controller): run `kubectl phd argo install`"
            ));
        }
        Ok(Some(deployment)) => {
            let ready = deployment
                .status
                .as_ref()
                .and_then(|status| status.ready_replicas)
                .unwrap_or(0);
            if ready == 0 {
                let wanted = deployment
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.replicas)
                    .unwrap_or(1);
                let why = pods_of(controller_namespace)
                    .list(&kube::api::ListParams::default().labels("app=workflow-controller"))
                    .await
                    .ok()
                    .and_then(|pods| pods.items.iter().find_map(pod_problem))
                    .map(|problem| format!(": {problem}"))
                    .unwrap_or_default();
                return Some(format!(
                    "no Argo Workflows controller processes Workflows (Deployment {controller_namespace}/workflow-controller: 0 of {wanted} ready{why})"
                ));
            }
        }
        Err(_) => {}
    }
    let workflows: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), namespace, &phd_common::workflow::resource());
    let mut causes = Vec::new();
    for name in unfinished {
        let Ok(Some(workflow)) = workflows.get_opt(name).await else {
            continue;
        };
        if workflow.data["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            causes.push(format!(
                "Workflow {name} never got a phase: the controller has not picked it up (`kubectl -n {controller_namespace} logs deploy/workflow-controller`)"
            ));
            continue;
        }
        let pods = pods_of(namespace)
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("workflows.argoproj.io/workflow={name}")),
            )
            .await;
        if let Some(problem) = pods
            .ok()
            .and_then(|pods| pods.items.iter().find_map(pod_problem))
        {
            causes.push(format!("Workflow {name}: {problem}"));
        }
    }
    (!causes.is_empty()).then(|| causes.join("; "))
}

/// The Workflows' phases as progress shows them:
/// `mysql-provision-demo succeeded, storage-provision-demo pending`.
pub fn summarise(phases: &[(String, Phase)]) -> String {
    phases
        .iter()
        .map(|(workflow, phase)| {
            let state = match phase {
                Phase::Pending => "pending",
                Phase::Running => "running",
                Phase::Succeeded => "succeeded",
                Phase::Failed(_) => "failed",
                Phase::Gone => "deleted",
            };
            format!("{workflow} {state}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The three things provisioned for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Mysql,
    Mongodb,
    Storage,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Self::Mysql, Self::Mongodb, Self::Storage];

    pub fn name(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Mongodb => "mongodb",
            Self::Storage => "storage",
        }
    }

    /// `mysql-provision-<instance>`, the original tool's names.
    pub fn workflow(self, operation: Operation, instance: &str) -> String {
        format!("{}-{}-{instance}", self.name(), operation.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Provision,
    Deprovision,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Deprovision => "deprovision",
        }
    }
}

/// When the cluster has `kubectl phd ci-credentials`' account, gives it the
/// instance namespace's Secrets (RoleBinding `phd-ci` to ClusterRole
/// `phd-ci-instance`) and waits until the API server authorizes this
/// identity to write Secrets there (RBAC takes a moment to see a new
/// binding). Nothing to do on clusters without the account.
pub async fn grant_ci_secrets(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let roles: kube::Api<ClusterRole> = kube::Api::all(client.clone());
    match roles.get_opt(crate::ci::INSTANCE_ROLE).await {
        Ok(Some(_)) => {}
        Ok(None) | Err(kube::Error::Api(_)) => return Ok(()),
        Err(error) => return Err(error).context("cannot check for the CI account's role"),
    }
    let binding = phd_common::manifest::Document::from_object(
        "CI account binding (kubectl-phd)",
        1,
        serde_json::to_value(crate::ci::instance_binding(namespace))?,
    );
    phd_common::apply::Applier::new(client.clone())
        .apply(&[binding], Some(namespace), &|_| {})
        .await
        .context("cannot give the CI account the instance's Secrets")?;
    let reviews: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("create".into()),
                resource: Some("secrets".into()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let allowed = phd_common::wait::until(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        |_| async {
            let answer = reviews
                .create(&kube::api::PostParams::default(), &review)
                .await?;
            Ok::<_, kube::Error>(answer.status.filter(|status| status.allowed).map(|_| ()))
        },
    );
    match allowed.await {
        Err(phd_common::wait::WaitError::Failed(error)) => {
            Err(anyhow::Error::new(error).context("cannot ask the API server for Secret access"))
        }
        // Not allowed yet after the wait: the create that follows says why.
        _ => Ok(()),
    }
}

/// Lets the cluster's developers run Workflows in instance namespace `name`
/// ([`phd_common::rbac`]) unless it holds admin credentials (then the
/// command that stored them binds once it removed them).
pub async fn bind_developers(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let developers = phd_common::rbac::developers(client, crate::argo::WORKFLOWS_NAMESPACE).await;
    let subjects = match developers {
        Ok(subjects) => subjects,
        // No users namespace yet: no developers.
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(error) => return Err(error).context("cannot list the developers"),
    };
    let bound = phd_common::rbac::bind_developers(client, name, &subjects)
        .await
        .context("cannot let the developers run Workflows in the instance namespace")?;
    if !bound {
        crate::output::debug(format!(
            "developers not bound in {name}: it holds admin credentials ({PROVISIONING_SECRET})"
        ));
    }
    Ok(())
}

/// Whether `workflow` is one phd submits in instance namespace `instance`:
/// named for a resource and operation ([`Resource::workflow`]), and nothing
/// in its spec but the reference to that operation's template.
fn submitted_by_phd(workflow: &Value, instance: &str) -> bool {
    let name = workflow["metadata"]["name"].as_str().unwrap_or_default();
    backup::submitted_by_phd(workflow)
        || Resource::ALL.into_iter().any(|resource| {
            [Operation::Provision, Operation::Deprovision]
                .into_iter()
                .any(|operation| {
                    name == resource.workflow(operation, instance)
                        && workflow["spec"] == workflow_spec(resource, operation)
                })
        })
}

/// The Secret `phd-provisioning` serves one run at a time: provisioning or
/// deprovisioning (`restore_point` `None`), or one restore point operation
/// (`Some((operation, point))`, its keys `restore-point-operation` and
/// `restore-point`). Fails, before anything changes, when it is there for
/// another run: writing over it would point that run's Workflows at this
/// one's target, and removing it would take their credentials away. A run
/// of the same kind and point may take it over (a re-run finishing the job).
///
/// # Errors
/// Another run holds the Secret, or it cannot be read.
pub async fn claim_provisioning_secret(
    client: &kube::Client,
    name: &str,
    restore_point: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), name);
    let Some(secret) = secrets
        .get_opt(PROVISIONING_SECRET)
        .await
        .with_context(|| format!("cannot read Secret {name}/{PROVISIONING_SECRET}"))?
    else {
        return Ok(());
    };
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|value| String::from_utf8_lossy(&value.0).into_owned())
    };
    let holder = text("restore-point-operation")
        .map(|operation| (operation, text("restore-point").unwrap_or_default()));
    match (holder, restore_point) {
        (None, None) => Ok(()),
        (Some((operation, point)), Some((wanted, wanted_point)))
            if operation == wanted && point == wanted_point =>
        {
            Ok(())
        }
        (Some((operation, point)), _) => bail!(
            "instance {name} is busy: a {operation} of its restore point {point} holds Secret {name}/{PROVISIONING_SECRET}, and this command stopped before writing it; wait for that run (`kubectl -n {name} get workflows`) or run the command that started it again to finish it, then run this again"
        ),
        (None, Some(_)) => bail!(
            "instance {name} is being provisioned or deprovisioned (Secret {name}/{PROVISIONING_SECRET} holds its admin credentials), and this command stopped before changing anything; run the `kubectl phd instance create|delete {name}` that started it again to finish it, then run this again"
        ),
    }
}

/// Before phd stores admin credentials in instance namespace `name`: the
/// developers may no longer submit Workflows there
/// ([`phd_common::rbac::unbind_developers`]), and every Workflow phd did not
/// submit is deleted with its pods ([`phd_common::workflow::remove_foreign`]),
/// so that none queued earlier starts with the credentials.
pub async fn lock_out_developers(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    phd_common::rbac::unbind_developers(client, name, crate::argo::WORKFLOWS_NAMESPACE)
        .await
        .context("cannot stop developers running Workflows before storing admin credentials")?;
    let removed = phd_common::workflow::remove_foreign(client, name, &|workflow| {
        submitted_by_phd(workflow, name)
    })
    .await
    .context("cannot remove Workflows phd did not submit before storing admin credentials")?;
    if !removed.is_empty() {
        crate::output::info(format!(
            "deleted Workflows phd did not submit in {name}: {}",
            removed.join(", ")
        ));
    }
    Ok(())
}

/// The metadata of object `name` that phd keeps in instance namespace
/// `namespace`: labelled `kubectl-phd/instance=<namespace>`.
pub fn instance_meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            INSTANCE_LABEL.to_owned(),
            namespace.to_owned(),
        )])),
        ..Default::default()
    }
}

/// The image pull Secret made from `PHD_DOCKER_REGISTRY_CREDENTIALS`.
pub const PULL_SECRET: &str = "phd-docker-registry";

/// `PHD_DOCKER_REGISTRY_CREDENTIALS` (base64 of `user:token`, the original
/// tool's format) as a `kubernetes.io/dockerconfigjson` Secret for
/// `PHD_DOCKER_REGISTRY` (default ghcr.io) in `namespace`; `None` when unset.
/// A value that is not base64 of `user:token` is an error, before any change.
pub fn registry_pull_secret(session: &Session, namespace: &str) -> anyhow::Result<Option<Secret>> {
    use base64::Engine as _;
    let Some(auth) = session
        .settings()
        .credential(Credential::DockerRegistryCredentials)
    else {
        return Ok(None);
    };
    let auth = auth.trim().to_owned();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&auth)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    if !decoded.is_some_and(|text| {
        phd_common::password::control_character(&text).is_none()
            && text
                .split_once(':')
                .is_some_and(|(u, t)| !u.is_empty() && !t.is_empty())
    }) {
        bail!(
            "{} must be the base64 of user:token, in printable characters",
            Credential::DockerRegistryCredentials.env_name()
        );
    }
    let registry = session
        .settings()
        .get(Setting::DockerRegistry, None)?
        .map(|r| r.value)
        .unwrap_or_else(|| "ghcr.io".to_owned());
    let config = json!({ "auths": { registry: { "auth": auth } } });
    Ok(Some(Secret {
        metadata: instance_meta(PULL_SECRET, namespace),
        data: Some(BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(serde_json::to_vec(&config)?),
        )])),
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        ..Default::default()
    }))
}

/// `PHD_MYSQL_CA_CERTIFICATE`: the PEM text itself, or the path of a file
/// holding it.
pub(super) fn mysql_ca_certificate(value: &str) -> anyhow::Result<String> {
    let variable = Setting::MysqlCaCertificate.env_name();
    let pem = if value.trim_start().starts_with("-----BEGIN") {
        value.to_owned()
    } else {
        std::fs::read_to_string(value)
            .with_context(|| format!("{variable}: cannot read the certificate file {value}"))?
    };
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!("{variable} holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(pem)
}

/// The names and places of an instance's databases and bucket: from its
/// `config.yml`, or from the annotations phd puts on its namespace, so that
/// deleting works without the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub mysql_host: String,
    pub mysql_port: String,
    pub mysql_database: String,
    pub mysql_user: String,
    pub mongodb_database: String,
    pub forum_database: String,
    pub mongodb_user: String,
    pub bucket: String,
    pub storage_type: String,
    pub storage_region: String,
    pub storage_endpoint: String,
}

const FIELDS: [(&str, &str); 11] = [
    ("MYSQL_HOST", "mysql-host"),
    ("MYSQL_PORT", "mysql-port"),
    ("OPENEDX_MYSQL_DATABASE", "mysql-database"),
    ("OPENEDX_MYSQL_USERNAME", "mysql-user"),
    ("MONGODB_DATABASE", "mongodb-database"),
    ("FORUM_MONGODB_DATABASE", "forum-database"),
    ("MONGODB_USERNAME", "mongodb-user"),
    ("STORAGE_BUCKET_NAME", "bucket"),
    ("STORAGE_TYPE", "storage-type"),
    ("STORAGE_REGION", "storage-region"),
    ("STORAGE_ENDPOINT_URL", "storage-endpoint"),
];

impl Resources {
    fn fields(&self) -> [&String; 11] {
        [
            &self.mysql_host,
            &self.mysql_port,
            &self.mysql_database,
            &self.mysql_user,
            &self.mongodb_database,
            &self.forum_database,
            &self.mongodb_user,
            &self.bucket,
            &self.storage_type,
            &self.storage_region,
            &self.storage_endpoint,
        ]
    }

    fn from_lookup(lookup: impl Fn(&str, &str) -> Option<String>) -> Option<Self> {
        let mut values = FIELDS
            .iter()
            .map(|(key, annotation)| lookup(key, annotation));
        let mut next = || values.next().flatten();
        Some(Self {
            mysql_host: next()?,
            mysql_port: next()?,
            mysql_database: next()?,
            mysql_user: next()?,
            mongodb_database: next()?,
            forum_database: next()?,
            mongodb_user: next()?,
            bucket: next()?,
            storage_type: next()?,
            storage_region: next()?,
            storage_endpoint: next().unwrap_or_default(),
        })
    }

    /// From an instance's Tutor `config.yml`.
    pub fn from_config(text: &str) -> anyhow::Result<Self> {
        let config: Value = serde_saphyr::from_str(text).context("config.yml is not valid YAML")?;
        let scalar = |key: &str, _: &str| {
            // Files written before phd rendered with Tutor used the original
            // tool's MYSQL_DATABASE/MYSQL_USERNAME for Tutor's OPENEDX_MYSQL_*.
            let value = match (&config[key], key.strip_prefix("OPENEDX_")) {
                (Value::Null, Some(old)) => &config[old],
                (value, _) => value,
            };
            match value {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            }
        };
        Self::from_lookup(scalar)
            .context("config.yml lacks one of the database, MongoDB or storage settings")
    }

    /// From the annotations of an instance namespace.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        Self::from_lookup(|_, annotation| {
            annotations
                .get(&format!("{ANNOTATION_PREFIX}{annotation}"))
                .cloned()
        })
    }

    pub fn annotations(&self) -> BTreeMap<String, String> {
        FIELDS
            .iter()
            .zip(self.fields())
            .map(|((_, annotation), value)| {
                (format!("{ANNOTATION_PREFIX}{annotation}"), value.clone())
            })
            .collect()
    }
}

impl Resources {
    /// The databases and bucket as the `external` entries of a result:
    /// MongoDB's only when `mongodb` (a provider is set), at `mongodb_host`
    /// when config.yml names it.
    pub fn external(&self, mongodb: bool, mongodb_host: Option<&str>) -> Vec<External> {
        let mut external = vec![External::new(
            "mysqlDatabase",
            &self.mysql_database,
            Some(format!("{}:{}", self.mysql_host, self.mysql_port)),
        )];
        if mongodb {
            for database in [&self.mongodb_database, &self.forum_database] {
                external.push(External::new(
                    "mongodbDatabase",
                    database,
                    mongodb_host.map(str::to_owned),
                ));
            }
        }
        let storage = if self.storage_endpoint.is_empty() {
            format!("{} {}", self.storage_type, self.storage_region)
        } else {
            format!(
                "{} {} at {}",
                self.storage_type, self.storage_region, self.storage_endpoint
            )
        };
        external.push(External::new("bucket", &self.bucket, Some(storage)));
        external
    }
}

/// Key of the instance's credentials Secret that holds the SMTP relay's
/// password (`CREDENTIALS` in plugins/tutor-phd/phd.py: `SMTP_PASSWORD`
/// reaches the containers as `PHD_SMTP_PASSWORD`).
pub const SMTP_PASSWORD_KEY: &str = "smtp-password";

/// Where Tutor renders the Ingresses, relative to an instance's directory.
pub const INGRESSES_FILE: &str = "env/k8s/services.yml";

/// The hosts of the Ingresses in the rendered manifests of the instance in
/// `dir` (`env/k8s/services.yml`): every host Caddy serves to browsers, in the
/// Caddyfile's order (LMS first). Empty when nothing is rendered yet or the
/// file does not parse (`instance update` re-renders it).
pub fn ingress_hosts(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(dir.join(INGRESSES_FILE)) else {
        return Vec::new();
    };
    let Ok(documents) = phd_common::manifest::parse(INGRESSES_FILE, &text) else {
        return Vec::new();
    };
    let mut hosts: Vec<String> = Vec::new();
    for document in documents
        .iter()
        .filter(|document| document.object["kind"] == "Ingress")
    {
        let rules = document.object["spec"]["rules"].as_array();
        for host in rules
            .into_iter()
            .flatten()
            .filter_map(|r| r["host"].as_str())
        {
            if !hosts.iter().any(|known| known == host) {
                hosts.push(host.to_owned());
            }
        }
    }
    hosts
}

/// The site's addresses, `https://<host>`: the hosts of the instance's
/// rendered Ingresses ([`ingress_hosts`] of `dir`: LMS, Studio, Meilisearch's
/// public host, MFEs, any plugin's), else, before a first render, the hosts a
/// parsed config.yml names (LMS, Studio, MFEs).
pub fn site_urls(dir: &Path, config: &Value) -> Vec<String> {
    let mut hosts = ingress_hosts(dir);
    if hosts.is_empty() {
        hosts = ["LMS_HOST", "CMS_HOST", "MFE_HOST"]
            .iter()
            .filter_map(|key| config[key].as_str())
            .map(str::to_owned)
            .collect();
    }
    hosts.iter().map(|host| format!("https://{host}")).collect()
}

/// An instance result's own keys and its hosts and databases, from the
/// instance's config.yml text (`None` when there is none) and the manifests
/// rendered in its directory `dir`.
pub fn described(
    dir: &Path,
    config: Option<&str>,
    environment: Option<String>,
    resources: Option<&Resources>,
    mongodb: bool,
) -> (InstanceDetails, Vec<External>) {
    let parsed: Value = config
        .and_then(|text| serde_saphyr::from_str(text).ok())
        .unwrap_or_default();
    let urls = site_urls(dir, &parsed);
    let mut external: Vec<External> = resources
        .map(|resources| resources.external(mongodb, parsed["MONGODB_HOST"].as_str()))
        .unwrap_or_default();
    external.extend(
        urls.iter()
            .map(|url| External::new("host", url.trim_start_matches("https://"), None)),
    );
    (InstanceDetails { environment, urls }, external)
}

/// Admin credentials and provider settings from the environment, all checked
/// before anything changes.
pub struct Provisioning {
    pub mongodb: MongodbProvider,
    secret: BTreeMap<String, String>,
    /// The providers' settings, under their keys of the Secret
    /// `phd-provisioning` (`mongodb-provider`, `digitalocean-cluster-id`, ...).
    settings: BTreeMap<&'static str, String>,
    /// Required credential variables that are not set: an error for a real
    /// run ([`Provisioning::require_credentials`]), listed by a dry run.
    pub missing: Vec<&'static str>,
}

impl Provisioning {
    /// The providers' settings and admin credentials from the settings
    /// and environment. A missing credential is recorded in `missing`, not an
    /// error, so that `--dry-run` previews without secrets; anything else
    /// invalid is an error.
    pub fn from_environment(session: &Session) -> anyhow::Result<Self> {
        let settings = session.settings();
        // Every value instance create and delete read without a flag, checked
        // first: a bad one is named even while required ones are missing.
        settings.check_all(&[
            Setting::MysqlHost,
            Setting::MysqlPort,
            Setting::MysqlRootUser,
            Setting::MysqlCaCertificate,
            Setting::MongodbHost,
            Setting::MongodbPort,
            Setting::MongodbAuthSource,
            Setting::MongodbReplicaSet,
            Setting::MongodbClusterId,
            Setting::StorageType,
            Setting::StorageRegion,
            Setting::StorageEndpointUrl,
            Setting::StorageVersioning,
            Setting::StorageMakePublic,
            Setting::RepositoryBranch,
            Setting::DockerRegistry,
            Setting::AtlasProjectId,
            Setting::AtlasClusterName,
            Setting::AtlasApiUrl,
            Setting::DigitaloceanApiUrl,
            Setting::SmtpHost,
            Setting::SmtpPort,
            Setting::SmtpUseTls,
            Setting::SmtpUsername,
        ])?;
        let credential = |credential: Credential| settings.credential(credential);
        let setting = |setting: Setting| -> anyhow::Result<String> {
            Ok(settings
                .get(setting, None)?
                .map(|resolved| resolved.value)
                .unwrap_or_default())
        };
        let mut missing = Vec::new();
        // A credential, else the value `fallback` found elsewhere.
        let mut require = |wanted: Credential, fallback: Option<String>| {
            let value = credential(wanted).or(fallback);
            if value.is_none() {
                missing.push(wanted.env_name());
            }
            value.unwrap_or_default()
        };
        let mut secret = BTreeMap::from([
            (
                "mysql-root-user".to_owned(),
                setting(Setting::MysqlRootUser)?,
            ),
            (
                "mysql-root-password".to_owned(),
                // Inside a cluster repository, the infrastructure's sensitive
                // output of the same value, read in this process only.
                require(
                    Credential::MysqlRootPassword,
                    session.sensitive_output("mysql_root_password"),
                ),
            ),
            (
                STORAGE_CREDENTIALS[0].to_owned(),
                require(Credential::StorageAccessKeyId, None),
            ),
            (
                STORAGE_CREDENTIALS[1].to_owned(),
                require(Credential::StorageSecretAccessKey, None),
            ),
        ]);
        if let Some(ca) = settings.get(Setting::MysqlCaCertificate, None)? {
            let ca = ca.value;
            secret.insert(
                "mysql-ca-certificate".to_owned(),
                mysql_ca_certificate(&ca)?,
            );
        }
        // Everything missing in one error, not one per run (from a trial).
        // The provider's own variables, like the credentials, are needed by
        // a real run only: a dry run lists them.
        let mongodb = match settings.mongodb_provider_needs() {
            Ok((provider, needed)) => {
                missing.extend(needed);
                provider
            }
            Err(error) if missing.is_empty() => return Err(error.into()),
            Err(error) => bail!(
                "{error}; also missing: {} (required environment variables)",
                missing.join(", ")
            ),
        };
        let mut settings_values = BTreeMap::from([
            ("mongodb-provider", mongodb.name().to_owned()),
            (
                "digitalocean-cluster-id",
                setting(Setting::MongodbClusterId)?,
            ),
            ("atlas-project-id", setting(Setting::AtlasProjectId)?),
            ("atlas-cluster-name", setting(Setting::AtlasClusterName)?),
            (
                "digitalocean-api-url",
                setting(Setting::DigitaloceanApiUrl)?,
            ),
            ("atlas-api-url", setting(Setting::AtlasApiUrl)?),
            ("storage-versioning", setting(Setting::StorageVersioning)?),
            ("storage-public", setting(Setting::StorageMakePublic)?),
        ]);
        match mongodb {
            MongodbProvider::DigitalOcean => {
                secret.insert(
                    "digitalocean-token".into(),
                    credential(Credential::DigitaloceanToken).unwrap_or_default(),
                );
            }
            MongodbProvider::Atlas => {
                secret.insert(
                    "atlas-public-key".into(),
                    credential(Credential::AtlasPublicKey).unwrap_or_default(),
                );
                secret.insert(
                    "atlas-private-key".into(),
                    credential(Credential::AtlasPrivateKey).unwrap_or_default(),
                );
            }
            MongodbProvider::Disabled => {
                settings_values.insert("mongodb-provider", String::new());
            }
        }
        // Issue 29: a control character (a NUL, a line break pasted in) is
        // refused, named by where it is, never shown.
        for (key, credential) in [
            ("mysql-root-password", Credential::MysqlRootPassword),
            ("storage-access-key-id", Credential::StorageAccessKeyId),
            (
                "storage-secret-access-key",
                Credential::StorageSecretAccessKey,
            ),
            ("digitalocean-token", Credential::DigitaloceanToken),
            ("atlas-public-key", Credential::AtlasPublicKey),
            ("atlas-private-key", Credential::AtlasPrivateKey),
        ] {
            if let Some(found) = secret
                .get(key)
                .map(String::as_str)
                .and_then(phd_common::password::control_character)
            {
                bail!(
                    "{} ({}) holds {found}; set it to the secret alone, in printable characters",
                    credential.env_name(),
                    credential.description()
                );
            }
        }
        Ok(Self {
            mongodb,
            secret,
            settings: settings_values,
            missing,
        })
    }

    /// The line a dry run ends with when credential variables a real run
    /// needs are not set.
    pub fn print_missing(&self) {
        if !self.missing.is_empty() {
            println!(
                "# not set, required without --dry-run: {}",
                self.missing.join(", ")
            );
        }
    }

    /// Fails, naming them, when credential variables a real run needs are
    /// not set.
    pub fn require_credentials(&self) -> anyhow::Result<()> {
        if !self.missing.is_empty() {
            bail!(
                "missing required environment variables: {}",
                self.missing.join(", ")
            );
        }
        Ok(())
    }

    /// For the DigitalOcean MongoDB provider: the API URL, the database
    /// cluster's ID and the token.
    pub fn digitalocean(&self) -> Option<(&str, &str, &str)> {
        (self.mongodb == MongodbProvider::DigitalOcean).then(|| {
            (
                self.settings["digitalocean-api-url"].as_str(),
                self.settings["digitalocean-cluster-id"].as_str(),
                self.secret["digitalocean-token"].as_str(),
            )
        })
    }

    /// The resources to (de)provision: MongoDB only when a provider is set.
    pub fn resources(&self) -> Vec<Resource> {
        Resource::ALL
            .into_iter()
            .filter(|r| *r != Resource::Mongodb || self.mongodb != MongodbProvider::Disabled)
            .collect()
    }

    /// The Secret `phd-provisioning` of instance namespace `namespace`: the
    /// admin credentials and everything the provisioning templates act on,
    /// the instance's `names` and the providers' settings, under keys named
    /// for them (`mysql-database`, `mysql-host`, `bucket`, ...). The templates
    /// read only this Secret (secretKeyRef), never a Workflow's arguments, so
    /// the target is phd's to choose, not the Workflow's submitter's.
    pub fn secret(&self, namespace: &str, names: &Resources) -> Secret {
        let targets = [
            ("mysql-database", &names.mysql_database),
            ("mysql-user", &names.mysql_user),
            ("mysql-host", &names.mysql_host),
            ("mysql-port", &names.mysql_port),
            ("mongodb-database", &names.mongodb_database),
            ("mongodb-forum-database", &names.forum_database),
            ("mongodb-user", &names.mongodb_user),
            ("bucket", &names.bucket),
            ("storage-type", &names.storage_type),
            ("storage-region", &names.storage_region),
            ("storage-endpoint-url", &names.storage_endpoint),
        ];
        let data = self
            .secret
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .chain(
                targets
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value.clone())),
            )
            .chain(
                self.settings
                    .iter()
                    .map(|(key, value)| ((*key).to_owned(), value.clone())),
            )
            .map(|(key, value)| (key, ByteString(value.into_bytes())))
            .collect();
        Secret {
            metadata: instance_meta(PROVISIONING_SECRET, namespace),
            data: Some(data),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }

    /// [`Provisioning::secret`] as a dry run shows it: the values in
    /// `stringData`, the credentials as `<redacted>`, the targets as they are.
    pub fn preview_secret(&self, namespace: &str, names: &Resources) -> Value {
        let secret = self.secret(namespace, names);
        let text: serde_json::Map<String, Value> = secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| {
                let shown = if self.secret.contains_key(&key) {
                    "<redacted>".to_owned()
                } else {
                    String::from_utf8_lossy(&value.0).into_owned()
                };
                (key, Value::String(shown))
            })
            .collect();
        let mut preview = serde_json::to_value(Secret {
            data: None,
            ..secret
        })
        .unwrap_or_default();
        preview["stringData"] = Value::Object(text);
        preview
    }

    /// The Workflow that (de)provisions `resource` for `instance`: a bare
    /// reference to the template, without arguments (the template reads its
    /// target and credentials from Secrets; see [`Provisioning::secret`]).
    pub fn workflow(&self, resource: Resource, operation: Operation, instance: &str) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "name": resource.workflow(operation, instance),
                "namespace": instance,
                "labels": {
                    INSTANCE_LABEL: instance,
                    "kubectl-phd/resource": resource.name(),
                    "kubectl-phd/operation": operation.name(),
                    MANAGED_BY_LABEL: MANAGED_BY,
                },
            },
            "spec": workflow_spec(resource, operation),
        })
    }
}

/// The spec of phd's Workflow that (de)provisions `resource`: nothing but
/// the reference to its template. The controller's templateReferencing:
/// Strict refuses most other fields, and the template names its
/// ServiceAccount (workflow-executor) and reads its Secrets.
fn workflow_spec(resource: Resource, operation: Operation) -> Value {
    json!({
        "workflowTemplateRef": {
            "name": format!("{}-{}-template", resource.name(), operation.name()),
            "clusterScope": true,
        },
    })
}

/// Where instance folders live: `instances/` of the cluster repository, or
/// `PHD_INSTANCES_DIRECTORY` (relative to the working directory).
pub fn instances_dir(session: &Session) -> anyhow::Result<PathBuf> {
    let setting = session.settings().get(Setting::InstancesDirectory, None)?;
    let configured = setting
        .map(|r| r.value)
        .unwrap_or_else(|| "instances".to_owned());
    let path = Path::new(&configured);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let base = match (
        &session.repository,
        session.env_var(Setting::InstancesDirectory.env_name()),
    ) {
        (Some(repository), None) => repository.root.clone(),
        _ => std::env::current_dir().context("cannot determine the working directory")?,
    };
    Ok(base.join(path))
}
