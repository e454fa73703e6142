//! `kubectl phd infra [TOFU ARGS...]` and `kubectl phd kubeconfig [--save]`:
//! the cluster repository's OpenTofu root module (SPEC.md section 7.7).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use phd_common::ClusterRepository;
use phd_common::tofu::Tool;
use serde_json::{Value, json};

use crate::cli::{InfraArgs, KubeconfigArgs};
use crate::output;
use crate::session::Session;

const OUTPUT_TIMEOUT: Duration = Duration::from_secs(120);

fn repository(session: &Session) -> anyhow::Result<&ClusterRepository> {
    session.repository.as_ref().context(
        "not inside a cluster repository (no context.json here or above); run this from a repository made by `kubectl phd cluster create`",
    )
}

/// The environment variables the state backend of `dir` needs: an S3 (or
/// Spaces, which speaks S3) backend reads its credentials from the
/// environment. With them, what the keys must be: a Spaces access key when
/// the backend's endpoint is DigitalOcean's (from a trial: the bare AWS
/// names sent DigitalOcean operators looking for AWS keys).
fn backend_credentials(dir: &Path) -> anyhow::Result<Option<(Vec<&'static str>, &'static str)>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut needed = None;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "tf") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let compact: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            if compact.contains("backend \"s3\"") {
                let keys = if compact.contains("digitaloceanspaces.com") {
                    "a DigitalOcean Spaces access key (Control Panel: Spaces Object Storage, Access Keys), which the state bucket takes under the AWS names"
                } else {
                    "an AWS access key, or set AWS_PROFILE"
                };
                needed = Some((vec!["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], keys));
            }
        }
    }
    Ok(needed)
}

