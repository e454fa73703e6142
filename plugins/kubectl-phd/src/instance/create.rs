//! `kubectl phd instance create NAME`

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use include_dir::{Dir, include_dir};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, PostParams};
use phd_common::apply::Applier;
use phd_common::config::{Credential, Setting};
use phd_common::manifest::{self, Document};
use phd_common::render::{self as scaffold, RenderedFile};
use phd_common::tutor::{Rendering, SyncReport};
use phd_common::workflow::{self, Phase, Submitted};
use phd_common::{interrupt, naming, password};
use serde_json::{Map, Value, json};

use super::size::Size;
use super::{
    CREDENTIALS_SECRET, ENVIRONMENT_LABEL, EXECUTOR, INSTANCE_LABEL, Operation,
    PROVISIONING_SECRET, PULL_SECRET, Provisioning, Resources, SMTP_PASSWORD_KEY,
    STORAGE_CREDENTIALS, instances_dir, registry_pull_secret, render,
};
use crate::cli::InstanceCreateArgs;
use crate::outcome::{Action, InstanceDetails, ObjectRef, Outcome};
use crate::output;
use crate::session::Session;

static INSTANCE_SCAFFOLD: Dir<'static> =
    include_dir!("$CARGO_MANIFEST_DIR/../../templates/instance");
const BUCKET_SUFFIX_LENGTH: usize = 7;

/// The suffix of a new instance's bucket name (`phd-<name>-<suffix>`): 7
/// lower-case letters and digits from a hash of the cluster repository, the
/// environment and the instance name, so that bucket names differ between
/// clusters (S3 and Spaces bucket names are global) and a `--dry-run` shows
/// the name the real run uses (issue 30). FNV-1a 64, written out so that it
/// never changes with a library.
fn bucket_suffix(repository: &str, environment: &str, name: &str) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("{repository}\n{environment}\n{name}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..BUCKET_SUFFIX_LENGTH)
        .map(|_| {
            let index = (hash % 36) as usize;
            hash /= 36;
            char::from(ALPHABET[index])
        })
        .collect()
}
const INSTANCE_PASSWORD_LENGTH: usize = 32;
/// Keys of the credentials Secret that phd's Tutor plugin fills with Tutor's
/// own generators (`tutor phd secrets`; the list of `CREDENTIALS` in
/// plugins/tutor-phd/phd.py).
pub const TUTOR_SECRETS: [&str; 5] = [
    "openedx-secret-key",
    "jwt-rsa-private-key",
    "cms-oauth2-secret",
    "meilisearch-master-key",
    "meilisearch-api-key",
];

/// The instance's files: read back when they exist (so passwords-free names
/// such as the bucket suffix are created once), rendered otherwise.
struct InstanceFiles {
    dir: std::path::PathBuf,
    new_files: Vec<RenderedFile>,
    config: String,
    application: String,
}

