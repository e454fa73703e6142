//! `kubectl phd instance restore NAME --from POINT` (issue 28): the
//! instance's MySQL database, MongoDB databases and media bucket become those
//! of a restore point ([`super::backup`]).
//!
//! While the Workflow runs the site is stopped, so nothing writes between
//! the restore and the first request: Argo CD's automated sync of the
//! instance's Application is paused (`spec.syncPolicy.automated.enabled:
//! false`; the cluster repository's ApplicationSet ignores that field) and
//! the Open edX Deployments are scaled to 0, their replicas recorded in the
//! annotation [`REPLICAS_ANNOTATION`]. Both are undone once the data is back;
//! after a failure they stay, and running the command again finishes.
//! The instance's files in git are not changed: the point's commit is
//! reported next to the current one.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use phd_common::{argo, naming};
use serde_json::json;

use super::backup::{self, Operation, PointDetails, Target};
use crate::cli::InstanceRestoreArgs;
use crate::outcome::{Action, External, ObjectRef, Outcome};
use crate::output;
use crate::prompt;
use crate::session::Session;

/// The Open edX Deployments that write to the databases and the bucket.
pub const WRITERS: [&str; 4] = ["lms", "cms", "lms-worker", "cms-worker"];
/// Annotation of a Deployment stopped by a restore: its replicas before.
pub const REPLICAS_ANNOTATION: &str = "kubectl-phd/replicas-before-restore";
/// Annotation of an Application whose automated sync a restore paused.
pub const PAUSED_ANNOTATION: &str = "kubectl-phd/sync-paused-for-restore";

pub async fn restore(session: &Session, args: &InstanceRestoreArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let name = args.name.as_str();
    let point = args.point.as_str();
    backup::check_point(point)?;
    session.load_outputs().await;
    // SIGINT/SIGTERM end the waits with what is left named (the site
    // stopped, the sync paused), never the process in the middle.
    let _handling =
        phd_common::interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    let cluster = session.connect().await?;
    let client = cluster.client;
    super::create::require_argo(&client).await?;
    let mut target = Target::find(session, &client, name).await?;
    backup::require_template(&client).await?;
    let points = backup::points(&client, name).await?;
    let Some(found) = points.iter().find(|p| p.name == point).cloned() else {
        let known: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "instance {name} has no restore point {point}; {}",
            if known.is_empty() {
                format!("it has none (`kubectl phd instance backup {name}` makes one)")
            } else {
                format!("it has: {}", known.join(", "))
            }
        );
    };
    target.use_bucket_of(&found);
    if !args.yes {
        let names = &target.resources;
        let question = format!(
            "Restore instance {name} to restore point {point} (made {}, Tutor {})?\nIts MySQL database {}, MongoDB databases {} and {} and bucket {} become the point's: whatever changed since is lost. The site is stopped while it runs.",
            found.created,
            found.tutor_version.as_deref().unwrap_or("unknown"),
            names.mysql_database,
            names.mongodb_database,
            names.forum_database,
            names.bucket
        );
        if !prompt::confirm_typed(&question, name, "--yes")? {
            bail!("restore of {name} cancelled: nothing was changed");
        }
    }
    let command = format!("kubectl phd instance restore {name} --from {point} --yes");
    // Checked before the site is stopped; the run checks again.
    super::claim_provisioning_secret(&client, name, Some((Operation::Restore.name(), point)))
        .await?;
    let paused = pause_sync(&client, name).await?;
    let stopped = stop_site(&client, name).await?;
    let metadata = serde_json::to_value(&found)?;
    let secret = target.secret(name, Operation::Restore, point, name, &metadata);
    backup::run(
        &client,
        name,
        &secret,
        Operation::Restore,
        point,
        args.timeout,
        &command,
    )
    .await
    .with_context(|| {
        format!(
            "instance {name} stays stopped (Deployments {} at 0 replicas{}) until the restore succeeds",
            WRITERS.join(", "),
            if paused.is_empty() {
                String::new()
            } else {
                format!(", Argo CD's automated sync of {} paused", paused.join(", "))
            }
        )
    })?;
    let started = start_site(&client, name).await?;
    let resumed = resume_sync(&client, name).await?;
    output::info(format!("restored {name} to restore point {point}"));
    let now = backup::files_commit(&super::instances_dir(session)?.join(name));
    match (&found.commit, &now) {
        (Some(then), Some(now)) if then != now => output::info(format!(
            "the instance's files were at commit {then} when the point was made and are at {now} now; git was not changed (`git diff {then} -- instances/{name}` shows the difference)"
        )),
        _ => {}
    }
    let mut outcome = Outcome::new(
        "RestorePoint",
        &format!("{name}/{point}"),
        Action::Updated,
        PointDetails {
            restore_point: found,
        },
    )
    .on(session);
    outcome.objects.push(ObjectRef::new(
        "Workflow",
        Some(name),
        &Operation::Restore.workflow_name(point),
        "succeeded",
    ));
    for deployment in stopped.keys().chain(started.iter()) {
        if !outcome.objects.iter().any(|o| &o.name == deployment) {
            outcome.objects.push(ObjectRef::new(
                "Deployment",
                Some(name),
                deployment,
                "restarted",
            ));
        }
    }
    for application in resumed {
        outcome.objects.push(ObjectRef::new(
            "Application",
            Some(argo::ARGOCD_NAMESPACE),
            &application,
            "sync resumed",
        ));
    }
    outcome
        .external
        .extend(target.resources.external(true, None));
    outcome.external.push(External::new(
        "restorePoint",
        outcome.details.restore_point.location.clone(),
        None,
    ));
    outcome.print(args.output)
}

