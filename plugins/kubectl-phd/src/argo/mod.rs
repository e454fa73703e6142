//! `kubectl phd argo install`: Argo CD and Argo Workflows at pinned versions,
//! configured for phd (SPEC.md section 7.2). Everything is applied with
//! server-side apply, so a re-run changes nothing that is already right.

mod repository;

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use phd_common::apply::{Applied, Applier, ApplyReport};
use phd_common::config::IngressSetting;
use phd_common::config::{Credential, Setting};
use phd_common::manifest::{self, Document, ManifestSource};
use phd_common::{manifests, naming, password};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::{ArgoInstallArgs, ReportFormat};
use crate::output;
use crate::prompt;
use crate::session::Session;

pub use phd_common::argo::{ARGOCD_NAMESPACE, ARGOCD_SECRET};
pub use repository::{SECRET_TYPE_LABEL, repository};

pub const WORKFLOWS_NAMESPACE: &str = "argo";
const ADMIN_PASSWORD_MANAGER: &str = "kubectl-phd-admin-password";
const GENERATED_PASSWORD_LENGTH: usize = 24;

/// Everything `argo install` needs, checked before the first change.
struct Plan {
    argocd: Option<ArgocdPlan>,
    workflows: Option<WorkflowsPlan>,
}

struct ArgocdPlan {
    version: String,
    source: ManifestSource,
    documents: Vec<Document>,
    explicit_password: Option<String>,
}

