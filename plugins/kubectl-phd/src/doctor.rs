//! `kubectl phd doctor`: a checklist of what phd needs, exit 1 when something
//! required is missing.

use std::process::ExitCode;

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use phd_common::Cluster;
use phd_common::config::{IngressSetting, Setting};
use phd_common::tofu::Tool;
use serde::Serialize;

use crate::cli::{DoctorArgs, OutputFormat};
use crate::output::{self, Tone};
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    /// Missing, but only some commands need it.
    Warning,
    /// Missing and required.
    Failed,
    /// Not checked because an earlier check failed.
    Skipped,
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    status: Status,
    detail: String,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    checks: Vec<Check>,
}

/// A permission phd needs, checked with a SelfSubjectAccessReview.
struct Permission {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    /// `None` means every namespace (instances live in their own).
    namespace: Option<&'static str>,
    needed_by: &'static str,
}

const PERMISSIONS: &[Permission] = &[
    Permission {
        verb: "create",
        group: "",
        resource: "namespaces",
        namespace: None,
        needed_by: "argo install, instance create",
    },
    Permission {
        verb: "delete",
        group: "",
        resource: "namespaces",
        namespace: None,
        needed_by: "instance delete",
    },
    Permission {
        verb: "patch",
        group: "apiextensions.k8s.io",
        resource: "customresourcedefinitions",
        namespace: None,
        needed_by: "argo install",
    },
    Permission {
        verb: "patch",
        group: "rbac.authorization.k8s.io",
        resource: "clusterroles",
        namespace: None,
        needed_by: "argo install",
    },
    Permission {
        verb: "patch",
        group: "rbac.authorization.k8s.io",
        resource: "clusterrolebindings",
        namespace: None,
        needed_by: "argo install, user create",
    },
    Permission {
        verb: "patch",
        group: "rbac.authorization.k8s.io",
        resource: "roles",
        namespace: None,
        needed_by: "instance create",
    },
    Permission {
        verb: "patch",
        group: "rbac.authorization.k8s.io",
        resource: "rolebindings",
        namespace: None,
        needed_by: "instance create, user create",
    },
    Permission {
        verb: "patch",
        group: "",
        resource: "configmaps",
        namespace: Some("argocd"),
        needed_by: "argo install, user",
    },
    Permission {
        verb: "patch",
        group: "",
        resource: "secrets",
        namespace: None,
        needed_by: "argo install, user, instance create",
    },
    Permission {
        verb: "patch",
        group: "",
        resource: "serviceaccounts",
        namespace: Some("argo"),
        needed_by: "user create",
    },
    Permission {
        verb: "patch",
        group: "networking.k8s.io",
        resource: "networkpolicies",
        namespace: None,
        needed_by: "instance create",
    },
    Permission {
        verb: "create",
        group: "argoproj.io",
        resource: "workflows",
        namespace: None,
        needed_by: "instance create, instance delete",
    },
    Permission {
        verb: "patch",
        group: "argoproj.io",
        resource: "applications",
        namespace: Some("argocd"),
        needed_by: "instance create",
    },
];

/// CRDs that show whether each Argo part is installed.
const ARGO_PARTS: &[(&str, &[&str])] = &[
    (
        "Argo CD",
        &["applications.argoproj.io", "appprojects.argoproj.io"],
    ),
    (
        "Argo Workflows",
        &[
            "workflows.argoproj.io",
            "clusterworkflowtemplates.argoproj.io",
        ],
    ),
];

/// The namespace each Argo part runs in, whose Deployments must be ready.
fn part_namespace(part: &str) -> &'static str {
    if part == "Argo CD" {
        crate::argo::ARGOCD_NAMESPACE
    } else {
        crate::argo::WORKFLOWS_NAMESPACE
    }
}