/// `kubectl phd instance create NAME`, in the steps docs/instances.md lists:
/// check every input and render with Tutor before any change (a dry run
/// stops there); write the files; apply the namespace and its RBAC; store the
/// instance's Secrets ([`store_secrets`]); submit the provisioning Workflows
/// ([`submit_workflows`]) and wait for them ([`check_provisioned`]); hand the
/// instance to Argo CD (the ApplicationSet, else an Application of its own).
pub async fn create(session: &Session, args: &InstanceCreateArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.name)?;
    // Database hosts and ports default to the infrastructure's outputs.
    let name = args.name.as_str();
    for (flag, key, value) in [
        ("--platform-name", "PLATFORM_NAME", &args.platform_name),
        (
            "--edx-platform-repository",
            "EDX_PLATFORM_REPOSITORY",
            &args.edx_platform_repository,
        ),
        (
            "--edx-platform-version",
            "EDX_PLATFORM_VERSION",
            &args.edx_platform_version,
        ),
    ] {
        if let Some(value) = value {
            super::check_plain(flag, key, &Value::String(value.clone()))?;
        }
    }
    // The name first: a reserved one is refused before any other input is read.
    let ingress = args.ingress.resolve(&session.settings())?;
    super::check_name(session, name, Some(&ingress.namespace))?;
    session.load_outputs().await;
    check_outputs(session, args.dry_run)?;
    let environment = session.environment(args.environment.as_deref())?;
    let timeout = args.timeout;
    let provisioning = Provisioning::from_environment(session)?;
    if !args.dry_run {
        provisioning.require_credentials()?;
    }
    let pull_secret = registry_pull_secret(session, name)?;
    // The SMTP relay's password, from the environment only, for the Secret.
    let smtp_password = session.settings().credential(Credential::SmtpPassword);
    if let Some(found) = smtp_password
        .as_deref()
        .and_then(password::control_character)
    {
        bail!(
            "{} ({}) holds {found}; set it to the password alone, in printable characters",
            Credential::SmtpPassword.env_name(),
            Credential::SmtpPassword.description()
        );
    }
    // Held until the files are written and the namespace records them.
    let lock = if args.dry_run {
        None
    } else {
        Some(super::lock_instances(session)?)
    };
    let files = instance_files(session, args, &environment, pull_secret.is_some())?;
    let resources = Resources::from_config(&files.config)
        .with_context(|| format!("cannot use {}", files.dir.join("config.yml").display()))?;
    let application = manifest::parse("application.yml", &files.application)?;
    // Tutor renders before anything changes: a missing Python, an unknown
    // release or a failing render stops here.
    let config = render::parse_config(&files.config)?;
    render::check_identity(name, &config)?;
    let size = Size::from_config(&config)?;
    super::check_hosts(session, name, &config)?;
    let tutor = render::tutor_for(session, &config)?;
    let rendering = render::render(&tutor, &config, &ingress)?;

    let foundation = foundation_objects(name, &environment, &resources, &ingress.namespace, size)?;
    let workflows: Vec<Value> = provisioning
        .resources()
        .into_iter()
        .map(|resource| provisioning.workflow(resource, Operation::Provision, name))
        .collect();

    if args.dry_run {
        let env = render::write_env(&rendering, &files.dir, true)?;
        // In a cluster repository with the instances' ApplicationSet, the
        // real run applies no Application: the ApplicationSet makes it.
        let set = session
            .repository
            .as_ref()
            .filter(|repository| repository.root.join("cluster/apps/instances.yml").is_file())
            .map(|_| format!("phd-instances-{environment}"));
        print_dry_run(
            &files,
            &env,
            &foundation,
            &provisioning.preview_secret(name, &resources),
            &workflows,
            if set.is_some() { &[] } else { &application },
        )?;
        println!(
            "# bucket {} (its suffix comes from the cluster repository, the environment and the name: the real run uses the same)",
            resources.bucket
        );
        if let Some(set) = set {
            println!(
                "# Argo CD Application {name}-{environment}: made by ApplicationSet {set} once instances/{name} is pushed"
            );
        }
        provisioning.print_missing();
        return Ok(());
    }

    // SIGINT/SIGTERM from here on: this command stops at the next step or
    // wait, removes the admin credentials or names them (issue 29).
    let _handling = interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    let command = format!("kubectl phd instance create {name}");
    let cluster = session.connect().await?;
    let client = cluster.client;
    require_argo(&client).await?;
    let existing = super::owned_namespace(&client, name).await?;
    super::checkpoint(&command, "nothing was changed")?;
    if let Some(namespace) = &existing {
        check_recorded_resources(name, namespace, &resources, &files.dir)?;
    }
    let mut changed = existing.is_none() || !files.new_files.is_empty();

    if !files.new_files.is_empty() {
        scaffold::write_files(&files.dir, &files.new_files)?;
        output::info(format!("wrote {}", files.dir.display()));
    }
    let env = render::write_env(&rendering, &files.dir, false)?;
    output::info(format!(
        "{} (Tutor {})",
        render::describe(&env, &files.dir),
        tutor.release.tutor
    ));
    // The hosts are those of the Ingresses just rendered.
    let (details, external) = super::described(
        &files.dir,
        Some(&files.config),
        Some(environment.clone()),
        Some(&resources),
        provisioning.resources().contains(&super::Resource::Mongodb),
    );
    let mut outcome = Outcome::new("Instance", name, Action::Created, details).on(session);
    outcome.external = external;
    let report = apply_foundation(&client, &foundation, name)
        .await
        .context("cannot prepare the instance namespace")?;
    output::info(format!("namespace {name}: {}", report.summary()));
    changed |= outcome.record(&report);
    drop(lock);
    super::grant_ci_secrets(&client, name).await?;
    super::checkpoint(
        &command,
        "the files and the namespace are made, no credentials were stored",
    )?;
    // Developers get the namespace once the admin credentials have left it
    // (after the wait below): until then they may not submit Workflows, and
    // none they submitted earlier is left to start with the credentials.
    super::claim_provisioning_secret(&client, name, None).await?;
    super::lock_out_developers(&client, name).await?;
    store_secrets(
        &client,
        name,
        &rendering,
        &provisioning.secret(name, &resources),
        pull_secret.as_ref(),
        smtp_password.as_deref(),
        &mut outcome,
    )
    .await?;
    let (names, submitted) = submit_workflows(&client, name, &workflows, &mut outcome).await?;
    changed |= submitted;
    if args.no_wait {
        output::info(format!(
            "not waiting (--no-wait): follow with `kubectl phd instance status {name}`; run `kubectl phd instance create {name}` again to wait, finish and remove the provisioning credentials"
        ));
        outcome.action = action_of(existing.is_some(), changed);
        return outcome.print(args.output);
    }

    // The admin credentials leave the namespace whatever happened; then
    // the developers may run Workflows there.
    let phases =
        super::wait_for_workflows(&client, name, &names, timeout, "provisioning", &command).await?;
    super::bind_developers(&client, name).await?;
    let unfinished: Vec<&str> = phases
        .iter()
        .filter(|(_, phase)| !phase.is_done())
        .map(|(workflow, _)| workflow.as_str())
        .collect();
    let cause = if unfinished.is_empty() {
        None
    } else {
        super::why_stuck(&client, name, &unfinished).await
    };
    check_provisioned(name, &phases, timeout, cause)?;

    if let Some((api_url, cluster_id, token)) = provisioning.digitalocean() {
        store_digitalocean_mongodb_password(
            &Api::namespaced(client.clone(), name),
            api_url,
            cluster_id,
            token,
            &resources.mongodb_user,
        )
        .await?;
    }

    // One owner per Application: the cluster's ApplicationSet when it has
    // one (it makes the Application from git once the files are pushed),
    // phd otherwise.
    match application_set(&client, &environment).await? {
        Some(set) => {
            output::info(format!(
                "Argo CD Application {name}-{environment}: made by ApplicationSet {set} once instances/{name} is pushed"
            ));
            outcome.objects.push(ObjectRef::new(
                "Application",
                Some(phd_common::argo::ARGOCD_NAMESPACE),
                &format!("{name}-{environment}"),
                "madeByApplicationSet",
            ));
        }
        None => {
            changed |= apply_application(&client, &application, &environment, &mut outcome)
                .await
                .context("cannot create the Argo CD Application")?;
        }
    }
    outcome.action = action_of(existing.is_some(), changed);
    outcome.print(args.output)?;
    if args.part_of.is_some() {
        return Ok(());
    }
    output::info(format!(
        "instance {name} is ready to deploy. Next: commit and push {}, then Argo CD syncs it:\n  git add {dir} && git commit -m 'Add instance {name}' && git push",
        files.dir.display(),
        dir = files.dir.display()
    ));
    Ok(())
}