struct WorkflowsPlan {
    version: String,
    source: ManifestSource,
    documents: Vec<Document>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InstallReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    argocd: Option<PartReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflows: Option<PartReport>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PartReport {
    version: String,
    manifest: String,
    #[serde(flatten)]
    applied: ApplyReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_password: Option<AdminPassword>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
enum AdminPassword {
    /// Already set and nothing asked to change it.
    Unchanged,
    /// Set to the password given on stdin or in PHD_ARGO_ADMIN_PASSWORD.
    Set,
    /// Generated now; the only time it is shown.
    Generated { password: String },
}

pub async fn install(session: &Session, args: &ArgoInstallArgs) -> anyhow::Result<()> {
    // The downloads and the connection overlap. Bad input is named first;
    // an unreachable cluster before a failed download (from a trial: with
    // no cluster, a download error came first and hid the real problem).
    let (plan, cluster) = tokio::join!(plan(session, args), session.connect());
    let cluster = match (&plan, cluster) {
        (Err(download), Err(unreachable)) if is_download_error(download) => {
            return Err(unreachable);
        }
        (_, cluster) => cluster,
    };
    let plan = plan?;
    let client = cluster?.client;
    let verbose = |applied: &Applied| output::debug(format!("  {applied}"));

    let argocd = async {
        let Some(part) = &plan.argocd else {
            return Ok::<_, anyhow::Error>(None);
        };
        output::info(format!(
            "Argo CD {}: applying {} objects from {}",
            part.version,
            part.documents.len(),
            part.source
        ));
        let applied = Applier::new(client.clone())
            .apply(&part.documents, Some(ARGOCD_NAMESPACE), &verbose)
            .await
            .context("cannot install Argo CD")?;
        output::info(format!("Argo CD: {}", applied.summary()));
        let admin_password = set_admin_password(&client, part.explicit_password.as_deref()).await?;
        Ok(Some(PartReport {
            version: part.version.clone(),
            manifest: part.source.to_string(),
            applied,
            admin_password: Some(admin_password),
        }))
    };
    let workflows = async {
        let Some(part) = &plan.workflows else {
            return Ok::<_, anyhow::Error>(None);
        };
        output::info(format!(
            "Argo Workflows {}: applying {} objects from {}",
            part.version,
            part.documents.len(),
            part.source
        ));
        let applied = Applier::new(client.clone())
            .apply(&part.documents, Some(WORKFLOWS_NAMESPACE), &verbose)
            .await
            .context("cannot install Argo Workflows")?;
        output::info(format!("Argo Workflows: {}", applied.summary()));
        Ok(Some(PartReport {
            version: part.version.clone(),
            manifest: part.source.to_string(),
            applied,
            admin_password: None,
        }))
    };
    let (argocd, workflows) = tokio::join!(argocd, workflows);
    let argocd = argocd?;
    if let Err(error) = workflows {
        // Argo CD is installed and its new password stored: show it now, or
        // nobody ever sees it (a re-run keeps the stored one).
        if let Some(PartReport {
            admin_password: Some(AdminPassword::Generated { password }),
            ..
        }) = &argocd
        {
            output::info(
                "Argo CD admin password generated; it is shown only this once (Argo Workflows failed, see below):",
            );
            println!("{password}");
        }
        return Err(error);
    }
    let report = InstallReport {
        argocd,
        workflows: workflows?,
    };

    if args.output == ReportFormat::Name {
        for part in [&report.argocd, &report.workflows].into_iter().flatten() {
            for object in &part.applied.objects {
                println!("{}/{}", object.kind.to_lowercase(), object.name);
            }
        }
    }
    match args.output {
        ReportFormat::Table | ReportFormat::Name => {
            let password = report
                .argocd
                .as_ref()
                .and_then(|part| part.admin_password.as_ref());
            match password {
                Some(AdminPassword::Generated { password }) => {
                    output::info("Argo CD admin password generated; it is shown only this once:");
                    println!("{password}");
                }
                Some(AdminPassword::Set) => output::info("Argo CD admin password set"),
                Some(AdminPassword::Unchanged) => output::info("Argo CD admin password unchanged"),
                None => {}
            }
        }
        format => output::print_structured(&report, format)?,
    }
    Ok(())
}

/// Reads and checks every input, loads and customises the manifests: any
/// problem is reported before the cluster is touched.
async fn plan(session: &Session, args: &ArgoInstallArgs) -> anyhow::Result<Plan> {
    let settings = session.settings();
    let with_argocd = !args.workflows_only;
    let with_workflows = !args.argocd_only;

    let environment = session.environment(args.environment.as_deref())?;
    let needs_domain = with_argocd || args.workflows_ingress;
    let domain = if needs_domain {
        let domain = settings
            .require(
                Setting::ClusterDomain,
                args.domain.as_deref(),
                Some("--domain"),
            )?
            .value;
        naming::check_domain(&domain)?;
        Some(domain)
    } else {
        None
    };
    let repository = if with_argocd {
        Some(
            settings
                .require(
                    Setting::Repository,
                    args.repository.as_deref(),
                    Some("--repository"),
                )?
                .value,
        )
    } else {
        None
    };
    let explicit_password = if args.admin_password_stdin {
        Some(prompt::password_from_stdin("--admin-password-stdin")?)
    } else {
        settings.credential(Credential::ArgoAdminPassword)
    };
    if let Some(password) = &explicit_password {
        password::check(password)
            .context("cannot use the Argo CD admin password (--admin-password-stdin or PHD_ARGO_ADMIN_PASSWORD)")?;
    }
    let ingress = settings.ingress(
        args.ingress_class.as_deref(),
        args.cluster_issuer.as_deref(),
        None,
    )?;

    let argocd = async {
        if !with_argocd {
            return Ok::<_, anyhow::Error>(None);
        }
        let version = settings
            .require(
                Setting::ArgocdVersion,
                args.argocd_version.as_deref(),
                Some("--argocd-version"),
            )?
            .value;
        naming::check_version("Argo CD version", &version)?;
        let source = match &args.argocd_manifest {
            Some(location) => ManifestSource::from_location(location),
            None => ManifestSource::Url(format!(
                "https://raw.githubusercontent.com/argoproj/argo-cd/{version}/manifests/install.yaml"
            )),
        };
        let mut documents = source.documents().await?;
        // A manifest of its own says which release it installs.
        let version = match &args.argocd_manifest {
            Some(_) => manifest_release(&documents, "argocd").unwrap_or(version),
            None => version,
        };
        let domain = domain.as_deref().unwrap_or_default();
        let repository = repository.as_deref().unwrap_or_default();
        customise_argocd(&mut documents, domain, &environment, repository, &ingress)?;
        refuse_cluster_admin(&documents)?;
        let cluster_objects = cluster_repository_objects(session)?;
        refuse_cluster_admin(&cluster_objects)?;
        if !cluster_objects.is_empty() {
            output::info(format!(
                "cluster repository: {} objects from cluster/ (the cluster services and the instances' ApplicationSet)",
                cluster_objects.len()
            ));
        }
        documents.extend(cluster_objects);
        Ok(Some(ArgocdPlan {
            version,
            source,
            documents,
            explicit_password: explicit_password.clone(),
        }))
    };
    let workflows = async {
        if !with_workflows {
            return Ok::<_, anyhow::Error>(None);
        }
        let version = settings
            .require(
                Setting::WorkflowsVersion,
                args.workflows_version.as_deref(),
                Some("--workflows-version"),
            )?
            .value;
        naming::check_version("Argo Workflows version", &version)?;
        let source = match &args.workflows_manifest {
            Some(location) => ManifestSource::from_location(location),
            None => ManifestSource::Url(format!(
                "https://github.com/argoproj/argo-workflows/releases/download/{version}/install.yaml"
            )),
        };
        let mut documents = source.documents().await?;
        let version = match &args.workflows_manifest {
            Some(_) => manifest_release(&documents, "workflow-controller").unwrap_or(version),
            None => version,
        };
        if bypasses_strict_references(&version) {
            output::info(format!(
                "{} Argo Workflows {version} lets whoever may submit a Workflow override the fields of the template it references despite templateReferencing: Strict (CVE-2026-31892, CVE-2026-54526): developers could run pods as they please; use 3.7.15 or later, or 4.0.6 or later",
                output::paint_stderr("warning:", output::Tone::Warning)
            ));
        }
        let ingress_domain = if args.workflows_ingress {
            domain.as_deref()
        } else {
            None
        };
        customise_workflows(&mut documents, ingress_domain, &ingress)?;
        documents.extend(manifests::user_roles().documents().await?);
        for template in manifests::workflow_templates() {
            documents.extend(template.documents().await?);
        }
        refuse_cluster_admin(&documents)?;
        Ok(Some(WorkflowsPlan {
            version,
            source,
            documents,
        }))
    };
    let (argocd, workflows) = tokio::join!(argocd, workflows);
    Ok(Plan {
        argocd: argocd?,
        workflows: workflows?,
    })
}

/// Whether `error` is a manifest that could not be fetched (network or
/// address), as opposed to bad input.
fn is_download_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<manifest::ManifestError>(),
            Some(manifest::ManifestError::Download { .. })
        )
    })
}