/// Deployments of `namespace` whose pods are not all ready, by name.
async fn unready_deployments(
    client: &kube::Client,
    namespace: &str,
) -> Result<(usize, Vec<String>), kube::Error> {
    use k8s_openapi::api::apps::v1::Deployment;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let list = deployments.list(&Default::default()).await?;
    let total = list.items.len();
    let unready = list
        .items
        .into_iter()
        .filter(|deployment| {
            let wanted = deployment
                .spec
                .as_ref()
                .and_then(|spec| spec.replicas)
                .unwrap_or(1);
            let ready = deployment
                .status
                .as_ref()
                .and_then(|status| status.ready_replicas)
                .unwrap_or(0);
            ready < wanted
        })
        .filter_map(|deployment| deployment.metadata.name)
        .collect();
    Ok((total, unready))
}

pub async fn run(session: &Session, args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut checks = Vec::new();
    let cluster = match session.access().await {
        Err(error) => {
            checks.push(Check::new("kubeconfig", Status::Failed, error.to_string()));
            // Every row of a healthy report is there, skipped (from a trial).
            checks.push(Check::new(
                "API server",
                Status::Skipped,
                "no kubeconfig to reach it",
            ));
            None
        }
        Ok(access) => {
            let context = access.context_name().unwrap_or("no current context");
            checks.push(Check::new(
                "kubeconfig",
                Status::Ok,
                format!(
                    "{} (context {context}), because: {}",
                    access.source,
                    access.source.why()
                ),
            ));
            match access.connect().await {
                Ok(cluster) => {
                    checks.push(Check::new(
                        "API server",
                        Status::Ok,
                        format!(
                            "{} answers, Kubernetes {}",
                            cluster.server, cluster.version.git_version
                        ),
                    ));
                    Some(cluster)
                }
                Err(error) => {
                    let cause = root_cause(&error)
                        .map(|cause| format!(" ({cause})"))
                        .unwrap_or_default();
                    checks.push(Check::new(
                        "API server",
                        Status::Failed,
                        format!("{error}{cause}"),
                    ));
                    None
                }
            }
        }
    };
    match &cluster {
        Some(cluster) => {
            checks.extend(check_permissions(cluster).await);
            checks.extend(check_argo(cluster).await);
            checks.extend(check_site_path(session, cluster).await);
        }
        None => {
            checks.push(Check::new(
                "permissions",
                Status::Skipped,
                "no cluster to ask",
            ));
            for (part, _) in ARGO_PARTS {
                checks.push(Check::new(*part, Status::Skipped, "no cluster to ask"));
            }
            for name in SITE_CHECKS {
                checks.push(Check::new(name, Status::Skipped, "no cluster to ask"));
            }
        }
    }
    checks.push(match Tool::find() {
        Ok(tool) => Check::new(
            "tofu",
            Status::Ok,
            format!("{} at {}", tool.name, tool.path.display()),
        ),
        Err(_) => Check::new(
            "tofu",
            Status::Warning,
            "neither tofu nor terraform found; `kubectl phd infra` and `kubeconfig` need one",
        ),
    });
    checks.push(match which::which("git") {
        Ok(path) => Check::new("git", Status::Ok, path.display().to_string()),
        Err(_) => Check::new(
            "git",
            Status::Warning,
            "git not found; `cluster create` cannot commit",
        ),
    });
    checks.push(check_tutor(session));
    checks.push(check_email(session));

    let report = Report {
        ok: checks.iter().all(|check| check.status != Status::Failed),
        checks,
    };
    match args.output {
        OutputFormat::Table => print_table(&report),
        format => output::print_structured(&report, format)?,
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The checks of the path from the cluster to a site, in order.
const SITE_CHECKS: [&str; 5] = [
    "ingress class",
    "ClusterIssuer",
    "StorageClass",
    "repository access",
    "ApplicationSet",
];

/// What a site needs of the cluster beyond Argo (SPEC.md 7.10): the
/// ingress controller's IngressClass, a Ready cert-manager ClusterIssuer, a
/// default StorageClass, Argo CD's access to the cluster repository, the
/// instances' ApplicationSet. Each miss names the command that fixes it.
/// What a site needs besides its instance: an IngressClass, a Ready
/// ClusterIssuer, a default StorageClass, Argo CD's credentials for the
/// cluster repository (and Applications that can read it), and the
/// instances' ApplicationSet. The checks read the cluster concurrently and
/// report in that order.
async fn check_site_path(session: &Session, cluster: &Cluster) -> Vec<Check> {
    let client = &cluster.client;
    let settings = session.settings();
    let ingress = match settings.ingress(None, None, None) {
        Ok(ingress) => ingress,
        Err(error) => {
            return vec![Check::new(
                "ingress class",
                Status::Failed,
                error.to_string(),
            )];
        }
    };
    let repository = settings
        .get(Setting::Repository, None)
        .ok()
        .flatten()
        .map(|r| r.value);
    let environment = session
        .environment(None)
        .unwrap_or_else(|_| "production".to_owned());
    let services_fix = services_fix(client).await;
    let (class, issuer, storage, credentials, reads, set, unmanaged) = tokio::join!(
        check_ingress_class(client, &ingress, services_fix),
        check_cluster_issuer(client, &ingress, services_fix),
        check_storage_class(client),
        check_repository_credentials(client, repository.as_deref()),
        check_repository_reads(client, repository.as_deref()),
        check_instance_set(client, &environment),
        check_unmanaged_instances(client),
    );
    [class, issuer, storage, credentials]
        .into_iter()
        .chain(reads)
        .chain([set])
        .chain(unmanaged)
        .collect()
}

/// Where the cluster services should come from: the Harmony Application,
/// once applied, else `argo install` in the cluster repository.
async fn services_fix(client: &kube::Client) -> &'static str {
    match phd_common::argo::applications(client)
        .get_opt("harmony")
        .await
    {
        Ok(Some(_)) => {
            "Argo CD has not installed it yet from Application harmony: `kubectl -n argocd get application harmony` shows its sync state"
        }
        _ => {
            "apply the cluster services: `kubectl phd argo install` inside the cluster repository (cluster/apps/harmony.yml)"
        }
    }
}

async fn check_ingress_class(
    client: &kube::Client,
    ingress: &IngressSetting,
    services_fix: &str,
) -> Check {
    use k8s_openapi::api::networking::v1::IngressClass;

    let classes: Api<IngressClass> = Api::all(client.clone());
    match classes.get_opt(&ingress.class).await {
        Ok(Some(_)) => Check::new(
            "ingress class",
            Status::Ok,
            format!(
                "IngressClass {} (controller namespace {})",
                ingress.class, ingress.namespace
            ),
        ),
        Ok(None) => Check::new(
            "ingress class",
            Status::Warning,
            format!("no IngressClass {}; {services_fix}", ingress.class),
        ),
        Err(error) => Check::new(
            "ingress class",
            Status::Warning,
            format!("cannot read IngressClasses: {error}"),
        ),
    }
}

async fn check_cluster_issuer(
    client: &kube::Client,
    ingress: &IngressSetting,
    services_fix: &str,
) -> Check {
    use kube::api::{Api, DynamicObject};
    use kube::core::{ApiResource, GroupVersionKind};

    let issuer_resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "ClusterIssuer"),
        "clusterissuers",
    );
    let issuers: Api<DynamicObject> = Api::all_with(client.clone(), &issuer_resource);
    match issuers.get_opt(&ingress.cluster_issuer).await {
        Ok(Some(issuer)) => {
            let ready = issuer.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready {
                Check::new(
                    "ClusterIssuer",
                    Status::Ok,
                    format!("{} is Ready", ingress.cluster_issuer),
                )
            } else {
                Check::new(
                    "ClusterIssuer",
                    Status::Warning,
                    format!(
                        "{} is not Ready; `kubectl describe clusterissuer {}` tells why",
                        ingress.cluster_issuer, ingress.cluster_issuer
                    ),
                )
            }
        }
        Ok(None) => Check::new(
            "ClusterIssuer",
            Status::Warning,
            format!(
                "no ClusterIssuer {}; {services_fix}",
                ingress.cluster_issuer
            ),
        ),
        Err(kube::Error::Api(status)) if status.code == 404 => Check::new(
            "ClusterIssuer",
            Status::Warning,
            format!(
                "cert-manager is not installed (no clusterissuers.cert-manager.io); {services_fix}"
            ),
        ),
        Err(error) => Check::new(
            "ClusterIssuer",
            Status::Warning,
            format!("cannot read ClusterIssuers: {error}"),
        ),
    }
}

