//! `kubectl phd instance backup NAME` and `instance backups NAME`: restore
//! points (issue 28).
//!
//! A restore point is a folder `<instance>/<point>/` of the cluster's backups
//! bucket (`PHD_BACKUP_BUCKET`, else the infrastructure's `backups_bucket`
//! output) with the instance's MySQL dump, its two MongoDB databases, a copy
//! of its media bucket and `restore-point.json`, written last, with the
//! checksums of the dumps. The ClusterWorkflowTemplate
//! `restore-point-template` (manifests/workflow-templates/) makes and restores
//! it in the instance namespace; like the provisioning templates it reads its
//! target from the Secret `phd-provisioning` phd writes for the run, so that
//! nobody who submits a Workflow chooses what it reads or overwrites.
//!
//! The cluster keeps the list of an instance's points in its ConfigMap
//! [`POINTS_CONFIGMAP`]: one key per point, the JSON `instance backups -o json`
//! shows. The bucket is the truth: a point's folder outlives the namespace.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use phd_common::config::Setting;
use phd_common::naming;
use phd_common::workflow::{self, Phase, Submitted};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::render::{parse_config, release_of};
use super::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, PROVISIONING_SECRET, Resources};
use crate::cli::{InstanceBackupArgs, InstanceBackupsArgs, ListFormat};
use crate::outcome::{Action, External, ObjectRef, Outcome};
use crate::output;
use crate::session::Session;

/// The ClusterWorkflowTemplate that makes and restores restore points.
pub const TEMPLATE: &str = "restore-point-template";
/// The ConfigMap of an instance namespace that lists its restore points.
pub const POINTS_CONFIGMAP: &str = "phd-restore-points";
/// The longest restore point name: `backup-<point>` stays a short object name.
const POINT_MAX: usize = 40;

/// What a run of [`TEMPLATE`] does (the Secret's `restore-point-operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Backup,
    Restore,
    /// Removes a point's folder (retention: `instance backup --keep`).
    Delete,
}

impl Operation {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Delete => "delete",
        }
    }

    /// The Workflow of this operation on `point`: `backup-<point>`,
    /// `restore-<point>`, `delete-<point>`.
    pub fn workflow_name(self, point: &str) -> String {
        format!("{}-{point}", self.name())
    }
}

/// The spec of every Workflow phd submits to make or restore a point: the
/// bare template reference (the controller's `templateReferencing: Strict`).
fn workflow_spec() -> Value {
    json!({"workflowTemplateRef": {"name": TEMPLATE, "clusterScope": true}})
}

/// Whether `workflow` is a backup or restore Workflow as phd submits it.
pub fn submitted_by_phd(workflow: &Value) -> bool {
    let name = workflow["metadata"]["name"].as_str().unwrap_or_default();
    ["backup-", "restore-", "delete-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && workflow["spec"] == workflow_spec()
}

/// Checks a restore point name: 1 to [`POINT_MAX`] lower-case letters,
/// digits and '-', starting with a letter or digit.
pub fn check_point(point: &str) -> anyhow::Result<()> {
    let valid = !point.is_empty()
        && point.len() <= POINT_MAX
        && !point.starts_with('-')
        && !point.ends_with('-')
        && point
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        bail!(
            "restore point name {point:?} is not valid: 1 to {POINT_MAX} lower-case letters, digits and '-', not starting or ending with '-'"
        );
    }
    Ok(())
}

/// One restore point as the cluster lists it (a value of [`POINTS_CONFIGMAP`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePoint {
    pub name: String,
    pub instance: String,
    /// When phd started making it, RFC 3339, UTC.
    pub created: String,
    /// `s3://<backups bucket>/<instance>/<point>/`.
    pub location: String,
    /// The Tutor release the instance was rendered with.
    pub tutor_version: Option<String>,
    pub openedx_release: Option<String>,
    /// The last git commit of the instance's folder (config.yml and env/), if known.
    pub commit: Option<String>,
    /// `DOCKER_IMAGE_OPENEDX` of config.yml, when it names one.
    pub image: Option<String>,
}

