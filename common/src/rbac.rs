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
//!
//! Never while a namespace holds admin credentials (the Secret
//! [`ADMIN_SECRET`], there while phd provisions or deprovisions): the
//! templates that read them act as the database and storage admin, so phd
//! removes the binding ([`unbind_developers`]) before it stores them, and
//! [`bind_developers`] does not bind where they are.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
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
/// The Secret of admin credentials an instance namespace holds while phd
/// (de)provisions it.
pub const ADMIN_SECRET: &str = "phd-provisioning";

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

/// Whether instance namespace `namespace` holds admin credentials (the
/// Secret [`ADMIN_SECRET`]).
///
/// # Errors
/// The API server's answer when the Secret cannot be read.
pub async fn holds_admin_credentials(
    client: &kube::Client,
    namespace: &str,
) -> Result<bool, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(secrets.get_metadata_opt(ADMIN_SECRET).await?.is_some())
}

/// Writes the developers' RoleBinding in instance namespace `namespace`,
/// unless the namespace holds admin credentials ([`ADMIN_SECRET`]): then
/// nothing is written and the answer is `false` (the command that stored
/// them binds once it has removed them).
///
/// # Errors
/// The API server's answer when the read or the apply is refused.
pub async fn bind_developers(
    client: &kube::Client,
    namespace: &str,
    subjects: &[Subject],
) -> Result<bool, kube::Error> {
    if holds_admin_credentials(client, namespace).await? {
        return Ok(false);
    }
    apply_binding(client, namespace, subjects)
        .await
        .map(|()| true)
}

/// Applies the developers' RoleBinding of `namespace` with `subjects`.
async fn apply_binding(
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

/// How long [`unbind_developers`] waits for the API server's authorizer to
/// see the binding gone.
pub const UNBIND_WAIT: Duration = Duration::from_secs(10);

/// Why [`unbind_developers`] failed.
#[derive(Debug, thiserror::Error)]
pub enum UnbindError {
    #[error(
        "cannot remove the developers from RoleBinding {DEVELOPERS_BINDING} of namespace {namespace}"
    )]
    Remove {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "developer {developer} may still create Workflows in namespace {namespace} {}s after its RoleBinding {DEVELOPERS_BINDING} was removed (another binding grants it?); admin credentials are not stored where a developer can run Workflows",
        UNBIND_WAIT.as_secs()
    )]
    StillAllowed {
        namespace: String,
        developer: String,
    },
}

/// Empties the developers' RoleBinding of `namespace` (applied with no
/// subjects: an identity that may write RoleBindings but not delete them,
/// like the CI account, can do it), then waits until the API server refuses
/// each developer of `users_namespace` the creation of Workflows there
/// (asked by SubjectAccessReview every 100 ms for at most [`UNBIND_WAIT`];
/// an identity that may not ask waits one second, the time RBAC takes to
/// see a changed binding).
///
/// # Errors
/// [`UnbindError::StillAllowed`] when a developer may still create
/// Workflows after the wait; the API server's refusals otherwise.
pub async fn unbind_developers(
    client: &kube::Client,
    namespace: &str,
    users_namespace: &str,
) -> Result<(), UnbindError> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let remove_error = |source| UnbindError::Remove {
        namespace: namespace.to_owned(),
        source,
    };
    apply_binding(client, namespace, &[])
        .await
        .map_err(remove_error)?;
    let subjects = match developers(client, users_namespace).await {
        Ok(subjects) => subjects,
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(error) => return Err(remove_error(error)),
    };
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    for subject in subjects {
        let user = format!("system:serviceaccount:{users_namespace}:{}", subject.name);
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.clone()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{users_namespace}"),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some("create".into()),
                    group: Some("argoproj.io".into()),
                    resource: Some("workflows".into()),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let refused = wait::until(UNBIND_WAIT, Duration::from_millis(100), |_| async {
            let answer = reviews
                .create(&kube::api::PostParams::default(), &review)
                .await?;
            Ok::<_, kube::Error>(
                (!answer.status.is_some_and(|status| status.allowed)).then_some(()),
            )
        });
        match refused.await {
            Ok(()) => {}
            Err(WaitError::Failed(kube::Error::Api(status))) if status.code == 403 => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Ok(());
            }
            Err(WaitError::Failed(error)) => return Err(remove_error(error)),
            Err(WaitError::TimedOut { .. } | WaitError::Stalled { .. }) => {
                return Err(UnbindError::StillAllowed {
                    namespace: namespace.to_owned(),
                    developer: user,
                });
            }
        }
    }
    Ok(())
}

/// Rewrites the developers' RoleBinding in every instance namespace (not
/// in one being deleted, nor in one that holds admin credentials: see
/// [`bind_developers`]), all at once. Returns how many namespaces were bound.
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
    let mut bound = 0;
    for result in results {
        bound += usize::from(result?);
    }
    Ok(bound)
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
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
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
