//! `kubectl phd user ...` against the real control plane, after `argo install`
//! with the real upstream install manifests of the pinned releases.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use phd_testkit::{ControlPlane, unique_name, unreachable_kubeconfig};
use serde_json::Value;

fn phd(kubeconfig: &Path) -> Command {
    let mut command = Command::cargo_bin("kubectl-phd").expect("binary");
    command
        .current_dir(std::env::temp_dir())
        .env_remove("KUBECONFIG_CONTENT")
        .env("PHD_CLUSTER_DOMAIN", "lms.example.org")
        .env(
            "PHD_CLUSTER_REPOSITORY",
            "https://github.com/example/phd-demo-cluster.git",
        )
        .arg("--kubeconfig")
        .arg(kubeconfig);
    command
}

async fn cluster() -> &'static ControlPlane {
    common::control_plane_with_argo().await
}

fn list(kubeconfig: &Path) -> BTreeMap<String, Value> {
    let output = phd(kubeconfig)
        .args(["user", "list", "-o", "json"])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let users: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    users
        .into_iter()
        .map(|u| (u["name"].as_str().unwrap_or_default().to_owned(), u))
        .collect()
}

async fn argocd_data(
    client: &kube::Client,
) -> (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
) {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
    let config = config_maps
        .get("argocd-cm")
        .await
        .expect("cm")
        .data
        .unwrap_or_default();
    let rbac = config_maps
        .get("argocd-rbac-cm")
        .await
        .expect("rbac")
        .data
        .unwrap_or_default();
    let secret = secrets
        .get("argocd-secret")
        .await
        .expect("secret")
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap_or_default()))
        .collect();
    (config, rbac, secret)
}

