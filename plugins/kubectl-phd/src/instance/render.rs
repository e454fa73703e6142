//! Rendering an instance's `env/` with Tutor, Drydock and phd's Tutor plugin
//! (SPEC.md section 7.9); shared by `instance create` and `instance update`.

use std::path::Path;

use anyhow::Context as _;
use phd_common::config::{IngressSetting, Setting};
use phd_common::tutor::{self, Release, Rendering, SyncReport, Tutor};
use serde_json::{Map, Value};

use crate::output;
use crate::session::Session;

/// The Tutor setting that names the release an instance is rendered with.
pub const TUTOR_VERSION_KEY: &str = "PHD_TUTOR_VERSION";

/// The Tutor release `config` (the text of `config.yml`) asks for, the
/// default release when it names none.
pub fn release_of(config: &Map<String, Value>) -> anyhow::Result<&'static Release> {
    match config.get(TUTOR_VERSION_KEY) {
        Some(Value::String(version)) if !version.is_empty() => Ok(tutor::release(version)?),
        Some(Value::Number(version)) => Ok(tutor::release(&version.to_string())?),
        _ => Ok(tutor::default_release()),
    }
}

/// Parses `config.yml` into its top-level settings.
pub fn parse_config(text: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_saphyr::from_str::<Value>(text).context("config.yml is not valid YAML")? {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!("config.yml is not a mapping of Tutor settings"),
    }
}

/// Finds (installing on first use) the Tutor of the release `config` names,
/// before anything changes: a missing Python or a broken install is an error here.
pub fn tutor_for(session: &Session, config: &Map<String, Value>) -> anyhow::Result<Tutor> {
    let release = release_of(config)?;
    let cache = tutor::cache_dir(&session.env);
    let python = session
        .settings()
        .get(Setting::Python, None)?
        .map(|resolved| resolved.value);
    Ok(Tutor::ensure(
        &cache,
        release,
        python.as_deref(),
        &|message| output::info(message),
    )?)
}

/// Renders `config` with `tutor`. The cluster's ingress setting is given to
/// Tutor at render time (it belongs to the cluster, not to config.yml).
pub fn render(
    tutor: &Tutor,
    config: &Map<String, Value>,
    ingress: &IngressSetting,
) -> anyhow::Result<Rendering> {
    check_plugins(config.get("PLUGINS"))?;
    // No value reaches Tutor as code, whatever its source: this is the one
    // door from config.yml (flags and --set included) to Tutor.
    tutor::check_config(config)?;
    check_owned_settings(config)?;
    let mut config = config.clone();
    config.insert(
        "PHD_INGRESS_CLASS".into(),
        Value::String(ingress.class.clone()),
    );
    config.insert(
        "PHD_CLUSTER_ISSUER".into(),
        Value::String(ingress.cluster_issuer.clone()),
    );
    // JSON is YAML: Tutor reads it as its config.yml.
    let text = serde_json::to_string_pretty(&Value::Object(config))?;
    let started = std::time::Instant::now();
    let rendering = tutor.render(&text).with_context(|| {
        format!(
            "cannot render the instance with Tutor {}",
            tutor.release.tutor
        )
    })?;
    output::debug(format!(
        "Tutor {} rendered in {} ms",
        tutor.release.tutor,
        started.elapsed().as_millis()
    ));
    Ok(rendering)
}

/// Settings phd's Tutor plugin and the cluster decide, which an instance's
/// config.yml may not set (a value there would win over the plugin's:
/// Tutor lets config.yml override plugins): Drydock's init jobs as sync
/// hooks without the database jobs (a changed list breaks the kustomize
/// build or runs jobs that need admin credentials), no Drydock ingress or
/// issuer, no Drydock SCORM storage (SCORM packages go to the bucket), no
/// Drydock PodDisruptionBudget for LMS and CMS (phd renders one per size
/// tier; two budgets over the same pods make evictions fail), the
/// credentials Secret's name, and the cluster's ingress setting, given at
/// render time.
pub const OWNED_SETTINGS: [&str; 10] = [
    "DRYDOCK_INIT_JOBS",
    "DRYDOCK_INIT_JOBS_EXCLUDED",
    "DRYDOCK_INGRESS",
    "DRYDOCK_AUTO_TLS",
    "DRYDOCK_ENABLE_SCORM",
    "DRYDOCK_PDB_MINAVAILABLE_PERCENTAGE_LMS",
    "DRYDOCK_PDB_MINAVAILABLE_PERCENTAGE_CMS",
    "PHD_CREDENTIALS_SECRET",
    "PHD_INGRESS_CLASS",
    "PHD_CLUSTER_ISSUER",
];

