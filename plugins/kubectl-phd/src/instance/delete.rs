//! `kubectl phd instance delete NAME`: the Application first (Argo CD removes
//! what it deployed), then the data (deprovision workflows), then the
//! namespace, then the files. Every step tolerates "already gone", so a
//! re-run after a failure finishes the job.
//!
//! The data is deprovisioned whatever became of the namespace: one deleted
//! outside phd (`kubectl delete namespace`) is waited for, made again and
//! used for the deprovision Workflows, with the databases and bucket named
//! by `config.yml` or the old namespace's annotations (issue 29: phd said
//! "its data was deprovisioned before" and removed the only record of it).
//! A namespace phd deleted itself carries [`DEPROVISIONED_ANNOTATION`].

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use phd_common::argo;
use phd_common::wait::{self, WaitError};
use phd_common::workflow::{self, Phase};
use phd_common::{interrupt, naming};

use super::create::require_argo;
use super::{
    INSTANCE_LABEL, Operation, PROVISIONING_SECRET, Provisioning, Resource, Resources,
    instances_dir,
};
use crate::cli::InstanceDeleteArgs;
use crate::outcome::{Action, External, InstanceDetails, ObjectRef, Outcome};
use crate::output;
use crate::progress::Progress;
use crate::prompt;
use crate::session::Session;