/// The release an install manifest holds: the tag of the first container
/// image named `quay.io/argoproj/<image>:<tag>` (`argocd`,
/// `workflow-controller`) in its Deployments and StatefulSets, e.g.
/// `v3.6.1`. None when no such image is there (a mirror with other names):
/// the version setting is reported then.
fn manifest_release(documents: &[Document], image: &str) -> Option<String> {
    let wanted = format!("/argoproj/{image}:");
    documents
        .iter()
        .filter(|d| {
            matches!(
                d.object["kind"].as_str(),
                Some("Deployment" | "StatefulSet")
            )
        })
        .flat_map(|d| {
            d.object["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find_map(|container| {
            let reference = container["image"].as_str()?;
            let (_, tag) = reference.split_once(&wanted)?;
            let tag = tag.split('@').next()?;
            (!tag.is_empty()).then(|| tag.to_owned())
        })
}

/// Whether Argo Workflows release `version` (`vMAJOR.MINOR.PATCH`) has the
/// `templateReferencing: Strict` bypasses: fixed in 3.7.15 and 4.0.6 (Go
/// vulnerability database, GHSA-48p8-g2fx-3wwm). A version that is not a
/// release number (a branch, a commit) is not judged.
fn bypasses_strict_references(version: &str) -> bool {
    let numbers: Vec<u64> = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect();
    match numbers[..] {
        [major, minor, patch] => match (major, minor) {
            (0..=2, _) => true,
            (3, 0..=6) => true,
            (3, 7) => patch < 15,
            (4, 0) => patch < 6,
            _ => false,
        },
        _ => false,
    }
}

const ARGOCD_SOURCE: &str = "Argo CD settings (kubectl-phd)";
const WORKFLOWS_SOURCE: &str = "Argo Workflows settings (kubectl-phd)";

/// Argo CD as phd runs it: no anonymous access, the phd roles with an empty
/// default policy, TLS terminated by the ingress (so argocd-server serves
/// plain HTTP behind it, not passthrough), and one project per environment.
fn customise_argocd(
    documents: &mut Vec<Document>,
    domain: &str,
    environment: &str,
    repository: &str,
    ingress: &IngressSetting,
) -> anyhow::Result<()> {
    let host = format!("argocd.{domain}");
    set_config_map_data(
        documents,
        ARGOCD_NAMESPACE,
        "argocd-cm",
        ARGOCD_SOURCE,
        &[
            ("url", &format!("https://{host}")),
            ("users.anonymous.enabled", "false"),
            ("admin.enabled", "true"),
            ("exec.enabled", "false"),
        ],
    )?;
    set_config_map_data(
        documents,
        ARGOCD_NAMESPACE,
        "argocd-rbac-cm",
        ARGOCD_SOURCE,
        &[
            ("policy.default", ""),
            ("policy.csv", manifests::argocd_policy()),
            ("scopes", "[groups]"),
        ],
    )?;
    set_config_map_data(
        documents,
        ARGOCD_NAMESPACE,
        "argocd-cmd-params-cm",
        ARGOCD_SOURCE,
        &[("server.insecure", "true")],
    )?;
    let mut appended = vec![
        namespace_object(ARGOCD_NAMESPACE)?,
        serde_json::to_value(ingress_object(
            ARGOCD_NAMESPACE,
            "argocd-server",
            &host,
            (
                "argocd-server",
                ServiceBackendPort {
                    name: Some("http".into()),
                    number: None,
                },
            ),
            ingress,
            BTreeMap::new(),
        ))?,
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": format!("phd-{environment}"), "namespace": ARGOCD_NAMESPACE},
            "spec": {
                "description": format!("Open edX instances of the {environment} environment, managed by phd"),
                "sourceRepos": [repository],
                "destinations": instance_destinations(&ingress.namespace),
                "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            }
        }),
    ];
    append(documents, ARGOCD_SOURCE, &mut appended);
    Ok(())
}

