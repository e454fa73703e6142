//! `kubectl phd instance list` and `status NAME`: what the cluster and the
//! repository each have of every instance, and what is missing on either side.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams};
use phd_common::naming;
use phd_common::workflow::{self, Phase};
use serde::Serialize;

use super::{INSTANCE_LABEL, Resources, instances_dir};
use crate::cli::{InstanceListArgs, InstanceStatusArgs, ListFormat, OutputFormat};
use crate::output;
use crate::session::Session;
use phd_common::argo;

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct InstanceState {
    name: String,
    environment: Option<String>,
    namespace: bool,
    in_repository: bool,
    application: Option<String>,
    sync: Option<String>,
    health: Option<String>,
    /// Each provisioning Workflow: its phase and, when it failed, why.
    workflows: BTreeMap<String, WorkflowState>,
    host: Option<String>,
    /// The site's addresses: the hosts of its rendered Ingresses (LMS first).
    urls: Vec<String>,
    /// The Tutor release that renders it (`PHD_TUTOR_VERSION`) and its Open edX release.
    tutor_version: Option<String>,
    openedx_release: Option<String>,
    /// Images of the rendered Deployments (`status` only).
    images: Vec<String>,
    /// Argo CD sync hooks of the last sync (init and migration Jobs) and their phase.
    hooks: BTreeMap<String, String>,
    /// Argo CD's view of the last sync: the commit, its phase, message and
    /// end, the hooks not done (`null` without an Application).
    argo: Option<argo::SyncState>,
    problems: Vec<String>,
}

/// A provisioning Workflow as `list` and `status` show it (JSON keys
/// `phase`, one of Pending, Running, Succeeded, Failed, Deleted, and
/// `message`, null unless it failed).
#[derive(Debug, Clone, Serialize)]
struct WorkflowState {
    phase: &'static str,
    message: Option<String>,
}

impl WorkflowState {
    fn of(phase: Phase) -> Self {
        let (phase, message) = match phase {
            Phase::Pending => ("Pending", None),
            Phase::Running => ("Running", None),
            Phase::Succeeded => ("Succeeded", None),
            Phase::Failed(message) => ("Failed", Some(message)),
            Phase::Gone => ("Deleted", None),
        };
        Self { phase, message }
    }
}

impl std::fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{}: {message}", self.phase),
            None => f.write_str(self.phase),
        }
    }
}

impl InstanceState {
    fn provisioning(&self) -> String {
        if self.workflows.is_empty() {
            return "-".to_owned();
        }
        let phases: Vec<&str> = self.workflows.values().map(|w| w.phase).collect();
        for state in ["Failed", "Running", "Pending"] {
            if phases.contains(&state) {
                return state.to_lowercase();
            }
        }
        "succeeded".to_owned()
    }
}

pub async fn list(session: &Session, args: &InstanceListArgs) -> anyhow::Result<()> {
    let states = gather(session, None).await?;
    let states: Vec<InstanceState> = states.into_values().collect();
    match args.output {
        ListFormat::Table => print_table(&states, false),
        ListFormat::Wide => print_table(&states, true),
        ListFormat::Name => {
            for state in &states {
                println!("instance/{}", state.name);
            }
        }
        format => output::print_structured(&states, format)?,
    }
    Ok(())
}

pub async fn status(session: &Session, args: &InstanceStatusArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let mut states = gather(session, Some(&args.name)).await?;
    let Some(state) = states.remove(&args.name) else {
        bail!(
            "instance {} exists neither in the cluster nor in the repository",
            args.name
        );
    };
    match args.output {
        OutputFormat::Table => {
            print_table(std::slice::from_ref(&state), false);
            for (workflow, phase) in &state.workflows {
                println!("  Workflow {workflow}: {phase}");
            }
            if let Some(version) = &state.tutor_version {
                println!(
                    "  Tutor {version} (Open edX {})",
                    state
                        .openedx_release
                        .as_deref()
                        .unwrap_or("unknown release")
                );
            }
            for url in &state.urls {
                println!("  URL {url}");
            }
            for image in &state.images {
                println!("  image {image}");
            }
            for (hook, phase) in &state.hooks {
                println!("  sync hook {hook}: {phase}");
            }
            if let Some(argo) = &state.argo {
                println!("  Argo CD: {}", argo.summary());
                if let Some(message) = &argo.message {
                    println!("  last sync: {message}");
                }
            }
        }
        format => output::print_structured(&state, format)?,
    }
    Ok(())
}

/// The image of every container the instance's rendered Deployments run.
fn rendered_images(instance_dir: &std::path::Path) -> Vec<String> {
    let path = instance_dir.join("env").join("k8s").join("deployments.yml");
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut images: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().trim_start_matches("- ").strip_prefix("image:"))
        .map(|image| image.trim().trim_matches('"').to_owned())
        .filter(|image| !image.is_empty())
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The table of `list` and `status`; `wide` adds the environment, the
/// Application, the Tutor and Open edX releases.
fn print_table(states: &[InstanceState], wide: bool) {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut headers = vec![
        "NAME",
        "NAMESPACE",
        "REPOSITORY",
        "SYNC",
        "HEALTH",
        "PROVISIONING",
        "HOST",
    ];
    if wide {
        headers.extend(["ENVIRONMENT", "APPLICATION", "TUTOR", "OPENEDX"]);
    }
    headers.push("PROBLEMS");
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|state| {
            let mut row = vec![
                state.name.clone(),
                yes_no(state.namespace),
                yes_no(state.in_repository),
                text(&state.sync),
                text(&state.health),
                state.provisioning(),
                text(&state.host),
            ];
            if wide {
                row.extend([
                    text(&state.environment),
                    text(&state.application),
                    text(&state.tutor_version),
                    text(&state.openedx_release),
                ]);
            }
            row.push(state.problems.join("; "));
            row
        })
        .collect();
    output::print_table(&headers, &rows);
}