/// Refuses a config.yml that sets one of [`OWNED_SETTINGS`].
pub fn check_owned_settings(config: &Map<String, Value>) -> anyhow::Result<()> {
    if let Some(key) = OWNED_SETTINGS.iter().find(|key| config.contains_key(**key)) {
        anyhow::bail!(
            "config.yml sets {key}, which kubectl-phd decides (its Tutor plugin, or the cluster's ingress setting in context.json): remove that line"
        );
    }
    Ok(())
}

/// The settings naming the hosts browsers reach an instance at (Tutor's;
/// Meilisearch's public host is `meilisearch.<LMS_HOST>`).
pub const HOST_SETTINGS: [&str; 4] = ["LMS_HOST", "CMS_HOST", "PREVIEW_LMS_HOST", "MFE_HOST"];

/// The browser hosts of `config`, lower-cased: [`HOST_SETTINGS`] and
/// Meilisearch's public host.
pub fn hosts_of(config: &Map<String, Value>) -> Vec<(String, String)> {
    let mut hosts: Vec<(String, String)> = HOST_SETTINGS
        .iter()
        .filter_map(|key| {
            let host = config.get(*key)?.as_str()?.trim().to_ascii_lowercase();
            (!host.is_empty()).then(|| ((*key).to_owned(), host))
        })
        .collect();
    // Meilisearch's public host: its URL's host when config.yml sets one,
    // else Tutor's default, meilisearch.<LMS_HOST>.
    let meilisearch = match config.get("MEILISEARCH_PUBLIC_URL").and_then(Value::as_str) {
        Some(url) if !url.trim().is_empty() => {
            let rest = url
                .trim()
                .split_once("://")
                .map_or(url.trim(), |(_, rest)| rest);
            let host = rest.split(['/', ':', '?', '#']).next().unwrap_or_default();
            Some(host.to_ascii_lowercase())
        }
        _ => hosts
            .iter()
            .find(|(key, _)| key == "LMS_HOST")
            .map(|(_, lms)| format!("meilisearch.{lms}")),
    };
    if let Some(host) = meilisearch.filter(|host| !host.is_empty()) {
        hosts.push(("MEILISEARCH_PUBLIC_URL".to_owned(), host));
    }
    hosts
}