#[tokio::test]
async fn create_update_delete_and_list() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("alice");
    let password = "alice's \"pass\" $word";

    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name, "--password-stdin"])
        .write_stdin(password)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout without --show-token or a generated password"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("https://argocd.lms.example.org") && stderr.contains("port-forward"),
        "{stderr}"
    );

    let (config, rbac, secret) = argocd_data(&client).await;
    assert_eq!(
        config.get(&format!("accounts.{name}")).map(String::as_str),
        Some("login")
    );
    let hash = &secret[&format!("accounts.{name}.password")];
    assert!(
        bcrypt::verify(password, hash).expect("bcrypt"),
        "the stored hash verifies"
    );
    assert!(secret.contains_key(&format!("accounts.{name}.passwordMtime")));
    assert_eq!(
        rbac[&format!("policy.phd-user-{name}.csv")],
        format!("g, {name}, role:phd-developer\n")
    );

    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "argo");
    let account = accounts
        .get(&format!("phd-user-{name}"))
        .await
        .expect("service account");
    assert_eq!(
        account
            .metadata
            .labels
            .unwrap_or_default()
            .get("kubectl-phd/user"),
        Some(&name)
    );
    let token_secrets: Api<Secret> = Api::namespaced(client.clone(), "argo");
    let start = Instant::now();
    loop {
        let token = token_secrets
            .get(&format!("phd-user-{name}-token"))
            .await
            .expect("token secret");
        if token.data.is_some_and(|d| d.contains_key("token")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the token controller fills the secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = bindings
        .get(&format!("phd-user-{name}"))
        .await
        .expect("binding");
    assert_eq!(binding.role_ref.name, "phd-argo-developer");

    let users = list(&plane.admin_kubeconfig);
    assert_eq!(users[&name]["role"], "developer");
    assert_eq!(users[&name]["problems"], serde_json::json!([]));

    // --show-token prints the bearer token, and only then.
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name, "--show-token"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("Bearer ey"));

    phd(&plane.admin_kubeconfig)
        .args(["user", "update", &name, "--role", "readonly"])
        .assert()
        .success();
    let (_, rbac, _) = argocd_data(&client).await;
    assert_eq!(
        rbac[&format!("policy.phd-user-{name}.csv")],
        format!("g, {name}, role:phd-readonly\n")
    );
    assert_eq!(
        bindings
            .get(&format!("phd-user-{name}"))
            .await
            .expect("binding")
            .role_ref
            .name,
        "phd-argo-readonly"
    );
    assert_eq!(list(&plane.admin_kubeconfig)[&name]["role"], "readonly");

    // update requires --role.
    phd(&plane.admin_kubeconfig)
        .args(["user", "update", &name])
        .assert()
        .code(2);

    // Without a terminal and without --yes, delete refuses and changes nothing.
    phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &name])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("--yes"));
    assert!(list(&plane.admin_kubeconfig).contains_key(&name));

    phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &name, "--yes"])
        .assert()
        .success();
    let (config, rbac, secret) = argocd_data(&client).await;
    assert!(
        !config
            .keys()
            .chain(rbac.keys())
            .chain(secret.keys())
            .any(|k| k.contains(&name)),
        "every key of the user is gone"
    );
    assert!(
        accounts
            .get_opt(&format!("phd-user-{name}"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        bindings
            .get_opt(&format!("phd-user-{name}"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(!list(&plane.admin_kubeconfig).contains_key(&name));

    // A re-run of delete finds nothing to do: an error, unless
    // --ignore-not-found (as with kubectl).
    phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &name, "--yes"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("does not exist"));
    phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &name, "--yes", "--ignore-not-found"])
        .assert()
        .success()
        .stderr(predicates::str::contains("does not exist"));
    phd(&plane.admin_kubeconfig)
        .args(["user", "update", &name, "--role", "admin"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("does not exist"));
}

#[tokio::test]
async fn re_running_create_changes_nothing() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("bob");
    phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name, "--role", "admin"])
        .assert()
        .success();
    // Other tests change the shared Argo CD objects at the same time, so for
    // those compare this user's own entry in their managedFields (its time
    // moves only when this user's apply changes something) and its keys.
    let manager = format!("kubectl-phd-user-{name}");
    let own_entry = |metadata: kube::api::ObjectMeta| {
        metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.manager.as_deref() == Some(manager.as_str()))
            .map(|m| format!("{:?} {:?}", m.time, m.fields_v1))
            .collect::<Vec<_>>()
    };
    let versions = || async {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "argo");
        let tokens: Api<Secret> = Api::namespaced(client.clone(), "argo");
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        let (config, rbac, secret) = argocd_data(&client).await;
        let keys: Vec<String> = config
            .into_iter()
            .chain(rbac)
            .chain(secret)
            .filter(|(k, _)| k.contains(&name))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (
            keys,
            own_entry(config_maps.get("argocd-cm").await.expect("cm").metadata),
            own_entry(
                config_maps
                    .get("argocd-rbac-cm")
                    .await
                    .expect("rbac")
                    .metadata,
            ),
            own_entry(secrets.get("argocd-secret").await.expect("secret").metadata),
            vec![
                accounts
                    .get(&format!("phd-user-{name}"))
                    .await
                    .expect("sa")
                    .metadata
                    .resource_version,
                tokens
                    .get(&format!("phd-user-{name}-token"))
                    .await
                    .expect("token")
                    .metadata
                    .resource_version,
                bindings
                    .get(&format!("phd-user-{name}"))
                    .await
                    .expect("crb")
                    .metadata
                    .resource_version,
            ],
        )
    };
    // Let the token controller finish with the new secret first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = versions().await;
    assert_eq!(
        before.0.len(),
        4,
        "account, password, mtime and policy keys: {:?}",
        before.0
    );
    assert!(!before.1.is_empty() && !before.2.is_empty() && !before.3.is_empty());
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name, "--role", "admin"])
        .output()
        .expect("run");
    assert!(output.status.success());
    assert!(
        output.stdout.is_empty(),
        "no new password is generated on a re-run"
    );
    assert_eq!(
        versions().await,
        before,
        "a second create with the same role changes no object"
    );
}

#[tokio::test]
async fn ten_users_created_at_once_all_keep_their_entries() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let roles = ["admin", "developer", "readonly"];
    let names: Vec<String> = (0..10).map(|i| unique_name(&format!("crowd{i}"))).collect();
    let mut children: Vec<std::process::Child> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("kubectl-phd"))
                .args(["--kubeconfig"])
                .arg(&plane.admin_kubeconfig)
                .args(["user", "create", name, "--role", roles[i % 3]])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in &mut children {
        let status = child.wait().expect("wait");
        assert!(status.success());
    }
    let (config, rbac, secret) = argocd_data(&client).await;
    let users = list(&plane.admin_kubeconfig);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            config.get(&format!("accounts.{name}")).map(String::as_str),
            Some("login"),
            "{name}"
        );
        assert!(
            secret.contains_key(&format!("accounts.{name}.password")),
            "{name}"
        );
        assert_eq!(
            rbac[&format!("policy.phd-user-{name}.csv")],
            format!("g, {name}, role:phd-{}\n", roles[i % 3])
        );
        assert_eq!(users[name]["role"], roles[i % 3]);
        assert_eq!(users[name]["problems"], serde_json::json!([]), "{name}");
    }
}

