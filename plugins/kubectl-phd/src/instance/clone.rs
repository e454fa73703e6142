//! `kubectl phd instance clone SRC DST [--from POINT]` (issue 28): a new
//! instance filled from a restore point of another.
//!
//! DST is made as `instance create` makes any instance (its own namespace,
//! databases, bucket, credentials and hosts), with SRC's Tutor release and
//! size tier, and outbound email off (`PHD_OUTBOUND_EMAIL: false`) so the
//! copy of the learners' data mails nobody. Then SRC's point (made now
//! unless `--from` names one) is restored into it by `restore-point-template`,
//! which, because the point is another instance's, rewrites what would make
//! the copy act as the source: SRC's hosts become DST's in the Sites, the
//! OAuth2 redirect URIs and the site configurations; SRC's sessions, OAuth2
//! tokens and grants are dropped; with `--scrub`, learners' names, emails and
//! passwords are replaced. Last, Argo CD is asked to sync DST, whose init
//! hooks write DST's own OAuth2 client secrets into the copied applications.
//! SRC is only read.

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use phd_common::{argo, naming};
use serde_json::json;

use super::backup::{self, Operation, PointDetails, Target};
use super::instances_dir;
use super::render::{parse_config, release_of};
use super::size::Size;
use crate::cli::{
    IngressArgs, InstanceCloneArgs, InstanceCreateArgs, InstanceUpdateArgs, ResultFormat,
};
use crate::outcome::{Action, External, ObjectRef, Outcome};
use crate::output;
use crate::session::Session;

/// Annotation of a clone's namespace: `<source>/<point>`.
pub const CLONE_OF_ANNOTATION: &str = "kubectl-phd/clone-of";

