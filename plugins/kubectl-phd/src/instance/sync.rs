//! `kubectl phd instance sync NAME` (issue 30): resumes a failed or stuck
//! sync of an instance and waits for it.
//!
//! Argo CD's automated sync never retries a commit whose sync failed
//! (argoproj/argo-cd#18442): once the cause is fixed (an admission policy, a
//! quota, an image), the site stays OutOfSync or Degraded until someone asks.
//! This asks, as `argocd app sync` does (the Application's `operation`), or
//! waits for the sync that already runs, until the Application is Synced and
//! Healthy with every hook done, or the sync fails (Argo CD's message), or
//! `--timeout` passes (where it stands).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use phd_common::argo::{self, SyncState};
use phd_common::naming;
use serde::Serialize;

use crate::cli::{InstanceSyncArgs, OutputFormat};
use crate::output;
use crate::progress::Progress;
use crate::session::Session;

/// The result of `instance sync -o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncResult {
    name: String,
    application: String,
    /// `requested` (a new sync), `running` (one was running: waited for).
    action: &'static str,
    #[serde(flatten)]
    state: SyncState,
}

pub async fn sync(session: &Session, args: &InstanceSyncArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let name = args.name.as_str();
    let _handling =
        phd_common::interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    let cluster = session.connect().await?;
    let client = cluster.client;
    super::create::require_argo(&client).await?;
    let application = argo::instance_application(&client, name)
        .await
        .with_context(|| format!("cannot read the Argo CD Application of {name}"))?
        .with_context(|| {
            format!(
                "instance {name} has no Argo CD Application: push instances/{name} (the cluster repository's ApplicationSet makes it) or run `kubectl phd instance create {name}`"
            )
        })?;
    let app_name = application
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| format!("{name}-production"));
    if application
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(super::restore::PAUSED_ANNOTATION))
    {
        bail!(
            "a restore of {name} is unfinished (its sync is paused and its site stopped): run the `kubectl phd instance restore {name} --from POINT --yes` it asked for, which finishes it and resumes the sync"
        );
    }
    let before = SyncState::of(&application);
    // Whole seconds, as Argo CD writes finishedAt.
    let asked = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())?;
    let action = if before.operation.as_deref() == Some("Running") {
        output::info(format!(
            "Argo CD Application {app_name}: a sync is running{}; waiting for it",
            before
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ));
        "running"
    } else {
        argo::sync(&client, &app_name)
            .await
            .with_context(|| format!("cannot ask Argo CD to sync {app_name}"))?;
        output::info(format!(
            "Argo CD Application {app_name}: sync requested (was: {})",
            before.summary()
        ));
        "requested"
    };
    if args.no_wait {
        return print(name, &app_name, action, before, args.output);
    }
    let state = wait(&client, &app_name, asked, action == "running", args.timeout).await?;
    output::info(format!(
        "Argo CD Application {app_name}: {}",
        state.summary()
    ));
    print(name, &app_name, action, state, args.output)
}

fn print(
    name: &str,
    application: &str,
    action: &'static str,
    state: SyncState,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let result = SyncResult {
        name: name.to_owned(),
        application: application.to_owned(),
        action,
        state,
    };
    match format {
        OutputFormat::Table => Ok(()),
        format => output::print_structured(&result, format),
    }
}

/// Waits until the sync asked for at `asked` (or, `running`, the one that
/// was running then) has ended and the Application is settled.
async fn wait(
    client: &kube::Client,
    app_name: &str,
    asked: jiff::Timestamp,
    running: bool,
    timeout: Duration,
) -> anyhow::Result<SyncState> {
    let progress = Progress::new(format!("syncing {app_name}"));
    let start = Instant::now();
    let applications = argo::applications(client);
    loop {
        let application = applications
            .get(app_name)
            .await
            .with_context(|| format!("cannot read Argo CD Application {app_name}"))?;
        let state = SyncState::of(&application);
        // Ours: the sync phd asked for (Argo CD records who asked and when
        // it started), not one that ended, or a retry that failed, before;
        // or, when one was running, that one.
        let ours = if running {
            !state.finished_before(asked)
        } else {
            state.asked_by_since("kubectl-phd", asked)
        };
        let ended = matches!(
            state.operation.as_deref(),
            Some("Succeeded" | "Failed" | "Error")
        ) && state.finished_at.is_some();
        if ours && ended {
            if state.failed() {
                progress.finish();
                bail!(
                    "Argo CD's sync of {app_name} failed{}: {}{}",
                    state
                        .operation_revision
                        .as_deref()
                        .map(|r| format!(" at commit {r}"))
                        .unwrap_or_default(),
                    state.message.as_deref().unwrap_or("no message"),
                    if state.unfinished_hooks.is_empty() {
                        String::new()
                    } else {
                        format!(" (hooks: {})", state.unfinished_hooks.join(", "))
                    }
                );
            }
            if state.settled() {
                progress.finish();
                return Ok(state);
            }
        }
        if start.elapsed() >= timeout {
            progress.finish();
            bail!(
                "Argo CD Application {app_name} is not Synced and Healthy after {}s: {}",
                timeout.as_secs(),
                state.summary()
            );
        }
        progress.update(&format!(
            "{} ({}s)",
            state.summary(),
            start.elapsed().as_secs()
        ));
        phd_common::interrupt::or_interrupted(tokio::time::sleep(Duration::from_secs(2)))
            .await
            .map_err(|interrupted| {
                anyhow::Error::new(interrupted).context(format!(
                    "interrupted while waiting for the sync of {app_name}; it goes on in Argo CD (`kubectl phd instance status` shows it)"
                ))
            })?;
    }
}
