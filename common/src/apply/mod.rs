//! The apply engine (SPEC.md section 7.1): server-side apply of manifest
//! documents, kinds resolved by discovery, CRDs first and awaited, independent
//! objects concurrently.
//!
//! Every kind is resolved before anything is sent, so an unknown kind stops
//! the whole stream before the first change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::Scope;
use serde::Serialize;
use serde_json::Value;

use crate::manifest::Document;
use crate::wait::{self, WaitError};

mod upgrade;

pub use upgrade::CLIENT_SIDE_MANAGERS;

/// The field manager of everything phd applies, unless a caller needs its own.
pub const FIELD_MANAGER: &str = "kubectl-phd";
const DEFAULT_CONCURRENCY: usize = 16;
const DEFAULT_CRD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "{source_name}, document {index}: the cluster does not know kind {kind} of {api_version}, \
         and no CustomResourceDefinition in the manifest defines it; nothing was applied"
    )]
    UnknownKind {
        source_name: String,
        index: usize,
        api_version: String,
        kind: String,
    },
    #[error("cannot discover the resources of {api_version}")]
    Discovery {
        api_version: String,
        #[source]
        source: kube::Error,
    },
    #[error("{source_name}, document {index}: cannot apply {object}")]
    Apply {
        source_name: String,
        index: usize,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{source_name}, document {index}: {object} is not a valid object")]
    Malformed {
        source_name: String,
        index: usize,
        object: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{source_name}, document {index}: cannot take over the fields a client-side `kubectl apply` wrote in {object}"
    )]
    Upgrade {
        source_name: String,
        index: usize,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("CustomResourceDefinition {name} was not Established within {timeout:?}")]
    NotEstablished { name: String, timeout: Duration },
    #[error("cannot watch CustomResourceDefinition {name} until it is Established")]
    ReadDefinition {
        name: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
}

/// What applying did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub outcome: Outcome,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(
                f,
                "{} {}/{} {}",
                self.kind, namespace, self.name, self.outcome
            ),
            None => write!(f, "{} {} {}", self.kind, self.name, self.outcome),
        }
    }
}

/// Every object applied, in manifest order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub objects: Vec<Applied>,
}

impl ApplyReport {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.objects.iter().filter(|o| o.outcome == outcome).count()
    }

    /// `12 objects: 3 created, 1 configured, 8 unchanged`
    pub fn summary(&self) -> String {
        format!(
            "{} {}: {} created, {} configured, {} unchanged",
            self.objects.len(),
            if self.objects.len() == 1 {
                "object"
            } else {
                "objects"
            },
            self.count(Outcome::Created),
            self.count(Outcome::Configured),
            self.count(Outcome::Unchanged)
        )
    }

    pub fn extend(&mut self, other: ApplyReport) {
        self.objects.extend(other.objects);
    }
}

/// How one document is sent: its resource, and the namespace it goes to.
#[derive(Clone)]
struct Target {
    resource: ApiResource,
    namespace: Option<String>,
}

pub struct Applier {
    client: kube::Client,
    field_manager: String,
    concurrency: usize,
    crd_timeout: Duration,
}