async fn check_storage_class(client: &kube::Client) -> Check {
    use k8s_openapi::api::storage::v1::StorageClass;
    use kube::api::{Api, ListParams};

    let storage: Api<StorageClass> = Api::all(client.clone());
    match storage.list(&ListParams::default()).await {
        Ok(list) => match list.items.iter().find(|class| {
            class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
                .is_some_and(|v| v == "true")
        }) {
            Some(class) => Check::new(
                "StorageClass",
                Status::Ok,
                format!("default {}", class.metadata.name.as_deref().unwrap_or("?")),
            ),
            None => Check::new(
                "StorageClass",
                Status::Warning,
                "no default StorageClass: Tutor's volumes would stay Pending; mark one with `kubectl annotate storageclass NAME storageclass.kubernetes.io/is-default-class=true`",
            ),
        },
        Err(error) => Check::new(
            "StorageClass",
            Status::Warning,
            format!("cannot list StorageClasses: {error}"),
        ),
    }
}

/// Whether Argo CD holds a repository Secret for exactly the URL the
/// Applications use (Argo CD matches credentials by URL).
async fn check_repository_credentials(client: &kube::Client, repository: Option<&str>) -> Check {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, ListParams};

    let secrets: Api<Secret> = Api::namespaced(client.clone(), crate::argo::ARGOCD_NAMESPACE);
    let labelled =
        ListParams::default().labels(&format!("{}=repository", crate::argo::SECRET_TYPE_LABEL));
    match (secrets.list_metadata(&labelled).await, repository) {
        (Err(error), _) => Check::new(
            "repository access",
            Status::Warning,
            format!("cannot list Argo CD repository Secrets: {error}"),
        ),
        (Ok(_), None) => Check::new(
            "repository access",
            Status::Skipped,
            "no cluster repository known (PHD_CLUSTER_REPOSITORY or context.json)",
        ),
        (Ok(list), Some(url)) => {
            // The credential that fits the URL (from a trial: a deploy key
            // was suggested for an https URL, which argo repository refuses).
            let fix = format!("`{}`", crate::cluster::read_access_command(url));
            let names: Vec<String> = list
                .items
                .iter()
                .filter_map(|s| s.metadata.name.clone())
                .collect();
            let mut others = Vec::new();
            let mut matching = false;
            for name in &names {
                if let Ok(secret) = secrets.get(name).await {
                    let secret_url = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("url"))
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
                    match secret_url {
                        Some(found) if found == url => matching = true,
                        Some(found) => others.push(found),
                        None => {}
                    }
                }
            }
            if !matching && !others.is_empty() {
                Check::new(
                    "repository access",
                    Status::Warning,
                    format!(
                        "Argo CD has credentials for {} but not for {url}, the URL the Applications use (context.json, cluster/*.yml); Argo CD matches them by URL: use the same URL in both",
                        others.join(", ")
                    ),
                )
            } else if matching {
                Check::new(
                    "repository access",
                    Status::Ok,
                    format!("Argo CD has credentials for {url}"),
                )
            } else {
                Check::new(
                    "repository access",
                    Status::Warning,
                    format!(
                        "Argo CD has no credentials for {url} (enough only for a public repository); {fix}"
                    ),
                )
            }
        }
    }
}

