//! `kubectl phd instance update NAME`: change `config.yml`, re-render `env/`
//! with Tutor, re-apply the instance's cluster objects. With nothing to
//! change, no file changes.

use anyhow::{Context as _, bail};
use phd_common::{manifest, naming, tutor};

use super::create::{
    application_set, apply_application, apply_foundation, foundation_objects, require_argo,
    store_smtp_password,
};
use super::render::{self, TUTOR_VERSION_KEY};
use super::{CREDENTIALS_SECRET, Resources, SMTP_PASSWORD_KEY, instances_dir};
use crate::cli::InstanceUpdateArgs;
use crate::outcome::{Action, External, ObjectRef, Outcome};
use crate::output;
use crate::prompt;
use crate::session::Session;

/// Settings that hold secrets: kept in the instance's Secret, never in
/// config.yml (see plugins/tutor-phd/phd.py).
const SECRET_SETTINGS: [&str; 9] = [
    "OPENEDX_SECRET_KEY",
    "JWT_RSA_PRIVATE_KEY",
    "CMS_OAUTH2_SECRET",
    "MEILISEARCH_MASTER_KEY",
    "MEILISEARCH_API_KEY",
    "OPENEDX_MYSQL_PASSWORD",
    "MONGODB_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "SMTP_PASSWORD",
];
/// Settings fixed when the instance was created: its namespace and the names
/// of what was provisioned for it.
const FIXED_SETTINGS: [&str; 9] = [
    "ID",
    "K8S_NAMESPACE",
    "OPENEDX_MYSQL_DATABASE",
    "OPENEDX_MYSQL_USERNAME",
    "MONGODB_DATABASE",
    "FORUM_MONGODB_DATABASE",
    "MONGODB_USERNAME",
    "STORAGE_BUCKET_NAME",
    "MEILISEARCH_API_KEY_UID",
];