/// What a backup or restore acts on: the instance's databases and bucket,
/// its MongoDB connection settings, and the backups bucket.
pub struct Target {
    pub resources: Resources,
    pub config: Option<Map<String, Value>>,
    pub backups_bucket: String,
    mongodb: BTreeMap<&'static str, String>,
    /// `PHD_MYSQL_CA_CERTIFICATE`: the dump and the load verify the server.
    mysql_ca: Option<String>,
}

impl Target {
    /// From `config.yml` of the instance's folder when there is one (else the
    /// namespace's annotations, and the cluster's MongoDB settings), and the
    /// backups bucket setting. Errors before anything changes.
    pub async fn find(
        session: &Session,
        client: &kube::Client,
        name: &str,
    ) -> anyhow::Result<Self> {
        let settings = session.settings();
        let backups_bucket = settings
            .get(Setting::BackupBucket, None)?
            .map(|resolved| resolved.value)
            .context(
                "no backups bucket: set PHD_BACKUP_BUCKET, or run inside the cluster repository whose infrastructure has the output backups_bucket (`kubectl phd infra output backups_bucket`)",
            )?;
        let dir = super::instances_dir(session)?.join(name);
        let text = match std::fs::read_to_string(dir.join("config.yml")) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot read {}", dir.join("config.yml").display()));
            }
        };
        let namespace = super::owned_namespace(client, name)
            .await?
            .with_context(|| {
                format!("instance {name} has no namespace in this cluster (`kubectl phd instance list` shows the instances)")
            })?;
        let (resources, config) = match text {
            Some(text) => (Resources::from_config(&text)?, Some(parse_config(&text)?)),
            None => (
                namespace
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(Resources::from_annotations)
                    .with_context(|| {
                        format!("neither {} nor the annotations of namespace {name} name the instance's databases and bucket", dir.join("config.yml").display())
                    })?,
                None,
            ),
        };
        let from_config = |key: &str| -> Option<String> {
            match config.as_ref()?.get(key)? {
                Value::String(text) => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            }
        };
        let from_settings = |setting: Setting| -> anyhow::Result<String> {
            Ok(settings
                .get(setting, None)?
                .map(|resolved| resolved.value)
                .unwrap_or_default())
        };
        let mysql_ca = match settings.get(Setting::MysqlCaCertificate, None)? {
            Some(ca) => Some(super::mysql_ca_certificate(&ca.value)?),
            None => None,
        };
        let mut mongodb = BTreeMap::new();
        // An instance of a cluster without MongoDB has nothing there to dump.
        if !matches!(
            settings.mongodb_provider(),
            Ok(phd_common::config::MongodbProvider::Disabled)
        ) {
            for (key, config_key, setting) in [
                ("mongodb-host", "MONGODB_HOST", Setting::MongodbHost),
                ("mongodb-port", "MONGODB_PORT", Setting::MongodbPort),
                (
                    "mongodb-auth-source",
                    "MONGODB_AUTH_SOURCE",
                    Setting::MongodbAuthSource,
                ),
                (
                    "mongodb-replica-set",
                    "MONGODB_REPLICA_SET",
                    Setting::MongodbReplicaSet,
                ),
            ] {
                let value = match from_config(config_key) {
                    Some(value) => value,
                    None => from_settings(setting)?,
                };
                mongodb.insert(key, value);
            }
            mongodb.insert(
                "mongodb-use-ssl",
                from_config("MONGODB_USE_SSL").unwrap_or_else(|| "true".to_owned()),
            );
        }
        Ok(Self {
            resources,
            config,
            backups_bucket,
            mongodb,
            mysql_ca,
        })
    }

    /// Points at the bucket a restore point was made in (its `location`,
    /// `s3://<bucket>/...`), whatever the backups bucket setting is now.
    pub fn use_bucket_of(&mut self, point: &RestorePoint) {
        if let Some(bucket) = point
            .location
            .strip_prefix("s3://")
            .and_then(|rest| rest.split('/').next())
            .filter(|bucket| !bucket.is_empty())
        {
            self.backups_bucket = bucket.to_owned();
        }
    }

    /// `s3://<backups bucket>/<instance>/<point>/`.
    pub fn location(&self, instance: &str, point: &str) -> String {
        format!("s3://{}/{instance}/{point}/", self.backups_bucket)
    }

    /// The Secret `phd-provisioning` of a run: the operation, the point, and
    /// every target, none of them a credential (the template reads the
    /// instance's passwords and the bucket's keys from the instance's own
    /// Secret). `point_instance` is the instance whose point it is (a clone's
    /// source), `metadata` what `restore-point.json` starts from.
    pub fn secret(
        &self,
        namespace: &str,
        operation: Operation,
        point: &str,
        point_instance: &str,
        metadata: &Value,
    ) -> Secret {
        let names = &self.resources;
        let mut data: BTreeMap<String, String> = BTreeMap::from([
            ("restore-point-operation".into(), operation.name().into()),
            ("instance".into(), namespace.into()),
            ("restore-point".into(), point.into()),
            ("restore-point-instance".into(), point_instance.into()),
            ("restore-point-metadata".into(), metadata.to_string()),
            ("backup-bucket".into(), self.backups_bucket.clone()),
            ("mysql-host".into(), names.mysql_host.clone()),
            ("mysql-port".into(), names.mysql_port.clone()),
            ("mysql-database".into(), names.mysql_database.clone()),
            ("mysql-user".into(), names.mysql_user.clone()),
            ("bucket".into(), names.bucket.clone()),
            ("storage-type".into(), names.storage_type.clone()),
            ("storage-region".into(), names.storage_region.clone()),
            (
                "storage-endpoint-url".into(),
                names.storage_endpoint.clone(),
            ),
        ]);
        if let Some(ca) = &self.mysql_ca {
            data.insert("mysql-ca-certificate".into(), ca.clone());
        }
        if !self.mongodb.is_empty() {
            data.insert("mongodb-database".into(), names.mongodb_database.clone());
            data.insert(
                "mongodb-forum-database".into(),
                names.forum_database.clone(),
            );
            data.insert("mongodb-user".into(), names.mongodb_user.clone());
            for (key, value) in &self.mongodb {
                data.insert((*key).to_owned(), value.clone());
            }
        }
        Secret {
            metadata: super::instance_meta(PROVISIONING_SECRET, namespace),
            data: Some(
                data.into_iter()
                    .map(|(key, value)| (key, ByteString(value.into_bytes())))
                    .collect(),
            ),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    }
}

