//! Argo CD's objects as the plugin reads and writes them: the kinds, the
//! namespace Argo CD runs in, and the requests Argo CD itself documents
//! (an ApplicationSet refresh, as its git webhook makes).

use std::time::Duration;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

/// The namespace Argo CD is installed in and its Applications live in.
pub const ARGOCD_NAMESPACE: &str = "argocd";
/// The finalizer by which Argo CD deletes what an Application deployed
/// before it lets the Application go (Argo CD's "cascading deletion").
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// The Secret Argo CD reads its local accounts' passwords from.
pub const ARGOCD_SECRET: &str = "argocd-secret";

/// The [`ARGOCD_SECRET`] keys of a local account's password: its bcrypt
/// hash and when it was set. `admin.password`/`admin.passwordMtime` for
/// `admin`, `accounts.<name>.password`/`accounts.<name>.passwordMtime` for
/// the others (Argo CD's user management docs).
pub fn password_keys(account: &str) -> (String, String) {
    let prefix = if account == "admin" {
        "admin".to_owned()
    } else {
        format!("accounts.{account}")
    };
    (
        format!("{prefix}.password"),
        format!("{prefix}.passwordMtime"),
    )
}

/// The part of [`ARGOCD_SECRET`] that sets `account`'s password to the
/// bcrypt `hash` ([`crate::password::bcrypt_hash`]), set now (UTC, RFC 3339
/// to the second, as Argo CD writes it), for a server-side apply. With
/// `resource_version`, the apply succeeds only while argocd-secret is still
/// at that version (409 Conflict otherwise).
pub fn password_secret(account: &str, hash: &str, resource_version: Option<String>) -> Secret {
    let (password_key, mtime_key) = password_keys(account);
    let mtime = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Secret {
        metadata: ObjectMeta {
            name: Some(ARGOCD_SECRET.to_owned()),
            namespace: Some(ARGOCD_NAMESPACE.to_owned()),
            resource_version,
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (password_key, ByteString(hash.as_bytes().to_vec())),
            (mtime_key, ByteString(mtime.into_bytes())),
        ])),
        ..Secret::default()
    }
}

/// The annotation that asks the ApplicationSet controller to reconcile now,
/// reading the repository without its revision cache; the controller removes
/// it when done (Argo CD's `common.AnnotationApplicationSetRefresh`, set by
/// its webhook handler on a push).
pub const APPLICATION_SET_REFRESH: &str = "argocd.argoproj.io/application-set-refresh";

/// The kinds of Argo CD and Argo Workflows that phd reads or writes, all
/// of API group `argoproj.io`, version `v1alpha1` (the CRDs of the upstream
/// install manifests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Application,
    ApplicationSet,
    AppProject,
    Workflow,
    WorkflowTemplate,
    ClusterWorkflowTemplate,
}

impl Kind {
    /// The kind's name and its plural (the resource in API paths).
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Self::Application => ("Application", "applications"),
            Self::ApplicationSet => ("ApplicationSet", "applicationsets"),
            Self::AppProject => ("AppProject", "appprojects"),
            Self::Workflow => ("Workflow", "workflows"),
            Self::WorkflowTemplate => ("WorkflowTemplate", "workflowtemplates"),
            Self::ClusterWorkflowTemplate => {
                ("ClusterWorkflowTemplate", "clusterworkflowtemplates")
            }
        }
    }

    /// The kind as a resource for [`Api::namespaced_with`] / [`Api::all_with`].
    pub fn resource(self) -> ApiResource {
        let (kind, plural) = self.names();
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
    }
}

/// The API group of every Argo kind.
pub const GROUP: &str = "argoproj.io";
/// The API version of every Argo kind phd uses.
pub const VERSION: &str = "v1alpha1";

/// Argo CD's Application kind.
pub fn application_resource() -> ApiResource {
    Kind::Application.resource()
}

