//! Every source of cluster access, with real files, a real tofu (or terraform)
//! state, and the real local control plane.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use phd_common::config::ClusterRepository;
use phd_common::tofu::Tool;
use phd_common::{AccessError, AccessOptions, ClusterAccess, KubeconfigSource};
use phd_testkit::{ControlPlane, unique_name};
use serde_json::{Value, json};

/// An environment with a home of its own, so nothing of the machine's leaks in.
struct Scene {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let env = HashMap::from([("HOME".to_owned(), home.display().to_string())]);
        Self { dir, env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&mut self, name: &str, value: impl Into<String>) {
        self.env.insert(name.to_owned(), value.into());
    }

    async fn resolve(
        &self,
        options: &AccessOptions,
        repository: Option<&ClusterRepository>,
    ) -> Result<ClusterAccess, AccessError> {
        ClusterAccess::resolve(options, repository, &self.env).await
    }
}

fn admin_kubeconfig(plane: &ControlPlane) -> Value {
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("admin kubeconfig");
    serde_json::from_str(&text).expect("admin kubeconfig is JSON")
}

/// `kubeconfig` with its names changed to `name` and its server to `server`.
fn renamed(kubeconfig: &Value, name: &str, server: Option<&str>) -> Value {
    let mut config = kubeconfig.clone();
    config["clusters"][0]["name"] = json!(name);
    if let Some(server) = server {
        config["clusters"][0]["cluster"]["server"] = json!(server);
    }
    config["users"][0]["name"] = json!(name);
    config["contexts"][0] = json!({"name": name, "context": {"cluster": name, "user": name}});
    config["current-context"] = json!(name);
    config
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(
        path,
        serde_json::to_string_pretty(value).expect("serialise"),
    )
    .expect("write file");
}

/// A port where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn kubeconfig_flag_with_relative_certificate_paths() {
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    let mut config = admin_kubeconfig(plane);
    // Certificates as files next to the kubeconfig, referenced relatively, as kind and kubeadm do.
    std::fs::write(scene.path("ca.crt"), plane.ca_pem()).expect("write ca");
    config["clusters"][0]["cluster"]
        .as_object_mut()
        .expect("cluster object")
        .remove("certificate-authority-data");
    config["clusters"][0]["cluster"]["certificate-authority"] = json!("ca.crt");
    let path = scene.path("flag.kubeconfig");
    write_json(&path, &config);

    let options = AccessOptions {
        kubeconfig: Some(path.clone()),
        ..Default::default()
    };
    let access = scene.resolve(&options, None).await.expect("resolve");
    assert_eq!(access.source, KubeconfigSource::Flag(path));
    let cluster = access.connect().await.expect("connect");
    assert_eq!(cluster.version.git_version, phd_testkit::KUBERNETES_VERSION);
}