/// What the API server says `user`'s Workflows identity may do.
async fn allowed(
    client: &kube::Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    subresource: Option<&str>,
    namespace: &str,
) -> bool {
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:argo:phd-user-{user}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:argo".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(str::to_owned),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    reviews
        .create(&PostParams::default(), &review)
        .await
        .expect("review")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn each_role_is_enforced_by_the_api_server() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    // An instance namespace (as `instance create` labels it) and another one.
    let instance = unique_name("instance");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {
                "name": instance, "labels": {"kubectl-phd/instance": instance}
            }}))
            .expect("namespace"),
        )
        .await
        .expect("instance namespace");
    let mut users = BTreeMap::new();
    for role in ["admin", "developer", "readonly"] {
        let name = unique_name(role);
        phd(&plane.admin_kubeconfig)
            .args(["user", "create", &name, "--role", role])
            .write_stdin("")
            .assert()
            .success();
        users.insert(role, name);
    }
    // (check, namespace, admin, developer, readonly)
    type Check<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a str);
    let matrix: [(Check, &str, [bool; 3]); 13] = [
        (
            ("create", "argoproj.io", "workflows", None, ""),
            "instance",
            [true, true, false],
        ),
        // Issue 14.6: a developer runs Workflows only in instance
        // namespaces, and cannot write the templates they must reference.
        (
            ("create", "argoproj.io", "workflows", None, ""),
            "argocd",
            [true, false, false],
        ),
        (
            ("create", "argoproj.io", "workflows", None, ""),
            "argo",
            [true, false, false],
        ),
        (
            ("create", "argoproj.io", "workflowtemplates", None, ""),
            "instance",
            [true, false, false],
        ),
        (
            (
                "update",
                "argoproj.io",
                "clusterworkflowtemplates",
                None,
                "",
            ),
            "",
            [true, false, false],
        ),
        (
            ("create", "argoproj.io", "cronworkflows", None, ""),
            "instance",
            [true, false, false],
        ),
        (
            ("get", "argoproj.io", "workflowtemplates", None, ""),
            "instance",
            [true, true, true],
        ),
        (
            ("get", "", "pods", Some("log"), ""),
            "instance",
            [true, true, true],
        ),
        (
            ("get", "", "secrets", None, ""),
            "instance",
            [false, false, false],
        ),
        (
            ("get", "", "secrets", None, ""),
            "argo",
            [false, false, false],
        ),
        (
            ("create", "", "pods", None, ""),
            "instance",
            [false, false, false],
        ),
        (
            ("create", "", "pods", Some("exec"), ""),
            "instance",
            [false, false, false],
        ),
        (
            ("get", "", "secrets", None, ""),
            "argocd",
            [false, false, false],
        ),
    ];
    let mut failures = Vec::new();
    for ((verb, group, resource, subresource, _), where_, expected) in matrix {
        let namespace = if where_ == "instance" {
            instance.clone()
        } else {
            where_.to_owned()
        };
        for (role, want) in ["admin", "developer", "readonly"].iter().zip(expected) {
            let got = allowed(
                &client,
                &users[role],
                verb,
                group,
                resource,
                subresource,
                &namespace,
            )
            .await;
            if got != want {
                failures.push(format!(
                    "{role}: {verb} {resource}{} in {where_}: allowed={got}, expected {want}",
                    subresource.map(|s| format!("/{s}")).unwrap_or_default()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    // The controller runs only Workflows that reference a template.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "argo");
    let controller = config_maps
        .get("workflow-controller-configmap")
        .await
        .expect("controller ConfigMap")
        .data
        .unwrap_or_default();
    assert_eq!(
        controller
            .get("workflowRestrictions")
            .map(|v| v.trim().to_owned()),
        Some("templateReferencing: Strict".to_owned())
    );
    // The Argo CD side: each user's policy line, and the roles' rules.
    let (_, rbac, _) = argocd_data(&client).await;
    for (role, name) in &users {
        assert_eq!(
            rbac[&format!("policy.phd-user-{name}.csv")],
            format!("g, {name}, role:phd-{role}\n")
        );
    }
    let policy = &rbac["policy.csv"];
    assert!(policy.contains("g, role:phd-admin, role:admin"));
    assert!(policy.contains("p, role:phd-developer, applications, sync, phd-*/*, allow"));
    assert!(
        !policy
            .lines()
            .any(|l| l.starts_with("p, role:phd-readonly") && l.contains("sync"))
    );
    assert!(
        !policy
            .lines()
            .any(|l| l.starts_with("p,") && l.contains("exec")),
        "no role may exec"
    );
    assert_eq!(rbac["policy.default"], "");
    // Deleting the developer takes the Workflow access away.
    phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &users["developer"], "--yes"])
        .assert()
        .success();
    assert!(
        !allowed(
            &client,
            &users["developer"],
            "create",
            "argoproj.io",
            "workflows",
            None,
            &instance
        )
        .await
    );
}

#[test]
fn bad_names_are_rejected_before_any_api_call() {
    // A kubeconfig for a server that does not exist: any API call would fail differently.
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let long = "a".repeat(300);
    for bad in [
        "Alice",
        "bob smith",
        long.as_str(),
        "",
        "x-",
        "admin",
        "a_b",
        "1st",
    ] {
        for verb in [
            &["create", bad][..],
            &["update", bad, "--role", "admin"],
            &["delete", bad, "--yes"],
        ] {
            let output = phd(&kubeconfig)
                .arg("user")
                .args(verb)
                .output()
                .expect("run");
            assert_eq!(output.status.code(), Some(1), "{verb:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("user name"), "{verb:?}: {stderr}");
            assert!(
                !stderr.contains("cannot reach"),
                "{verb:?} must fail before connecting: {stderr}"
            );
        }
    }
    let output = phd(&kubeconfig)
        .args(["user", "create", "Alice"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("lower-case letters, digits and '-'"));
}

/// Issue 15.6: chosen passwords are 8 to 72 bytes and not blank (bcrypt
/// ignores what follows byte 72), checked before any API call.
#[test]
fn unusable_passwords_are_refused_before_any_api_call() {
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let long = "p".repeat(73);
    for (password, expected) in [
        ("   ", "blank"),
        ("\t \n", "blank"),
        ("short", "too short"),
        (long.as_str(), "too long: 73 bytes, at most 72"),
    ] {
        let output = phd(&kubeconfig)
            .args(["user", "create", "w", "--password-stdin"])
            .write_stdin(password)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{password:?}: {stderr}");
        assert!(stderr.contains(expected), "{password:?}: {stderr}");
        assert!(!stderr.contains("cannot reach"), "{stderr}");
    }
    let output = phd(&kubeconfig)
        .env("PHD_ARGO_ADMIN_PASSWORD", "   ")
        .args(["argo", "install"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blank"), "{stderr}");
}

/// Issue 29: a password (or token) with a NUL or another control character
/// was accepted. Every secret read from standard input or the environment
/// refuses it before any API call, naming the character and where it is,
/// never the secret.
#[test]
fn secrets_with_control_characters_are_refused_before_any_api_call() {
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = unreachable_kubeconfig(dir.path()).expect("kubeconfig");
    let stdin_cases: [(&[&str], &str, &str); 5] = [
        (
            &["user", "create", "w", "--password-stdin"],
            "hunter2\0-and-more",
            "(NUL) at character 8",
        ),
        (
            &["user", "create", "w", "--password-stdin"],
            "hunter2-x\u{1b}[2J\n",
            "(ESC) at character 10",
        ),
        (
            &["user", "create", "w", "--password-stdin"],
            "hunter2-first\nsecond-line\n",
            "(a line break) at character 14",
        ),
        (
            &["argo", "install", "--admin-password-stdin"],
            "hunter2-admin\u{7f}",
            "(DEL) at character 14",
        ),
        (
            &["argo", "repository", "--token-stdin"],
            "hunter2_pat\0",
            "(NUL) at character 12",
        ),
    ];
    for (args, secret, expected) in stdin_cases {
        let output = phd(&kubeconfig)
            .args(args)
            .write_stdin(secret)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{args:?}: {stderr}");
        assert!(!stderr.contains("cannot reach"), "{args:?}: {stderr}");
    }
    // A key file: PEM lines, printable.
    let key = dir.path().join("deploy-key");
    std::fs::write(
        &key,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\0hunter2\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .expect("key file");
    let output = phd(&kubeconfig)
        .args([
            "argo",
            "repository",
            "--url",
            "git@github.com:example/x.git",
        ])
        .arg("--ssh-key-file")
        .arg(&key)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("(NUL) at character 7 on line 2"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let output = phd(&kubeconfig)
        .env("PHD_ARGO_ADMIN_PASSWORD", "hunter2-env\tpassword")
        .args(["argo", "install"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(a tab) at character 12"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn original_phd_create_argo_user_name_creates_a_user() {
    let plane = cluster().await;
    let dir = tempfile::tempdir().expect("bin dir");
    let link = dir.path().join("phd_create_argo_user");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("kubectl-phd"), &link).expect("link");
    let name = unique_name("legacy");
    let output = std::process::Command::new(&link)
        .args([name.as_str(), "--role", "readonly", "--kubeconfig"])
        .arg(&plane.admin_kubeconfig)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(list(&plane.admin_kubeconfig)[&name]["role"], "readonly");
}

/// Issue 15.4: a run that fails after storing a generated password has
/// already shown it, and that password is the one that works; the re-run
/// keeps it.
#[tokio::test]
async fn a_generated_password_is_shown_even_when_a_later_step_fails() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("carol");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "argo");
    let blocker: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("phd-user-{name}-token") },
        "stringData": { "x": "y" }
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &blocker)
        .await
        .expect("blocking Secret");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name])
        .write_stdin("")
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(!shown.is_empty(), "no password was shown");
    let stored =
        |secret: BTreeMap<String, String>| secret[&format!("accounts.{name}.password")].clone();
    let (_, _, secret) = argocd_data(&client).await;
    assert!(bcrypt::verify(&shown, &stored(secret)).expect("bcrypt"));

    secrets
        .delete(&format!("phd-user-{name}-token"), &Default::default())
        .await
        .expect("remove blocker");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name])
        .write_stdin("")
        .output()
        .expect("run");
    assert!(output.status.success());
    assert!(output.stdout.is_empty(), "a re-run shows no new password");
    let (_, _, secret) = argocd_data(&client).await;
    assert!(bcrypt::verify(&shown, &stored(secret)).expect("bcrypt"));

    // With -o json, standard output stays one JSON object: the result,
    // action `failed`, carrying the password (from a trial).
    let other = unique_name("gina");
    let blocker: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": format!("phd-user-{other}-token") },
        "stringData": { "x": "y" }
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &blocker)
        .await
        .expect("blocking Secret");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &other, "-o", "json"])
        .write_stdin("")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let result: Value = serde_json::from_slice(&output.stdout).expect("only JSON on stdout");
    assert_eq!(result["action"], "failed");
    let password = result["password"].as_str().expect("the password");
    let (_, _, secret) = argocd_data(&client).await;
    assert!(
        bcrypt::verify(password, &secret[&format!("accounts.{other}.password")]).expect("bcrypt")
    );
}