/// Argo CD's ApplicationSet kind.
pub fn application_set_resource() -> ApiResource {
    Kind::ApplicationSet.resource()
}

/// A part of Argo that commands need installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    ArgoCd,
    Workflows,
}

impl Part {
    /// The product's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::ArgoCd => "Argo CD",
            Self::Workflows => "Argo Workflows",
        }
    }

    /// The CustomResourceDefinition whose presence means the part is
    /// installed (its API is served).
    pub fn definition(self) -> &'static str {
        match self {
            Self::ArgoCd => "applications.argoproj.io",
            Self::Workflows => "workflows.argoproj.io",
        }
    }
}

/// Why [`require_installed`] refused.
#[derive(Debug, thiserror::Error)]
pub enum InstalledError {
    #[error("{} is not installed (no {}); run `kubectl phd argo install` first", .0.name(), .0.definition())]
    Missing(Part),
    #[error("cannot check whether {} is installed", .part.name())]
    Read {
        part: Part,
        #[source]
        source: kube::Error,
    },
}

/// Checks, all at once and before any change, that every part in `parts` is
/// installed: its CustomResourceDefinition exists ([`Part::definition`]).
/// Needs `get` on customresourcedefinitions.
///
/// # Errors
/// [`InstalledError::Missing`] for the first part (in the order given) that
/// is not installed; [`InstalledError::Read`] when the API server refuses or
/// fails the read.
pub async fn require_installed(
    client: &kube::Client,
    parts: &[Part],
) -> Result<(), InstalledError> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let definitions: Api<CustomResourceDefinition> = Api::all(client.clone());
    let found = futures::future::join_all(
        parts
            .iter()
            .map(|part| definitions.get_opt(part.definition())),
    )
    .await;
    for (&part, found) in parts.iter().zip(found) {
        match found {
            Ok(Some(_)) => {}
            Ok(None) => return Err(InstalledError::Missing(part)),
            Err(source) => return Err(InstalledError::Read { part, source }),
        }
    }
    Ok(())
}

/// Applications in [`ARGOCD_NAMESPACE`].
pub fn applications(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ARGOCD_NAMESPACE, &application_resource())
}

/// ApplicationSets in [`ARGOCD_NAMESPACE`].
pub fn application_sets(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ARGOCD_NAMESPACE,
        &application_set_resource(),
    )
}

/// What [`refresh`] asks to reconcile from the repository's newest commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// An Application (annotation [`APPLICATION_REFRESH`], as `argocd app get
    /// --refresh` sets it): its controller compares it with the branch's
    /// newest commit, resolved anew.
    Application,
    /// An ApplicationSet (annotation [`APPLICATION_SET_REFRESH`], as Argo CD's
    /// webhook handler sets it on a push): its generators read the branch's
    /// newest commit.
    ApplicationSet,
}

impl Refresh {
    fn kind(self) -> &'static str {
        match self {
            Self::Application => "Application",
            Self::ApplicationSet => "ApplicationSet",
        }
    }

    fn annotation(self) -> (&'static str, &'static str) {
        match self {
            Self::Application => (APPLICATION_REFRESH, "normal"),
            Self::ApplicationSet => (APPLICATION_SET_REFRESH, "true"),
        }
    }

    fn controller(self) -> &'static str {
        match self {
            Self::Application => "argocd-application-controller",
            Self::ApplicationSet => "argocd-applicationset-controller",
        }
    }
}

/// The annotation that asks the application controller to compare an
/// Application with its source now, resolving the branch without the repo
/// server's revision cache; removed by the controller once the new status is
/// written (Argo CD's `AnnotationKeyRefresh`).
pub const APPLICATION_REFRESH: &str = "argocd.argoproj.io/refresh";