#[tokio::test]
async fn missing_kubeconfig_flag_file_is_named() {
    let scene = Scene::new();
    let options = AccessOptions {
        kubeconfig: Some(scene.path("nope")),
        ..Default::default()
    };
    let error = scene
        .resolve(&options, None)
        .await
        .expect_err("no such file");
    assert!(matches!(error, AccessError::MissingFile(_)));
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn kubeconfig_list_is_merged_and_context_flag_chooses() {
    let plane = ControlPlane::shared().await;
    let mut scene = Scene::new();
    let admin = admin_kubeconfig(plane);
    let dead = renamed(
        &admin,
        "dead",
        Some(&format!("https://127.0.0.1:{}", closed_port())),
    );
    let live = renamed(&admin, "live", None);
    write_json(&scene.path("dead.kubeconfig"), &dead);
    write_json(&scene.path("live.kubeconfig"), &live);
    let list = std::env::join_paths([
        scene.path("missing.kubeconfig"),
        scene.path("dead.kubeconfig"),
        scene.path("live.kubeconfig"),
    ])
    .expect("join paths");
    scene.set("KUBECONFIG", list.to_string_lossy());

    // The first file's current context wins, as with kubectl, and that server is down.
    let access = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect("resolve");
    assert_eq!(access.context_name(), Some("dead"));
    assert!(matches!(
        access.source,
        KubeconfigSource::Inherited(ref paths) if paths.len() == 2
    ));
    let error = access.connect().await.err().expect("dead server");
    assert!(
        matches!(error, AccessError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("cannot reach the Kubernetes API server"),
        "{error}"
    );

    let options = AccessOptions {
        context: Some("live".into()),
        ..Default::default()
    };
    let access = scene.resolve(&options, None).await.expect("resolve live");
    access.connect().await.expect("the live context connects");

    let options = AccessOptions {
        context: Some("absent".into()),
        ..Default::default()
    };
    let error = scene
        .resolve(&options, None)
        .await
        .expect_err("unknown context");
    let message = error.to_string();
    assert!(
        message.contains("\"absent\"") && message.contains("dead, live"),
        "{message}"
    );
}

#[tokio::test]
async fn home_kubeconfig_is_used_when_nothing_else_is_set() {
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    let kube_dir = scene.path("home/.kube");
    std::fs::create_dir_all(&kube_dir).expect("kube dir");
    write_json(&kube_dir.join("config"), &admin_kubeconfig(plane));
    let access = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect("resolve");
    assert_eq!(
        access.source,
        KubeconfigSource::Inherited(vec![kube_dir.join("config")])
    );
    access.connect().await.expect("connect");
}

#[tokio::test]
async fn kubeconfig_content_in_base64_and_plain() {
    let plane = ControlPlane::shared().await;
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("admin kubeconfig");

    let mut scene = Scene::new();
    // Wrapped at 76 columns, as `base64` prints it.
    let encoded = base64::engine::general_purpose::STANDARD.encode(&text);
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    scene.set("KUBECONFIG_CONTENT", wrapped.join("\n"));
    let access = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect("base64");
    assert_eq!(access.source, KubeconfigSource::EnvironmentBase64);
    access.connect().await.expect("connect with base64 content");

    scene.set("KUBECONFIG_CONTENT", text);
    let access = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect("plain");
    assert_eq!(access.source, KubeconfigSource::EnvironmentPlain);
    access.connect().await.expect("connect with plain content");
}

#[tokio::test]
async fn garbage_kubeconfig_content_is_one_clear_error() {
    for garbage in [
        "definitely not a kubeconfig",
        "aGVsbG8gd29ybGQ=",
        "- a\n- list",
        "foo: bar",
    ] {
        let mut scene = Scene::new();
        scene.set("KUBECONFIG_CONTENT", garbage);
        let error = scene
            .resolve(&AccessOptions::default(), None)
            .await
            .expect_err(garbage);
        assert!(
            error
                .to_string()
                .starts_with("KUBECONFIG_CONTENT is set but"),
            "{garbage:?}: {error}"
        );
    }
}

#[tokio::test]
async fn nothing_configured_gives_the_three_way_hint() {
    let scene = Scene::new();
    let error = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect_err("nothing");
    assert!(matches!(error, AccessError::NoKubeconfig));
    let message = error.to_string();
    for hint in ["cluster repository", "KUBECONFIG_CONTENT", "~/.kube/config"] {
        assert!(message.contains(hint), "{message}");
    }
}

/// From a trial: `KUBECONFIG` naming only files that do not exist gave the
/// generic "no kubeconfig found" hint; the error names the variable instead.
#[tokio::test]
async fn a_kubeconfig_variable_naming_no_file_is_named() {
    let mut scene = Scene::new();
    let missing = scene.path("nowhere/config");
    scene.set("KUBECONFIG", missing.display().to_string());
    let error = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect_err("no file");
    assert!(
        matches!(error, AccessError::KubeconfigVariableMissing(_)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("KUBECONFIG is set to") && message.contains("nowhere/config"),
        "{message}"
    );
}

/// A cluster repository whose `infrastructure/` has a real local state with the given output.
fn repository_with_output(
    scene: &Scene,
    output_name: &str,
    value_file: &str,
    contents: &str,
) -> ClusterRepository {
    let root = scene.path("phd-demo-cluster");
    let infrastructure = root.join("infrastructure");
    std::fs::create_dir_all(&infrastructure).expect("infrastructure dir");
    std::fs::write(
        root.join("context.json"),
        r#"{"cluster_domain": "demo.example"}"#,
    )
    .expect("context");
    std::fs::write(infrastructure.join(value_file), contents).expect("output value");
    std::fs::write(
        infrastructure.join("main.tf"),
        format!("output \"{output_name}\" {{\n  value     = file(\"${{path.module}}/{value_file}\")\n  sensitive = true\n}}\n"),
    )
    .expect("main.tf");
    let tool = Tool::find()
        .expect("tofu or terraform must be installed for these tests (.ci/run installs it)");
    for args in [
        &["init", "-input=false", "-no-color"][..],
        &["apply", "-input=false", "-auto-approve", "-no-color"],
    ] {
        let status = Command::new(&tool.path)
            .args(args)
            .current_dir(&infrastructure)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run tofu");
        assert!(status.success(), "{} {args:?} failed", tool.name);
    }
    ClusterRepository::open(&root).expect("open repository")
}

#[tokio::test]
async fn infrastructure_output_is_used_first() {
    let plane = ControlPlane::shared().await;
    let mut scene = Scene::new();
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("admin kubeconfig");
    let repository = repository_with_output(&scene, "kubeconfig", "kc.json", &text);
    // KUBECONFIG_CONTENT points elsewhere: the infrastructure output must win.
    let elsewhere = renamed(
        &admin_kubeconfig(plane),
        "elsewhere",
        Some("https://127.0.0.1:1"),
    );
    scene.set("KUBECONFIG_CONTENT", elsewhere.to_string());

    let access = scene
        .resolve(&AccessOptions::default(), Some(&repository))
        .await
        .expect("resolve");
    assert!(
        matches!(&access.source, KubeconfigSource::Infrastructure { output, .. } if output == "kubeconfig"),
        "{:?}",
        access.source
    );
    access
        .connect()
        .await
        .expect("connect through the infrastructure kubeconfig");
}

#[tokio::test]
async fn original_output_name_is_accepted() {
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("admin kubeconfig");
    let repository = repository_with_output(&scene, "kubeconfig_content", "kc.json", &text);
    let access = scene
        .resolve(&AccessOptions::default(), Some(&repository))
        .await
        .expect("resolve");
    assert!(
        matches!(&access.source, KubeconfigSource::Infrastructure { output, .. } if output == "kubeconfig_content"),
        "{:?}",
        access.source
    );
}

#[tokio::test]
async fn infrastructure_output_that_is_not_a_kubeconfig_is_passed_over() {
    let plane = ControlPlane::shared().await;
    let mut scene = Scene::new();
    let repository =
        repository_with_output(&scene, "kubeconfig", "kc.txt", "Warning: something odd\n");
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("admin kubeconfig");
    scene.set("KUBECONFIG_CONTENT", text);
    let access = scene
        .resolve(&AccessOptions::default(), Some(&repository))
        .await
        .expect("resolve");
    assert_eq!(access.source, KubeconfigSource::EnvironmentPlain);
    assert!(
        access
            .skipped
            .iter()
            .any(|reason| reason.contains("is not a kubeconfig")),
        "{:?}",
        access.skipped
    );
}

#[tokio::test]
async fn resolving_never_writes_the_users_kubeconfig() {
    let plane = ControlPlane::shared().await;
    let mut scene = Scene::new();
    let kube_dir = scene.path("home/.kube");
    std::fs::create_dir_all(&kube_dir).expect("kube dir");
    let users = renamed(
        &admin_kubeconfig(plane),
        "users-own",
        Some("https://127.0.0.1:1"),
    );
    write_json(&kube_dir.join("config"), &users);
    let before = std::fs::read(kube_dir.join("config")).expect("read");
    let modified = std::fs::metadata(kube_dir.join("config"))
        .and_then(|m| m.modified())
        .expect("mtime");

    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("admin kubeconfig");
    scene.set("KUBECONFIG_CONTENT", text);
    let access = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect("resolve");
    access.connect().await.expect("connect");

    assert_eq!(
        std::fs::read(kube_dir.join("config")).expect("read"),
        before
    );
    assert_eq!(
        std::fs::metadata(kube_dir.join("config"))
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified
    );
    let entries: Vec<_> = std::fs::read_dir(&kube_dir).expect("list").collect();
    assert_eq!(
        entries.len(),
        1,
        "no new files next to the user's kubeconfig"
    );
}

#[tokio::test]
async fn exec_credential_plugin_token_is_accepted() {
    let plane = ControlPlane::shared().await;
    let admin = plane.client().await.expect("admin client");
    let namespace = unique_name("exec");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("namespace");
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &namespace);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("ci".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("service account");
    let secrets: Api<Secret> = Api::namespaced(admin, &namespace);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("ci-token".into()),
                    annotations: Some(
                        [(
                            "kubernetes.io/service-account.name".to_owned(),
                            "ci".to_owned(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                },
                type_: Some("kubernetes.io/service-account-token".into()),
                ..Default::default()
            },
        )
        .await
        .expect("token secret");
    let start = Instant::now();
    let token = loop {
        let secret = secrets.get("ci-token").await.expect("get token");
        if let Some(token) = secret.data.and_then(|d| d.get("token").cloned()) {
            break String::from_utf8(token.0).expect("token text");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "token controller did not fill the secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let scene = Scene::new();
    std::fs::write(scene.path("token"), &token).expect("token file");
    let script = scene.path("credential-plugin");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}' \"$(cat '{}')\"\n",
            scene.path("token").display()
        ),
    )
    .expect("script");
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&script, executable).expect("make the plugin executable");

    let mut config = admin_kubeconfig(plane);
    config["users"][0]["user"] = json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": script.display().to_string(),
        "interactiveMode": "Never",
    }});
    let path = scene.path("exec.kubeconfig");
    write_json(&path, &config);
    let options = AccessOptions {
        kubeconfig: Some(path),
        ..Default::default()
    };
    let cluster = scene
        .resolve(&options, None)
        .await
        .expect("resolve")
        .connect()
        .await
        .expect("connect");

    let reviews: Api<SelfSubjectReview> = Api::all(cluster.client);
    let review = reviews
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("who am I");
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username);
    assert_eq!(
        username,
        Some(format!("system:serviceaccount:{namespace}:ci"))
    );
}