/// Fails unless the cluster has [`TEMPLATE`]; checked before any change.
///
/// # Errors
/// The template is missing (Argo installed by an older kubectl-phd), or
/// cannot be read.
pub async fn require_template(client: &kube::Client) -> anyhow::Result<()> {
    let templates: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &phd_common::argo::Kind::ClusterWorkflowTemplate.resource(),
    );
    if templates
        .get_opt(TEMPLATE)
        .await
        .with_context(|| format!("cannot read ClusterWorkflowTemplate {TEMPLATE}"))?
        .is_none()
    {
        bail!(
            "the cluster has no ClusterWorkflowTemplate {TEMPLATE} (Argo was installed by an older kubectl-phd), so nothing was changed: run `kubectl phd argo install` to add it"
        );
    }
    Ok(())
}

/// Runs [`TEMPLATE`] for `operation` on `point` in instance namespace
/// `name` and waits for it, up to `timeout`: developers locked out, the
/// Secret stored, the Workflow submitted (a backup that already succeeded is
/// kept; a restore always runs anew), then the Secret removed and the
/// developers bound again. Returns whether a Workflow ran (false: a backup
/// that had succeeded before).
///
/// # Errors
/// The Workflow failed (its message), did not end within `timeout`, or was
/// interrupted; the API server refused a step.
pub async fn run(
    client: &kube::Client,
    name: &str,
    secret: &Secret,
    operation: Operation,
    point: &str,
    timeout: Duration,
    command: &str,
) -> anyhow::Result<bool> {
    let workflow_name = operation.workflow_name(point);
    require_template(client).await?;
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), name, &workflow::resource());
    if operation == Operation::Backup
        && let Ok(Phase::Succeeded) = workflow::phase(client, name, &workflow_name).await
    {
        return Ok(false);
    }
    let running = matches!(
        workflow::phase(client, name, &workflow_name).await,
        Ok(Phase::Pending | Phase::Running)
    );
    if operation != Operation::Backup && !running {
        match workflows
            .delete(&workflow_name, &DeleteParams::foreground())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error).context("cannot remove the previous restore Workflow"),
        }
        phd_common::wait::until(
            Duration::from_secs(60),
            Duration::from_millis(500),
            |_| async {
                match workflows.get_opt(&workflow_name).await {
                    Ok(Some(_)) => Ok(None),
                    Ok(None) => Ok(Some(())),
                    Err(error) => Err::<_, kube::Error>(error),
                }
            },
        )
        .await
        .map_err(|error| match error {
            phd_common::wait::WaitError::Failed(error) => {
                anyhow::Error::new(error).context("cannot read the previous restore Workflow")
            }
            _ => anyhow::anyhow!(
                "the previous Workflow {name}/{workflow_name} is still being deleted after a minute"
            ),
        })?;
    }
    super::checkpoint(command, "nothing was changed")?;
    super::claim_provisioning_secret(client, name, Some((operation.name(), point))).await?;
    super::lock_out_developers(client, name).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    secrets
        .patch(
            PROVISIONING_SECRET,
            &PatchParams::apply(phd_common::apply::FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await
        .context("cannot store the restore point's settings")?;
    let manifest = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": workflow_name,
            "namespace": name,
            "labels": {
                INSTANCE_LABEL: name,
                "kubectl-phd/operation": operation.name(),
                "kubectl-phd/restore-point": point,
                MANAGED_BY_LABEL: MANAGED_BY,
            },
        },
        "spec": workflow_spec(),
    });
    match workflow::submit(client, &manifest).await? {
        Submitted::Created => output::info(format!("submitted Workflow {workflow_name}")),
        Submitted::Replaced => output::info(format!("replaced failed Workflow {workflow_name}")),
        Submitted::Kept(_) => output::info(format!("Workflow {workflow_name} is already running")),
    }
    let what = match operation {
        Operation::Backup => "backing up",
        Operation::Restore => "restoring",
        Operation::Delete => "removing restore point of",
    };
    let phases = super::wait_for_workflows(
        client,
        name,
        std::slice::from_ref(&workflow_name),
        timeout,
        what,
        command,
    )
    .await;
    super::bind_developers(client, name).await?;
    let phases = phases?;
    match phases.first().map(|(_, phase)| phase) {
        Some(Phase::Succeeded) => Ok(true),
        Some(Phase::Failed(message)) => bail!(
            "{what} {name} failed: Workflow {name}/{workflow_name}: {message} (`kubectl -n {name} logs -l workflows.argoproj.io/workflow={workflow_name}` shows its log); fix the cause and run `{command}` again"
        ),
        _ => {
            let cause = super::why_stuck(client, name, &[workflow_name.as_str()])
                .await
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            bail!(
                "{what} {name} timed out after {}s{cause} (Workflow {name}/{workflow_name} not finished; its Secret {PROVISIONING_SECRET} stays for it); run `{command}` again to keep waiting",
                timeout.as_secs()
            )
        }
    }
}