/// Why a refresh did not complete.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The API server refused or failed the request.
    #[error("cannot ask {kind} {name} to refresh")]
    Request {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The watch of the object failed.
    #[error("cannot watch {kind} {name}")]
    Watch {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// The annotation was still there after the timeout.
    #[error(
        "{kind} {name} did not read the repository again within {}s: is Argo CD's {controller} running? (`kubectl -n argocd get pods -l app.kubernetes.io/name={controller}`)",
        timeout.as_secs()
    )]
    Timeout {
        kind: &'static str,
        name: String,
        controller: &'static str,
        timeout: Duration,
    },
}

/// Asks Argo CD to reconcile `what` named `name` (in [`ARGOCD_NAMESPACE`])
/// from the branch's newest commit, and waits, by a watch, until its
/// controller has done so (the annotation removed) or `timeout` passes.
/// Returns the object as the controller left it; `None` when it does not
/// exist (or went meanwhile).
///
/// Without it, Argo CD resolves a branch through the repo server's revision
/// cache (3 minutes by default): a reconcile soon after a push sees the old
/// commit. A refresh also refills that cache, so what Argo CD does next
/// sees the push too.
pub async fn refresh(
    client: &kube::Client,
    what: Refresh,
    name: &str,
    timeout: Duration,
) -> Result<Option<DynamicObject>, RefreshError> {
    let api = match what {
        Refresh::Application => applications(client),
        Refresh::ApplicationSet => application_sets(client),
    };
    let (annotation, value) = what.annotation();
    let patch = serde_json::json!({"metadata": {"annotations": {annotation: value}}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
        Err(source) => {
            return Err(RefreshError::Request {
                kind: what.kind(),
                name: name.to_owned(),
                source,
            });
        }
    }
    let refreshed =
        kube::runtime::wait::await_condition(api, name, move |object: Option<&DynamicObject>| {
            object.is_none_or(|object| {
                object
                    .metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key(annotation))
            })
        });
    match tokio::time::timeout(timeout, refreshed).await {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(source)) => Err(RefreshError::Watch {
            kind: what.kind(),
            name: name.to_owned(),
            source,
        }),
        Err(_) => Err(RefreshError::Timeout {
            kind: what.kind(),
            name: name.to_owned(),
            controller: what.controller(),
            timeout,
        }),
    }
}

/// What an Application's last comparison says of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// The source's path is not in the commit compared (Argo CD's
    /// `ErrMessageAppPathDoesNotExist`, "app path does not exist").
    PathMissing,
    /// The comparison failed otherwise; Argo CD's message.
    Unreadable(String),
    /// The path is there at `revision` (the commit compared).
    Present { revision: String },
}