async fn gather(
    session: &Session,
    only: Option<&str>,
) -> anyhow::Result<BTreeMap<String, InstanceState>> {
    let cluster = session.connect().await?;
    let client = cluster.client;
    // Instances are Argo CD Applications made by Argo Workflows: without
    // Argo there is none to list, and an empty table would hide why.
    super::create::require_argo(&client).await?;
    let selector = match only {
        Some(name) => ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}")),
        None => ListParams::default().labels(INSTANCE_LABEL),
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let applications = argo::applications(&client);
    let workflows: Api<DynamicObject> = Api::all_with(client.clone(), &workflow::resource());
    let sets = argo::application_sets(&client);
    let all = ListParams::default();
    let (namespaces, applications, workflows, sets) = tokio::join!(
        namespaces.list_metadata(&selector),
        applications.list(&selector),
        workflows.list(&selector),
        sets.list_metadata(&all)
    );
    // The instances' ApplicationSets, by name; none when Argo CD lacks them.
    let sets: Vec<String> = sets
        .map(|list| {
            list.items
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    // Argo's kinds are served (checked above), so a failed list is an error.
    let namespaces = namespaces.context("cannot list instance namespaces")?.items;
    let applications = applications
        .context("cannot list Argo CD Applications")?
        .items;
    let workflows = workflows.context("cannot list Workflows")?.items;

    let mut states: BTreeMap<String, InstanceState> = BTreeMap::new();
    let label = |labels: &Option<BTreeMap<String, String>>| {
        labels.as_ref().and_then(|l| l.get(INSTANCE_LABEL)).cloned()
    };
    for namespace in namespaces {
        if let Some(name) = label(&namespace.metadata.labels) {
            let entry = state(&mut states, &name);
            entry.namespace = true;
            entry.environment = namespace
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(super::ENVIRONMENT_LABEL))
                .cloned();
        }
    }
    for application in applications {
        if let Some(name) = label(&application.metadata.labels) {
            let entry = state(&mut states, &name);
            entry.application = application.metadata.name.clone();
            entry.sync = application.data["status"]["sync"]["status"]
                .as_str()
                .map(str::to_owned);
            entry.health = application.data["status"]["health"]["status"]
                .as_str()
                .map(str::to_owned);
            let state = argo::SyncState::of(&application);
            if state.failed() {
                entry.problems.push(format!(
                    "last sync {} at {}: {}; Argo CD's automated sync does not retry a failed commit: fix the cause, then `kubectl phd instance sync {name}`",
                    state.operation.as_deref().unwrap_or("failed"),
                    state.operation_revision.as_deref().map_or("?", |r| &r[..r.len().min(12)]),
                    state.message.as_deref().unwrap_or("no message"),
                ));
            }
            entry.argo = Some(state);
            let resources =
                &application.data["status"]["operationState"]["syncResult"]["resources"];
            for resource in resources.as_array().into_iter().flatten() {
                if resource["hookType"].is_string() {
                    entry.hooks.insert(
                        resource["name"].as_str().unwrap_or_default().to_owned(),
                        resource["hookPhase"]
                            .as_str()
                            .unwrap_or("Unknown")
                            .to_owned(),
                    );
                }
            }
        }
    }
    for workflow in workflows {
        if let Some(name) = label(&workflow.metadata.labels) {
            let phase = WorkflowState::of(Phase::of(
                &serde_json::to_value(&workflow).unwrap_or_default(),
            ));
            let entry = state(&mut states, &name);
            entry
                .workflows
                .insert(workflow.metadata.name.clone().unwrap_or_default(), phase);
        }
    }

    let dir = instances_dir(session)?;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if only.is_some_and(|only| only != name) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path().join("config.yml")) else {
                continue;
            };
            let config = serde_saphyr::from_str::<serde_json::Value>(&text).unwrap_or_default();
            let text_of = |key: &str| config[key].as_str().map(str::to_owned);
            let host = text_of("LMS_HOST");
            let known = Resources::from_config(&text).is_ok();
            let instance = state(&mut states, &name);
            instance.in_repository = true;
            instance.urls = super::site_urls(&entry.path(), &config);
            instance.host = host;
            if let Ok(release) =
                super::render::release_of(config.as_object().unwrap_or(&serde_json::Map::new()))
            {
                instance.tutor_version = Some(release.tutor.to_owned());
                instance.openedx_release = Some(release.name.to_owned());
            }
            if only.is_some() {
                instance.images = rendered_images(&entry.path());
            }
            if !known {
                instance
                    .problems
                    .push("config.yml lacks database or storage settings".into());
            }
        }
    }
    for instance in states.values_mut() {
        if !instance.in_repository {
            instance.problems.push(format!("not in {}", dir.display()));
        }
        if !instance.namespace {
            instance.problems.push("no namespace in the cluster".into());
        }
        if instance.application.is_none() {
            let set = format!(
                "phd-instances-{}",
                instance.environment.as_deref().unwrap_or("production")
            );
            instance.problems.push(if sets.contains(&set) && instance.in_repository {
                format!("no Argo CD Application yet: ApplicationSet {set} makes it once the instance is pushed")
            } else {
                "no Argo CD Application".into()
            });
        }
        if instance.workflows.values().any(|w| w.phase == "Failed") {
            instance
                .problems
                .push("a provisioning Workflow failed".into());
        }
    }
    Ok(states)
}

fn state<'a>(states: &'a mut BTreeMap<String, InstanceState>, name: &str) -> &'a mut InstanceState {
    states
        .entry(name.to_owned())
        .or_insert_with(|| InstanceState {
            name: name.to_owned(),
            ..Default::default()
        })
}