/// The last git commit of `dir` (an instance's folder), if git and a
/// repository are there.
pub fn files_commit(dir: &Path) -> Option<String> {
    let git = which::which("git").ok()?;
    let output = std::process::Command::new(git)
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%H", "--", "."])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && commit.len() == 40).then_some(commit)
}

/// The instance's restore points as the cluster lists them, oldest first.
///
/// # Errors
/// The API server refused to read the ConfigMap, or an entry does not parse.
pub async fn points(client: &kube::Client, name: &str) -> anyhow::Result<Vec<RestorePoint>> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
    let Some(map) = maps
        .get_opt(POINTS_CONFIGMAP)
        .await
        .with_context(|| format!("cannot read ConfigMap {name}/{POINTS_CONFIGMAP}"))?
    else {
        return Ok(Vec::new());
    };
    let mut points = Vec::new();
    for (key, value) in map.data.unwrap_or_default() {
        let point: RestorePoint = serde_json::from_str(&value).with_context(|| {
            format!("entry {key} of ConfigMap {name}/{POINTS_CONFIGMAP} is not a restore point")
        })?;
        points.push(point);
    }
    points.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(points)
}

/// Records `point` in the instance's ConfigMap (server-side apply of its key).
async fn record(client: &kube::Client, name: &str, point: &RestorePoint) -> anyhow::Result<()> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
    let map = ConfigMap {
        metadata: super::instance_meta(POINTS_CONFIGMAP, name),
        data: Some(BTreeMap::from([(
            point.name.clone(),
            serde_json::to_string(point)?,
        )])),
        ..Default::default()
    };
    // One field manager per point: each run owns its key only, so points
    // recorded concurrently all stay.
    maps.patch(
        POINTS_CONFIGMAP,
        &PatchParams::apply(&format!("kubectl-phd-point-{}", point.name)).force(),
        &Patch::Apply(&map),
    )
    .await
    .with_context(|| {
        format!(
            "cannot record restore point {} in ConfigMap {name}/{POINTS_CONFIGMAP}",
            point.name
        )
    })?;
    Ok(())
}

