//! Who may run Workflows in an instance namespace.
//!
//! A developer may submit Workflows only in instance namespaces (labelled
//! `kubectl-phd/instance`), and, because the Argo Workflows controller runs
//! with `templateReferencing: Strict` (set by `argo install`), only Workflows
//! that reference a template the cluster's admins wrote. The cluster-wide
//! role `phd-argo-developer` reads; writing Workflows comes from the
//! RoleBinding [`DEVELOPERS_BINDING`] of each instance namespace to the
//! ClusterRole [`WORKFLOW_RUNNER_ROLE`], whose subjects are the developers'
//! ServiceAccounts (label `kubectl-phd/role=developer`). `user create`,
//! `update` and `delete` rewrite it in every instance namespace; `instance
//! create` writes it in the new one. SubjectAccessReviews then say exactly
//! where a developer may run Workflows.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::wait::{self, WaitError};

/// The ClusterRole that may write Workflows (from manifests/rbac/user-roles.yaml).
pub const WORKFLOW_RUNNER_ROLE: &str = "phd-argo-workflow-runner";
/// The RoleBinding of each instance namespace that grants it to developers.
pub const DEVELOPERS_BINDING: &str = "phd-argo-developers";
/// Label of a user's ServiceAccount naming its role.
pub const ROLE_LABEL: &str = "kubectl-phd/role";
/// Label of an instance namespace.
pub const INSTANCE_LABEL: &str = "kubectl-phd/instance";
const FIELD_MANAGER: &str = "kubectl-phd-developers";

/// The developers' ServiceAccounts in `users_namespace` as RoleBinding subjects.
///
/// # Errors
/// The API server's answer when the list is refused.
pub async fn developers(
    client: &kube::Client,
    users_namespace: &str,
) -> Result<Vec<Subject>, kube::Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), users_namespace);
    let listed = accounts
        .list(&ListParams::default().labels(&format!("{ROLE_LABEL}=developer")))
        .await?;
    let mut subjects: Vec<Subject> = listed
        .items
        .into_iter()
        .filter_map(|account| account.metadata.name)
        .map(|name| Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: Some(users_namespace.to_owned()),
            ..Default::default()
        })
        .collect();
    subjects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(subjects)
}

/// Writes the developers' RoleBinding in instance namespace `namespace`.
///
/// # Errors
/// The API server's answer when the apply is refused.
pub async fn bind_developers(
    client: &kube::Client,
    namespace: &str,
    subjects: &[Subject],
) -> Result<(), kube::Error> {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(DEVELOPERS_BINDING.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "kubectl-phd".to_owned(),
            )])),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: WORKFLOW_RUNNER_ROLE.into(),
        },
        subjects: Some(subjects.to_vec()),
    };
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    bindings
        .patch(
            DEVELOPERS_BINDING,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&binding),
        )
        .await
        .map(|_| ())
}

/// Rewrites the developers' RoleBinding in every instance namespace (not
/// in one being deleted), all at once.
///
/// # Errors
/// The first refusal of the API server.
pub async fn bind_developers_everywhere(
    client: &kube::Client,
    users_namespace: &str,
) -> Result<usize, kube::Error> {
    let subjects = developers(client, users_namespace).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let instances: Vec<String> = namespaces
        .list_metadata(&ListParams::default().labels(INSTANCE_LABEL))
        .await?
        .items
        .into_iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter_map(|ns| ns.metadata.name)
        .collect();
    let results = futures::future::join_all(
        instances
            .iter()
            .map(|namespace| bind_developers(client, namespace, &subjects)),
    )
    .await;
    for result in results {
        result?;
    }
    Ok(instances.len())
}

/// How long the token controller may take to fill a ServiceAccount token Secret.
pub const TOKEN_WAIT: Duration = Duration::from_secs(30);

/// Why [`service_account_token`] has no token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read Secret {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the token controller did not fill Secret {namespace}/{name} within {}s (is kube-controller-manager running?)",
        TOKEN_WAIT.as_secs()
    )]
    Timeout { namespace: String, name: String },
}

/// The `token` and `ca.crt` of ServiceAccount token Secret `namespace/name`
/// (type `kubernetes.io/service-account-token`), once the token controller
/// has filled them: read every 100 ms for at most [`TOKEN_WAIT`]. Needs only
/// `get` on that Secret.
pub async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(k8s_openapi::ByteString, k8s_openapi::ByteString), TokenError> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), namespace);
    let filled = wait::until(TOKEN_WAIT, Duration::from_millis(100), |_| async {
        let mut data = secrets.get(name).await?.data.unwrap_or_default();
        Ok(match (data.remove("token"), data.remove("ca.crt")) {
            (Some(token), Some(ca)) => Some((token, ca)),
            _ => None,
        })
    });
    filled.await.map_err(|error| match error {
        WaitError::Failed(source) => TokenError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        },
        WaitError::TimedOut { .. } | WaitError::Stalled { .. } => TokenError::Timeout {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
    })
}