/// Issue 15.5: two `user create` of one name at once: one password is
/// stored and shown, the other run keeps it and shows none.
#[tokio::test]
async fn two_creates_of_one_user_at_once_give_one_password() {
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    for round in 0..3 {
        let name = unique_name(&format!("twin{round}"));
        let children: Vec<std::process::Child> = (0..2)
            .map(|_| {
                std::process::Command::new(assert_cmd::cargo::cargo_bin("kubectl-phd"))
                    .args(["--kubeconfig"])
                    .arg(&plane.admin_kubeconfig)
                    .args(["user", "create", &name])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let mut shown = Vec::new();
        for child in children {
            let output = child.wait_with_output().expect("wait");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !text.is_empty() {
                shown.push(text);
            }
        }
        assert_eq!(
            shown.len(),
            1,
            "exactly one run shows a password: {shown:?}"
        );
        let (_, _, secret) = argocd_data(&client).await;
        let hash = &secret[&format!("accounts.{name}.password")];
        assert!(bcrypt::verify(&shown[0], hash).expect("bcrypt"), "{name}");
    }
}

/// Issue 14.2: keys argocd-server writes for a user (a generated token, a
/// password changed in the UI) under its own field manager are gone after
/// `user delete`, so `user create` of the same name starts clean.
#[tokio::test]
async fn delete_removes_keys_other_managers_wrote() {
    use kube::api::{Patch, PatchParams};
    let plane = cluster().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("alice");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name])
        .write_stdin("")
        .output()
        .expect("run");
    assert!(output.status.success());
    let server = PatchParams::apply("argocd-server").force();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
    secrets
        .patch(
            "argocd-secret",
            &server,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "argocd-secret", "namespace": "argocd"},
                "stringData": {format!("accounts.{name}.tokens"): "[{\"id\":\"t1\"}]"}
            })),
        )
        .await
        .expect("tokens");
    config_maps
        .patch(
            "argocd-cm",
            &server,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": "argocd"},
                "data": {format!("accounts.{name}.enabled"): "true"}
            })),
        )
        .await
        .expect("enabled");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &name, "--yes"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let (config, rbac, secret) = argocd_data(&client).await;
    let prefix = format!("accounts.{name}");
    for (object, data) in [
        ("argocd-cm", &config),
        ("argocd-secret", &secret),
        ("argocd-rbac-cm", &rbac),
    ] {
        let left: Vec<&String> = data
            .keys()
            .filter(|k| k.starts_with(&prefix) || k.contains(&name))
            .collect();
        assert!(left.is_empty(), "{object}: {left:?}");
    }
}