/// The result of `instance backup` and `instance restore` (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointDetails {
    pub restore_point: RestorePoint,
}

/// Makes restore point `point` of instance `name` (or finds it made):
/// the point and [`Action::Created`] or [`Action::Unchanged`].
///
/// # Errors
/// As [`Target::find`] and [`run`]; the ConfigMap cannot be written.
pub async fn make_point(
    session: &Session,
    client: &kube::Client,
    name: &str,
    point: &str,
    timeout: Duration,
) -> anyhow::Result<(RestorePoint, Action)> {
    check_point(point)?;
    let target = Target::find(session, client, name).await?;
    if let Some(found) = points(client, name)
        .await?
        .into_iter()
        .find(|p| p.name == point)
    {
        output::info(format!(
            "restore point {point} of {name} exists ({}, made {})",
            found.location, found.created
        ));
        return Ok((found, Action::Unchanged));
    }
    let release = target.config.as_ref().map(release_of).transpose()?;
    let dir = super::instances_dir(session)?.join(name);
    let restore_point = RestorePoint {
        name: point.to_owned(),
        instance: name.to_owned(),
        created: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        location: target.location(name, point),
        tutor_version: release.map(|r| r.tutor.to_owned()),
        openedx_release: release.map(|r| r.name.to_owned()),
        commit: files_commit(&dir),
        image: target
            .config
            .as_ref()
            .and_then(|config| config.get("DOCKER_IMAGE_OPENEDX"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let metadata = serde_json::to_value(&restore_point)?;
    let secret = target.secret(name, Operation::Backup, point, name, &metadata);
    let command = format!("kubectl phd instance backup {name} --point {point}");
    run(
        client,
        name,
        &secret,
        Operation::Backup,
        point,
        timeout,
        &command,
    )
    .await?;
    record(client, name, &restore_point).await?;
    output::info(format!(
        "restore point {point} of {name}: {}",
        restore_point.location
    ));
    Ok((restore_point, Action::Created))
}

/// A restore point name from the time: `20261203-031500`, after `prefix-` when given.
pub fn point_name(prefix: Option<&str>) -> String {
    let time = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    match prefix {
        Some(prefix) => format!("{prefix}-{time}"),
        None => time,
    }
}

pub async fn backup(session: &Session, args: &InstanceBackupArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let name = args.name.as_str();
    let point = args.point.clone().unwrap_or_else(|| point_name(None));
    check_point(&point)?;
    let _handling =
        phd_common::interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    session.load_outputs().await;
    let cluster = session.connect().await?;
    let client = cluster.client;
    super::create::require_argo(&client).await?;
    let (restore_point, action) = make_point(session, &client, name, &point, args.timeout).await?;
    let removed = match args.keep {
        Some(keep) => prune(session, &client, name, usize::from(keep), args.timeout).await?,
        None => Vec::new(),
    };
    let mut outcome = Outcome::new(
        "RestorePoint",
        &format!("{name}/{point}"),
        action,
        PointDetails { restore_point },
    )
    .on(session);
    if action == Action::Created {
        outcome.objects.push(ObjectRef::new(
            "Workflow",
            Some(name),
            &Operation::Backup.workflow_name(&point),
            "succeeded",
        ));
        outcome.objects.push(ObjectRef::new(
            "ConfigMap",
            Some(name),
            POINTS_CONFIGMAP,
            "updated",
        ));
    }
    outcome.external.push(External::new(
        "restorePoint",
        outcome.details.restore_point.location.clone(),
        None,
    ));
    for point in removed {
        outcome
            .external
            .push(External::new("removedRestorePoint", point.location, None));
    }
    outcome.print(args.output)
}

/// Retention: removes the instance's oldest restore points until `keep`
/// are left (their folders in the bucket, then their entries in the list).
/// Returns the points removed.
///
/// # Errors
/// As [`run`]; a point whose folder could not be removed stays listed.
async fn prune(
    session: &Session,
    client: &kube::Client,
    name: &str,
    keep: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<RestorePoint>> {
    let all = points(client, name).await?;
    let excess = all.len().saturating_sub(keep);
    if excess == 0 {
        return Ok(Vec::new());
    }
    let target = Target::find(session, client, name).await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), name);
    let mut removed = Vec::new();
    for point in all.into_iter().take(excess) {
        let secret = target.secret(name, Operation::Delete, &point.name, name, &Value::Null);
        let command =
            format!("kubectl phd instance backup {name} --point <the newest point> --keep {keep}");
        run(
            client,
            name,
            &secret,
            Operation::Delete,
            &point.name,
            timeout,
            &command,
        )
        .await?;
        // The backup Workflow of that point goes too: kept, it would make a
        // later `backup --point` of the same name skip the backup.
        let workflows: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), name, &workflow::resource());
        match workflows
            .delete(
                &Operation::Backup.workflow_name(&point.name),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                return Err(error).context("cannot remove the Workflow of a removed restore point");
            }
        }
        maps.patch(
            POINTS_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {point.name.clone(): null}})),
        )
        .await
        .with_context(|| {
            format!(
                "cannot remove restore point {} from ConfigMap {name}/{POINTS_CONFIGMAP}",
                point.name
            )
        })?;
        output::info(format!(
            "removed restore point {} of {name} (keeping {keep})",
            point.name
        ));
        removed.push(point);
    }
    Ok(removed)
}