/// The instance's Secrets, at once: the credentials Tutor generates (kept
/// when they exist), the bucket's keys (replaced, so a new key reaches the
/// containers), the provisioning admin credentials the Workflows read,
/// and the image pull Secret when `PHD_DOCKER_REGISTRY_CREDENTIALS` is set.
async fn store_secrets(
    client: &kube::Client,
    name: &str,
    rendering: &Rendering,
    admin: &Secret,
    pull_secret: Option<&Secret>,
    smtp_password: Option<&str>,
    outcome: &mut Outcome<InstanceDetails>,
) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    let apply_params = kube::api::PatchParams::apply(phd_common::apply::FIELD_MANAGER).force();
    let provisioning_secret = kube::api::Patch::Apply(admin);
    let (credentials, stored) = tokio::join!(
        ensure_credentials(client, name, rendering, smtp_password),
        secrets.patch(PROVISIONING_SECRET, &apply_params, &provisioning_secret)
    );
    credentials?;
    stored.context("cannot store the provisioning credentials")?;
    // The bucket's keys, for the Open edX containers (media on the bucket):
    // set on every run, so that `instance create` again hands over a new key.
    let admin_data = admin.data.clone().unwrap_or_default();
    let storage: BTreeMap<String, ByteString> = STORAGE_CREDENTIALS
        .iter()
        .map(|key| {
            (
                (*key).to_owned(),
                admin_data.get(*key).cloned().unwrap_or_default(),
            )
        })
        .collect();
    set_credentials(&secrets, storage)
        .await
        .context("cannot store the bucket's keys in the instance credentials")?;
    if let Some(secret) = pull_secret {
        secrets
            .patch(PULL_SECRET, &apply_params, &kube::api::Patch::Apply(secret))
            .await
            .context("cannot store the image pull Secret")?;
        output::info(format!("image pull Secret {PULL_SECRET}: applied"));
        outcome
            .objects
            .push(ObjectRef::new("Secret", Some(name), PULL_SECRET, "applied"));
    }
    Ok(())
}

/// Submits the provisioning Workflows at once (they are independent of each
/// other), keeping one that succeeded or still runs and replacing a failed
/// one ([`workflow::submit`]). Returns their names, and whether any was
/// submitted anew.
async fn submit_workflows(
    client: &kube::Client,
    name: &str,
    workflows: &[Value],
    outcome: &mut Outcome<InstanceDetails>,
) -> anyhow::Result<(Vec<String>, bool)> {
    let submissions = futures::future::join_all(
        workflows
            .iter()
            .map(|workflow| workflow::submit(client, workflow)),
    )
    .await;
    let mut names = Vec::new();
    let mut changed = false;
    for (workflow, submitted) in workflows.iter().zip(submissions) {
        let workflow_name = workflow["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (line, action) = match submitted? {
            Submitted::Created => (format!("submitted Workflow {workflow_name}"), "submitted"),
            Submitted::Replaced => (
                format!("replaced failed Workflow {workflow_name}"),
                "replaced",
            ),
            Submitted::Kept(Phase::Succeeded) => (
                format!("Workflow {workflow_name} already succeeded"),
                "succeeded",
            ),
            Submitted::Kept(_) => (
                format!("Workflow {workflow_name} is already running"),
                "running",
            ),
        };
        changed |= action != "succeeded";
        output::info(line);
        outcome.objects.push(ObjectRef::new(
            "Workflow",
            Some(name),
            &workflow_name,
            action,
        ));
        names.push(workflow_name);
    }
    Ok((names, changed))
}

