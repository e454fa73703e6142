//! `kubectl phd ci-credentials`: a ServiceAccount with exactly what the
//! generated create, update and delete workflows need, and a kubeconfig for
//! it with a long-lived token and no exec plugin (SPEC.md 7.10).
//!
//! Least privilege, enforced by the API server:
//! - RBAC (ClusterRole `phd-ci`, Role `phd-ci` in `argocd`) grants what
//!   `instance create|update|delete` call, and no Secret at all;
//! - Secrets come only through RoleBindings to ClusterRole `phd-ci-instance`
//!   that `instance create` makes in each instance namespace (the only `bind`
//!   the account has);
//! - a ValidatingAdmissionPolicy refuses every namespaced write of the account
//!   outside namespaces labelled `kubectl-phd/instance`, and any change to a
//!   namespace without that label, so it can neither bind itself elsewhere
//!   nor label `kube-system` as an instance; its Workflows may only run
//!   phd's provisioning ClusterWorkflowTemplates as `workflow-executor`
//!   (no templates, pod patches or volumes of their own), and its Argo CD
//!   Applications may only be instance Applications (project `phd-<env>`,
//!   destination the instance's own namespace).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams};
use phd_common::apply::Applier;
use phd_common::manifest::Document;
use phd_common::wait::{self, WaitError};
use serde::Serialize;
use serde_json::json;

use crate::cli::{CiCredentialsArgs, OutputFormat};
use crate::output;
use crate::session::Session;

/// Namespace, ServiceAccount, ClusterRole, Role and policy name.
pub const CI_NAME: &str = "phd-ci";
/// The ClusterRole an instance namespace's RoleBinding gives the account.
pub const INSTANCE_ROLE: &str = "phd-ci-instance";
const TOKEN_SECRET: &str = "phd-ci-token";
const TOKEN_WAIT: Duration = Duration::from_secs(30);

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    }
}

/// The username the API server gives the account.
pub fn username() -> String {
    format!("system:serviceaccount:{CI_NAME}:{CI_NAME}")
}

fn metadata(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/managed-by".to_owned(),
            "kubectl-phd".to_owned(),
        )])),
        ..Default::default()
    }
}

/// What `instance create|update|delete` call, read from their code:
/// namespaces (apply, list, delete), CRDs (the "is Argo installed" check),
/// the instance namespace's ServiceAccounts, Role, RoleBinding,
/// NetworkPolicies, ResourceQuota and LimitRange (server-side apply; `workflowtaskresults` because the
/// executor Role grants them), Workflows (submit, watch, replace), and the
/// `bind`s that let `instance create` give the account Secrets in a new
/// instance namespace and the developers their Workflows there (listing the
/// developers' ServiceAccounts is in `serviceaccounts`).
pub fn cluster_rules() -> Vec<PolicyRule> {
    let apply = ["get", "list", "create", "patch"];
    vec![
        rule(
            &[""],
            &["namespaces"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get", "list"],
        ),
        rule(&[""], &["serviceaccounts"], &apply),
        rule(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            &apply,
        ),
        rule(&["networking.k8s.io"], &["networkpolicies"], &apply),
        // The size tier's quota and container limits of the namespace.
        rule(&[""], &["resourcequotas", "limitranges"], &apply),
        rule(
            &["argoproj.io"],
            &["workflows"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule(
            &["argoproj.io"],
            &["workflowtaskresults"],
            &["create", "patch"],
        ),
        PolicyRule {
            api_groups: Some(vec!["rbac.authorization.k8s.io".into()]),
            resources: Some(vec!["clusterroles".into()]),
            resource_names: Some(vec![
                INSTANCE_ROLE.into(),
                phd_common::rbac::WORKFLOW_RUNNER_ROLE.into(),
            ]),
            verbs: vec!["get".into(), "bind".into()],
            ..Default::default()
        },
    ]
}

/// In `argocd`: the instances' Applications and ApplicationSets.
pub fn argocd_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["argoproj.io"],
            &["applications"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule(&["argoproj.io"], &["applicationsets"], &["get", "list"]),
    ]
}

/// In each instance namespace: its Secrets (credentials, provisioning, pull).
pub fn instance_rules() -> Vec<PolicyRule> {
    vec![rule(
        &[""],
        &["secrets"],
        &["get", "list", "create", "patch", "delete"],
    )]
}

/// The RoleBinding `instance create` makes in an instance namespace when the
/// cluster has ci-credentials' ClusterRole.
pub fn instance_binding(namespace: &str) -> RoleBinding {
    RoleBinding {
        metadata: metadata(CI_NAME, Some(namespace)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: INSTANCE_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: CI_NAME.into(),
            namespace: Some(CI_NAME.into()),
            ..Default::default()
        }]),
    }
}

