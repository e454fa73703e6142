//! `kubectl phd instance delete NAME`: the Application first (Argo CD removes
//! what it deployed), then the data (deprovision workflows), then the
//! namespace, then the files. Every step tolerates "already gone", so a
//! re-run after a failure finishes the job.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use phd_common::argo;
use phd_common::naming;
use phd_common::wait::{self, WaitError};
use phd_common::workflow::{self, Phase};

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
        print_dry_run(name, &found, namespace.is_some(), &provisioning, &dir);
        return Ok(());
    }

    let (details, mut external) = super::described(
        &dir,
        config_text.as_deref(),
        Some(environment.clone()),
        resources.as_ref().filter(|_| namespace.is_some()),
        provisioning.resources().contains(&Resource::Mongodb),
    );
    let mut outcome = Outcome::new("Instance", name, Action::Deleted, details).on(session);

    // 1. The Application, and wait until Argo CD has removed what it deployed.
    delete_applications(&applications, &found, args.timeout, &mut outcome).await?;

    // 2. The data, then the namespace.
    if let Some(namespace) = &namespace {
        delete_namespace(
            &client,
            namespace,
            resources.as_ref(),
            &provisioning,
            &config,
            args.timeout,
        )
        .await?;
        outcome.objects.extend(
            provisioning
                .resources()
                .into_iter()
                .filter(|_| namespace.metadata.deletion_timestamp.is_none())
                .map(|resource| {
                    ObjectRef::new(
                        "Workflow",
                        Some(name),
                        &resource.workflow(Operation::Deprovision, name),
                        "succeeded",
                    )
                }),
        );
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
    namespace_exists: bool,
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
    if namespace_exists {
        for resource in provisioning.resources() {
            println!(
                "run Workflow {name}/{}",
                resource.workflow(Operation::Deprovision, name)
            );
        }
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

/// Deprovisions the instance's databases and bucket (its Workflows), then
/// deletes `namespace` and waits until it is gone. A namespace already
/// Terminating was deleted by an earlier run after its data was
/// deprovisioned: only waited for.
async fn delete_namespace(
    client: &kube::Client,
    namespace: &Namespace,
    resources: Option<&Resources>,
    provisioning: &Provisioning,
    config: &std::path::Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = namespace.metadata.name.as_deref().unwrap_or_default();
    if namespace.metadata.deletion_timestamp.is_some() {
        output::info(format!(
            "namespace {name} is already being deleted (its data was deprovisioned before); waiting for it to be gone"
        ));
    } else {
        let Some(resources) = resources else {
            bail!(
                "cannot tell which databases and bucket belong to instance {name}: neither {} nor the namespace's annotations name them; nothing was deprovisioned",
                config.display()
            );
        };
        require_argo(client).await?;
        deprovision(client, name, provisioning, resources, timeout).await?;
        gone(namespaces.delete(name, &DeleteParams::default()).await)
            .context("cannot delete the namespace")?;
    }
    wait_for_namespace(&namespaces, name, timeout).await?;
    output::info(format!("namespace {name} deleted"));
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
    client: &kube::Client,
    name: &str,
    provisioning: &Provisioning,
    resources: &Resources,
    timeout: Duration,
) -> anyhow::Result<()> {
    super::grant_ci_secrets(client, name).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    secrets
        .patch(
            PROVISIONING_SECRET,
            &PatchParams::apply(phd_common::apply::FIELD_MANAGER).force(),
            &Patch::Apply(provisioning.secret(name)),
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
        let deprovision = provisioning.workflow(resource, Operation::Deprovision, name, resources);
        workflow::submit(client, &deprovision).await?;
        names.push(resource.workflow(Operation::Deprovision, name));
    }
    let progress = Progress::new(format!("deprovisioning {name}"));
    let phases = workflow::wait_all(client, name, &names, timeout, &|phases, _| {
        progress.update(&super::summarise(phases));
    })
    .await;
    progress.finish();
    let phases = super::finish_provisioning(
        client,
        name,
        &format!("kubectl phd instance delete {name}"),
        phases,
    )
    .await?;
    let problems: Vec<String> = phases
        .iter()
        .filter_map(|(workflow, phase)| match phase {
            Phase::Succeeded => None,
            Phase::Failed(message) => Some(format!("Workflow {workflow}: {message}")),
            other => Some(format!("Workflow {workflow} did not finish ({other:?})")),
        })
        .collect();
    if !problems.is_empty() {
        let left: Vec<&str> = Resource::ALL
            .iter()
            .map(|r| match r {
                Resource::Mysql => resources.mysql_database.as_str(),
                Resource::Mongodb => resources.mongodb_database.as_str(),
                Resource::Storage => resources.bucket.as_str(),
            })
            .collect();
        bail!(
            "deprovisioning instance {name} failed, so its namespace and files are kept; what may be left: {}. Fix the cause and run the same command again.\n  {}",
            left.join(", "),
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
) -> anyhow::Result<()> {
    let waited = wait_until(&format!("namespace {name} to be gone"), timeout, || async {
        Ok(namespaces.get_opt(name).await?.is_none())
    })
    .await;
    let Err(error) = waited else {
        return Ok(());
    };
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

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, kube::Error>>,
{
    let progress = Progress::new(format!("waiting for {what}"));
    let waited = wait::until(timeout, Duration::from_millis(250), |_| {
        let answer = done();
        let progress = &progress;
        async move {
            let done = answer.await?;
            if !done {
                progress.update("in progress");
            }
            Ok::<_, kube::Error>(done.then_some(()))
        }
    })
    .await;
    progress.finish();
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