/// Fails unless every provisioning Workflow succeeded: the failed ones (kept
/// for inspection) with their messages, else those still running after
/// `timeout`.
fn check_provisioned(
    name: &str,
    phases: &[(String, Phase)],
    timeout: std::time::Duration,
    cause: Option<String>,
) -> anyhow::Result<()> {
    let failed: Vec<String> = phases
        .iter()
        .filter_map(|(workflow, phase)| match phase {
            Phase::Failed(message) => Some(format!("Workflow {workflow}: {message}")),
            Phase::Gone => Some(format!("Workflow {workflow} was deleted while running")),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "provisioning of instance {name} failed; the failed Workflows are kept for inspection \
             (`kubectl -n {name} get workflows`). Fix the cause and run the same command again.\n  {}",
            failed.join("\n  ")
        );
    }
    let unfinished: Vec<&str> = phases
        .iter()
        .filter(|(_, phase)| !phase.is_done())
        .map(|(workflow, _)| workflow.as_str())
        .collect();
    if !unfinished.is_empty() {
        let cause = cause.map(|cause| format!(": {cause}")).unwrap_or_default();
        bail!(
            "provisioning of instance {name} timed out after {}s{cause} ({} not finished; the admin credentials stay in Secret {name}/phd-provisioning for them); run the same command again to keep waiting",
            timeout.as_secs(),
            unfinished.join(", ")
        );
    }
    Ok(())
}

/// Applies the instance's Argo CD Application (when phd, not an
/// ApplicationSet, owns it) and records it in `outcome`; whether it was
/// created or changed.
pub(super) async fn apply_application<D: serde::Serialize>(
    client: &kube::Client,
    application: &[Document],
    environment: &str,
    outcome: &mut Outcome<D>,
) -> Result<bool, phd_common::apply::ApplyError> {
    let report = Applier::new(client.clone())
        .apply(application, None, &|applied| {
            output::debug(format!("  {applied}"))
        })
        .await?;
    output::info(format!(
        "Argo CD Application {}-{environment}: {}",
        outcome.name,
        report.summary()
    ));
    Ok(outcome.record(&report))
}

/// `created` for a new instance, else `updated` or `unchanged`.
fn action_of(existed: bool, changed: bool) -> Action {
    match (existed, changed) {
        (false, _) => Action::Created,
        (true, true) => Action::Updated,
        (true, false) => Action::Unchanged,
    }
}

/// The namespace records which databases and bucket the instance owns; a
/// config.yml naming others (written elsewhere, or replaced) is refused
/// rather than provisioning a second set.
pub(super) fn check_recorded_resources(
    name: &str,
    namespace: &Namespace,
    resources: &Resources,
    dir: &Path,
) -> anyhow::Result<()> {
    let Some(recorded) = namespace
        .metadata
        .annotations
        .as_ref()
        .and_then(Resources::from_annotations)
    else {
        return Ok(());
    };
    let pairs = [
        ("bucket", &recorded.bucket, &resources.bucket),
        (
            "MySQL database",
            &recorded.mysql_database,
            &resources.mysql_database,
        ),
        (
            "MongoDB database",
            &recorded.mongodb_database,
            &resources.mongodb_database,
        ),
        ("MySQL user", &recorded.mysql_user, &resources.mysql_user),
        (
            "MongoDB user",
            &recorded.mongodb_user,
            &resources.mongodb_user,
        ),
        (
            "forum database",
            &recorded.forum_database,
            &resources.forum_database,
        ),
    ];
    for (what, cluster, files) in pairs {
        if cluster != files {
            bail!(
                "instance {name} exists in the cluster with {what} {cluster}, but {} names {files}: restore the instance's config.yml from git (an instance keeps the databases and bucket it was created with)",
                dir.join("config.yml").display()
            );
        }
    }
    Ok(())
}