/// The destinations of an environment's AppProject: any namespace of this
/// cluster but those no instance may use ([`naming::RESERVED_NAMESPACES`],
/// every `kube-*` and the ingress controller's), denied with Argo CD's `!`
/// prefix (Argo CD 2.5 and later; a deny wins over the `*` allow). A
/// config.yml edited to deploy elsewhere is refused by phd, and this stops
/// a hand-written Application too.
fn instance_destinations(ingress_namespace: &str) -> Value {
    let server = "https://kubernetes.default.svc";
    let mut destinations = vec![json!({"server": server, "namespace": "*"})];
    let mut denied: Vec<&str> = naming::RESERVED_NAMESPACES.to_vec();
    denied.push("kube-*");
    if !denied.contains(&ingress_namespace) {
        denied.push(ingress_namespace);
    }
    destinations.extend(
        denied
            .into_iter()
            .map(|namespace| json!({"server": server, "namespace": format!("!{namespace}")})),
    );
    Value::Array(destinations)
}

/// The cluster repository's own Argo CD objects (SPEC.md 7.10), as they are
/// in its `cluster/` folder: the `phd-cluster` AppProject, the root
/// Application of `cluster/apps/`, and what that folder holds (the cluster
/// services, the ApplicationSet of the instances). Applying them here is the
/// bootstrap; from then on Argo CD keeps them as git says, and a rebuilt
/// cluster gets its services and instances back. Empty when phd does not run
/// inside a cluster repository, or the repository has no `cluster/root.yml`.
///
/// Errors: a file that is not valid YAML, or that names an empty `repoURL`
/// (a repository made without `--github-org`/`--github-repo`).
fn cluster_repository_objects(session: &Session) -> anyhow::Result<Vec<Document>> {
    let Some(repository) = &session.repository else {
        return Ok(Vec::new());
    };
    let dir = repository.root.join("cluster");
    if !dir.join("root.yml").is_file() {
        return Ok(Vec::new());
    }
    let mut paths = vec![dir.join("project.yml"), dir.join("root.yml")];
    let apps = dir.join("apps");
    let mut listed: Vec<std::path::PathBuf> = std::fs::read_dir(&apps)
        .with_context(|| format!("cannot read {}", apps.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|e| e == "yml" || e == "yaml" || e == "json")
        })
        .collect();
    listed.sort();
    paths.extend(listed);
    let mut documents = Vec::new();
    // Every file without the URL, named at once (not one per run).
    let mut without_url = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {name}"))?;
        for document in manifest::parse(&name, &text)? {
            if has_empty_repository(&document.object) && !without_url.contains(&name) {
                without_url.push(name.clone());
            }
            documents.push(document);
        }
    }
    if !without_url.is_empty() {
        bail!(
            "the cluster repository's URL is empty (a repoURL or sourceRepos entry) in {}; the repository was made without --github-org or --github-repo. Create it on your git host, write its URL there and as \"repository\" in {}, commit and push (Argo CD applies cluster/apps/ from git), then run argo install again",
            without_url.join(", "),
            repository
                .root
                .join(phd_common::config::CONTEXT_FILE)
                .display()
        );
    }
    Ok(documents)
}