/// An instance's hosts are its own: none may be another instance's host
/// (read from the other `config.yml` files below `instances`), one of the
/// cluster's own (`argocd.<domain>`, `workflows.<domain>`, when `domain` is
/// known), or used twice by the instance itself. Otherwise two Ingresses
/// claim one host, and whichever the controller picks serves the other's
/// site (or Argo CD's login page).
pub fn check_hosts(
    name: &str,
    config: &Map<String, Value>,
    instances: &Path,
    domain: Option<&str>,
) -> anyhow::Result<()> {
    let hosts = hosts_of(config);
    for (index, (key, host)) in hosts.iter().enumerate() {
        if let Some((other, _)) = hosts[..index].iter().find(|(_, h)| h == host) {
            anyhow::bail!(
                "{key} and {other} of instance {name} are both {host}: each host serves one site"
            );
        }
    }
    if let Some(domain) = domain {
        for cluster_host in
            ["argocd", "workflows"].map(|part| format!("{part}.{}", domain.to_ascii_lowercase()))
        {
            if let Some((key, _)) = hosts.iter().find(|(_, host)| *host == cluster_host) {
                anyhow::bail!(
                    "{key} of instance {name} is {cluster_host}, a host of the cluster's own services"
                );
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(instances) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        if other == name {
            continue;
        }
        let path = entry.path().join("config.yml");
        // Never through a link, and an unreadable neighbour is not this
        // instance's error.
        if phd_common::fs::refuse_link(&path).is_err() {
            continue;
        }
        let Some(theirs) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse_config(&text).ok())
        else {
            continue;
        };
        for (their_key, their_host) in hosts_of(&theirs) {
            if let Some((key, _)) = hosts.iter().find(|(_, host)| *host == their_host) {
                anyhow::bail!(
                    "{key} of instance {name} is {their_host}, already {their_key} of instance {other} ({}): each host serves one site",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// The Tutor setting that names the namespace Tutor's manifests deploy into.
pub const NAMESPACE_KEY: &str = "K8S_NAMESPACE";

/// `config` (an instance's config.yml) must deploy into the instance's own
/// namespace: `K8S_NAMESPACE` is the instance's name. A hand-edited
/// config.yml naming another namespace (`kube-system`, another instance's)
/// would otherwise re-target the instance's manifests there.
pub fn check_identity(name: &str, config: &Map<String, Value>) -> anyhow::Result<()> {
    // Tutor's ID names the instance in every object's labels.
    if let Some(id) = config.get("ID")
        && id.as_str() != Some(name)
    {
        anyhow::bail!(
            "config.yml of instance {name} sets ID to {id}, but an instance's ID is its name: set it back to {name:?}"
        );
    }
    // phd's Tutor plugin stores media on S3 or Spaces; anything else would
    // stop the LMS and CMS at start-up.
    if let Some(kind) = config.get("STORAGE_TYPE")
        && !matches!(kind.as_str(), Some("s3" | "spaces"))
    {
        anyhow::bail!(
            "config.yml of instance {name} sets STORAGE_TYPE to {kind}: the bucket is \"s3\" or \"spaces\""
        );
    }
    match config.get(NAMESPACE_KEY) {
        Some(Value::String(namespace)) if namespace == name => Ok(()),
        Some(other) => anyhow::bail!(
            "config.yml of instance {name} sets {NAMESPACE_KEY} to {other}, but an instance deploys into its own namespace {name}: set it back to {name:?}"
        ),
        None => anyhow::bail!(
            "config.yml of instance {name} has no {NAMESPACE_KEY}; an instance deploys into its own namespace: add `{NAMESPACE_KEY}: {name}`"
        ),
    }
}

/// Tutor plugins every instance keeps: without `phd` Tutor would write its
/// generated secrets into env/, without `drydock` its init jobs would not be
/// Argo CD hooks.
pub const REQUIRED_PLUGINS: [&str; 2] = ["drydock", tutor::PLUGIN_NAME];

/// `PLUGINS` of a config.yml must list [`REQUIRED_PLUGINS`].
pub fn check_plugins(plugins: Option<&Value>) -> anyhow::Result<()> {
    let listed: Vec<&str> = plugins
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = REQUIRED_PLUGINS
        .iter()
        .copied()
        .filter(|plugin| !listed.contains(plugin))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "PLUGINS must keep {}: without phd Tutor would write the instance's secrets into env/, without drydock its init jobs would not be Argo CD sync hooks",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// Makes `dir/env` hold what Argo CD reads of `rendering`
/// ([`tutor::deployed_files`]: kustomization.yml and the files it names);
/// reports what changed.
pub fn write_env(rendering: &Rendering, dir: &Path, dry_run: bool) -> anyhow::Result<SyncReport> {
    let target = dir.join("env");
    let source = rendering.env_dir();
    let files = tutor::deployed_files(&source)?;
    let report = tutor::sync_files(&source, files, &target, dry_run)
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(report)
}

/// One line on what [`write_env`] did.
pub fn describe(report: &SyncReport, dir: &Path) -> String {
    let env = dir.join("env");
    if report.is_empty() {
        format!("{}: unchanged", env.display())
    } else {
        format!(
            "{}: {} files written, {} removed",
            env.display(),
            report.written.len(),
            report.removed.len()
        )
    }
}