fn instance_files(
    session: &Session,
    args: &InstanceCreateArgs,
    environment: &str,
    pull_secret: bool,
) -> anyhow::Result<InstanceFiles> {
    let dir = instances_dir(session)?.join(&args.name);
    let config_path = dir.join("config.yml");
    let application_path = dir.join("application.yml");
    if config_path.is_file() && application_path.is_file() {
        output::debug(format!("reusing {}", dir.display()));
        let read = |path: &Path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let config = read(&config_path)?;
        refuse_changes(args, &config, &config_path)?;
        return Ok(InstanceFiles {
            config,
            application: read(&application_path)?,
            dir,
            new_files: Vec::new(),
        });
    }
    let settings = session.settings();
    // A variable that overrides what the cluster repository says is named.
    for setting in [
        Setting::MysqlHost,
        Setting::MysqlPort,
        Setting::MongodbHost,
        Setting::MongodbPort,
        Setting::StorageType,
        Setting::StorageRegion,
        Setting::StorageEndpointUrl,
    ] {
        if let (Some(used), Some(repository)) = (
            settings.get(setting, None)?,
            settings.from_repository(setting),
        ) && used.value != repository.value
        {
            output::info(format!(
                "{} is {:?} from {}, not {:?} from {}",
                setting.description(),
                used.value,
                used.origin,
                repository.value,
                repository.origin
            ));
        }
    }
    let domain = settings.require(Setting::ClusterDomain, None, None)?.value;
    naming::check_domain(&domain)?;
    let repository = settings.require(Setting::Repository, None, None)?.value;
    let mut given = Map::new();
    let mut set = |key: &str, value: String| {
        given.insert(key.to_owned(), Value::String(value));
    };
    set("instance_name", args.name.clone());
    set("instance_slug", args.name.clone());
    set("environment", environment.to_owned());
    set("cluster_domain", domain);
    let suffix = bucket_suffix(&repository, environment, &args.name);
    set("cluster_repository", repository);
    if pull_secret {
        set("image_pull_secret", PULL_SECRET.to_owned());
    }
    set("bucket_suffix", suffix);
    let optional = [
        ("platform_name", args.platform_name.clone()),
        (
            "edx_platform_repository",
            args.edx_platform_repository.clone(),
        ),
        ("edx_platform_version", args.edx_platform_version.clone()),
        (
            "tutor_version",
            args.tutor_version
                .as_deref()
                .map(phd_common::tutor::release)
                .transpose()?
                .map(|release| release.tutor.to_owned()),
        ),
        ("size", args.size.map(|size| size.as_str().to_owned())),
        (
            "cluster_repository_branch",
            settings
                .get(Setting::RepositoryBranch, None)?
                .map(|r| r.value),
        ),
        (
            "mysql_host",
            settings.get(Setting::MysqlHost, None)?.map(|r| r.value),
        ),
        (
            "mysql_port",
            settings.get(Setting::MysqlPort, None)?.map(|r| r.value),
        ),
        (
            "mongodb_host",
            settings.get(Setting::MongodbHost, None)?.map(|r| r.value),
        ),
        (
            "mongodb_port",
            settings.get(Setting::MongodbPort, None)?.map(|r| r.value),
        ),
        (
            "mongodb_auth_source",
            settings
                .get(Setting::MongodbAuthSource, None)?
                .map(|r| r.value),
        ),
        (
            "mongodb_replica_set",
            settings
                .get(Setting::MongodbReplicaSet, None)?
                .map(|r| r.value),
        ),
        (
            "storage_type",
            settings.get(Setting::StorageType, None)?.map(|r| r.value),
        ),
        (
            "storage_region",
            settings.get(Setting::StorageRegion, None)?.map(|r| r.value),
        ),
        (
            "storage_endpoint_url",
            settings
                .get(Setting::StorageEndpointUrl, None)?
                .map(|r| r.value),
        ),
        (
            "smtp_host",
            settings.get(Setting::SmtpHost, None)?.map(|r| r.value),
        ),
        (
            "smtp_port",
            settings.get(Setting::SmtpPort, None)?.map(|r| r.value),
        ),
        (
            "smtp_use_tls",
            settings.get(Setting::SmtpUseTls, None)?.map(|r| r.value),
        ),
        (
            "smtp_username",
            settings.get(Setting::SmtpUsername, None)?.map(|r| r.value),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            set(key, value);
        }
    }
    let context = scaffold::cookiecutter_context(&INSTANCE_SCAFFOLD, &given)?;
    let (_, new_files) = scaffold::render_scaffold(&INSTANCE_SCAFFOLD, &context)?;
    let text = |name: &str| {
        new_files
            .iter()
            .find(|f| f.path == Path::new(name))
            .map(|f| String::from_utf8_lossy(&f.contents).into_owned())
            .with_context(|| format!("the instance scaffold has no {name}"))
    };
    Ok(InstanceFiles {
        config: text("config.yml")?,
        application: text("application.yml")?,
        dir,
        new_files,
    })
}