/// Issue 19.2: `user create` of an existing user keeps its role (and says
/// so) and refuses to change it; deleting a user that does not exist is an
/// error unless --ignore-not-found.
#[tokio::test]
async fn create_changes_nothing_it_was_not_asked_to_and_delete_of_nothing_fails() {
    let plane = cluster().await;
    let name = unique_name("kept");
    phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name, "--role", "admin"])
        .write_stdin("")
        .assert()
        .success();
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name])
        .write_stdin("")
        .output()
        .expect("run");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kept its role admin"), "{stderr}");
    // Issue 19.3: a mutating command names the cluster it acted on, last.
    assert_eq!(
        stderr.lines().last(),
        Some(format!("cluster: context phd-test at {}", plane.server).as_str()),
        "{stderr}"
    );
    assert!(stderr.contains("kept its Argo CD password"), "{stderr}");
    assert_eq!(list(&plane.admin_kubeconfig)[&name]["role"], "admin");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name, "--role", "readonly"])
        .write_stdin("")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("user update"), "{stderr}");
    assert_eq!(list(&plane.admin_kubeconfig)[&name]["role"], "admin");

    let missing = unique_name("nobody");
    let output = phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &missing, "--yes"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
    phd(&plane.admin_kubeconfig)
        .args(["user", "delete", &missing, "--yes", "--ignore-not-found"])
        .assert()
        .success();
}