impl Applier {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            field_manager: FIELD_MANAGER.to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
            crd_timeout: DEFAULT_CRD_TIMEOUT,
        }
    }

    /// Another field manager, for settings that must not be taken back by a
    /// later apply of a manifest that lacks them.
    pub fn field_manager(mut self, name: &str) -> Self {
        name.clone_into(&mut self.field_manager);
        self
    }

    pub fn concurrency(mut self, requests_in_flight: usize) -> Self {
        self.concurrency = requests_in_flight.max(1);
        self
    }

    pub fn crd_timeout(mut self, timeout: Duration) -> Self {
        self.crd_timeout = timeout;
        self
    }

    /// Applies `documents`; namespaced objects without a namespace go to
    /// `default_namespace` (else `default`), cluster-scoped ones never get one.
    /// `on_applied` sees each object as it is done.
    pub async fn apply(
        &self,
        documents: &[Document],
        default_namespace: Option<&str>,
        on_applied: &(dyn Fn(&Applied) + Sync),
    ) -> Result<ApplyReport, ApplyError> {
        let default_namespace = default_namespace.unwrap_or("default");
        let known = self
            .discover(documents.iter().map(Document::api_version))
            .await?;
        let defined = defined_by_definitions(documents);

        // Resolve everything first: an unknown kind stops the stream before any change.
        // Objects of a kind the manifest's own definitions define wait for those
        // definitions even when the cluster serves the kind already: applied
        // next to a changed definition, their new fields could be pruned by
        // the old schema.
        let mut now: Vec<(&Document, Target)> = Vec::new();
        let mut later: Vec<&Document> = Vec::new();
        for document in documents {
            let key = (
                document.api_version().to_owned(),
                document.kind().to_owned(),
            );
            match known.get(&key) {
                Some(_) if defined.contains(&key) => later.push(document),
                Some((resource, scope)) => {
                    let target = target(document, resource, scope, default_namespace);
                    now.push((document, target));
                }
                None if defined.contains(&key) => later.push(document),
                None => {
                    return Err(ApplyError::UnknownKind {
                        source_name: document.source_name.clone(),
                        index: document.index,
                        api_version: key.0,
                        kind: key.1,
                    });
                }
            }
        }

        // 1. Namespaces: everything namespaced may live in one of them.
        let (namespaces, mut now): (Vec<_>, Vec<_>) = now
            .into_iter()
            .partition(|(document, _)| is_namespace(document));
        let mut report = self.apply_all(namespaces, on_applied).await?;

        // 2. Definitions and every object of a kind already served, at once,
        //    definitions first in the stream (the largest requests); each
        //    definition is awaited Established as soon as it is applied.
        now.sort_by_key(|(document, _)| !is_definition(document));
        let definitions: Vec<String> = documents
            .iter()
            .filter(|d| is_definition(d))
            .filter_map(|d| d.name().map(str::to_owned))
            .collect();
        let (applied, ()) = tokio::try_join!(
            self.apply_all(now, on_applied),
            self.wait_established(&definitions)
        )?;

        // 3. Objects of the kinds the manifest defines, once they are served.
        let mut remaining = Vec::new();
        if !later.is_empty() {
            let known = self
                .discover_until_served(later.iter().map(|d| (d.api_version(), d.kind())))
                .await?;
            for document in later {
                let key = (
                    document.api_version().to_owned(),
                    document.kind().to_owned(),
                );
                if let Some((resource, scope)) = known.get(&key) {
                    remaining.push((
                        document,
                        target(document, resource, scope, default_namespace),
                    ));
                }
            }
        }
        let defined_objects = self.apply_all(remaining, on_applied).await?;

        report.extend(applied);
        report.extend(defined_objects);
        Ok(report)
    }

    /// Resources and scopes of every kind in the given group-versions, one
    /// request per group-version, all at once. A group-version the server
    /// does not serve contributes nothing.
    async fn discover<'a>(
        &self,
        api_versions: impl Iterator<Item = &'a str>,
    ) -> Result<HashMap<(String, String), (ApiResource, Scope)>, ApplyError> {
        let distinct: HashSet<&str> = api_versions.collect();
        let groups =
            futures::future::join_all(distinct.into_iter().map(|api_version| async move {
                let group_version: GroupVersion = match api_version.parse() {
                    Ok(gv) => gv,
                    Err(_) => return Ok(Vec::new()),
                };
                match kube::discovery::pinned_group(&self.client, &group_version).await {
                    Ok(group) => Ok(group.versioned_resources(&group_version.version)),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
                    Err(source) => Err(ApplyError::Discovery {
                        api_version: api_version.to_owned(),
                        source,
                    }),
                }
            }))
            .await;
        let mut known = HashMap::new();
        for resources in groups {
            for (resource, capabilities) in resources? {
                let key = (resource.api_version.clone(), resource.kind.clone());
                known.insert(key, (resource, capabilities.scope));
            }
        }
        Ok(known)
    }

    /// Discovery again after definitions were established, retried until every
    /// kind is served (the API server starts serving a new CRD asynchronously).
    async fn discover_until_served<'a>(
        &self,
        kinds: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<HashMap<(String, String), (ApiResource, Scope)>, ApplyError> {
        // The first kind not served yet, named when time runs out.
        let missing = std::sync::Mutex::new(String::new());
        let served = wait::until(self.crd_timeout, Duration::from_millis(100), |_| {
            let (kinds, missing) = (kinds.clone(), &missing);
            async move {
                let known = self
                    .discover(kinds.clone().map(|(api_version, _)| api_version))
                    .await?;
                let unknown = kinds.clone().find(|(api_version, kind)| {
                    !known.contains_key(&((*api_version).to_owned(), (*kind).to_owned()))
                });
                Ok(match unknown {
                    None => Some(known),
                    Some((api_version, kind)) => {
                        *missing.lock().unwrap_or_else(PoisonError::into_inner) =
                            format!("{kind} of {api_version}");
                        None
                    }
                })
            }
        });
        served.await.map_err(|error| match error {
            WaitError::Failed(error) => error,
            WaitError::TimedOut { timeout } | WaitError::Stalled { timeout } => {
                ApplyError::NotEstablished {
                    name: missing.into_inner().unwrap_or_else(PoisonError::into_inner),
                    timeout,
                }
            }
        })
    }

    /// Waits until every named definition exists and is Established, all at
    /// once (a watch each, kube's `await_condition`), within `crd_timeout`.
    async fn wait_established(&self, names: &[String]) -> Result<(), ApplyError> {
        let definitions: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let waits = names.iter().map(|name| {
            let definitions = definitions.clone();
            async move {
                let established = kube::runtime::wait::await_condition(
                    definitions,
                    name,
                    kube::runtime::wait::conditions::is_crd_established(),
                );
                match tokio::time::timeout(self.crd_timeout, established).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(source)) => Err(ApplyError::ReadDefinition {
                        name: name.clone(),
                        source,
                    }),
                    Err(_) => Err(ApplyError::NotEstablished {
                        name: name.clone(),
                        timeout: self.crd_timeout,
                    }),
                }
            }
        });
        futures::future::try_join_all(waits).await.map(|_| ())
    }

    async fn apply_all(
        &self,
        batch: Vec<(&Document, Target)>,
        on_applied: &(dyn Fn(&Applied) + Sync),
    ) -> Result<ApplyReport, ApplyError> {
        if batch.is_empty() {
            return Ok(ApplyReport::default());
        }
        let existing = self.existing_versions(&batch).await;
        let mut applied: Vec<(usize, Applied)> =
            futures::stream::iter(batch.into_iter().enumerate())
                .map(|(position, (document, target))| {
                    let existing = &existing;
                    async move {
                        let applied = self.apply_one(document, &target, existing).await?;
                        on_applied(&applied);
                        Ok::<_, ApplyError>((position, applied))
                    }
                })
                .buffer_unordered(self.concurrency)
                .try_collect()
                .await?;
        applied.sort_by_key(|(position, _)| *position);
        Ok(ApplyReport {
            objects: applied.into_iter().map(|(_, applied)| applied).collect(),
        })
    }

    /// The resourceVersion of every object of the batch that exists already,
    /// from one metadata list per kind and namespace. Used to tell created,
    /// configured and unchanged apart without a request per object.
    async fn existing_versions(
        &self,
        batch: &[(&Document, Target)],
    ) -> HashMap<ObjectKey, Existing> {
        let mut lists: BTreeMap<(String, String, Option<String>), ApiResource> = BTreeMap::new();
        for (_, target) in batch {
            let key = (
                target.resource.api_version.clone(),
                target.resource.plural.clone(),
                target.namespace.clone(),
            );
            lists.entry(key).or_insert_with(|| target.resource.clone());
        }
        let results = futures::future::join_all(lists.into_iter().map(
            |((_, _, namespace), resource)| async move {
                let api = self.api(&resource, namespace.as_deref());
                let listed = api.list_metadata(&ListParams::default()).await.ok()?;
                Some(
                    listed
                        .items
                        .into_iter()
                        .filter_map(|item| {
                            let name = item.metadata.name?;
                            let version = item.metadata.resource_version?;
                            let client_side = item
                                .metadata
                                .managed_fields
                                .is_some_and(|entries| upgrade::needs_upgrade(&entries));
                            Some((
                                (
                                    resource.api_version.clone(),
                                    resource.kind.clone(),
                                    namespace.clone(),
                                    name,
                                ),
                                Existing {
                                    version,
                                    client_side,
                                },
                            ))
                        })
                        .collect::<Vec<_>>(),
                )
            },
        ))
        .await;
        results.into_iter().flatten().flatten().collect()
    }

    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    /// Moves the fields a client-side `kubectl apply` owns in object `name`
    /// to this applier's field manager, as `kubectl apply --server-side`
    /// does, so the apply that follows removes what the manifest no longer
    /// has. Guarded by the object's resourceVersion; retried when it moved.
    async fn take_over_client_side(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
    ) -> Result<(), kube::Error> {
        let mut attempt = 0;
        loop {
            let Some(live) = api.get_metadata_opt(name).await? else {
                return Ok(());
            };
            let entries = live.metadata.managed_fields.unwrap_or_default();
            if !upgrade::needs_upgrade(&entries) {
                return Ok(());
            }
            let upgraded = upgrade::upgrade(&entries, &self.field_manager);
            let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": live.metadata.resource_version},
                {"op": "replace", "path": "/metadata/managedFields", "value": upgraded},
            ]))
            .map_err(kube::Error::SerdeError)?;
            match api
                .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
            {
                Ok(_) => return Ok(()),
                // The test failed: the object changed since it was read.
                Err(kube::Error::Api(status))
                    if matches!(status.code, 409 | 422) && attempt < 3 =>
                {
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Whether applying `desired` to object `name` would change nothing:
    /// every field of `desired` has that value in the live object, and every
    /// field this field manager owns is still in `desired` (else the apply
    /// would remove it). Without an apply of this manager on record, false.
    async fn already_applied(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        desired: &Value,
    ) -> Result<bool, kube::Error> {
        let Some(live) = api.get_opt(name).await? else {
            return Ok(false);
        };
        let owned = live
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|entry| {
                entry.manager.as_deref() == Some(self.field_manager.as_str())
                    && entry.operation.as_deref() == Some("Apply")
            })
            .and_then(|entry| entry.fields_v1.as_ref())
            .map(|fields| fields.0.clone());
        let Some(owned) = owned else {
            return Ok(false);
        };
        let live = serde_json::to_value(&live).map_err(kube::Error::SerdeError)?;
        Ok(is_subset(desired, &live) && owned_within(&owned, desired))
    }

    async fn apply_one(
        &self,
        document: &Document,
        target: &Target,
        existing: &HashMap<ObjectKey, Existing>,
    ) -> Result<Applied, ApplyError> {
        let api = self.api(&target.resource, target.namespace.as_deref());
        let mut object = document.object.clone();
        match &target.namespace {
            Some(namespace) => object["metadata"]["namespace"] = Value::String(namespace.clone()),
            None => {
                if let Some(metadata) = object["metadata"].as_object_mut() {
                    metadata.remove("namespace");
                }
            }
        }
        own_at_least_one_field(&mut object);
        let failed = |source| ApplyError::Apply {
            source_name: document.source_name.clone(),
            index: document.index,
            object: document.describe_in(target.namespace.as_deref()),
            source,
        };
        let (name, outcome) = match document.name() {
            Some(name) => {
                let key = (
                    target.resource.api_version.clone(),
                    target.resource.kind.clone(),
                    target.namespace.clone(),
                    name.to_owned(),
                );
                let before = existing.get(&key);
                if before.is_some_and(|b| b.client_side) {
                    self.take_over_client_side(&api, name)
                        .await
                        .map_err(|source| ApplyError::Upgrade {
                            source_name: document.source_name.clone(),
                            index: document.index,
                            object: document.describe_in(target.namespace.as_deref()),
                            source,
                        })?;
                }
                // A large object (a CRD of a megabyte) costs the API server
                // far more to apply than to read: when it already is as the
                // manifest says, it is not sent again.
                if before.is_some_and(|b| !b.client_side)
                    && serde_json::to_vec(&object).map_or(0, |bytes| bytes.len())
                        > LARGE_OBJECT_BYTES
                    && self
                        .already_applied(&api, name, &object)
                        .await
                        .map_err(failed)?
                {
                    return Ok(Applied {
                        kind: document.kind().to_owned(),
                        name: name.to_owned(),
                        namespace: target.namespace.clone(),
                        outcome: Outcome::Unchanged,
                    });
                }
                let params = PatchParams::apply(&self.field_manager).force();
                let result = api
                    .patch(name, &params, &Patch::Apply(&object))
                    .await
                    .map_err(failed)?;
                let outcome = match before {
                    None => Outcome::Created,
                    Some(before)
                        if Some(&before.version) == result.metadata.resource_version.as_ref() =>
                    {
                        Outcome::Unchanged
                    }
                    Some(_) => Outcome::Configured,
                };
                (name.to_owned(), outcome)
            }
            None => {
                let dynamic: DynamicObject =
                    serde_json::from_value(object).map_err(|source| ApplyError::Malformed {
                        source_name: document.source_name.clone(),
                        index: document.index,
                        object: document.describe_in(target.namespace.as_deref()),
                        source,
                    })?;
                let params = PostParams {
                    field_manager: Some(self.field_manager.clone()),
                    ..Default::default()
                };
                let created = api.create(&params, &dynamic).await.map_err(failed)?;
                (created.metadata.name.unwrap_or_default(), Outcome::Created)
            }
        };
        Ok(Applied {
            kind: document.kind().to_owned(),
            name,
            namespace: target.namespace.clone(),
            outcome,
        })
    }
}