/// `instance create` of an existing instance finishes what a run left and
/// changes nothing else: a flag that asks for a value other than the one in
/// config.yml is refused, pointing at `instance update`.
fn refuse_changes(args: &InstanceCreateArgs, config: &str, path: &Path) -> anyhow::Result<()> {
    let current: Value = serde_saphyr::from_str(config)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    let tutor = args
        .tutor_version
        .as_deref()
        .map(phd_common::tutor::release)
        .transpose()?
        .map(|release| release.tutor.to_owned());
    let asked = [
        (
            "PLATFORM_NAME",
            "--platform-name",
            args.platform_name.clone(),
        ),
        (
            "EDX_PLATFORM_REPOSITORY",
            "--edx-platform-repository",
            args.edx_platform_repository.clone(),
        ),
        (
            "EDX_PLATFORM_VERSION",
            "--edx-platform-version",
            args.edx_platform_version.clone(),
        ),
        (render::TUTOR_VERSION_KEY, "--tutor-version", tutor),
        (
            super::size::SIZE_KEY,
            "--size",
            args.size.map(|size| size.as_str().to_owned()),
        ),
    ];
    let mut different = Vec::new();
    for (key, flag, value) in asked {
        let Some(value) = value else { continue };
        let now = current[key].as_str().unwrap_or_default();
        if now != value {
            different.push(format!("{flag} {value:?} (config.yml has {key}: {now:?})"));
        }
    }
    if different.is_empty() {
        return Ok(());
    }
    bail!(
        "instance {} exists and `instance create` changes nothing it was not asked to create: {}; change settings with `kubectl phd instance update {} --set KEY=VALUE` (or --tutor-version, --edx-platform-version)",
        args.name,
        different.join(", "),
        args.name
    )
}

fn labels(name: &str, environment: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "kubectl-phd".to_owned(),
        ),
        (INSTANCE_LABEL.to_owned(), name.to_owned()),
        (ENVIRONMENT_LABEL.to_owned(), environment.to_owned()),
    ])
}

fn metadata(name: &str, namespace: &str, environment: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(namespace, environment)),
        ..Default::default()
    }
}

/// The namespace and what the workflows need in it: the executor's identity
/// with only what the emissary executor uses, and a default-deny ingress
/// policy that admits the ingress controller and the namespace itself.
/// The NetworkPolicy that keeps an instance's pods from the cloud's
/// instance metadata service.
pub const EGRESS_POLICY: &str = "phd-deny-metadata-egress";
/// The instance metadata service of AWS, DigitalOcean, GCP and Azure (IPv4)
/// and of AWS (IPv6).
const METADATA_IPV4: &str = "169.254.169.254/32";
const METADATA_IPV6: &str = "fd00:ec2::254/128";

