//! The local control plane is a real one: controllers run, RBAC is enforced.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use phd_testkit::{ControlPlane, unique_name};

async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn deleted_namespace_is_finalised_by_the_namespace_controller() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("admin client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let name = unique_name("ns-gone");
    namespaces
        .create(&PostParams::default(), &namespace(&name))
        .await
        .expect("create namespace");

    // Something inside it, so the controller has content to remove first.
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("inside".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create service account");

    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let terminating = namespaces
        .get(&name)
        .await
        .expect("still there while terminating");
    assert!(
        terminating
            .spec
            .and_then(|s| s.finalizers)
            .unwrap_or_default()
            .contains(&"kubernetes".to_owned()),
        "the kubernetes finalizer holds the namespace until the controller empties it"
    );
    poll(
        "the namespace to disappear",
        Duration::from_secs(30),
        || {
            let namespaces = namespaces.clone();
            let name = name.clone();
            async move {
                namespaces
                    .get_opt(&name)
                    .await
                    .expect("get namespace")
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
}

#[tokio::test]
async fn service_account_token_secret_is_filled_by_the_token_controller() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("admin client");
    let name = unique_name("token");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &namespace(&name))
        .await
        .expect("create namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create service account");
    let secrets: Api<Secret> = Api::namespaced(client, &name);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("robot-token".into()),
            annotations: Some(
                [(
                    "kubernetes.io/service-account.name".to_owned(),
                    "robot".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create token secret");
    let data = poll(
        "the token controller to fill the secret",
        Duration::from_secs(30),
        || {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get("robot-token").await.expect("get secret");
                secret.data.filter(|data| data.contains_key("token"))
            }
        },
    )
    .await;
    let token = String::from_utf8(data["token"].0.clone()).expect("token is text");
    assert_eq!(token.split('.').count(), 3, "the token is a signed JWT");
    assert!(data.contains_key("ca.crt"), "the root CA is added as well");
    let _ = namespaces.delete(&name, &DeleteParams::default()).await;
}

#[tokio::test]
async fn identity_without_bindings_is_denied_by_rbac() {
    let plane = ControlPlane::shared().await;
    let user = unique_name("nobody");
    let kubeconfig = plane
        .kubeconfig_for(&user, None)
        .expect("kubeconfig for an unprivileged user");
    let client = plane.client_from(&kubeconfig).await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    let error = namespaces
        .list(&Default::default())
        .await
        .expect_err("RBAC denies listing namespaces");
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains(&user),
                "the denial names the user: {}",
                status.message
            );
        }
        other => panic!("expected a 403 from the API server, got {other:?}"),
    }
}

/// `phd-sandbox --help` prints its usage without starting anything; an
/// unknown argument is refused with exit code 2 (from a trial: `--help`
/// started a control plane).
#[test]
fn sandbox_help_starts_nothing_and_unknown_arguments_are_refused() {
    let sandbox = env!("CARGO_BIN_EXE_phd-sandbox");
    let help = std::process::Command::new(sandbox)
        .arg("--help")
        .output()
        .expect("run");
    assert!(help.status.success(), "{help:?}");
    let stdout = String::from_utf8_lossy(&help.stdout);
    assert!(stdout.starts_with("usage: phd-sandbox"), "{stdout}");
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("export KUBECONFIG=")),
        "{stdout}"
    );
    let unknown = std::process::Command::new(sandbox)
        .arg("--bogus")
        .output()
        .expect("run");
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unexpected arguments"));
}