fn gone(result: Result<impl Sized, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

pub async fn delete(session: &Session, args: &InstanceDeleteArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let name = args.name.as_str();
    super::check_name(session, name, None)?;
    session.load_outputs().await;
    let provisioning = Provisioning::from_environment(session)?;
    if !args.dry_run {
        provisioning.require_credentials()?;
    }
    let dir = instances_dir(session)?.join(name);
    let cluster = session.connect().await?;
    let client = cluster.client;
    let namespace = super::owned_namespace(&client, name).await?;
    let config = dir.join("config.yml");
    let config_text = std::fs::read_to_string(&config).ok();
    let resources = match &config_text {
        Some(text) => Some(Resources::from_config(text)?),
        None => namespace
            .as_ref()
            .and_then(|ns| ns.metadata.annotations.as_ref())
            .and_then(Resources::from_annotations),
    };
    let applications = argo::applications(&client);
    let selector = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
    let found = match applications.list(&selector).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(error) => return Err(error).context("cannot list Argo CD Applications"),
    };
    // An Application the cluster's ApplicationSet made comes back while the
    // instance is in the repository Argo CD reads: it must leave git first.
    // Also before Argo CD has made it: the ApplicationSet of the instance's
    // environment is enough.
    let owner_set = found.iter().find_map(|application| {
        application
            .metadata
            .owner_references
            .as_ref()?
            .iter()
            .find(|owner| owner.kind == "ApplicationSet")
            .map(|owner| owner.name.clone())
    });
    let environment = namespace
        .as_ref()
        .and_then(|ns| ns.metadata.labels.as_ref())
        .and_then(|labels| labels.get(super::ENVIRONMENT_LABEL))
        .cloned()
        .map_or_else(|| session.environment(None), Ok)?;
    let owner_set = match owner_set {
        Some(set) => Some(set),
        None if dir.exists() => super::create::application_set(&client, &environment).await?,
        None => None,
    };
    if let Some(set) = &owner_set
        && dir.exists()
    {
        bail!(
            "ApplicationSet {set} would make the Application of {name} again while {} is in the repository: remove it there first, then delete:\n  git rm -r {dir} && git commit -m 'Remove instance {name}' && git push\n  kubectl phd instance delete {name}",
            dir.display(),
            dir = dir.display()
        );
    }

    // Removed here: Argo CD must not find it any more either, or its
    // ApplicationSet makes the Application again (and the data it would use
    // is deprovisioned below).
    // A dry run changes nothing, not even a refresh request: it says so.
    if let Some(set) = &owner_set {
        for application in &found {
            if args.dry_run {
                output::info(format!(
                    "dry run: would first check that Argo CD no longer finds instance {name} in the repository (an Application refresh)"
                ));
            } else {
                removed_from_source(&client, set, application, name, args.timeout).await?;
            }
        }
    }

    if namespace.is_none() && found.is_empty() && !dir.exists() {
        if args.ignore_not_found {
            return Outcome::new(
                "Instance",
                name,
                Action::NotFound,
                InstanceDetails::default(),
            )
            .on(session)
            .print(args.output);
        }
        bail!(
            "instance {name} does not exist: no namespace {name}, no Argo CD Application, no {} (`kubectl phd instance list` shows what does); pass --ignore-not-found to succeed anyway",
            dir.display()
        );
    }
    // Whether this run deprovisions: the data is known and no earlier run
    // of phd deprovisioned it before deleting the namespace.
    let deprovisions = resources.is_some() && !deprovisioned_before(namespace.as_ref());
    if !args.yes
        && !args.dry_run
        && !prompt::confirm_typed(
            &format!(
                "This deletes instance {name}: its Argo CD Application, its databases and bucket with all their data, its namespace, and {}.",
                dir.display()
            ),
            name,
            "--yes",
        )?
    {
        bail!("not confirmed; instance {name} was left as it is");
    }

    if args.dry_run {
        print_dry_run(
            name,
            &found,
            namespace.as_ref(),
            deprovisions,
            &provisioning,
            &dir,
        );
        return Ok(());
    }

    let (details, mut external) = super::described(
        &dir,
        config_text.as_deref(),
        Some(environment.clone()),
        resources.as_ref().filter(|_| deprovisions),
        provisioning.resources().contains(&Resource::Mongodb),
    );
    let mut outcome = Outcome::new("Instance", name, Action::Deleted, details).on(session);
    // SIGINT/SIGTERM from here on: stop at the next step or wait, remove
    // the admin credentials or name them (issue 29).
    let _handling = interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    let command = format!("kubectl phd instance delete {name}");

    // 1. The Application, and wait until Argo CD has removed what it deployed.
    delete_applications(&applications, &found, args.timeout, &mut outcome, &command).await?;

    // 2. The data, then the namespace.
    if namespace.is_some() || deprovisions {
        let place = Place {
            client: &client,
            name,
            environment: &environment,
            config: &config,
            timeout: args.timeout,
            command: &command,
        };
        let deprovisioned = delete_namespace(
            &place,
            namespace.as_ref(),
            resources.as_ref(),
            &provisioning,
        )
        .await?;
        if deprovisioned {
            outcome
                .objects
                .extend(provisioning.resources().into_iter().map(|resource| {
                    ObjectRef::new(
                        "Workflow",
                        Some(name),
                        &resource.workflow(Operation::Deprovision, name),
                        "succeeded",
                    )
                }));
        }
        outcome
            .objects
            .push(ObjectRef::new("Namespace", None, name, "deleted"));
    }

    // 3. The files.
    if dir.exists() {
        external.push(External::new("directory", dir.display().to_string(), None));
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        output::info(format!(
            "removed {}; commit and push the removal: git rm -r --cached {} ; git commit -m 'Remove instance {name}' && git push",
            dir.display(),
            dir.display()
        ));
    }
    outcome.external = external;
    outcome.print(args.output)
}

/// What a dry run of `instance delete` would delete, one object per line.
fn print_dry_run(
    name: &str,
    applications: &[DynamicObject],
    namespace: Option<&Namespace>,
    deprovisions: bool,
    provisioning: &Provisioning,
    dir: &std::path::Path,
) {
    output::info("dry run: nothing is changed; this is what would be deleted");
    for application in applications {
        println!(
            "Application argocd/{}",
            application.metadata.name.as_deref().unwrap_or("?")
        );
    }
    let usable = namespace.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none());
    if deprovisions && !usable {
        println!("make Namespace {name} again, to deprovision its data");
    }
    if deprovisions {
        for resource in provisioning.resources() {
            println!(
                "run Workflow {name}/{}",
                resource.workflow(Operation::Deprovision, name)
            );
        }
    }
    if namespace.is_some() || deprovisions {
        println!("Namespace {name}");
    }
    if dir.exists() {
        println!("directory {}", dir.display());
    }
    provisioning.print_missing();
}