/// Reads [`SourceState`] from an Application's `status`: a `ComparisonError`
/// saying the path does not exist; else any other error condition (a type
/// ending in `Error`: `ComparisonError`, `InvalidSpecError`, ...), which means
/// the last comparison cannot be trusted; else `status.sync.revision`.
pub fn source_state(application: &DynamicObject) -> SourceState {
    let status = &application.data["status"];
    let errors: Vec<String> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|condition| {
            condition["type"]
                .as_str()
                .is_some_and(|kind| kind.ends_with("Error"))
        })
        .map(|condition| {
            format!(
                "{}: {}",
                condition["type"].as_str().unwrap_or_default(),
                condition["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if errors
        .iter()
        .any(|e| e.starts_with("ComparisonError:") && e.contains("app path does not exist"))
    {
        return SourceState::PathMissing;
    }
    if errors.is_empty() {
        SourceState::Present {
            revision: status["sync"]["revision"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
        }
    } else {
        SourceState::Unreadable(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_under_argocd_s_keys() {
        assert_eq!(
            password_keys("admin"),
            (
                "admin.password".to_owned(),
                "admin.passwordMtime".to_owned()
            )
        );
        assert_eq!(
            password_keys("alice"),
            (
                "accounts.alice.password".to_owned(),
                "accounts.alice.passwordMtime".to_owned()
            )
        );
        let secret = password_secret("alice", "$2b$10$hash", Some("42".to_owned()));
        assert_eq!(secret.metadata.resource_version.as_deref(), Some("42"));
        let data = secret.data.unwrap_or_default();
        assert_eq!(data["accounts.alice.password"].0, b"$2b$10$hash");
        let mtime = String::from_utf8_lossy(&data["accounts.alice.passwordMtime"].0).into_owned();
        assert!(mtime.parse::<jiff::Timestamp>().is_ok(), "{mtime}");
    }

    fn application(status: serde_json::Value) -> DynamicObject {
        DynamicObject::new("a", &application_resource()).data(serde_json::json!({"status": status}))
    }

    #[test]
    fn source_state_reads_the_comparison() {
        let missing = application(serde_json::json!({"conditions": [
            {"type": "SyncError", "message": "x"},
            {"type": "ComparisonError", "message": "Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: code = Unknown desc = instances/a/env: app path does not exist"},
        ]}));
        assert_eq!(source_state(&missing), SourceState::PathMissing);
        let unreadable = application(serde_json::json!({"conditions": [
            {"type": "ComparisonError", "message": "authentication required"},
        ]}));
        assert_eq!(
            source_state(&unreadable),
            SourceState::Unreadable("ComparisonError: authentication required".into())
        );
        // Another error leaves status.sync.revision at an old commit: not
        // "present", whatever that field says.
        let invalid = application(serde_json::json!({
            "conditions": [{"type": "InvalidSpecError", "message": "repository not permitted in project"}],
            "sync": {"revision": "0ld", "status": "Unknown"},
        }));
        assert_eq!(
            source_state(&invalid),
            SourceState::Unreadable("InvalidSpecError: repository not permitted in project".into())
        );

        let present =
            application(serde_json::json!({"sync": {"revision": "abc", "status": "OutOfSync"}}));
        assert_eq!(
            source_state(&present),
            SourceState::Present {
                revision: "abc".into()
            }
        );
    }
}

/// An Application's sync and health as Argo CD reports them in its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// `status.sync.status`: Synced, OutOfSync or Unknown.
    pub sync: Option<String>,
    /// `status.sync.revision`: the commit the comparison used.
    pub revision: Option<String>,
    /// `status.health.status`: Healthy, Progressing, Degraded, Missing, ...
    pub health: Option<String>,
    /// `status.operationState.phase` of the last sync: Running, Succeeded,
    /// Failed, Error or Terminating.
    pub operation: Option<String>,
    /// The commit the last sync applied (`operationState.syncResult.revision`,
    /// else the one it was asked for).
    pub operation_revision: Option<String>,
    /// `status.operationState.message`.
    pub message: Option<String>,
    /// When the last sync ended (`operationState.finishedAt`, RFC 3339).
    pub finished_at: Option<String>,
    /// When the last sync started (`operationState.startedAt`, RFC 3339).
    pub started_at: Option<String>,
    /// Who asked for the last sync (`operationState.operation.initiatedBy.username`;
    /// `null` for Argo CD's automated sync).
    pub initiated_by: Option<String>,
    /// The last sync's hooks (Drydock's init and migration Jobs) that have
    /// not succeeded: `kind/name` and their phase.
    pub unfinished_hooks: Vec<String>,
}

impl SyncState {
    /// From an Application object.
    pub fn of(application: &DynamicObject) -> Self {
        let status = &application.data["status"];
        let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
        let operation = &status["operationState"];
        let unfinished_hooks = operation["syncResult"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["hookType"].is_string() && r["hookPhase"] != "Succeeded")
            .map(|r| {
                format!(
                    "{}/{} {}",
                    r["kind"].as_str().unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default(),
                    r["hookPhase"].as_str().unwrap_or("Unknown")
                )
            })
            .collect();
        Self {
            sync: text(&status["sync"]["status"]),
            revision: text(&status["sync"]["revision"]),
            health: text(&status["health"]["status"]),
            operation: text(&operation["phase"]),
            operation_revision: text(&operation["syncResult"]["revision"])
                .or_else(|| text(&operation["operation"]["sync"]["revision"])),
            message: text(&operation["message"]),
            finished_at: text(&operation["finishedAt"]),
            started_at: text(&operation["startedAt"]),
            initiated_by: text(&operation["operation"]["initiatedBy"]["username"]),
            unfinished_hooks,
        }
    }

    /// Synced, Healthy, and the last sync succeeded with every hook.
    pub fn settled(&self) -> bool {
        self.sync.as_deref() == Some("Synced")
            && self.health.as_deref() == Some("Healthy")
            && self.operation.as_deref() == Some("Succeeded")
            && self.unfinished_hooks.is_empty()
    }

    /// The last sync failed (Failed or Error).
    pub fn failed(&self) -> bool {
        matches!(self.operation.as_deref(), Some("Failed" | "Error"))
    }

    /// Whether the last sync ended before `time` (an older one, not the
    /// sync asked for at `time`).
    pub fn finished_before(&self, time: jiff::Timestamp) -> bool {
        self.finished_at
            .as_deref()
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .is_some_and(|at| at < time)
    }

    /// Whether the last sync is one `username` asked for at `time` or later.
    pub fn asked_by_since(&self, username: &str, time: jiff::Timestamp) -> bool {
        self.initiated_by.as_deref() == Some(username)
            && self
                .started_at
                .as_deref()
                .and_then(|at| at.parse::<jiff::Timestamp>().ok())
                .is_some_and(|at| at >= time)
    }

    /// One line: `Synced, Healthy, last sync Succeeded at 1a2b3c4d5e6f`.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{}, {}",
            self.sync.as_deref().unwrap_or("sync unknown"),
            self.health.as_deref().unwrap_or("health unknown")
        );
        if let Some(operation) = &self.operation {
            text.push_str(&format!(", last sync {operation}"));
            if let Some(revision) = &self.operation_revision {
                text.push_str(&format!(" at {}", &revision[..revision.len().min(12)]));
            }
        }
        if !self.unfinished_hooks.is_empty() {
            text.push_str(&format!(", hooks {}", self.unfinished_hooks.join(", ")));
        }
        text
    }
}

/// Asks Argo CD to sync Application `name` now, as `argocd app sync` does:
/// its `operation` field, with the Application's own sync options and
/// pruning. Auto-sync never retries a commit whose sync failed
/// (argoproj/argo-cd#18442); this does, once the cause is fixed.
///
/// # Errors
/// The API server's answer when the patch is refused.
pub async fn sync(client: &kube::Client, name: &str) -> Result<(), kube::Error> {
    let api = applications(client);
    let application = api.get(name).await?;
    let options = application.data["spec"]["syncPolicy"]["syncOptions"].clone();
    let patch = serde_json::json!({
        "operation": {
            "initiatedBy": {"username": "kubectl-phd"},
            "sync": {
                "prune": true,
                "syncOptions": options,
                "syncStrategy": {"hook": {}},
            },
        },
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// The Applications of instance `instance` (label `kubectl-phd/instance`):
/// one per environment it is deployed in; none when Argo CD has none (or
/// its CRD is not served).
///
/// # Errors
/// The API server's answer when the list is refused.
pub async fn instance_applications(
    client: &kube::Client,
    instance: &str,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let selector =
        kube::api::ListParams::default().labels(&format!("kubectl-phd/instance={instance}"));
    match applications(client).list(&selector).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// The Application of instance `instance`, if Argo CD has one
/// ([`instance_applications`]).
///
/// # Errors
/// The API server's answer when the list is refused.
pub async fn instance_application(
    client: &kube::Client,
    instance: &str,
) -> Result<Option<DynamicObject>, kube::Error> {
    Ok(instance_applications(client, instance)
        .await?
        .into_iter()
        .next())
}