/// An apply that owns no field at all (an object with only a name) makes the
/// API server rewrite managedFields on the next apply, so a second apply would
/// report "configured". Owning one label that the object has anyway avoids
/// that: the name label the API server puts on every namespace, or phd's
/// managed-by label on anything else that is only a name.
fn own_at_least_one_field(object: &mut Value) {
    let Some(map) = object.as_object() else {
        return;
    };
    let has_content = map
        .keys()
        .any(|key| !matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
        || object["metadata"].as_object().is_some_and(|metadata| {
            metadata
                .keys()
                .any(|key| !matches!(key.as_str(), "name" | "namespace" | "generateName"))
        });
    if has_content {
        return;
    }
    let (label, value) = if object["kind"] == "Namespace" && object["apiVersion"] == "v1" {
        (
            "kubernetes.io/metadata.name",
            object["metadata"]["name"].clone(),
        )
    } else {
        (
            "app.kubernetes.io/managed-by",
            Value::String(FIELD_MANAGER.to_owned()),
        )
    };
    object["metadata"]["labels"] = serde_json::json!({ label: value });
}

type ObjectKey = (String, String, Option<String>, String);

/// What the apply engine knows of an object before applying it.
struct Existing {
    version: String,
    /// Whether a client-side `kubectl apply` owns some of its fields.
    client_side: bool,
}

fn target(
    document: &Document,
    resource: &ApiResource,
    scope: &Scope,
    default_namespace: &str,
) -> Target {
    let namespace = match scope {
        Scope::Namespaced => Some(document.namespace().unwrap_or(default_namespace).to_owned()),
        Scope::Cluster => None,
    };
    Target {
        resource: resource.clone(),
        namespace,
    }
}

/// Objects larger than this (serialized, in bytes) are compared with the
/// live object before they are applied (see `Applier::already_applied`).
const LARGE_OBJECT_BYTES: usize = 64 * 1024;

/// Whether every field of `desired` has the same value in `live`. Lists
/// must match item by item (a list another manager added to differs).
fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => desired
            .iter()
            .all(|(key, value)| live.get(key).is_some_and(|live| is_subset(value, live))),
        (Value::Array(desired), Value::Array(live)) => {
            desired.len() == live.len() && desired.iter().zip(live).all(|(d, l)| is_subset(d, l))
        }
        _ => desired == live,
    }
}