/// Pauses the automated sync of the instance's Applications that have one,
/// marking each with [`PAUSED_ANNOTATION`]; returns their names (also those
/// an earlier, unfinished run paused).
pub(super) async fn pause_sync(client: &kube::Client, name: &str) -> anyhow::Result<Vec<String>> {
    let applications = argo::applications(client);
    let listed = argo::instance_applications(client, name)
        .await
        .context("cannot list the instance's Argo CD Applications")?;
    // An ApplicationSet puts back whatever it does not leave to others: it
    // must leave the automated sync's `enabled` to phd, or the pause does
    // not hold and Argo CD starts the site again mid-restore.
    for application in &listed {
        let owner = application
            .metadata
            .owner_references
            .as_ref()
            .and_then(|owners| owners.iter().find(|o| o.kind == "ApplicationSet"));
        if let Some(owner) = owner {
            let set = argo::application_sets(client)
                .get(&owner.name)
                .await
                .with_context(|| format!("cannot read ApplicationSet {}", owner.name))?;
            let leaves = set.data["spec"]["ignoreApplicationDifferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| {
                    rule["jsonPointers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|pointer| {
                            pointer == "/spec/syncPolicy/automated/enabled"
                                || pointer == "/spec/syncPolicy/automated"
                                || pointer == "/spec/syncPolicy"
                        })
                });
            if !leaves {
                bail!(
                    "ApplicationSet {} would undo the pause of Argo CD's automated sync during the restore, so nothing was changed: add to its spec in cluster/apps/instances.yml, commit and push (docs/restore-points.md):\n  ignoreApplicationDifferences:\n    - jsonPointers:\n        - /spec/syncPolicy/automated/enabled",
                    owner.name
                );
            }
        }
    }
    let mut paused = Vec::new();
    for application in listed {
        let Some(app_name) = application.metadata.name.clone() else {
            continue;
        };
        let marked = application
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(PAUSED_ANNOTATION));
        let automated = &application.data["spec"]["syncPolicy"]["automated"];
        let enabled = automated.is_object() && automated["enabled"] != json!(false);
        if enabled {
            let patch = json!({
                "metadata": {"annotations": {PAUSED_ANNOTATION: "true"}},
                "spec": {"syncPolicy": {"automated": {"enabled": false}}},
            });
            applications
                .patch(&app_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| {
                    format!("cannot pause the automated sync of Application {app_name}")
                })?;
            output::info(format!(
                "Argo CD Application {app_name}: automated sync paused"
            ));
        }
        if enabled || marked {
            paused.push(app_name);
        }
    }
    Ok(paused)
}