/// Runs `phd user ARGS` and returns its standard output, asserting success.
fn stdout_of(kubeconfig: &Path, args: &[&str]) -> String {
    let output = phd(kubeconfig)
        .arg("user")
        .args(args)
        .write_stdin("")
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "user {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Issue 19.3: every mutating user command supports `-o json|yaml|name`
/// with the schema of docs/output.md (every key always present), naming the
/// cluster and the objects; lists get `-o wide` and `-o name`.
#[tokio::test]
async fn mutating_commands_report_their_result_as_json_yaml_and_name() {
    let plane = cluster().await;
    let kubeconfig = &plane.admin_kubeconfig;
    let name = unique_name("result");
    let check_keys =
        |result: &Value| common::assert_result_keys(result, &["role", "password", "token"]);

    // Created: the generated password and the token are in the result, and
    // nothing else is on standard output.
    let stdout = stdout_of(
        kubeconfig,
        &[
            "create",
            &name,
            "--role",
            "readonly",
            "--show-token",
            "-o",
            "json",
        ],
    );
    let created: Value = serde_json::from_str(&stdout).expect("only JSON on stdout");
    check_keys(&created);
    assert_eq!(created["kind"], "User");
    assert_eq!(created["name"], name.as_str());
    assert_eq!(created["action"], "created");
    assert_eq!(created["role"], "readonly");
    assert_eq!(created["cluster"]["context"], "phd-test");
    assert_eq!(
        created["cluster"]["server"].as_str(),
        Some(plane.server.as_str())
    );
    let password = created["password"].as_str().expect("generated password");
    let client = plane.client().await.expect("client");
    let (_, _, secret) = argocd_data(&client).await;
    let hash = &secret[&format!("accounts.{name}.password")];
    assert!(
        bcrypt::verify(password, hash).expect("bcrypt"),
        "the shown password works"
    );
    assert!(
        created["token"]
            .as_str()
            .is_some_and(|t| t.starts_with("Bearer ")),
        "{created}"
    );
    let objects = created["objects"].as_array().expect("objects");
    assert!(
        objects.iter().any(|o| o["kind"] == "ClusterRoleBinding"
            && o["name"] == format!("phd-user-{name}").as_str()
            && o["namespace"].is_null()),
        "{created}"
    );
    assert_eq!(created["external"], serde_json::json!([]));

    // Re-run: unchanged, no password shown again, no token asked for.
    let again: Value =
        serde_json::from_str(&stdout_of(kubeconfig, &["create", &name, "-o", "json"]))
            .expect("JSON");
    check_keys(&again);
    assert_eq!(again["action"], "unchanged");
    assert!(
        again["password"].is_null() && again["token"].is_null(),
        "{again}"
    );

    // Update: YAML, updated then unchanged.
    let updated: Value = serde_saphyr::from_str(&stdout_of(
        kubeconfig,
        &["update", &name, "--role", "developer", "-o", "yaml"],
    ))
    .expect("YAML");
    check_keys(&updated);
    assert_eq!(updated["action"], "updated");
    assert_eq!(updated["role"], "developer");
    let same: Value = serde_saphyr::from_str(&stdout_of(
        kubeconfig,
        &["update", &name, "--role", "developer", "-o", "yaml"],
    ))
    .expect("YAML");
    assert_eq!(same["action"], "unchanged");
    // The objects agree with the whole (from a trial): all unchanged.
    for result in [&again, &same] {
        let objects = result["objects"].as_array().expect("objects");
        assert!(
            !objects.is_empty() && objects.iter().all(|o| o["action"] == "unchanged"),
            "{result}"
        );
    }

    // Lists: name and wide.
    let names = stdout_of(kubeconfig, &["list", "-o", "name"]);
    assert!(
        names.lines().any(|l| l == format!("user/{name}")),
        "{names}"
    );
    let wide = stdout_of(kubeconfig, &["list", "-o", "wide"]);
    let header = wide.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("USER") && header.contains("SERVICE ACCOUNT"),
        "{wide}"
    );
    let row = wide
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name}: {wide}"));
    assert!(row.contains(&format!("argo/phd-user-{name}")), "{row}");

    // Delete: name, then a delete of nothing with --ignore-not-found.
    assert_eq!(
        stdout_of(kubeconfig, &["delete", &name, "--yes", "-o", "name"]),
        format!("user/{name}\n")
    );
    let nothing: Value = serde_json::from_str(&stdout_of(
        kubeconfig,
        &["delete", &name, "--yes", "--ignore-not-found", "-o", "json"],
    ))
    .expect("JSON");
    check_keys(&nothing);
    assert_eq!(nothing["action"], "notFound");
    assert_eq!(nothing["objects"], serde_json::json!([]));

    // -o name of a new user: the name, then the generated password and the
    // token, each on its own line: nothing the user must see is lost.
    let other = unique_name("named");
    let named = stdout_of(
        kubeconfig,
        &["create", &other, "--show-token", "-o", "name"],
    );
    let lines: Vec<&str> = named.lines().collect();
    assert_eq!(lines.len(), 3, "{named}");
    assert_eq!(lines[0], format!("user/{other}"));
    let (_, _, secret) = argocd_data(&client).await;
    assert!(
        bcrypt::verify(lines[1], &secret[&format!("accounts.{other}.password")]).expect("bcrypt"),
        "the password shown works"
    );
    assert!(lines[2].starts_with("Bearer "), "{named}");
    let listed = stdout_of(kubeconfig, &["list", "-o", "json"]);
    let listed: Vec<Value> = serde_json::from_str(&listed).expect("JSON");
    let entry = listed
        .iter()
        .find(|user| user["name"] == other.as_str())
        .expect("listed");
    assert_eq!(
        entry["serviceAccount"],
        format!("argo/phd-user-{other}").as_str()
    );
}