/// Runs tofu (terraform when tofu is absent) in `infrastructure/` with the
/// given arguments; its exit code becomes ours.
pub fn infra(session: &Session, args: &InfraArgs) -> anyhow::Result<ExitCode> {
    let dir = repository(session)?.infrastructure_dir();
    if !dir.is_dir() {
        bail!("{} does not exist", dir.display());
    }
    // A named AWS profile (shared credentials, SSO) stands in for the keys.
    if let Some((names, keys)) = backend_credentials(&dir)?
        && session.env_var("AWS_PROFILE").is_none()
    {
        let missing: Vec<&str> = names
            .into_iter()
            .filter(|name| session.env_var(name).is_none())
            .collect();
        if !missing.is_empty() {
            bail!(
                "the state backend of {} needs credentials in the environment; missing: {} ({keys})",
                dir.display(),
                missing.join(", ")
            );
        }
    }
    let tool = Tool::find()?;
    output::debug(format!(
        "running {} {} in {}",
        tool.name,
        args.args.join(" "),
        dir.display()
    ));
    let status = std::process::Command::new(&tool.path)
        .args(&args.args)
        .current_dir(&dir)
        .status()
        .with_context(|| format!("cannot run {}", tool.path.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// Prints the infrastructure's `kubeconfig` output, or merges it into the
/// user's kubeconfig as a context of its own.
pub async fn kubeconfig(session: &Session, args: &KubeconfigArgs) -> anyhow::Result<()> {
    let repository = repository(session)?;
    let dir = repository.infrastructure_dir();
    let tool = Tool::find()?;
    let mut text = None;
    for output_name in ["kubeconfig", "kubeconfig_content"] {
        if let Some(found) = tool.output_raw(&dir, output_name, OUTPUT_TIMEOUT).await? {
            text = Some(found);
            break;
        }
    }
    let text = text.with_context(|| {
        format!(
            "`{tool} output kubeconfig` in {} gave nothing; has the infrastructure been applied?",
            dir.display()
        )
    })?;
    let generated: Value = serde_saphyr::from_str(&text)
        .ok()
        .filter(|value: &Value| value["clusters"].as_array().is_some_and(|c| !c.is_empty()))
        .with_context(|| {
            format!(
                "the `kubeconfig` output of {} is not a kubeconfig",
                dir.display()
            )
        })?;
    if !args.save {
        print!("{text}");
        return Ok(());
    }
    let name = match &args.context_name {
        Some(name) => name.clone(),
        None => repository
            .context
            .cluster_name
            .clone()
            .map(|n| phd_common::naming::slug(&n))
            .filter(|slug| !slug.is_empty())
            .map_or_else(|| "phd".to_owned(), |slug| format!("phd-{slug}")),
    };
    let target = target_kubeconfig(session)?;
    let existing = match std::fs::read_to_string(&target) {
        // Where it failed, never its content (a kubeconfig holds tokens and keys).
        Ok(text) => serde_saphyr::from_str(&text).map_err(|error| {
            anyhow::anyhow!(
                "{} is not valid YAML: {}",
                target.display(),
                phd_common::yaml_error::describe(&error)
            )
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            json!({"apiVersion": "v1", "kind": "Config"})
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", target.display()));
        }
    };
    let merged = merge(existing, &generated, &name)?;
    write_private(&target, &serde_saphyr::to_string(&merged)?)?;
    output::info(format!(
        "saved context {name} in {}; use it with `kubectl --context {name}` or `kubectl config use-context {name}`",
        target.display()
    ));
    Ok(())
}

/// The file kubectl would write: the first of `KUBECONFIG`, else `~/.kube/config`.
fn target_kubeconfig(session: &Session) -> anyhow::Result<PathBuf> {
    if let Some(list) = session.env_var("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = session
        .env_var("HOME")
        .or_else(|| session.env_var("USERPROFILE"))
        .context("HOME is not set")?;
    Ok(Path::new(&home).join(".kube").join("config"))
}

/// `existing` with the first cluster, user and context of `generated` added
/// under `name`, replacing only entries of that name.
fn merge(mut existing: Value, generated: &Value, name: &str) -> anyhow::Result<Value> {
    let context = generated["contexts"]
        .as_array()
        .and_then(|contexts| {
            let current = generated["current-context"].as_str();
            contexts
                .iter()
                .find(|c| Some(c["name"].as_str().unwrap_or_default()) == current)
                .or(contexts.first())
        })
        .cloned();
    let cluster_name = context
        .as_ref()
        .and_then(|c| c["context"]["cluster"].as_str())
        .unwrap_or_default()
        .to_owned();
    let user_name = context
        .as_ref()
        .and_then(|c| c["context"]["user"].as_str())
        .unwrap_or_default()
        .to_owned();
    let pick = |list: &str, wanted: &str| {
        generated[list]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == wanted).or(items.first()))
            .cloned()
    };
    let cluster =
        pick("clusters", &cluster_name).context("the kubeconfig output has no cluster")?;
    let user = pick("users", &user_name).context("the kubeconfig output has no user")?;
    let mut context_body = context
        .map(|c| c["context"].clone())
        .unwrap_or_else(|| json!({}));
    context_body["cluster"] = json!(name);
    context_body["user"] = json!(name);
    for (list, entry) in [
        (
            "clusters",
            json!({"name": name, "cluster": cluster["cluster"]}),
        ),
        ("users", json!({"name": name, "user": user["user"]})),
        ("contexts", json!({"name": name, "context": context_body})),
    ] {
        if !existing[list].is_array() {
            existing[list] = json!([]);
        }
        if let Some(items) = existing[list].as_array_mut() {
            items.retain(|item| item["name"] != name);
            items.push(entry);
        }
    }
    if existing["current-context"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        existing["current-context"] = json!(name);
    }
    Ok(existing)
}

/// Writes `text` to `path` through a temporary file in the same directory,
/// readable by the owner only. A `path` that is a symbolic link (a
/// kubeconfig kept in a dotfiles folder) is written through: its target is
/// replaced and the link kept.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let resolved = if path.is_symlink() {
        std::fs::canonicalize(path)
            .with_context(|| format!("{} is a link to nothing", path.display()))?
    } else {
        path.to_path_buf()
    };
    let path = resolved.as_path();
    let dir = path
        .parent()
        .context("the kubeconfig path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).context("cannot write the kubeconfig")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    file.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_other_entries_and_replaces_its_own() {
        let existing = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "mine",
            "clusters": [{"name": "mine", "cluster": {"server": "https://mine"}}, {"name": "phd-a", "cluster": {"server": "https://old"}}],
            "users": [{"name": "mine", "user": {"token": "t"}}],
            "contexts": [{"name": "mine", "context": {"cluster": "mine", "user": "mine"}}],
        });
        let generated = json!({
            "clusters": [{"name": "do-x", "cluster": {"server": "https://new"}}],
            "users": [{"name": "do-x-admin", "user": {"token": "new"}}],
            "contexts": [{"name": "do-x", "context": {"cluster": "do-x", "user": "do-x-admin"}}],
            "current-context": "do-x",
        });
        let merged = merge(existing, &generated, "phd-a").expect("merge");
        assert_eq!(
            merged["current-context"], "mine",
            "the user's current context stays"
        );
        let servers: Vec<&str> = merged["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .filter_map(|c| c["cluster"]["server"].as_str())
            .collect();
        assert_eq!(servers, ["https://mine", "https://new"]);
        assert_eq!(
            merged["contexts"][1],
            json!({"name": "phd-a", "context": {"cluster": "phd-a", "user": "phd-a"}})
        );
    }
}