/// Whether every field in `owned` (a managedFields `fieldsV1` set: `f:name`
/// for a field, `k:{...}` for a list item by its keys, `v:...` for a set
/// member, `.` for the node itself) is present in `desired`. Anything not
/// understood counts as absent, so the object is applied.
fn owned_within(owned: &Value, desired: &Value) -> bool {
    let Some(fields) = owned.as_object() else {
        return true;
    };
    fields.iter().all(|(key, nested)| {
        if key == "." {
            true
        } else if let Some(field) = key.strip_prefix("f:") {
            desired
                .as_object()
                .and_then(|object| object.get(field))
                .is_some_and(|child| owned_within(nested, child))
        } else if let Some(item_key) = key.strip_prefix("k:") {
            let Ok(Value::Object(item_key)) = serde_json::from_str::<Value>(item_key) else {
                return false;
            };
            desired.as_array().is_some_and(|items| {
                items
                    .iter()
                    .find(|item| item_key.iter().all(|(k, v)| item.get(k) == Some(v)))
                    .is_some_and(|item| owned_within(nested, item))
            })
        } else if let Some(member) = key.strip_prefix("v:") {
            let Ok(member) = serde_json::from_str::<Value>(member) else {
                return false;
            };
            desired
                .as_array()
                .is_some_and(|items| items.contains(&member))
        } else {
            false
        }
    })
}