/// Applications that Argo CD cannot read their repository for: a failed
/// check naming them, or none.
async fn check_repository_reads(client: &kube::Client, repository: Option<&str>) -> Option<Check> {
    let applications = phd_common::argo::applications(client);
    let list = applications
        .list(&kube::api::ListParams::default())
        .await
        .ok()?;
    let failing: Vec<String> = list
        .items
        .iter()
        .filter(|app| {
            app.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    let message = c["message"].as_str().unwrap_or_default();
                    message.contains("authentication required")
                        || message.contains("repository not found")
                        || message.contains("Permission denied")
                })
        })
        .filter_map(|app| app.metadata.name.clone())
        .collect();
    (!failing.is_empty()).then(|| {
        Check::new(
            "repository access",
            Status::Failed,
            format!(
                "Argo CD cannot read the repository of {}; {}",
                failing.join(", "),
                repository.map_or(
                    "`kubectl phd argo repository` (see --help)".to_owned(),
                    |url| format!("`{}`", crate::cluster::read_access_command(url))
                )
            ),
        )
    })
}

/// The ApplicationSet that makes the environment's instances' Applications
/// from git (so a rebuilt cluster gets its instances back).
async fn check_instance_set(client: &kube::Client, environment: &str) -> Check {
    let set_name = format!("phd-instances-{environment}");
    let sets = phd_common::argo::application_sets(client);
    match sets.get_opt(&set_name).await {
        Ok(Some(_)) => Check::new(
            "ApplicationSet",
            Status::Ok,
            format!("{set_name} makes the instances' Applications from git"),
        ),
        Ok(None) | Err(kube::Error::Api(_)) => Check::new(
            "ApplicationSet",
            Status::Warning,
            format!(
                "no ApplicationSet {set_name}: a rebuilt cluster would not get its instances back; `kubectl phd argo install` inside the cluster repository applies it (cluster/apps/instances.yml)"
            ),
        ),
        Err(error) => Check::new(
            "ApplicationSet",
            Status::Warning,
            format!("cannot read ApplicationSets: {error}"),
        ),
    }
}