fn objects() -> anyhow::Result<Vec<Document>> {
    let source = "ci-credentials (kubectl-phd)";
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: CI_NAME.into(),
        namespace: Some(CI_NAME.into()),
        ..Default::default()
    };
    let cluster_role_ref = |name: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    };
    let in_instance_namespace = "namespaceObject != null && has(namespaceObject.metadata.labels) && 'kubectl-phd/instance' in namespaceObject.metadata.labels";
    let templates: Vec<String> = ["mysql", "mongodb", "storage"]
        .iter()
        .flat_map(|r| {
            [
                format!("'{r}-provision-template'"),
                format!("'{r}-deprovision-template'"),
            ]
        })
        .collect();
    // Workflows: only a reference to phd's ClusterWorkflowTemplates (which
    // run as the executor account) with arguments, nothing else of their own.
    let workflow_rule = format!(
        "request.operation == 'DELETE' || (object.spec.all(k, k in ['workflowTemplateRef', 'arguments']) && has(object.spec.workflowTemplateRef) && has(object.spec.workflowTemplateRef.clusterScope) && object.spec.workflowTemplateRef.clusterScope == true && object.spec.workflowTemplateRef.name in [{}])",
        templates.join(", ")
    );
    // Applications: only an instance's, in its environment's project, into
    // its own namespace.
    let application_rule = "request.operation == 'DELETE' ? (has(oldObject.metadata.labels) && 'kubectl-phd/instance' in oldObject.metadata.labels) : (has(object.metadata.labels) && 'kubectl-phd/instance' in object.metadata.labels && object.spec.project.startsWith('phd-') && object.spec.project != 'phd-cluster' && object.spec.destination.namespace == object.metadata.labels['kubectl-phd/instance'] && object.spec.destination.server == 'https://kubernetes.default.svc')";
    let namespace_is_instance = |object: &str| {
        format!(
            "{object} != null && has({object}.metadata.labels) && 'kubectl-phd/instance' in {object}.metadata.labels"
        )
    };
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": CI_NAME, "labels": {"app.kubernetes.io/managed-by": "kubectl-phd"}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [
                {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                 "resources": ["secrets", "serviceaccounts", "namespaces", "resourcequotas", "limitranges"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                 "resources": ["roles", "rolebindings"]},
                {"apiGroups": ["networking.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                 "resources": ["networkpolicies"]},
                {"apiGroups": ["argoproj.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                 "resources": ["workflows", "applications"]},
            ]},
            "matchConditions": [{"name": "the-ci-account", "expression": format!("request.userInfo.username == '{}'", username())}],
            "validations": [
                {
                    "expression": format!(
                        "request.resource.resource == 'namespaces' ? (request.operation == 'CREATE' ? ({}) : ({})) : (request.resource.resource == 'applications' || ({in_instance_namespace}))",
                        namespace_is_instance("object"),
                        namespace_is_instance("oldObject"),
                    ),
                    "message": "the phd CI account may change only instance namespaces (labelled kubectl-phd/instance) and what is in them",
                },
                {
                    "expression": format!("request.resource.resource != 'workflows' || ({workflow_rule})"),
                    "message": "the phd CI account may only submit phd's provisioning ClusterWorkflowTemplates, with arguments",
                },
                {
                    "expression": format!("request.resource.resource != 'applications' || ({application_rule})"),
                    "message": "the phd CI account may only manage instance Applications (project phd-<environment>, destination the instance's namespace)",
                },
            ],
        },
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": CI_NAME, "labels": {"app.kubernetes.io/managed-by": "kubectl-phd"}},
        "spec": {"policyName": CI_NAME, "validationActions": ["Deny"]},
    });
    let token = Secret {
        metadata: ObjectMeta {
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/service-account.name".to_owned(),
                CI_NAME.to_owned(),
            )])),
            ..metadata(TOKEN_SECRET, Some(CI_NAME))
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    let values = vec![
        serde_json::to_value(Namespace {
            metadata: metadata(CI_NAME, None),
            ..Default::default()
        })?,
        serde_json::to_value(ServiceAccount {
            metadata: metadata(CI_NAME, Some(CI_NAME)),
            ..Default::default()
        })?,
        serde_json::to_value(ClusterRole {
            metadata: metadata(CI_NAME, None),
            rules: Some(cluster_rules()),
            ..Default::default()
        })?,
        serde_json::to_value(ClusterRole {
            metadata: metadata(INSTANCE_ROLE, None),
            rules: Some(instance_rules()),
            ..Default::default()
        })?,
        serde_json::to_value(ClusterRoleBinding {
            metadata: metadata(CI_NAME, None),
            role_ref: cluster_role_ref(CI_NAME),
            subjects: Some(vec![subject.clone()]),
        })?,
        serde_json::to_value(Role {
            metadata: metadata(CI_NAME, Some("argocd")),
            rules: Some(argocd_rules()),
        })?,
        serde_json::to_value(RoleBinding {
            metadata: metadata(CI_NAME, Some("argocd")),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: CI_NAME.into(),
            },
            subjects: Some(vec![subject]),
        })?,
        policy,
        binding,
        serde_json::to_value(token)?,
    ];
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(index, value)| Document::from_object(source, index + 1, value))
        .collect())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    service_account: String,
    token_secret: String,
    rotated: bool,
    kubeconfig: String,
}