fn is_definition(document: &Document) -> bool {
    document.kind() == "CustomResourceDefinition"
        && document.api_version().starts_with("apiextensions.k8s.io/")
}

fn is_namespace(document: &Document) -> bool {
    document.kind() == "Namespace" && document.api_version() == "v1"
}

/// `(apiVersion, kind)` of every kind the manifest's own CRDs define.
fn defined_by_definitions(documents: &[Document]) -> HashSet<(String, String)> {
    let mut defined = HashSet::new();
    for document in documents.iter().filter(|d| is_definition(d)) {
        let spec = &document.object["spec"];
        let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str())
        else {
            continue;
        };
        for version in spec["versions"].as_array().into_iter().flatten() {
            if let Some(version) = version["name"].as_str() {
                defined.insert((format!("{group}/{version}"), kind.to_owned()));
            }
        }
    }
    defined
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{is_subset, owned_within};

    #[test]
    fn subset_of_the_live_object() {
        let live = json!({"metadata": {"name": "a", "uid": "1", "labels": {"x": "1", "y": "2"}},
                          "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(is_subset(
            &json!({"metadata": {"labels": {"x": "1"}}}),
            &live
        ));
        assert!(is_subset(
            &json!({"spec": {"ports": [{"port": 80}]}}),
            &live
        ));
        assert!(!is_subset(
            &json!({"metadata": {"labels": {"x": "2"}}}),
            &live
        ));
        assert!(!is_subset(
            &json!({"metadata": {"labels": {"z": "1"}}}),
            &live
        ));
        assert!(!is_subset(&json!({"spec": {"ports": []}}), &live));
    }

    #[test]
    fn owned_fields_still_in_the_manifest() {
        let owned = json!({"f:metadata": {"f:labels": {"f:x": {}, ".": {}}},
                           "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}},
                                      "f:finalizers": {"v:\"a\"": {}}}});
        let desired = json!({"metadata": {"labels": {"x": "1"}},
                             "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "finalizers": ["a"]}});
        assert!(owned_within(&owned, &desired));
        let without_label = json!({"metadata": {"labels": {}},
                                   "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "finalizers": ["a"]}});
        assert!(!owned_within(&owned, &without_label));
        let other_port = json!({"metadata": {"labels": {"x": "1"}},
                                "spec": {"ports": [{"port": 81, "protocol": "TCP"}], "finalizers": ["a"]}});
        assert!(!owned_within(&owned, &other_port));
        let no_finalizer = json!({"metadata": {"labels": {"x": "1"}},
                                  "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "finalizers": []}});
        assert!(!owned_within(&owned, &no_finalizer));
        assert!(
            !owned_within(&json!({"i:0": {}}), &json!([1])),
            "unknown forms count as absent"
        );
    }
}