/// Whether an Argo CD object names an empty repository (`repoURL: ""`, or
/// `""` among an AppProject's `sourceRepos`).
fn has_empty_repository(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, item)| match (key.as_str(), item) {
            ("repoURL", Value::String(url)) => url.trim().is_empty(),
            ("sourceRepos", Value::Array(list)) => list
                .iter()
                .any(|url| url.as_str().is_some_and(|u| u.trim().is_empty())),
            _ => has_empty_repository(item),
        }),
        Value::Array(list) => list.iter().any(has_empty_repository),
        _ => false,
    }
}

/// Argo Workflows as phd runs it: workflow pods as non-root with no
/// privilege escalation (the emissary executor, the only one since 3.4, needs
/// nothing more), argo-server authenticating clients by their own tokens.
fn customise_workflows(
    documents: &mut Vec<Document>,
    ingress_domain: Option<&str>,
    ingress: &IngressSetting,
) -> anyhow::Result<()> {
    let container_security = "securityContext:\n  runAsNonRoot: true\n  runAsUser: 8737\n  allowPrivilegeEscalation: false\n  capabilities:\n    drop: [ALL]\n  seccompProfile:\n    type: RuntimeDefault\n";
    let workflow_defaults = "spec:\n  securityContext:\n    runAsNonRoot: true\n    runAsUser: 8737\n    fsGroup: 8737\n    seccompProfile:\n      type: RuntimeDefault\n  podGC:\n    strategy: OnPodSuccess\n";
    set_config_map_data(
        documents,
        WORKFLOWS_NAMESPACE,
        "workflow-controller-configmap",
        WORKFLOWS_SOURCE,
        &[
            ("executor", container_security),
            ("mainContainer", container_security),
            ("workflowDefaults", workflow_defaults),
            // Only Workflows that reference a (Cluster)WorkflowTemplate run:
            // what a user may submit is what the templates allow.
            ("workflowRestrictions", "templateReferencing: Strict\n"),
        ],
    )?;
    set_argo_server_auth_mode(documents)?;
    let mut appended = vec![namespace_object(WORKFLOWS_NAMESPACE)?];
    if let Some(domain) = ingress_domain {
        let annotations = BTreeMap::from([(
            "nginx.ingress.kubernetes.io/backend-protocol".to_owned(),
            "HTTPS".to_owned(),
        )]);
        appended.push(serde_json::to_value(ingress_object(
            WORKFLOWS_NAMESPACE,
            "argo-server",
            &format!("workflows.{domain}"),
            (
                "argo-server",
                ServiceBackendPort {
                    name: None,
                    number: Some(2746),
                },
            ),
            ingress,
            annotations,
        ))?);
    }
    append(documents, WORKFLOWS_SOURCE, &mut appended);
    Ok(())
}