#[tokio::test]
async fn silent_server_fails_clearly_within_fifteen_seconds() {
    // Accepts connections and never answers: the TLS handshake hangs.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(20));
        drop(held);
    });
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    let config = renamed(
        &admin_kubeconfig(plane),
        "silent",
        Some(&format!("https://127.0.0.1:{port}")),
    );
    let path = scene.path("silent.kubeconfig");
    write_json(&path, &config);
    let options = AccessOptions {
        kubeconfig: Some(path),
        ..Default::default()
    };
    let access = scene.resolve(&options, None).await.expect("resolve");

    let start = Instant::now();
    let error = access.connect().await.err().expect("silent server");
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(17),
        "gave up after {elapsed:?}"
    );
    assert!(
        matches!(
            error,
            AccessError::Timeout { .. } | AccessError::Unreachable { .. }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("cannot reach the Kubernetes API server"),
        "{message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    drop(accepted);
}

/// Issue 15.7: `--user`/`--cluster` naming nothing in the kubeconfig is named
/// as such, instead of falling back to anonymous access and a 403 later.
#[tokio::test]
async fn unknown_user_or_cluster_flag_is_named() {
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    for (user, cluster, kind) in [
        (Some("nope"), None, "user \"nope\" (--user)"),
        (None, Some("nowhere"), "cluster \"nowhere\" (--cluster)"),
    ] {
        let options = AccessOptions {
            kubeconfig: Some(plane.admin_kubeconfig.clone()),
            user: user.map(str::to_owned),
            cluster: cluster.map(str::to_owned),
            ..Default::default()
        };
        let error = scene.resolve(&options, None).await.expect_err(kind);
        let message = error.to_string();
        assert!(message.contains(kind), "{message}");
        assert!(message.contains("is not in the kubeconfig"), "{message}");
    }
}

/// Issue 15.7: credentials the API server rejects are a 401, not "cannot reach".
#[tokio::test]
async fn expired_client_certificate_is_named_as_rejected_credentials() {
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    let options = AccessOptions {
        kubeconfig: Some(plane.expired_kubeconfig_for("expired").expect("kubeconfig")),
        ..Default::default()
    };
    let error = scene
        .resolve(&options, None)
        .await
        .expect("resolve")
        .connect()
        .await
        .err()
        .expect("rejected");
    assert!(
        matches!(error, AccessError::Unauthorized { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("401 Unauthorized"), "{message}");
    assert!(!message.contains("cannot reach"), "{message}");
}

/// Issue 15.2: an exec credential plugin that never ends is cut off, and the
/// message names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_credential_plugin_is_cut_off() {
    let plane = ControlPlane::shared().await;
    let scene = Scene::new();
    let script = scene.path("hanging-plugin");
    // Ends by itself after 10 s, so the test runtime (which waits for its
    // blocking threads) is not held long; cut off at 3 s by the deadline.
    std::fs::write(&script, "#!/bin/sh\nexec sleep 10\n").expect("script");
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&script, executable).expect("make the plugin executable");
    let mut config = admin_kubeconfig(plane);
    config["users"][0]["user"] = json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": script.display().to_string(),
        "interactiveMode": "Never",
    }});
    let path = scene.path("hanging.kubeconfig");
    write_json(&path, &config);
    let options = AccessOptions {
        kubeconfig: Some(path),
        request_timeout: Some(Duration::from_secs(3)),
        ..Default::default()
    };
    let access = scene.resolve(&options, None).await.expect("resolve");
    let start = Instant::now();
    let error = access.connect().await.err().expect("cut off");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let message = error.to_string();
    assert!(message.contains("hanging-plugin"), "{message}");
    assert!(message.contains("did not finish within 3s"), "{message}");
}