/// Issue 19.6: `kubectl phd user delete <TAB>` completes the names of the
/// cluster's users, through kubectl's plugin completion (`kubectl __complete
/// phd ...` runs `kubectl_complete-phd`), on the cluster KUBECONFIG names.
#[tokio::test]
async fn kubectl_completes_user_names_from_the_cluster() {
    let plane = cluster().await;
    let name = unique_name("tab");
    phd(&plane.admin_kubeconfig)
        .args(["user", "create", &name])
        .write_stdin("")
        .assert()
        .success();
    let complete = |words: &[&str]| common::kubectl_complete(&plane.admin_kubeconfig, words);
    let offered = complete(&["user", "delete", ""]);
    assert!(offered.contains(&name), "{name} in {offered:?}");
    let prefix = &name[..name.len() - 1];
    let narrowed = complete(&["user", "update", prefix]);
    assert!(narrowed.contains(&name), "{narrowed:?}");
    assert!(
        narrowed
            .iter()
            .all(|n| n.starts_with(prefix) || n.starts_with(':')),
        "{narrowed:?}"
    );
    // Roles, from the command line's definition.
    assert_eq!(
        complete(&["user", "update", &name, "--role", "ad"]),
        ["admin", ":4"]
    );
}

/// Issue 18: `-v` reports each API request (method, path, status, time),
/// and never a body: no password or token reaches the log.
#[tokio::test]
async fn verbose_reports_each_api_request_and_no_secret() {
    let plane = cluster().await;
    let name = unique_name("verbose");
    let output = phd(&plane.admin_kubeconfig)
        .args(["-v", "user", "create", &name, "--show-token"])
        .write_stdin("")
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let requests: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("request: "))
        .collect();
    assert!(
        requests
            .iter()
            .any(|line| line.starts_with("GET /version 200 ")),
        "{stderr}"
    );
    assert!(
        requests.iter().any(|line| line
            .starts_with("PATCH /api/v1/namespaces/argocd/configmaps/argocd-cm?")
            && line.contains(" 200 ")
            && line.ends_with("ms")),
        "{stderr}"
    );
    // The generated password and the token are on stdout, never in the log.
    let stdout = String::from_utf8_lossy(&output.stdout);
    for secret in stdout.lines().filter(|line| !line.is_empty()) {
        let secret = secret.trim_start_matches("Bearer ");
        assert!(
            !stderr.contains(secret),
            "a secret reached the log: {stderr}"
        );
    }
    // Without -v: no request lines.
    let quiet = phd(&plane.admin_kubeconfig)
        .args(["user", "list"])
        .output()
        .expect("run");
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("request: "));
}