/// Instance namespaces that no Argo CD Application manages any more (its
/// ApplicationSet was deleted or renamed, or its Application deleted by
/// hand): their sites run on, but no push reaches them and no sync heals
/// them. None when the cluster has no instances.
async fn check_unmanaged_instances(client: &kube::Client) -> Option<Check> {
    const NAME: &str = "instances";
    let namespaces = match crate::instance::names_in_cluster(client).await {
        Ok(names) if names.is_empty() => return None,
        Ok(names) => names,
        Err(error) => {
            return Some(Check::new(
                NAME,
                Status::Warning,
                format!("cannot list the instances' namespaces: {error}"),
            ));
        }
    };
    let applications = phd_common::argo::applications(client);
    let params = kube::api::ListParams::default().labels(crate::instance::INSTANCE_LABEL);
    let managed: Vec<String> = match applications.list_metadata(&params).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter_map(|a| a.metadata.labels?.remove(crate::instance::INSTANCE_LABEL))
            .collect(),
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(error) => {
            return Some(Check::new(
                NAME,
                Status::Warning,
                format!("cannot list Argo CD Applications: {error}"),
            ));
        }
    };
    let unmanaged: Vec<&str> = namespaces
        .iter()
        .filter(|name| !managed.contains(name))
        .map(String::as_str)
        .collect();
    Some(if unmanaged.is_empty() {
        Check::new(
            NAME,
            Status::Ok,
            format!("{} managed by Argo CD", namespaces.len()),
        )
    } else {
        Check::new(
            NAME,
            Status::Warning,
            format!(
                "{} without an Argo CD Application: {} (nothing deploys or heals what runs there); push instances/NAME if it is not in git yet (the ApplicationSet makes the Application from it), else apply the instances' ApplicationSet (`kubectl phd argo install` inside the cluster repository), or without one `kubectl phd instance update NAME`",
                unmanaged.len(),
                unmanaged.join(", ")
            ),
        )
    })
}