/// argo-server with `--auth-mode=client`, whatever the manifest said.
fn set_argo_server_auth_mode(documents: &mut [Document]) -> anyhow::Result<()> {
    let deployment = documents
        .iter_mut()
        .find(|d| d.kind() == "Deployment" && d.name() == Some("argo-server"))
        .context("the Argo Workflows manifest has no argo-server Deployment")?;
    let containers = deployment.object["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .context("the argo-server Deployment has no containers")?;
    let container = containers
        .iter_mut()
        .find(|c| c["name"] == "argo-server")
        .context("the argo-server Deployment has no argo-server container")?;
    let mut args: Vec<Value> = Vec::new();
    let mut skip_value = false;
    for arg in container["args"].as_array().cloned().unwrap_or_default() {
        if skip_value {
            skip_value = false;
            continue;
        }
        match arg.as_str() {
            Some("--auth-mode") => skip_value = true,
            Some(text) if text.starts_with("--auth-mode=") => {}
            _ => args.push(arg),
        }
    }
    if args.is_empty() {
        args.push(Value::String("server".into()));
    }
    args.push(Value::String("--auth-mode=client".into()));
    container["args"] = Value::Array(args);
    Ok(())
}

/// Adds `entries` to the ConfigMap's data in the manifest, or appends the
/// ConfigMap when the manifest has none.
fn set_config_map_data(
    documents: &mut Vec<Document>,
    namespace: &str,
    name: &str,
    source_name: &str,
    entries: &[(&str, &str)],
) -> anyhow::Result<()> {
    let existing = documents.iter_mut().find(|d| {
        d.kind() == "ConfigMap"
            && d.name() == Some(name)
            && d.namespace().is_none_or(|ns| ns == namespace)
    });
    match existing {
        Some(document) => {
            if !document.object["data"].is_object() {
                document.object["data"] = json!({});
            }
            for (key, value) in entries {
                document.object["data"][*key] = Value::String((*value).to_owned());
            }
        }
        None => {
            let config_map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                },
                data: Some(
                    entries
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            };
            let index = documents.len() + 1;
            documents.push(Document::from_object(
                source_name,
                index,
                serde_json::to_value(config_map)?,
            ));
        }
    }
    Ok(())
}

fn append(documents: &mut Vec<Document>, source_name: &str, objects: &mut Vec<Value>) {
    for (position, object) in objects.drain(..).enumerate() {
        documents.push(Document::from_object(source_name, position + 1, object));
    }
}

fn namespace_object(name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "kubectl-phd".to_owned(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    })?)
}

/// An ingress whose TLS certificate cert-manager issues and the ingress
/// controller terminates.
fn ingress_object(
    namespace: &str,
    name: &str,
    host: &str,
    (service, port): (&str, ServiceBackendPort),
    settings: &IngressSetting,
    mut annotations: BTreeMap<String, String>,
) -> Ingress {
    annotations.insert(
        "cert-manager.io/cluster-issuer".to_owned(),
        settings.cluster_issuer.clone(),
    );
    Ingress {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: Some(settings.class.clone()),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![host.to_owned()]),
                secret_name: Some(format!("{name}-tls")),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(host.to_owned()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: service.to_owned(),
                                port: Some(port),
                            }),
                            ..Default::default()
                        },
                    }],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// phd never grants cluster-admin; a manifest that does is refused whole.
fn refuse_cluster_admin(documents: &[Document]) -> anyhow::Result<()> {
    if let Some(binding) = documents.iter().find(|d| {
        d.kind() == "ClusterRoleBinding" && d.object["roleRef"]["name"] == "cluster-admin"
    }) {
        bail!(
            "{}, document {}: {} binds cluster-admin, which phd never grants; use a manifest without it",
            binding.source_name,
            binding.index,
            binding.describe()
        );
    }
    Ok(())
}

/// Sets Argo CD's admin password: generated only when none is set yet, set
/// when one was given and differs from the stored one, otherwise untouched, so
/// a re-run never rotates it.
async fn set_admin_password(
    client: &kube::Client,
    explicit: Option<&str>,
) -> anyhow::Result<AdminPassword> {
    // argocd-server writes into argocd-secret too (its server.secretkey at
    // first start): a changed Secret without an admin password is retried.
    for _ in 0..10 {
        if let Some(outcome) = try_set_admin_password(client, explicit).await? {
            return Ok(outcome);
        }
    }
    anyhow::bail!(
        "argocd-secret kept changing while the Argo CD admin password was being stored; run the same command again"
    )
}