pub async fn update(session: &Session, args: &InstanceUpdateArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    let name = args.name.as_str();
    let changes = requested_changes(args)?;
    let smtp_password = if args.smtp_password_stdin {
        Some(prompt::secret_from_stdin("--smtp-password-stdin")?)
    } else {
        None
    };
    let environment = session.environment(args.environment.as_deref())?;
    let ingress = args.ingress.resolve(&session.settings())?;
    super::check_name(session, name, Some(&ingress.namespace))?;
    let dir = instances_dir(session)?.join(name);
    let config_path = dir.join("config.yml");
    // Held from reading config.yml until config.yml and env/ are written:
    // two updates of one instance at once would otherwise each write its own
    // change over the other's (and leave config.yml and env/ disagreeing).
    let lock = if args.dry_run {
        None
    } else {
        Some(super::lock_instances(session)?)
    };
    phd_common::fs::refuse_link(&dir)?;
    phd_common::fs::refuse_link(&config_path)?;
    let old = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "instance {name} has no {}; create it with `kubectl phd instance create {name}`",
            config_path.display()
        )
    })?;
    let new = set_settings(&old, &changes)?;
    let resources = Resources::from_config(&new)
        .with_context(|| format!("cannot use {}", config_path.display()))?;
    let config = render::parse_config(&new)?;
    render::check_identity(name, &config)?;
    let size = super::size::Size::from_config(&config)?;
    super::check_hosts(session, name, &config)?;
    let tutor = render::tutor_for(session, &config)?;
    let rendering = render::render(&tutor, &config, &ingress)?;
    let application_path = dir.join("application.yml");
    let application_text = std::fs::read_to_string(&application_path)
        .with_context(|| format!("cannot read {}", application_path.display()))?;
    let application = manifest::parse("application.yml", &application_text)?;
    let foundation = foundation_objects(name, &environment, &resources, &ingress.namespace, size)?;

    if args.dry_run {
        let env = render::write_env(&rendering, &dir, true)?;
        output::info("dry run: nothing is changed; this is what would change");
        if new != old {
            println!("# file {}", config_path.display());
        }
        for path in &env.written {
            println!("# file {}", dir.join("env").join(path).display());
        }
        for path in &env.removed {
            println!("# remove {}", dir.join("env").join(path).display());
        }
        if smtp_password.is_some() {
            println!("# Secret {name}/{CREDENTIALS_SECRET}: set key {SMTP_PASSWORD_KEY}");
        }
        return Ok(());
    }

    let client = if args.files_only {
        None
    } else {
        let cluster = session.connect().await?;
        require_argo(&cluster.client).await?;
        if let Some(namespace) = super::owned_namespace(&cluster.client, name).await? {
            super::create::check_recorded_resources(name, &namespace, &resources, &dir)?;
        }
        Some(cluster.client)
    };
    if new != old {
        phd_common::fs::write_atomic(&config_path, new.as_bytes(), 0o644)?;
        output::info(format!(
            "{}: set {}",
            config_path.display(),
            changes
                .iter()
                .map(|(key, _)| key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        output::info(format!("{}: unchanged", config_path.display()));
    }
    let env = render::write_env(&rendering, &dir, false)?;
    drop(lock);
    output::info(format!(
        "{} (Tutor {})",
        render::describe(&env, &dir),
        tutor.release.tutor
    ));
    let (details, mut external) =
        super::described(&dir, Some(&new), Some(environment.clone()), None, false);
    let mut changed = new != old || !env.is_empty();
    if changed {
        external.push(External::new("directory", dir.display().to_string(), None));
    }
    let mut outcome = Outcome::new("Instance", name, Action::Updated, details);
    if let Some(client) = client {
        let report = apply_foundation(&client, &foundation, name)
            .await
            .context("cannot update the instance namespace")?;
        output::info(format!("namespace {name}: {}", report.summary()));
        changed |= outcome.record(&report);
        super::bind_developers(&client, name).await?;
        // The rendered containers read key smtp-password: stored when given,
        // added empty to an instance made before it existed.
        if store_smtp_password(&client, name, smtp_password.as_deref()).await? {
            output::info(format!(
                "Secret {CREDENTIALS_SECRET}: stored key {SMTP_PASSWORD_KEY}"
            ));
            outcome.objects.push(ObjectRef::new(
                "Secret",
                Some(name),
                CREDENTIALS_SECRET,
                "updated",
            ));
            changed = true;
        }
        match application_set(&client, &environment).await? {
            Some(set) => output::info(format!(
                "Argo CD Application {name}-{environment}: kept by ApplicationSet {set}"
            )),
            None => {
                changed |= apply_application(&client, &application, &environment, &mut outcome)
                    .await
                    .context("cannot update the Argo CD Application")?;
            }
        }
    }
    outcome = outcome.on(session);
    if !changed {
        outcome.action = Action::Unchanged;
    }
    outcome.print(args.output)?;
    if (new != old || !env.is_empty()) && args.part_of.is_none() {
        output::info(format!(
            "Next: commit and push {dir}, then Argo CD syncs it:\n  git add {dir} && git commit -m 'Update instance {name}' && git push",
            dir = dir.display()
        ));
    }
    Ok(())
}

/// The settings to write, as (key, YAML value), checked before anything changes.
fn requested_changes(args: &InstanceUpdateArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut changes = Vec::new();
    if let Some(version) = &args.tutor_version {
        let release = tutor::release(version)?;
        changes.push((
            TUTOR_VERSION_KEY.to_owned(),
            serde_json::to_string(release.tutor)?,
        ));
    }
    if let Some(reference) = &args.edx_platform_version {
        if reference.trim().is_empty() {
            bail!("--edx-platform-version is empty");
        }
        super::check_plain(
            "--edx-platform-version",
            "EDX_PLATFORM_VERSION",
            &reference.as_str().into(),
        )?;
        changes.push((
            "EDX_PLATFORM_VERSION".to_owned(),
            serde_json::to_string(reference)?,
        ));
    }
    if let Some(size) = args.size {
        changes.push((
            super::size::SIZE_KEY.to_owned(),
            serde_json::to_string(size.as_str())?,
        ));
    }
    for item in &args.set {
        let (key, value) = item
            .split_once('=')
            .with_context(|| format!("--set {item}: expected KEY=VALUE"))?;
        check_setting(key)?;
        if value.contains('\n') {
            bail!("--set {key}: the value must be one line of YAML");
        }
        let parsed = serde_saphyr::from_str::<serde_json::Value>(value)
            .with_context(|| format!("--set {key}: {value:?} is not a YAML value"))?;
        super::check_plain(&format!("--set {key}"), key, &parsed)?;
        if key == "PLUGINS"
            && let Err(error) = render::check_plugins(Some(&parsed))
        {
            bail!("--set {key}: {error}");
        }
        changes.push((key.to_owned(), value.to_owned()));
    }
    Ok(changes)
}

/// A Tutor setting name that `--set` may change.
fn check_setting(key: &str) -> anyhow::Result<()> {
    let well_formed = key.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !well_formed {
        bail!("--set {key}: Tutor setting names are upper-case letters, digits and '_'");
    }
    let secret = SECRET_SETTINGS.contains(&key)
        || key.contains("PASSWORD")
        || key.ends_with("_SECRET")
        || key.ends_with("SECRET_KEY")
        || key.ends_with("PRIVATE_KEY");
    if secret {
        bail!(
            "--set {key}: that setting holds a secret; phd keeps secrets in the instance's Secret phd-instance-credentials, never in config.yml"
        );
    }
    if FIXED_SETTINGS.contains(&key) {
        bail!(
            "--set {key}: fixed when the instance was created (it names the instance's namespace, databases, bucket or search key, which already exist)"
        );
    }
    if key == TUTOR_VERSION_KEY {
        bail!("--set {key}: use --tutor-version");
    }
    if render::OWNED_SETTINGS.contains(&key) {
        bail!(
            "--set {key}: kubectl-phd decides that setting (its Tutor plugin, or the cluster's ingress setting in context.json)"
        );
    }
    Ok(())
}

/// `text` (a config.yml) with each top-level `key` set to its YAML `value`:
/// the line of an existing key (and the indented lines of its block value)
/// is replaced in place, comments and other lines are kept; a new key is
/// appended.
fn set_settings(text: &str, changes: &[(String, String)]) -> anyhow::Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (key, value) in changes {
        let prefix = format!("{key}:");
        let line = format!("{key}: {value}");
        match lines.iter().position(|l| l.starts_with(&prefix)) {
            Some(start) => {
                let mut end = start + 1;
                while end < lines.len()
                    && (lines[end].starts_with(' ') || lines[end].starts_with('-'))
                {
                    end += 1;
                }
                lines.splice(start..end, [line]);
            }
            None => lines.push(line),
        }
    }
    let mut result = lines.join("\n");
    result.push('\n');
    render::parse_config(&result).context("the changed config.yml would not be valid YAML")?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_replaced_in_place_or_appended() {
        let text = "# comment\nA: 1\nPLUGINS:\n  - mfe\n  - forum\nB: x\n";
        let changed = set_settings(
            text,
            &[
                ("A".into(), "2".into()),
                ("PLUGINS".into(), "[mfe]".into()),
                ("C".into(), "true".into()),
            ],
        )
        .unwrap();
        assert_eq!(changed, "# comment\nA: 2\nPLUGINS: [mfe]\nB: x\nC: true\n");
        assert_eq!(set_settings(text, &[]).unwrap(), text);
        assert_eq!(
            set_settings(&changed, &[("A".into(), "2".into())]).unwrap(),
            changed
        );
    }

    #[test]
    fn secrets_and_fixed_names_are_refused() {
        for key in [
            "OPENEDX_SECRET_KEY",
            "SMTP_PASSWORD",
            "MY_PRIVATE_KEY",
            "K8S_NAMESPACE",
            "STORAGE_BUCKET_NAME",
            "PHD_TUTOR_VERSION",
            "lower",
            "",
        ] {
            assert!(check_setting(key).is_err(), "{key} was accepted");
        }
        check_setting("PLATFORM_NAME").unwrap();
    }
}