pub async fn credentials(session: &Session, args: &CiCredentialsArgs) -> anyhow::Result<()> {
    let cluster = session.connect().await?;
    let client = cluster.client.clone();
    phd_common::argo::require_installed(&client, &[phd_common::argo::Part::ArgoCd]).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), CI_NAME);
    if args.rotate {
        match secrets.delete(TOKEN_SECRET, &DeleteParams::default()).await {
            Ok(_) => output::info(format!(
                "deleted the old token Secret {CI_NAME}/{TOKEN_SECRET}"
            )),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error).context("cannot delete the old token"),
        }
        // The new Secret gets a new token only once the old one is gone.
        let gone = wait::until(TOKEN_WAIT, Duration::from_millis(100), |_| async {
            Ok::<_, kube::Error>(secrets.get_opt(TOKEN_SECRET).await?.is_none().then_some(()))
        });
        match gone.await {
            Ok(()) => {}
            Err(WaitError::Failed(error)) => {
                return Err(anyhow::Error::new(error).context("cannot read the token Secret"));
            }
            Err(WaitError::TimedOut { timeout } | WaitError::Stalled { timeout }) => bail!(
                "the old token Secret {CI_NAME}/{TOKEN_SECRET} is still there after {}s",
                timeout.as_secs()
            ),
        }
    }
    let applied = Applier::new(client.clone())
        .apply(&objects()?, None, &|applied| {
            output::debug(format!("  {applied}"))
        })
        .await
        .context("cannot create the CI account")?;
    output::info(format!("CI account {}: {}", username(), applied.summary()));

    // The token controller fills the Secret.
    let (token, ca) =
        phd_common::rbac::service_account_token(&client, CI_NAME, TOKEN_SECRET).await?;
    let kubeconfig = kubeconfig(&cluster.server, &ca, &token)?;
    let text = if args.base64 {
        base64::engine::general_purpose::STANDARD.encode(&kubeconfig) + "\n"
    } else {
        kubeconfig
    };
    match args.output {
        OutputFormat::Table => print!("{text}"),
        format => output::print_structured(
            &Report {
                service_account: format!("{CI_NAME}/{CI_NAME}"),
                token_secret: format!("{CI_NAME}/{TOKEN_SECRET}"),
                rotated: args.rotate,
                kubeconfig: text,
            },
            format,
        )?,
    }
    output::info(
        "this kubeconfig holds a long-lived token: store it as the KUBECONFIG_CONTENT secret of the cluster repository (gh secret set KUBECONFIG_CONTENT), nowhere else; `--rotate` replaces it",
    );
    Ok(())
}

/// A kubeconfig for `server` with the account's token and no exec plugin.
fn kubeconfig(server: &str, ca: &ByteString, token: &ByteString) -> anyhow::Result<String> {
    let token = String::from_utf8(token.0.clone()).context("the token is not text")?;
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "phd", "cluster": {
            "server": server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&ca.0),
        }}],
        "users": [{"name": CI_NAME, "user": {"token": token}}],
        "contexts": [{"name": CI_NAME, "context": {"cluster": "phd", "user": CI_NAME}}],
        "current-context": CI_NAME,
    });
    Ok(serde_saphyr::to_string(&config)?)
}