/// Deletes each Application (foreground) and waits until Argo CD has
/// removed what it deployed and let the Application go, stopping any sync
/// that starts meanwhile.
async fn delete_applications(
    applications: &Api<DynamicObject>,
    found: &[DynamicObject],
    timeout: Duration,
    outcome: &mut Outcome<InstanceDetails>,
    command: &str,
) -> anyhow::Result<()> {
    for application in found {
        let application_name = application.metadata.name.clone().unwrap_or_default();
        cascade(applications, application).await.with_context(|| {
            format!("cannot prepare Application {application_name} for deletion")
        })?;
        gone(
            applications
                .delete(&application_name, &DeleteParams::foreground())
                .await,
        )
        .with_context(|| format!("cannot delete Application {application_name}"))?;
        let terminating_since = std::cell::Cell::new(None);
        wait_until(
            &format!("Argo CD to remove Application {application_name}"),
            timeout,
            command,
            || async {
                // A sync that starts or resumes meanwhile is stopped too.
                stop_operation(applications, &application_name, &terminating_since).await?;
                Ok(applications.get_opt(&application_name).await?.is_none())
            },
        )
        .await?;
        output::info(format!("Application {application_name} deleted"));
        outcome.objects.push(ObjectRef::new(
            "Application",
            Some(argo::ARGOCD_NAMESPACE),
            &application_name,
            "deleted",
        ));
    }
    Ok(())
}

/// Argo CD's resources finalizer on `application`, added when missing: the
/// Applications of the instances' ApplicationSet carry none (deleting the
/// ApplicationSet must not delete the sites), so an Application phd deletes
/// on purpose gets it first, and Argo CD prunes what it deployed before it
/// lets the Application go.
async fn cascade(
    applications: &Api<DynamicObject>,
    application: &DynamicObject,
) -> anyhow::Result<()> {
    let mut finalizers = application.metadata.finalizers.clone().unwrap_or_default();
    if finalizers.iter().any(|f| f == argo::RESOURCES_FINALIZER) {
        return Ok(());
    }
    finalizers.push(argo::RESOURCES_FINALIZER.to_owned());
    let name = application.metadata.name.as_deref().unwrap_or_default();
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers}});
    gone(
        applications
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    )?;
    Ok(())
}

/// Set on an instance namespace by `instance delete` once its data is
/// deprovisioned, just before deleting it: a later run that finds the
/// namespace still Terminating only waits for it. A namespace Terminating
/// without it was deleted by someone else, and its data is still there.
pub const DEPROVISIONED_ANNOTATION: &str = "kubectl-phd/deprovisioned";

/// Whether an earlier `instance delete` deprovisioned the data of
/// `namespace` ([`DEPROVISIONED_ANNOTATION`]).
fn deprovisioned_before(namespace: Option<&Namespace>) -> bool {
    namespace
        .and_then(|ns| ns.metadata.annotations.as_ref())
        .is_some_and(|annotations| annotations.contains_key(DEPROVISIONED_ANNOTATION))
}

/// What the namespace steps act on: the instance `name` of `environment`
/// on `client`, its `config.yml`, each wait's `timeout`, and the `command`
/// that finishes the job when run again.
struct Place<'a> {
    client: &'a kube::Client,
    name: &'a str,
    environment: &'a str,
    config: &'a std::path::Path,
    timeout: Duration,
    command: &'a str,
}