/// Resumes the sync [`pause_sync`] paused; returns the Applications.
pub(super) async fn resume_sync(client: &kube::Client, name: &str) -> anyhow::Result<Vec<String>> {
    let applications = argo::applications(client);
    let listed = argo::instance_applications(client, name)
        .await
        .context("cannot list the instance's Argo CD Applications")?;
    let mut resumed = Vec::new();
    for application in listed {
        let Some(app_name) = application.metadata.name.clone() else {
            continue;
        };
        let marked = application
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(PAUSED_ANNOTATION));
        if !marked {
            continue;
        }
        let patch = json!({
            "metadata": {"annotations": {PAUSED_ANNOTATION: null}},
            "spec": {"syncPolicy": {"automated": {"enabled": true}}},
        });
        applications
            .patch(&app_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| {
                format!("cannot resume the automated sync of Application {app_name}")
            })?;
        output::info(format!(
            "Argo CD Application {app_name}: automated sync resumed"
        ));
        resumed.push(app_name);
    }
    Ok(resumed)
}

/// Scales the [`WRITERS`] that exist to 0, recording their replicas in
/// [`REPLICAS_ANNOTATION`] unless an unfinished run recorded them already.
/// Returns each stopped Deployment with the replicas it goes back to.
pub(super) async fn stop_site(
    client: &kube::Client,
    name: &str,
) -> anyhow::Result<BTreeMap<String, i32>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), name);
    let mut stopped = BTreeMap::new();
    for writer in WRITERS {
        let Some(deployment) = deployments
            .get_opt(writer)
            .await
            .with_context(|| format!("cannot read Deployment {name}/{writer}"))?
        else {
            continue;
        };
        let recorded = deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REPLICAS_ANNOTATION))
            .and_then(|value| value.parse::<i32>().ok());
        let replicas = recorded.unwrap_or_else(|| {
            deployment
                .spec
                .as_ref()
                .and_then(|spec| spec.replicas)
                .unwrap_or(1)
        });
        let patch = json!({
            "metadata": {"annotations": {REPLICAS_ANNOTATION: replicas.to_string()}},
            "spec": {"replicas": 0},
        });
        deployments
            .patch(writer, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("cannot stop Deployment {name}/{writer}"))?;
        stopped.insert(writer.to_owned(), replicas);
    }
    // Their pods end before the data is touched: a worker still running
    // would write into the tables being replaced.
    let waited = phd_common::interrupt::or_interrupted(phd_common::wait::until(
        std::time::Duration::from_secs(300),
        std::time::Duration::from_secs(1),
        |_| {
            let deployments = deployments.clone();
            let names: Vec<String> = stopped.keys().cloned().collect();
            async move {
                for writer in &names {
                    let running = deployments
                        .get_opt(writer)
                        .await?
                        .and_then(|d| d.status)
                        .and_then(|status| status.replicas)
                        .unwrap_or(0);
                    if running > 0 {
                        return Ok::<_, kube::Error>(None);
                    }
                }
                Ok(Some(()))
            }
        },
    ))
    .await
    .map_err(|interrupted| {
        anyhow::Error::new(interrupted).context(format!(
            "interrupted while {name}'s site stops (its Deployments at 0 replicas, the sync paused); nothing was restored: run the same command again"
        ))
    })?;
    match waited {
        Ok(()) => {}
        Err(phd_common::wait::WaitError::Failed(error)) => {
            return Err(error).context("cannot read the stopped Deployments");
        }
        Err(_) => bail!(
            "the pods of {} of {name} did not end within 5 minutes of scaling them to 0; nothing was restored (run the same command again)",
            stopped.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
    if !stopped.is_empty() {
        output::info(format!(
            "stopped {} of {name} while the data is put back",
            stopped.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(stopped)
}

/// Scales every Deployment [`stop_site`] stopped back to its recorded
/// replicas and removes the record; returns their names.
pub(super) async fn start_site(client: &kube::Client, name: &str) -> anyhow::Result<Vec<String>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), name);
    let mut started = Vec::new();
    for writer in WRITERS {
        let Some(deployment) = deployments
            .get_opt(writer)
            .await
            .with_context(|| format!("cannot read Deployment {name}/{writer}"))?
        else {
            continue;
        };
        let Some(replicas) = deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REPLICAS_ANNOTATION))
            .and_then(|value| value.parse::<i32>().ok())
        else {
            continue;
        };
        let patch = json!({
            "metadata": {"annotations": {REPLICAS_ANNOTATION: null}},
            "spec": {"replicas": replicas},
        });
        deployments
            .patch(writer, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("cannot start Deployment {name}/{writer} again"))?;
        started.push(writer.to_owned());
    }
    if !started.is_empty() {
        output::info(format!("started {} of {name} again", started.join(", ")));
    }
    Ok(started)
}