/// Issue 18: `-vv` adds each request's and answer's body, with the values of
/// Secrets (the password hash written to argocd-secret, the token read
/// back) redacted: neither the generated password, nor the token, nor the
/// hash reaches the log.
#[tokio::test]
async fn very_verbose_shows_bodies_with_secrets_redacted() {
    let plane = cluster().await;
    let name = unique_name("bodies");
    let output = phd(&plane.admin_kubeconfig)
        .args(["-vv", "user", "create", &name, "--show-token"])
        .write_stdin("")
        .output()
        .expect("run");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let bodies: Vec<&str> = stderr
        .lines()
        .filter_map(|line| {
            line.strip_prefix("request: request body: ")
                .or_else(|| line.strip_prefix("request: response body: "))
        })
        .collect();
    // The ServiceAccount applied is shown as sent.
    assert!(
        bodies
            .iter()
            .any(|body| body.contains("\"kind\":\"ServiceAccount\"")
                && body.contains(&format!("\"name\":\"phd-user-{name}\""))),
        "{stderr}"
    );
    // The password hash written to argocd-secret: its key shown, its value not.
    assert!(
        bodies
            .iter()
            .any(|body| body.contains(&format!("\"accounts.{name}.password\":\"<redacted>\""))),
        "{stderr}"
    );
    let client = plane.client().await.expect("client");
    let secrets: Api<Secret> = Api::namespaced(client, "argocd");
    let stored = secrets.get("argocd-secret").await.expect("argocd-secret");
    let hash = stored
        .data
        .as_ref()
        .and_then(|data| data.get(&format!("accounts.{name}.password")))
        .map(|hash| String::from_utf8_lossy(&hash.0).into_owned())
        .expect("the password hash is stored");
    assert!(!stderr.contains(&hash), "the hash reached the log");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Bearer "))
        .expect("the token is printed");
    for secret in [token, &base64_of(token)] {
        assert!(
            !stderr.contains(secret),
            "the token reached the log: {stderr}"
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