/// Deprovisions the instance's databases and bucket (its Workflows), marks
/// the namespace ([`DEPROVISIONED_ANNOTATION`]), deletes it and waits until
/// it is gone. Returns whether this run deprovisioned.
///
/// - A namespace an earlier run marked is only deleted (and waited for).
/// - A namespace deleted outside phd (Terminating, unmarked), or one that is
///   gone while `config.yml` names the data: waited for until gone, made
///   again (the namespace and the Workflows' executor, as `instance create`
///   makes them) and used to deprovision, then deleted.
///
/// # Errors
/// The data of a namespace to deprovision is unknown (neither `config.yml`
/// nor the namespace's annotations name it: nothing is deleted), a
/// deprovision Workflow failed (the namespace and files are kept), a wait
/// ended (timeout, stalled API server, SIGINT/SIGTERM), a request failed.
async fn delete_namespace(
    place: &Place<'_>,
    namespace: Option<&Namespace>,
    resources: Option<&Resources>,
    provisioning: &Provisioning,
) -> anyhow::Result<bool> {
    let Place {
        client,
        name,
        timeout,
        command,
        ..
    } = *place;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let terminating = namespace.is_some_and(|ns| ns.metadata.deletion_timestamp.is_some());
    if deprovisioned_before(namespace) {
        if terminating {
            output::info(format!(
                "namespace {name} is already being deleted (its data was deprovisioned before); waiting for it to be gone"
            ));
        } else {
            gone(namespaces.delete(name, &DeleteParams::default()).await)
                .context("cannot delete the namespace")?;
        }
        wait_for_namespace(&namespaces, name, timeout, command).await?;
        output::info(format!("namespace {name} deleted"));
        return Ok(false);
    }
    let Some(resources) = resources else {
        bail!(
            "cannot tell which databases and bucket belong to instance {name}: neither {} nor the namespace's annotations name them; nothing was deprovisioned",
            place.config.display()
        );
    };
    require_argo(client).await?;
    if terminating || namespace.is_none() {
        if terminating {
            output::info(format!(
                "namespace {name} is being deleted, but not by phd: its data ({}) was never deprovisioned; waiting for the namespace to be gone, to make it again and deprovision from there",
                left_behind(resources, provisioning)
            ));
            wait_for_namespace(&namespaces, name, timeout, command).await?;
        } else {
            output::info(format!(
                "namespace {name} is gone, but {} names its data ({}); making the namespace again to deprovision from there",
                place.config.display(),
                left_behind(resources, provisioning)
            ));
        }
        super::checkpoint(
            command,
            &format!(
                "nothing was deprovisioned yet ({})",
                left_behind(resources, provisioning)
            ),
        )?;
        recreate_namespace(place, resources).await?;
    }
    deprovision(place, provisioning, resources).await?;
    // Marked first: a run that finds the namespace Terminating then knows
    // the data is gone.
    let mark = serde_json::json!({"metadata": {"annotations": {
        DEPROVISIONED_ANNOTATION: jiff::Timestamp::now().to_string(),
    }}});
    namespaces
        .patch(name, &PatchParams::default(), &Patch::Merge(&mark))
        .await
        .context("cannot mark the namespace as deprovisioned")?;
    gone(namespaces.delete(name, &DeleteParams::default()).await)
        .context("cannot delete the namespace")?;
    wait_for_namespace(&namespaces, name, timeout, command).await?;
    output::info(format!("namespace {name} deleted"));
    Ok(true)
}