/// Issue 14.3: stacked kubeconfigs merge as kubectl merges them (the first
/// non-empty value wins), checked against `kubectl config view --merge` for
/// the same files: one written by kubectl with `current-context: ""` first.
#[tokio::test]
async fn stacked_kubeconfigs_merge_as_kubectl_merges_them() {
    let plane = ControlPlane::shared().await;
    let mut scene = Scene::new();
    let new = scene.path("new.yaml");
    let status = Command::new("kubectl")
        .args([
            "config",
            "set-cluster",
            "extra",
            "--server=https://10.0.0.1:6443",
        ])
        .arg("--kubeconfig")
        .arg(&new)
        .status()
        .expect("kubectl");
    assert!(status.success());
    let written = std::fs::read_to_string(&new).expect("new.yaml");
    assert!(written.contains("current-context: \"\""), "{written}");
    let working = scene.path("working.yaml");
    write_json(
        &working,
        &renamed(&admin_kubeconfig(plane), "working", None),
    );
    let list = std::env::join_paths([&new, &working]).expect("join paths");
    scene.set("KUBECONFIG", list.to_string_lossy());

    let view = Command::new("kubectl")
        .args(["config", "view", "--merge", "--raw", "-o", "json"])
        .env("KUBECONFIG", &list)
        .output()
        .expect("kubectl config view");
    assert!(view.status.success());
    let kubectl: Value = serde_json::from_slice(&view.stdout).expect("json");

    let access = scene
        .resolve(&AccessOptions::default(), None)
        .await
        .expect("resolve");
    assert_eq!(
        access.context_name(),
        kubectl["current-context"].as_str(),
        "kubectl says {}",
        kubectl["current-context"]
    );
    let names = |items: &Value| -> Vec<String> {
        let mut names: Vec<String> = items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    let mut clusters: Vec<String> = access
        .kubeconfig
        .clusters
        .iter()
        .map(|c| c.name.clone())
        .collect();
    clusters.sort();
    assert_eq!(clusters, names(&kubectl["clusters"]));
    let mut contexts: Vec<String> = access
        .kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.clone())
        .collect();
    contexts.sort();
    assert_eq!(contexts, names(&kubectl["contexts"]));
    access
        .connect()
        .await
        .expect("the working context connects");
}