/// One attempt of [`set_admin_password`]; `None` when argocd-secret changed
/// between reading and storing a generated password.
async fn try_set_admin_password(
    client: &kube::Client,
    explicit: Option<&str>,
) -> anyhow::Result<Option<AdminPassword>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ARGOCD_NAMESPACE);
    let stored = secrets
        .get_opt(ARGOCD_SECRET)
        .await
        .context("cannot read the Argo CD secret argocd-secret")?;
    let read_at = stored
        .as_ref()
        .and_then(|secret| secret.metadata.resource_version.clone());
    let current = stored
        .and_then(|secret| secret.data)
        .and_then(|data| data.get("admin.password").cloned())
        .and_then(|hash| String::from_utf8(hash.0).ok());
    let (password, outcome) = match (explicit, current) {
        (Some(given), Some(hash)) if password::bcrypt_matches(given, &hash) => {
            return Ok(Some(AdminPassword::Unchanged));
        }
        (None, Some(_)) => return Ok(Some(AdminPassword::Unchanged)),
        (Some(given), _) => (given.to_owned(), AdminPassword::Set),
        (None, None) => {
            let generated = password::generate(GENERATED_PASSWORD_LENGTH);
            (
                generated.clone(),
                AdminPassword::Generated {
                    password: generated,
                },
            )
        }
    };
    let hash = password::bcrypt_hash(&password)?;
    // A generated password is stored only if argocd-secret is as read, so of
    // two installs at once only one shows a password, the one that works.
    let generated = matches!(outcome, AdminPassword::Generated { .. });
    let secret = phd_common::argo::password_secret("admin", &hash, read_at.filter(|_| generated));
    match secrets
        .patch(
            ARGOCD_SECRET,
            &PatchParams::apply(ADMIN_PASSWORD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
    {
        Ok(_) => Ok(Some(outcome)),
        // Changed since read: maybe another install stored its password.
        Err(kube::Error::Api(status)) if status.code == 409 && generated => Ok(None),
        Err(error) => {
            Err(error).context("cannot store the Argo CD admin password in argocd-secret")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn workflows_releases_with_the_strict_bypasses() {
        use super::bypasses_strict_references as bypasses;
        for vulnerable in [
            "v3.7.4", "v3.7.14", "v3.6.19", "v4.0.5", "v4.0.0", "v2.12.13",
        ] {
            assert!(bypasses(vulnerable), "{vulnerable}");
        }
        for fixed in [
            "v3.7.15",
            "v3.7.18",
            "v4.0.6",
            "v4.1.2",
            "v3.8.0",
            "main",
            "release-3.7",
        ] {
            assert!(!bypasses(fixed), "{fixed}");
        }
    }

    use super::*;

    fn documents(text: &str) -> Vec<Document> {
        manifest::parse("test", text).expect("parse")
    }

    #[test]
    fn auth_mode_is_replaced_not_duplicated() {
        let mut docs = documents(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: argo-server\nspec:\n  template:\n    spec:\n      containers:\n      - name: argo-server\n        args: [server, --auth-mode, server, --auth-mode=sso, --secure]\n",
        );
        set_argo_server_auth_mode(&mut docs).expect("customise");
        let args = &docs[0].object["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(args, &json!(["server", "--secure", "--auth-mode=client"]));
    }

    #[test]
    fn config_map_data_is_merged_or_appended() {
        let mut docs = documents(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\ndata:\n  keep: me\n",
        );
        set_config_map_data(&mut docs, "argocd", "argocd-cm", "s", &[("a", "1")]).expect("merge");
        assert_eq!(docs[0].object["data"], json!({"keep": "me", "a": "1"}));
        set_config_map_data(&mut docs, "argocd", "argocd-rbac-cm", "s", &[("b", "2")])
            .expect("append");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].object["metadata"]["namespace"], "argocd");
    }

    #[test]
    fn cluster_admin_bindings_are_refused() {
        let docs = documents(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: too-much\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects: []\n",
        );
        let error = refuse_cluster_admin(&docs).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("ClusterRoleBinding too-much binds cluster-admin")
        );
    }
}