pub async fn backups(session: &Session, args: &InstanceBackupsArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let name = args.name.as_str();
    let cluster = session.connect().await?;
    let client = cluster.client;
    if super::owned_namespace(&client, name).await?.is_none() {
        bail!(
            "instance {name} has no namespace in this cluster (`kubectl phd instance list` shows the instances)"
        );
    }
    let points = points(&client, name).await?;
    match args.output {
        ListFormat::Json | ListFormat::Yaml => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": points});
            output::print_structured(&list, args.output)
        }
        ListFormat::Name => {
            for point in &points {
                println!("restorepoint/{}", point.name);
            }
            Ok(())
        }
        ListFormat::Table | ListFormat::Wide => {
            if points.is_empty() {
                output::info(format!(
                    "no restore points of {name}; `kubectl phd instance backup {name}` makes one"
                ));
                return Ok(());
            }
            let wide = args.output == ListFormat::Wide;
            let mut headers = vec!["POINT", "CREATED", "TUTOR", "COMMIT"];
            if wide {
                headers.extend(["IMAGE", "LOCATION"]);
            }
            let rows: Vec<Vec<String>> = points
                .iter()
                .map(|point| {
                    let mut row = vec![
                        point.name.clone(),
                        point.created.clone(),
                        point.tutor_version.clone().unwrap_or_else(|| "-".into()),
                        point
                            .commit
                            .as_deref()
                            .map(|c| c.chars().take(12).collect())
                            .unwrap_or_else(|| "-".into()),
                    ];
                    if wide {
                        row.push(point.image.clone().unwrap_or_else(|| "-".into()));
                        row.push(point.location.clone());
                    }
                    row
                })
                .collect();
            output::print_table(&headers, &rows);
            Ok(())
        }
    }
}