pub(super) fn foundation_objects(
    name: &str,
    environment: &str,
    resources: &Resources,
    ingress_namespace: &str,
    size: Size,
) -> anyhow::Result<Vec<Document>> {
    let source = "instance objects (kubectl-phd)";
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels(name, environment)),
            annotations: Some(resources.annotations()),
            ..Default::default()
        },
        ..Default::default()
    };
    let account = ServiceAccount {
        metadata: metadata(EXECUTOR, name, environment),
        ..Default::default()
    };
    // The pods of the site run as the namespace's default ServiceAccount,
    // and none of them calls the Kubernetes API: no token is mounted, so a
    // compromised pod holds no credential for the API server.
    let default_account = ServiceAccount {
        metadata: metadata("default", name, environment),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let role = Role {
        metadata: metadata(EXECUTOR, name, environment),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["argoproj.io".into()]),
            resources: Some(vec!["workflowtaskresults".into()]),
            verbs: vec!["create".into(), "patch".into()],
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: metadata(EXECUTOR, name, environment),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: EXECUTOR.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: EXECUTOR.into(),
            namespace: Some(name.to_owned()),
            ..Default::default()
        }]),
    };
    let namespace_is = |value: &str| LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            value.to_owned(),
        )])),
        ..Default::default()
    };
    let policy = NetworkPolicy {
        metadata: metadata("phd-default-deny-ingress", name, environment),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    NetworkPolicyPeer {
                        namespace_selector: Some(namespace_is(ingress_namespace)),
                        ..Default::default()
                    },
                    NetworkPolicyPeer {
                        namespace_selector: Some(namespace_is(name)),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    // Egress: anywhere (the managed databases, the bucket's endpoint, the
    // SMTP relay and the APIs an instance calls have addresses phd cannot
    // know), but never the cloud's instance metadata service, which hands a
    // pod the node's credentials (the node's IAM role on EKS, the droplet's
    // user data on DigitalOcean).
    let egress = NetworkPolicy {
        metadata: metadata(EGRESS_POLICY, name, environment),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(
                    [("0.0.0.0/0", METADATA_IPV4), ("::/0", METADATA_IPV6)]
                        .into_iter()
                        .map(|(cidr, metadata)| NetworkPolicyPeer {
                            ip_block: Some(IPBlock {
                                cidr: cidr.into(),
                                except: Some(vec![metadata.into()]),
                            }),
                            ..Default::default()
                        })
                        .chain([NetworkPolicyPeer {
                            namespace_selector: Some(namespace_is(name)),
                            ..Default::default()
                        }])
                        .collect(),
                ),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    Ok(vec![
        Document::from_object(source, 1, serde_json::to_value(namespace)?),
        Document::from_object(source, 2, serde_json::to_value(account)?),
        Document::from_object(source, 3, serde_json::to_value(role)?),
        Document::from_object(source, 4, serde_json::to_value(binding)?),
        Document::from_object(source, 5, serde_json::to_value(policy)?),
        Document::from_object(source, 6, serde_json::to_value(default_account)?),
        Document::from_object(source, 7, serde_json::to_value(egress)?),
        // The tier's quota, and defaults that let every pod in under it.
        Document::from_object(
            source,
            8,
            serde_json::to_value(size.resource_quota(metadata("", name, environment)))?,
        ),
        Document::from_object(
            source,
            9,
            serde_json::to_value(size.limit_range(metadata("", name, environment)))?,
        ),
    ])
}

/// The instance's credentials, generated the first time and never changed:
/// its database passwords (read by the provisioning workflows) and the
/// secrets Tutor would otherwise write into its environment (read by the
/// Open edX containers). A key that is missing, as in a Secret made by an
/// older phd, is added; present keys are kept.
async fn ensure_credentials(
    client: &kube::Client,
    name: &str,
    rendering: &Rendering,
    smtp_password: Option<&str>,
) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    let existing = secrets
        .get_opt(CREDENTIALS_SECRET)
        .await
        .context("cannot read the instance credentials")?;
    let present: Vec<String> = existing
        .as_ref()
        .and_then(|secret| secret.data.as_ref())
        .map(|data| data.keys().cloned().collect())
        .unwrap_or_default();
    let mut missing = BTreeMap::new();
    for key in ["mysql-password", "mongodb-password"] {
        if !present.iter().any(|k| k == key) {
            missing.insert(key.to_owned(), password::generate(INSTANCE_PASSWORD_LENGTH));
        }
    }
    // Every Open edX container reads this key, so it exists, empty for a
    // relay without a password; a re-run keeps the value it has.
    if !present.iter().any(|k| k == SMTP_PASSWORD_KEY) {
        missing.insert(
            SMTP_PASSWORD_KEY.to_owned(),
            smtp_password.unwrap_or_default().to_owned(),
        );
    }
    if !TUTOR_SECRETS
        .iter()
        .all(|key| present.iter().any(|k| k == key))
    {
        let generated = tokio::task::block_in_place(|| rendering.generate_secrets())
            .context("cannot generate the Open edX secrets")?;
        for key in TUTOR_SECRETS {
            if present.iter().any(|k| k == key) {
                continue;
            }
            let value = generated
                .get(key)
                .with_context(|| format!("`tutor phd secrets` did not generate {key}"))?;
            missing.insert(key.to_owned(), value.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let data: BTreeMap<String, ByteString> = missing
        .into_iter()
        .map(|(key, value)| (key, ByteString(value.into_bytes())))
        .collect();
    if existing.is_some() {
        // Only the missing keys: a concurrent run's values for them are as good.
        return set_credentials(&secrets, data)
            .await
            .context("cannot add to the instance credentials");
    }
    let secret = Secret {
        metadata: super::instance_meta(CREDENTIALS_SECRET, name),
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        // Another run created it at the same moment: theirs is as good.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error).context("cannot create the instance credentials"),
    }
}

/// Stores the SMTP relay's password as key `smtp-password` of the instance's
/// credentials Secret: `password`, or, when `None`, an empty one if the key
/// is missing (instances made before the key existed: every Open edX
/// container reads it). Returns whether the Secret changed.
///
/// # Errors
/// The Secret cannot be read or patched (missing: `instance create` makes it).
pub(super) async fn store_smtp_password(
    client: &kube::Client,
    name: &str,
    password: Option<&str>,
) -> anyhow::Result<bool> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), name);
    let existing = secrets
        .get_opt(CREDENTIALS_SECRET)
        .await
        .context("cannot read the instance credentials")?
        .with_context(|| {
            format!(
                "namespace {name} has no Secret {CREDENTIALS_SECRET}; run `kubectl phd instance create {name}` to finish the instance"
            )
        })?;
    let current = existing
        .data
        .as_ref()
        .and_then(|data| data.get(SMTP_PASSWORD_KEY))
        .map(|value| value.0.as_slice());
    let wanted = match (password, current) {
        (Some(password), current) if current != Some(password.as_bytes()) => password,
        (None, None) => "",
        _ => return Ok(false),
    };
    let data = BTreeMap::from([(
        SMTP_PASSWORD_KEY.to_owned(),
        ByteString(wanted.as_bytes().to_vec()),
    )]);
    set_credentials(&secrets, data)
        .await
        .context("cannot store the SMTP password in the instance credentials")?;
    Ok(true)
}

/// Sets `data`'s keys in the existing credentials Secret, leaving its other
/// keys as they are (a merge patch).
async fn set_credentials(
    secrets: &Api<Secret>,
    data: BTreeMap<String, ByteString>,
) -> Result<(), kube::Error> {
    secrets
        .patch(
            CREDENTIALS_SECRET,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({ "data": data })),
        )
        .await
        .map(|_| ())
}