/// Issue 14.7: inside a cluster repository whose infrastructure gives no
/// kubeconfig, kubectl's current context (which may be any cluster) is not
/// used silently; --context chooses it explicitly.
#[tokio::test]
async fn a_cluster_repository_without_a_kubeconfig_never_falls_through() {
    let plane = ControlPlane::shared().await;
    let mut scene = Scene::new();
    let repository =
        repository_with_output(&scene, "kubeconfig", "kc.txt", "Warning: something odd\n");
    let unrelated = scene.path("unrelated.kubeconfig");
    write_json(
        &unrelated,
        &renamed(&admin_kubeconfig(plane), "unrelated", None),
    );
    scene.set("KUBECONFIG", unrelated.display().to_string());
    let error = scene
        .resolve(&AccessOptions::default(), Some(&repository))
        .await
        .expect_err("no silent fallback");
    let message = error.to_string();
    assert!(
        message.contains("the repository's own cluster is the default"),
        "{message}"
    );
    assert!(message.contains("is not a kubeconfig"), "{message}");
    assert!(message.contains("--context"), "{message}");

    let options = AccessOptions {
        context: Some("unrelated".into()),
        ..Default::default()
    };
    let access = scene
        .resolve(&options, Some(&repository))
        .await
        .expect("explicit context");
    assert!(matches!(access.source, KubeconfigSource::Inherited(_)));
    assert!(access.source.why().contains("--context"));
}

/// Issue 29: an infrastructure `kubeconfig` output that does not parse is
/// named by where it failed (line, column), never quoted: the error of a
/// repository without a usable kubeconfig lists it.
#[tokio::test]
async fn an_unparsable_infrastructure_kubeconfig_is_located_never_quoted() {
    let scene = Scene::new();
    let secret = "SeCrEt-infra-0123";
    let repository = repository_with_output(
        &scene,
        "kubeconfig",
        "kc.txt",
        &format!("apiVersion: v1\nusers:\n- name: x\n  user:\n    token: {secret}: \"\n"),
    );
    let error = scene
        .resolve(&AccessOptions::default(), Some(&repository))
        .await
        .expect_err("no usable kubeconfig");
    let message = error.to_string();
    assert!(
        message.contains("is not a kubeconfig: ") && message.contains(" at line "),
        "{message}"
    );
    assert!(!message.contains("SeCrEt"), "{message}");
}