/// Whether an instance's config.yml (parsed) leaves its email to Tutor's own
/// mail server, which delivers straight to recipients' MX servers: no
/// `SMTP_HOST`, or Tutor's in-cluster `smtp`, while `RUN_SMTP` is not false.
fn sends_direct_to_mx(config: &serde_json::Value) -> bool {
    let relay = config["SMTP_HOST"]
        .as_str()
        .is_some_and(|host| !host.is_empty() && host != "smtp");
    !relay && config["RUN_SMTP"] != serde_json::Value::Bool(false)
}

/// The instances of the instances directory that send email straight to
/// recipients' MX servers, which the clouds phd targets block or spam-bin
/// ([`sends_direct_to_mx`]): a warning naming them, and how to set a relay.
fn check_email(session: &Session) -> Check {
    let dir = match crate::instance::instances_dir(session) {
        Ok(dir) => dir,
        Err(error) => return Check::new("email", Status::Skipped, error.to_string()),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Check::new(
            "email",
            Status::Skipped,
            format!("no instances in {}", dir.display()),
        );
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|entry| entry.path().join("config.yml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let direct: Vec<&String> = names
        .iter()
        .filter(|name| {
            std::fs::read_to_string(dir.join(name).join("config.yml"))
                .ok()
                .and_then(|text| serde_saphyr::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|config| sends_direct_to_mx(&config))
        })
        .collect();
    match (names.len(), direct.is_empty()) {
        (0, _) => Check::new(
            "email",
            Status::Skipped,
            format!("no instances in {}", dir.display()),
        ),
        (count, true) => Check::new(
            "email",
            Status::Ok,
            format!("{count} instance(s) send email through an SMTP relay"),
        ),
        (_, false) => Check::new(
            "email",
            Status::Warning,
            format!(
                "{} send email straight to recipients' MX servers (no SMTP relay), which most clouds block or spam-bin: `kubectl phd instance update NAME --set RUN_SMTP=false --set SMTP_HOST=... --set SMTP_PORT=587 --set SMTP_USE_TLS=true --set SMTP_USERNAME=...`, then `--smtp-password-stdin` (docs/instances.md, \"Email\")",
                direct
                    .iter()
                    .map(|name| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    }
}

/// Tutor, which renders every instance: installed in phd's cache, or
/// installable (python3 present).
fn check_tutor(session: &Session) -> Check {
    let release = phd_common::tutor::default_release();
    let cache = phd_common::tutor::cache_dir(&session.env);
    let dir = cache.join("tutor").join(release.tutor);
    if dir.join(".phd-installed").is_file() {
        return Check::new(
            "Tutor",
            Status::Ok,
            format!("Tutor {} with Drydock in {}", release.tutor, dir.display()),
        );
    }
    let python = session
        .env_var(Setting::Python.env_name())
        .map(std::path::PathBuf::from)
        .or_else(|| which::which("python3").ok());
    match python {
        Some(python) => Check::new(
            "Tutor",
            Status::Warning,
            format!(
                "Tutor {} not installed yet; `kubectl phd instance create` installs it into {} on first use with {}",
                release.tutor,
                dir.display(),
                python.display()
            ),
        ),
        None => Check::new(
            "Tutor",
            Status::Failed,
            "python3 not found; instances are rendered with Tutor, which needs Python 3.9 or newer (or set PHD_PYTHON)",
        ),
    }
}

async fn check_permissions(cluster: &Cluster) -> Vec<Check> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(cluster.client.clone());
    let answers = join_all(PERMISSIONS.iter().map(|permission| {
        let reviews = reviews.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(permission.verb.to_owned()),
                        group: Some(permission.group.to_owned()),
                        resource: Some(permission.resource.to_owned()),
                        namespace: permission.namespace.map(str::to_owned),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = reviews.create(&PostParams::default(), &review).await;
            (permission, answer)
        }
    }))
    .await;

    let mut checks = Vec::new();
    let mut allowed = 0;
    for (permission, answer) in answers {
        let resource = if permission.group.is_empty() {
            permission.resource.to_owned()
        } else {
            format!("{}.{}", permission.resource, permission.group)
        };
        let scope = permission.namespace.map_or_else(
            || "cluster-wide".to_owned(),
            |ns| format!("in namespace {ns}"),
        );
        match answer.map(|review| review.status.map(|status| status.allowed)) {
            Ok(Some(true)) => allowed += 1,
            Ok(_) => checks.push(Check::new(
                "permission",
                Status::Failed,
                format!(
                    "{} {resource} {scope} is denied (needed by {})",
                    permission.verb, permission.needed_by
                ),
            )),
            Err(error) => checks.push(Check::new(
                "permission",
                Status::Failed,
                format!("cannot check {} {resource}: {error}", permission.verb),
            )),
        }
    }
    let status = if allowed == PERMISSIONS.len() {
        Status::Ok
    } else {
        Status::Failed
    };
    checks.insert(
        0,
        Check::new(
            "permissions",
            status,
            format!(
                "{allowed} of {} needed permissions granted",
                PERMISSIONS.len()
            ),
        ),
    );
    checks
}

async fn check_argo(cluster: &Cluster) -> Vec<Check> {
    let definitions: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let mut checks = Vec::new();
    for (part, names) in ARGO_PARTS {
        let found = join_all(names.iter().map(|name| definitions.get_opt(name))).await;
        let mut missing = Vec::new();
        let mut error = None;
        for (name, result) in names.iter().zip(found) {
            match result {
                Ok(Some(_)) => {}
                Ok(None) => missing.push(*name),
                Err(e) => error = Some(e),
            }
        }
        checks.push(match (error, missing.is_empty()) {
            (Some(error), _) => {
                Check::new(*part, Status::Warning, format!("cannot check: {error}"))
            }
            (None, true) => {
                let namespace = part_namespace(part);
                match unready_deployments(&cluster.client, namespace).await {
                    Ok((total, unready)) if unready.is_empty() => Check::new(
                        *part,
                        Status::Ok,
                        format!("installed, {total} Deployments ready"),
                    ),
                    Ok((total, unready)) => Check::new(
                        *part,
                        Status::Warning,
                        format!(
                            "installed, but {} of {total} Deployments not ready ({}): `kubectl -n {namespace} get pods` shows why",
                            unready.len(),
                            unready.join(", ")
                        ),
                    ),
                    Err(error) => Check::new(
                        *part,
                        Status::Warning,
                        format!("installed; cannot check its pods: {error}"),
                    ),
                }
            }
            (None, false) => Check::new(
                *part,
                Status::Warning,
                format!(
                    "not installed (missing {}); run `kubectl phd argo install`",
                    missing.join(", ")
                ),
            ),
        });
    }
    checks
}

fn print_table(report: &Report) {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        let (mark, tone) = match check.status {
            Status::Ok => ("ok  ", Tone::Good),
            Status::Warning => ("warn", Tone::Warning),
            Status::Failed => ("FAIL", Tone::Bad),
            Status::Skipped => ("skip", Tone::Dim),
        };
        println!(
            "{} {:width$}  {}",
            output::paint_stdout(mark, tone),
            check.name,
            check.detail
        );
    }
    if !report.ok {
        eprintln!("some required checks failed");
    }
}

/// The innermost cause, which for network errors says what actually happened
/// (connection refused, certificate unknown...).
fn root_cause(error: &dyn std::error::Error) -> Option<String> {
    let mut cause = error.source()?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause.to_string())
}