/// DigitalOcean sets the password of the MongoDB user the Workflow created;
/// the instance must use that one, so it replaces the generated
/// `mongodb-password` (the other keys stay as they are).
async fn store_digitalocean_mongodb_password(
    secrets: &Api<Secret>,
    api_url: &str,
    cluster_id: &str,
    token: &str,
    user: &str,
) -> anyhow::Result<()> {
    let password =
        phd_common::digitalocean::database_user_password(api_url, token, cluster_id, user)
            .await
            .context("cannot read the MongoDB password DigitalOcean set")?;
    let data = BTreeMap::from([(
        "mongodb-password".to_owned(),
        ByteString(password.into_bytes()),
    )]);
    set_credentials(secrets, data)
        .await
        .context("cannot store the MongoDB password in the instance credentials")?;
    output::info(format!(
        "stored the MongoDB password DigitalOcean set for {user} in Secret {CREDENTIALS_SECRET}"
    ));
    Ok(())
}

/// Applies the namespace's objects; RoleBindings last, once the Roles they
/// name exist (the API server checks a binding against its Role unless the
/// caller may do anything, as an admin may; the CI account may not).
pub(super) async fn apply_foundation(
    client: &kube::Client,
    foundation: &[Document],
    namespace: &str,
) -> Result<phd_common::apply::ApplyReport, phd_common::apply::ApplyError> {
    let (bindings, rest): (Vec<Document>, Vec<Document>) = foundation
        .iter()
        .cloned()
        .partition(|document| document.object["kind"] == "RoleBinding");
    let applier = Applier::new(client.clone());
    let verbose = |applied: &phd_common::apply::Applied| output::debug(format!("  {applied}"));
    let mut report = applier.apply(&rest, Some(namespace), &verbose).await?;
    let bound = applier.apply(&bindings, Some(namespace), &verbose).await?;
    report.objects.extend(bound.objects);
    Ok(report)
}

/// The ApplicationSet of the instances of `environment`
/// (`phd-instances-<environment>`, from the cluster repository's
/// `cluster/apps/instances.yml`), if the cluster has it.
pub(super) async fn application_set(
    client: &kube::Client,
    environment: &str,
) -> anyhow::Result<Option<String>> {
    let sets = phd_common::argo::application_sets(client);
    let name = format!("phd-instances-{environment}");
    match sets.get_opt(&name).await {
        Ok(found) => Ok(found.map(|_| name)),
        // No ApplicationSet CRD: an Argo CD without the ApplicationSet controller.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error).context("cannot check for the instances' ApplicationSet"),
    }
}

/// Argo CD and Argo Workflows must be installed; checked before any change.
pub async fn require_argo(client: &kube::Client) -> anyhow::Result<()> {
    use phd_common::argo::{Part, require_installed};
    Ok(require_installed(client, &[Part::Workflows, Part::ArgoCd]).await?)
}

/// Inside a cluster repository the database hosts come from the
/// infrastructure's outputs: when none can be read and no host is set, a real
/// run stops (it would provision against the generic defaults, `mysql` and
/// `mongodb`) and a dry run warns (from a trial: it fell back silently).
fn check_outputs(session: &Session, dry_run: bool) -> anyhow::Result<()> {
    let Some(problem) = session.outputs_problem() else {
        return Ok(());
    };
    if session.env_var(Setting::MysqlHost.env_name()).is_some() {
        return Ok(());
    }
    let message = format!(
        "the database hosts come from the cluster repository's infrastructure, but {problem}; or set PHD_MYSQL_HOST, PHD_MYSQL_PORT, PHD_MONGODB_HOST and PHD_MONGODB_PORT (and the MongoDB cluster ID) yourself"
    );
    if dry_run {
        output::info(format!(
            "{} {message}; this preview uses the defaults",
            output::paint_stderr("warning:", output::Tone::Warning)
        ));
        Ok(())
    } else {
        bail!(message)
    }
}

fn print_dry_run(
    files: &InstanceFiles,
    env: &SyncReport,
    foundation: &[Document],
    admin: &Value,
    workflows: &[Value],
    application: &[Document],
) -> anyhow::Result<()> {
    output::info("dry run: nothing is changed; this is what would be written and applied");
    for file in &files.new_files {
        println!("# file {}", files.dir.join(&file.path).display());
    }
    if files.new_files.is_empty() {
        println!(
            "# files in {} exist and would be reused",
            files.dir.display()
        );
    }
    let env_dir = files.dir.join("env");
    for path in &env.written {
        println!("# file {} (Tutor)", env_dir.join(path).display());
    }
    for path in &env.removed {
        println!("# remove {}", env_dir.join(path).display());
    }
    let mut objects: Vec<Value> = foundation.iter().map(|d| d.object.clone()).collect();
    objects.push(admin.clone());
    objects.extend(workflows.iter().cloned());
    objects.extend(application.iter().map(|d| d.object.clone()));
    for object in objects {
        println!("---");
        print!("{}", serde_saphyr::to_string(&object)?);
    }
    Ok(())
}