/// The instance's data as messages name it: `MySQL database demo, MongoDB
/// database demo, bucket demo-x1` (MongoDB only with a provider).
fn left_behind(resources: &Resources, provisioning: &Provisioning) -> String {
    provisioning
        .resources()
        .into_iter()
        .map(|resource| match resource {
            Resource::Mysql => format!("MySQL database {}", resources.mysql_database),
            Resource::Mongodb => format!("MongoDB database {}", resources.mongodb_database),
            Resource::Storage => format!("bucket {}", resources.bucket),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes the instance namespace again, labelled and annotated as `instance
/// create` makes it, with what the deprovision Workflows need (the
/// executor's ServiceAccount, Role and RoleBinding); no NetworkPolicy: no
/// site runs there.
async fn recreate_namespace(place: &Place<'_>, resources: &Resources) -> anyhow::Result<()> {
    let name = place.name;
    let foundation: Vec<_> = super::create::foundation_objects(
        name,
        place.environment,
        resources,
        "",
        super::size::Size::default(),
    )?
    .into_iter()
    .filter(|document| document.object["kind"] != "NetworkPolicy")
    .collect();
    super::create::apply_foundation(place.client, &foundation, name)
        .await
        .with_context(|| format!("cannot make namespace {name} again to deprovision its data"))?;
    output::info(format!(
        "namespace {name}: made again to deprovision its data"
    ));
    Ok(())
}

/// The longest wait for Argo CD to refresh an Application (or `--timeout`,
/// when shorter).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks that Argo CD, reading the repository anew, no longer finds the
/// source of `application`, which ApplicationSet `set` made for instance
/// `name`: an Application refresh ([`argo::refresh`]) resolves the branch
/// without the revision cache, and its comparison must fail with "app path
/// does not exist". That refresh also refills the repo server's cache, so the
/// ApplicationSet's next reconcile (after the deletion) sees the same commit
/// and does not make the Application again.
///
/// # Errors
/// The instance is still in the commit Argo CD reads (not pushed, another
/// branch), Argo CD cannot read the repository, or its controller does not
/// answer within `timeout`.
async fn removed_from_source(
    client: &kube::Client,
    set: &str,
    application: &DynamicObject,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let application_name = application.metadata.name.as_deref().unwrap_or_default();
    let source = &application.data["spec"]["source"];
    let place = format!(
        "{} {}",
        source["repoURL"].as_str().unwrap_or("?"),
        source["targetRevision"].as_str().unwrap_or("HEAD")
    );
    output::info(format!(
        "checking that Argo CD no longer finds instance {name} in {place}"
    ));
    // A refresh takes the controller seconds; waiting longer than this only
    // hides a stopped controller.
    let refreshed = argo::refresh(
        client,
        argo::Refresh::Application,
        application_name,
        timeout.min(REFRESH_TIMEOUT),
    )
    .await;
    let Some(refreshed) = refreshed.with_context(|| {
        format!("cannot check that Argo CD no longer finds instance {name}; nothing was deleted")
    })?
    else {
        return Ok(());
    };
    match argo::source_state(&refreshed) {
        argo::SourceState::PathMissing => Ok(()),
        argo::SourceState::Present { revision } => bail!(
            "instance {name} is still in the repository Argo CD reads ({place}, commit {revision}): ApplicationSet {set} would make Application {application_name} again. Push its removal first:\n  git rm -r instances/{name} && git commit -m 'Remove instance {name}' && git push\n  kubectl phd instance delete {name}"
        ),
        argo::SourceState::Unreadable(message) => bail!(
            "cannot tell whether instance {name} is still in the repository Argo CD reads ({place}): Argo CD reports: {message}; nothing was deleted"
        ),
    }
}

/// How long Argo CD gets to end a sync asked to terminate before phd ends it
/// itself (see [`stop_operation`]).
const TERMINATION_GRACE: Duration = Duration::from_secs(15);

/// Argo CD finalizes a deleted Application (prunes what it deployed) only
/// once no sync operation is in progress, and a sync waiting for resources
/// that never become healthy (a Pending volume, a crash-looping pod) runs
/// forever. So a running operation is stopped as `argocd app terminate-op`
/// does: phase `Terminating` in `status.operationState` (Argo CD's
/// `TerminateOperation`). Argo CD cannot end it when the Application's
/// source is gone (the instance already removed from the repository): after
/// [`TERMINATION_GRACE`] in `Terminating`, the operation is removed from the
/// Application (phase `Failed`), which lets the deletion go on. Deleted
/// first, the Application starts no new automated sync. Nothing to do when
/// no operation runs or the Application is gone. `terminating_since`
/// carries the first time this wait saw `Terminating`.
async fn stop_operation(
    applications: &Api<DynamicObject>,
    name: &str,
    terminating_since: &std::cell::Cell<Option<Instant>>,
) -> Result<(), kube::Error> {
    // The controller writes the status every few seconds: retried on conflict.
    for _ in 0..10 {
        let Some(application) = applications.get_opt(name).await? else {
            return Ok(());
        };
        if application
            .data
            .get("operation")
            .is_none_or(|o| o.is_null())
        {
            return Ok(());
        }
        let state = &application.data["status"]["operationState"];
        let message = state["message"].as_str().unwrap_or("running").to_owned();
        let (patch, done) = match state["phase"].as_str() {
            Some("Running") => (
                serde_json::json!({
                    "metadata": {"resourceVersion": application.metadata.resource_version},
                    "status": {"operationState": {"phase": "Terminating"}},
                }),
                format!(
                    "Application {name}: stopped the sync in progress ({message}) so Argo CD can remove it"
                ),
            ),
            Some("Terminating") => {
                let since = match terminating_since.get() {
                    Some(since) => since,
                    None => {
                        let now = Instant::now();
                        terminating_since.set(Some(now));
                        now
                    }
                };
                if since.elapsed() < TERMINATION_GRACE {
                    return Ok(());
                }
                (
                    serde_json::json!({
                        "metadata": {"resourceVersion": application.metadata.resource_version},
                        "operation": null,
                        "status": {"operationState": {
                            "phase": "Failed",
                            "message": "ended by kubectl phd instance delete: Argo CD could not terminate it",
                        }},
                    }),
                    format!(
                        "Application {name}: Argo CD could not end its sync in {}s (is its source gone from the repository?); ended it so the deletion can go on",
                        TERMINATION_GRACE.as_secs()
                    ),
                )
            }
            _ => return Ok(()),
        };
        match applications
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                output::info(done);
                return Ok(());
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

async fn deprovision(
    place: &Place<'_>,
    provisioning: &Provisioning,
    resources: &Resources,
) -> anyhow::Result<()> {
    let Place {
        client,
        name,
        timeout,
        command,
        ..
    } = *place;
    super::grant_ci_secrets(client, name).await?;
    super::checkpoint(
        command,
        &format!(
            "nothing was deprovisioned yet ({})",
            left_behind(resources, provisioning)
        ),
    )?;
    // No developer may run Workflows while the admin credentials are there,
    // nor has one queued any that would start with them.
    super::claim_provisioning_secret(client, name, None).await?;
    super::lock_out_developers(client, name).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    secrets
        .patch(
            PROVISIONING_SECRET,
            &PatchParams::apply(phd_common::apply::FIELD_MANAGER).force(),
            &Patch::Apply(provisioning.secret(name, resources)),
        )
        .await
        .context("cannot store the provisioning credentials")?;
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), name, &workflow::resource());
    let mut names = Vec::new();
    for resource in provisioning.resources() {
        gone(
            workflows
                .delete(
                    &resource.workflow(Operation::Provision, name),
                    &DeleteParams::default(),
                )
                .await,
        )
        .context("cannot remove the provisioning Workflows")?;
        let deprovision = provisioning.workflow(resource, Operation::Deprovision, name);
        workflow::submit(client, &deprovision).await?;
        names.push(resource.workflow(Operation::Deprovision, name));
    }
    let phases =
        super::wait_for_workflows(client, name, &names, timeout, "deprovisioning", command).await?;
    // What may be left, once each, with its kind: only what this cluster
    // provisions (no MongoDB without a provider).
    let left = provisioning
        .resources()
        .iter()
        .map(|resource| match resource {
            Resource::Mysql => format!("MySQL database {}", resources.mysql_database),
            Resource::Mongodb => format!(
                "MongoDB databases {} and {}",
                resources.mongodb_database, resources.forum_database
            ),
            Resource::Storage => format!("bucket {}", resources.bucket),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let unfinished: Vec<&str> = phases
        .iter()
        .filter(|(_, phase)| !phase.is_done())
        .map(|(workflow, _)| workflow.as_str())
        .collect();
    if !unfinished.is_empty() {
        let cause = super::why_stuck(client, name, &unfinished)
            .await
            .map(|cause| format!(": {cause}"))
            .unwrap_or_default();
        bail!(
            "deprovisioning instance {name} timed out after {}s{cause} ({} not finished; the admin credentials stay in Secret {name}/{PROVISIONING_SECRET} for them, and the namespace is kept); what may be left: {left}. Run the same command again to keep waiting.",
            timeout.as_secs(),
            unfinished.join(", ")
        );
    }
    let problems: Vec<String> = phases
        .iter()
        .filter_map(|(workflow, phase)| match phase {
            Phase::Succeeded => None,
            Phase::Failed(message) => Some(format!("Workflow {workflow}: {message}")),
            other => Some(format!("Workflow {workflow} did not finish ({other:?})")),
        })
        .collect();
    if !problems.is_empty() {
        bail!(
            "deprovisioning instance {name} failed, so its namespace is kept; what may be left: {left}. Fix the cause and run the same command again.\n  {}",
            problems.join("\n  ")
        );
    }
    output::info(format!("deprovisioned {name}"));
    Ok(())
}

/// Waits until namespace `name` is gone. On timeout the error says what
/// Kubernetes reports as holding it (the namespace's status conditions, such
/// as "finalizers remaining: example.com/hold in 1 resource instances") and
/// what to do.
async fn wait_for_namespace(
    namespaces: &Api<Namespace>,
    name: &str,
    timeout: Duration,
    command: &str,
) -> anyhow::Result<()> {
    let waited = wait_until(
        &format!("namespace {name} to be gone"),
        timeout,
        command,
        || async { Ok(namespaces.get_opt(name).await?.is_none()) },
    )
    .await;
    let Err(error) = waited else {
        return Ok(());
    };
    if error.downcast_ref::<interrupt::Interrupted>().is_some() {
        return Err(error);
    }
    let blocking: Vec<String> = namespaces
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|ns| ns.status)
        .and_then(|status| status.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|condition| condition.status == "True")
        .filter_map(|condition| condition.message)
        .collect();
    if blocking.is_empty() {
        return Err(error);
    }
    bail!(
        "namespace {name} is still Terminating after {}s; Kubernetes reports: {}. Those objects' controllers must finish (or remove their finalizers: `kubectl -n {name} get all,configmaps,secrets -o name`); then run the same command again",
        timeout.as_secs(),
        blocking.join("; ")
    )
}

/// Waits, within `timeout`, until `done` says so. SIGINT or SIGTERM ends
/// the wait: the error starts with `interrupted` and says that `command`
/// finishes the job (nothing of the admin credentials is in the namespace
/// during these waits).
async fn wait_until<F, Fut>(
    what: &str,
    timeout: Duration,
    command: &str,
    mut done: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, kube::Error>>,
{
    let progress = Progress::new(format!("waiting for {what}"));
    let waited =
        interrupt::or_interrupted(wait::until(timeout, Duration::from_millis(250), |_| {
            let answer = done();
            let progress = &progress;
            async move {
                let done = answer.await?;
                if !done {
                    progress.update("in progress");
                }
                Ok::<_, kube::Error>(done.then_some(()))
            }
        }))
        .await;
    progress.finish();
    let waited = match waited {
        Ok(waited) => waited,
        Err(interrupted) => {
            return Err(anyhow::Error::new(interrupted).context(format!(
                "interrupted by {} while waiting for {what}; no admin credentials are left in the namespace; run `{command}` again to finish",
                interrupted.signal
            )));
        }
    };
    match waited {
        Ok(()) => Ok(()),
        Err(WaitError::Failed(error)) => Err(error.into()),
        Err(WaitError::Stalled { timeout }) => bail!(
            "the API server did not answer within the {}s deadline while waiting for {what}; run the same command again once it answers",
            timeout.as_secs()
        ),
        Err(WaitError::TimedOut { timeout }) => bail!(
            "timed out after {}s waiting for {what}; run the same command again to keep waiting",
            timeout.as_secs()
        ),
    }
}