pub async fn clone(session: &Session, args: &InstanceCloneArgs) -> anyhow::Result<()> {
    naming::check_instance_name(&args.source)?;
    naming::check_instance_name(&args.name)?;
    let (source, name) = (args.source.as_str(), args.name.as_str());
    if source == name {
        bail!("the clone needs a name of its own: {name} is the source");
    }
    if let Some(point) = &args.point {
        backup::check_point(point)?;
    }
    let dir = instances_dir(session)?;
    let source_config_path = dir.join(source).join("config.yml");
    let source_text = std::fs::read_to_string(&source_config_path).with_context(|| {
        format!(
            "instance {source} has no {} (`kubectl phd instance list`)",
            source_config_path.display()
        )
    })?;
    let source_config = parse_config(&source_text)?;
    let release = release_of(&source_config)?;
    let size = Size::from_config(&source_config)?;
    let _handling =
        phd_common::interrupt::Handling::start().context("cannot take over SIGINT and SIGTERM")?;
    session.load_outputs().await;
    let cluster = session.connect().await?;
    let client = cluster.client;
    super::create::require_argo(&client).await?;
    if super::owned_namespace(&client, source).await?.is_none() {
        bail!("instance {source} has no namespace in this cluster: nothing to clone");
    }
    // A namespace of that name is this clone's, left by a run that stopped,
    // or another instance: refused before anything changes.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Some(existing) = namespaces
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read namespace {name}"))?
    {
        let of = existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLONE_OF_ANNOTATION))
            .cloned();
        if !of
            .as_deref()
            .is_some_and(|of| of.starts_with(&format!("{source}/")))
        {
            bail!(
                "instance {name} exists and is not a clone of {source} in progress: choose another name (a clone is always a new instance)"
            );
        }
    }
    // The source's settings are known to work: check ours before the point.
    Target::find(session, &client, source).await?;
    backup::require_template(&client).await?;

    let point = match &args.point {
        Some(point) => {
            let known = backup::points(&client, source).await?;
            if !known.iter().any(|p| &p.name == point) {
                let names: Vec<&str> = known.iter().map(|p| p.name.as_str()).collect();
                bail!(
                    "instance {source} has no restore point {point}; it has: {}",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                );
            }
            point.clone()
        }
        None => {
            let point = backup::point_name(Some("clone"));
            backup::make_point(session, &client, source, &point, args.timeout).await?;
            point
        }
    };
    let found = backup::points(&client, source)
        .await?
        .into_iter()
        .find(|p| p.name == point)
        .with_context(|| format!("restore point {point} of {source} is not listed"))?;

    // The new instance, as `instance create` makes any: idempotent, so a
    // run that stopped goes on from here.
    let create = InstanceCreateArgs {
        name: name.to_owned(),
        platform_name: source_config
            .get("PLATFORM_NAME")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        edx_platform_repository: None,
        edx_platform_version: None,
        tutor_version: Some(release.tutor.to_owned()),
        size: Some(size),
        environment: None,
        ingress: IngressArgs::default(),
        timeout: args.timeout,
        no_wait: false,
        dry_run: false,
        output: ResultFormat::Text,
        part_of: Some("instance clone"),
    };
    super::create(session, &create)
        .await
        .with_context(|| format!("cannot make the clone {name}"))?;
    namespaces
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {CLONE_OF_ANNOTATION: format!("{source}/{point}")}}})),
        )
        .await
        .with_context(|| format!("cannot mark namespace {name} as a clone of {source}"))?;
    if !args.with_email {
        let update = InstanceUpdateArgs {
            name: name.to_owned(),
            tutor_version: None,
            size: None,
            edx_platform_version: None,
            set: vec!["PHD_OUTBOUND_EMAIL=false".to_owned()],
            environment: None,
            ingress: IngressArgs::default(),
            smtp_password_stdin: false,
            files_only: false,
            dry_run: false,
            output: ResultFormat::Text,
            part_of: Some("instance clone"),
        };
        super::update(session, &update)
            .await
            .with_context(|| format!("cannot turn outbound email off in the clone {name}"))?;
    }

    // Each of the source's hosts and the clone's in its place, in the
    // rendered Ingresses' order (the same Tutor release renders both).
    let from = super::ingress_hosts(&dir.join(source));
    let to = super::ingress_hosts(&dir.join(name));
    if from.len() != to.len() || from.is_empty() {
        bail!(
            "the hosts of {source} ({}) and of {name} ({}) do not pair up: render both with `kubectl phd instance update` and run again",
            from.join(", "),
            to.join(", ")
        );
    }
    let rewrite: String = from
        .iter()
        .zip(&to)
        .map(|(old, new)| format!("{old} {new}\n"))
        .collect();

    let mut target = Target::find(session, &client, name).await?;
    target.use_bucket_of(&found);
    let metadata = serde_json::to_value(&found)?;
    let mut secret = target.secret(name, Operation::Restore, &point, source, &metadata);
    if let Some(data) = secret.data.as_mut() {
        data.insert("rewrite-hosts".into(), ByteString(rewrite.into_bytes()));
        data.insert(
            "scrub".into(),
            ByteString(args.scrub.to_string().into_bytes()),
        );
    }
    let command = format!(
        "kubectl phd instance clone {source} {name} --from {point}{}{}",
        if args.scrub { " --scrub" } else { "" },
        if args.with_email { " --with-email" } else { "" }
    );
    super::restore::pause_sync(&client, name).await?;
    super::restore::stop_site(&client, name).await?;
    backup::run(
        &client,
        name,
        &secret,
        Operation::Restore,
        &point,
        args.timeout,
        &command,
    )
    .await
    .with_context(|| format!("the data of {source} is not in {name} yet"))?;
    super::restore::start_site(&client, name).await?;
    super::restore::resume_sync(&client, name).await?;
    // The init hooks write the clone's own OAuth2 secrets into the copied
    // applications: a sync now, where Argo CD already deploys the clone.
    let applications = argo::instance_applications(&client, name)
        .await
        .context("cannot list the clone's Argo CD Applications")?;
    for application in applications {
        if let Some(app_name) = application.metadata.name {
            argo::sync(&client, &app_name)
                .await
                .with_context(|| format!("cannot ask Argo CD to sync {app_name}"))?;
            output::info(format!(
                "Argo CD Application {app_name}: sync requested (its init hooks set the clone's OAuth2 clients)"
            ));
        }
    }
    output::info(format!(
        "{name} is a copy of {source} at restore point {point}: {}{}",
        to.first().map(String::as_str).unwrap_or_default(),
        if args.with_email {
            String::new()
        } else {
            format!(
                "; outbound email is off (`kubectl phd instance update {name} --set PHD_OUTBOUND_EMAIL=true` turns it on)"
            )
        }
    ));
    output::info(format!(
        "Next: commit and push {} so that Argo CD keeps the clone:\n  git add {dir} && git commit -m 'Clone {source} as {name}' && git push",
        dir.join(name).display(),
        dir = dir.join(name).display()
    ));
    let mut outcome = Outcome::new(
        "Instance",
        name,
        Action::Created,
        PointDetails {
            restore_point: found,
        },
    )
    .on(session);
    outcome.objects.push(ObjectRef::new(
        "Workflow",
        Some(name),
        &Operation::Restore.workflow_name(&point),
        "succeeded",
    ));
    outcome
        .external
        .extend(target.resources.external(true, None));
    outcome.external.extend(
        to.iter()
            .map(|host| External::new("host", host.clone(), None)),
    );
    outcome.print(args.output)
}
