//! What a mutating command did, as one object with a stable shape: printed
//! as JSON or YAML for `-o json|yaml`, as `kind/name` for `-o name` (as
//! kubectl does), and otherwise as the summary lines that end the command.
//! The schema is documented in docs/output.md; every key is always present
//! (`null` or `[]` when it does not apply).

use phd_common::apply::{Applied, ApplyReport, Outcome as ApplyOutcome};
use serde::Serialize;

use crate::cli::ResultFormat;
use crate::output::{self, Structured};
use crate::session::Session;

/// The result of `instance create|update|delete` or `user create|update|delete`.
///
/// `D` holds the kind's own keys (flattened into the object): for instances
/// [`InstanceDetails`], for users [`UserDetails`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome<D> {
    /// `Instance` or `User`.
    pub kind: &'static str,
    pub name: String,
    pub action: Action,
    /// The cluster acted on; `null` when the command did not connect (`instance update --files-only`).
    pub cluster: Option<ClusterRef>,
    /// Kubernetes objects created, changed or deleted, in the order acted on.
    pub objects: Vec<ObjectRef>,
    /// Things outside Kubernetes: databases, the bucket, the instance's hosts, files.
    pub external: Vec<External>,
    #[serde(flatten)]
    pub details: D,
}

/// What happened to the instance or user as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// It did not exist before this run.
    Created,
    /// It existed and something about it changed.
    Updated,
    /// It existed and this run changed nothing.
    Unchanged,
    Deleted,
    /// `delete --ignore-not-found` of something that does not exist.
    NotFound,
    /// A step failed after something was made that must not be lost (a
    /// generated password); the command exits 1.
    Failed,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
            Self::NotFound => "does not exist; nothing to delete",
            Self::Failed => "failed",
        }
    }
}

/// The kubeconfig context and API server of the cluster acted on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// `null` when the kubeconfig has no current context (a ServiceAccount's).
    pub context: Option<String>,
    pub server: String,
}

impl std::fmt::Display for ClusterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "context {} at {}",
            self.context.as_deref().unwrap_or("(none)"),
            self.server
        )
    }
}

/// One Kubernetes object and what happened to it: `created`, `configured`,
/// `unchanged` (server-side apply), `submitted` (a Workflow), `deleted`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: String,
    /// `null` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub action: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str, action: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            action: action.to_owned(),
        }
    }

    /// The objects of an apply report.
    pub fn from_applied(report: &[Applied]) -> impl Iterator<Item = Self> + '_ {
        report.iter().map(|applied| Self {
            kind: applied.kind.clone(),
            namespace: applied.namespace.clone(),
            name: applied.name.clone(),
            action: match applied.outcome {
                ApplyOutcome::Created => "created",
                ApplyOutcome::Configured => "configured",
                ApplyOutcome::Unchanged => "unchanged",
            }
            .to_owned(),
        })
    }
}

/// Something outside Kubernetes the command acted on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct External {
    /// `mysqlDatabase`, `mongodbDatabase`, `bucket`, `host` or `directory`.
    pub kind: &'static str,
    pub name: String,
    /// Where it is: the database server (`host:port`), the bucket's
    /// storage (`s3 us-east-1`, or its endpoint); `null` for hosts and directories.
    pub location: Option<String>,
}

impl External {
    pub fn new(kind: &'static str, name: impl Into<String>, location: Option<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            location,
        }
    }

    fn describe(&self) -> String {
        let what = match self.kind {
            "mysqlDatabase" => "MySQL database",
            "mongodbDatabase" => "MongoDB database",
            "bucket" => "bucket",
            "host" => "host",
            "directory" => "directory",
            other => other,
        };
        match &self.location {
            Some(location) => format!("{what} {} on {location}", self.name),
            None => format!("{what} {}", self.name),
        }
    }
}

/// The keys of an instance's result.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDetails {
    /// The Argo CD project's environment; `null` when unknown (a delete of leftovers).
    pub environment: Option<String>,
    /// The site's addresses, `https://…`.
    pub urls: Vec<String>,
}

/// The keys of a user's result.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDetails {
    /// `admin`, `developer` or `readonly`; `null` after a delete.
    pub role: Option<&'static str>,
    /// The Argo CD password when this run generated it (shown only this
    /// once), else `null`.
    pub password: Option<String>,
    /// `Bearer …`, the Argo Workflows token, with `--show-token`; else `null`.
    pub token: Option<String>,
}

impl<D: Serialize> Outcome<D> {
    pub fn new(kind: &'static str, name: &str, action: Action, details: D) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            action,
            cluster: None,
            objects: Vec::new(),
            external: Vec::new(),
            details,
        }
    }

    /// Adds the objects of an apply report; whether any was created or changed.
    pub fn record(&mut self, report: &ApplyReport) -> bool {
        self.objects
            .extend(ObjectRef::from_applied(&report.objects));
        report.count(ApplyOutcome::Unchanged) < report.objects.len()
    }

    /// Records the cluster the session connected to, if it did.
    pub fn on(mut self, session: &Session) -> Self {
        self.cluster = session.connected().cloned();
        self
    }

    /// Prints the result in `format`: the summary lines on standard error
    /// for text (the cluster line follows from `lib.rs`, last), the object
    /// on standard output otherwise.
    pub fn print(&self, format: ResultFormat) -> anyhow::Result<()> {
        match format {
            ResultFormat::Text => {
                output::info(format!(
                    "{} {} {}",
                    self.kind.to_lowercase(),
                    self.name,
                    self.action.word()
                ));
                if !self.objects.is_empty() {
                    let objects: Vec<String> = self
                        .objects
                        .iter()
                        .map(|object| match &object.namespace {
                            Some(namespace) => format!(
                                "{} {namespace}/{} {}",
                                object.kind, object.name, object.action
                            ),
                            None => format!("{} {} {}", object.kind, object.name, object.action),
                        })
                        .collect();
                    output::info(format!("  objects: {}", objects.join(", ")));
                }
                for external in &self.external {
                    output::info(format!("  {}", external.describe()));
                }
                Ok(())
            }
            // As kubectl's: nothing for what --ignore-not-found passed over.
            ResultFormat::Name => {
                if self.action != Action::NotFound {
                    println!("{}/{}", self.kind.to_lowercase(), self.name);
                }
                Ok(())
            }
            ResultFormat::Json => output::print_structured(self, Structured::Json),
            ResultFormat::Yaml => output::print_structured(self, Structured::Yaml),
        }
    }
}
