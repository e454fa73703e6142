//! `kubectl phd infra` and `kubectl phd kubeconfig` with a real tofu (or
//! terraform) on local state.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// A cluster repository whose infrastructure/ holds `main_tf`.
fn repository(main_tf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repository");
    std::fs::write(
        dir.path().join("context.json"),
        r#"{"cluster_name": "Demo", "cluster_domain": "demo.example"}"#,
    )
    .expect("context");
    std::fs::create_dir_all(dir.path().join("infrastructure")).expect("infrastructure");
    std::fs::write(dir.path().join("infrastructure/main.tf"), main_tf).expect("main.tf");
    std::fs::create_dir_all(dir.path().join("home")).expect("home");
    dir
}

fn phd(repo: &Path) -> Command {
    let mut command = Command::cargo_bin("kubectl-phd").expect("binary");
    command
        .current_dir(repo)
        .env("HOME", repo.join("home"))
        .env_remove("KUBECONFIG")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1");
    command
}

#[test]
fn arguments_and_exit_codes_pass_through() {
    let repo = repository(
        "output \"greeting\" {\n  value = \"hello\"\n}\n\nresource \"terraform_data\" \"marker\" {\n  input = \"a\"\n}\n",
    );
    phd(repo.path())
        .args(["infra", "init", "-input=false", "-no-color"])
        .assert()
        .success();
    // -detailed-exitcode: 2 means "changes to make", passed through as is.
    phd(repo.path())
        .args([
            "infra",
            "plan",
            "-input=false",
            "-detailed-exitcode",
            "-no-color",
        ])
        .assert()
        .code(2);
    phd(repo.path())
        .args([
            "infra",
            "apply",
            "-input=false",
            "-auto-approve",
            "-no-color",
        ])
        .assert()
        .success();
    phd(repo.path())
        .args([
            "infra",
            "plan",
            "-input=false",
            "-detailed-exitcode",
            "-no-color",
        ])
        .assert()
        .code(0);
    phd(repo.path())
        .args(["infra", "output", "-raw", "greeting"])
        .assert()
        .success()
        .stdout("hello");
    phd(repo.path())
        .args(["infra", "output", "-raw", "no_such_output"])
        .assert()
        .code(1);
}

#[test]
fn missing_backend_credentials_are_named_before_tofu_runs() {
    let repo = repository(
        "terraform {\n  backend \"s3\" {\n    bucket = \"state\"\n    key    = \"demo.tfstate\"\n    region = \"us-east-1\"\n  }\n}\n",
    );
    phd(repo.path())
        .args(["infra", "init"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "missing: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
        ));
    assert!(
        !repo.path().join("infrastructure/.terraform").exists(),
        "tofu did not run"
    );
}

/// From a trial: on DigitalOcean the state bucket is a Spaces bucket whose
/// keys go under the AWS names; the message says which keys.
#[test]
fn a_spaces_backend_asks_for_a_spaces_key() {
    let repo = repository(
        "terraform {\n  backend \"s3\" {\n    bucket = \"state\"\n    key    = \"demo.tfstate\"\n    region = \"us-east-1\"\n    endpoints = {\n      s3 = \"https://nyc3.digitaloceanspaces.com\"\n    }\n  }\n}\n",
    );
    phd(repo.path())
        .args(["infra", "init"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "missing: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (a DigitalOcean Spaces access key",
        ));
}

#[test]
fn a_named_aws_profile_stands_in_for_the_keys() {
    let repo = repository(
        "terraform {\n  backend \"s3\" {\n    bucket = \"state\"\n    key    = \"demo.tfstate\"\n    region = \"us-east-1\"\n  }\n}\n",
    );
    phd(repo.path())
        .args(["infra", "version"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "an AWS access key, or set AWS_PROFILE",
        ));
    phd(repo.path())
        .env("AWS_PROFILE", "operations")
        .args(["infra", "version"])
        .assert()
        .success()
        .stdout(predicates::str::contains("v1."));
}

#[test]
fn outside_a_cluster_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    phd(dir.path())
        .args(["infra", "plan"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("not inside a cluster repository"));
    phd(dir.path())
        .args(["kubeconfig"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("not inside a cluster repository"));
}

fn kubeconfig_with_server(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: do-nyc3-demo\n  cluster:\n    server: {server}\ncontexts:\n- name: do-nyc3-demo\n  context:\n    cluster: do-nyc3-demo\n    user: do-nyc3-demo-admin\ncurrent-context: do-nyc3-demo\nusers:\n- name: do-nyc3-demo-admin\n  user:\n    token: generated-token\n"
    )
}

fn apply_output(repo: &Path, kubeconfig: &str) {
    std::fs::write(repo.join("infrastructure/kubeconfig.yaml"), kubeconfig)
        .expect("write output source");
    std::fs::write(
        repo.join("infrastructure/main.tf"),
        "output \"kubeconfig\" {\n  value     = file(\"${path.module}/kubeconfig.yaml\")\n  sensitive = true\n}\n",
    )
    .expect("main.tf");
    phd(repo)
        .args(["infra", "init", "-input=false", "-no-color"])
        .assert()
        .success();
    phd(repo)
        .args([
            "infra",
            "apply",
            "-input=false",
            "-auto-approve",
            "-no-color",
        ])
        .assert()
        .success();
}

fn read_kubeconfig(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).expect("read kubeconfig")).expect("YAML")
}

#[test]
fn kubeconfig_is_printed_and_saved_as_its_own_context() {
    let repo = repository("");
    apply_output(
        repo.path(),
        &kubeconfig_with_server("https://1.example:6443"),
    );
    phd(repo.path())
        .arg("kubeconfig")
        .assert()
        .success()
        .stdout(predicates::str::contains("server: https://1.example:6443"));

    let users_file = repo.path().join("home/.kube/config");
    std::fs::create_dir_all(users_file.parent().expect("parent")).expect("kube dir");
    let theirs = "apiVersion: v1\nkind: Config\ncurrent-context: work\nclusters:\n- name: work\n  cluster:\n    server: https://work.example\ncontexts:\n- name: work\n  context:\n    cluster: work\n    user: me\nusers:\n- name: me\n  user:\n    token: my-token\n";
    std::fs::write(&users_file, theirs).expect("user's kubeconfig");

    phd(repo.path())
        .args(["kubeconfig", "--save"])
        .assert()
        .success();
    let saved = read_kubeconfig(&users_file);
    assert_eq!(
        saved["current-context"], "work",
        "the user's current context is kept"
    );
    let names = |list: &str| -> Vec<String> {
        saved[list]
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(names("contexts"), ["work", "phd-demo"]);
    assert_eq!(names("users"), ["me", "phd-demo"]);
    assert_eq!(saved["users"][0]["user"]["token"], "my-token");
    let mode = std::fs::metadata(&users_file)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // The cluster is rebuilt with a new address: a re-run replaces only its own context.
    apply_output(
        repo.path(),
        &kubeconfig_with_server("https://2.example:6443"),
    );
    phd(repo.path())
        .args(["kubeconfig", "--save"])
        .assert()
        .success();
    let saved = read_kubeconfig(&users_file);
    let servers: Vec<&str> = saved["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .filter_map(|c| c["cluster"]["server"].as_str())
        .collect();
    assert_eq!(servers, ["https://work.example", "https://2.example:6443"]);

    // KUBECONFIG names the file to write; --context-name the context.
    let other = repo.path().join("other.kubeconfig");
    phd(repo.path())
        .env("KUBECONFIG", &other)
        .args(["kubeconfig", "--save", "--context-name", "prod"])
        .assert()
        .success();
    assert_eq!(read_kubeconfig(&other)["current-context"], "prod");
}

#[test]
fn output_that_is_not_a_kubeconfig_is_a_clear_error() {
    let repo = repository("");
    apply_output(repo.path(), "Warning: this is not a kubeconfig\n");
    phd(repo.path())
        .args(["kubeconfig", "--save"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("is not a kubeconfig"));
    assert!(
        !repo.path().join("home/.kube/config").exists(),
        "nothing written"
    );
}

/// Issue 14.4: `~/.kube/config` kept as a link into a dotfiles folder is
/// written through (the link stays, the target gets the context, mode 0600),
/// and the context of "Acme & Co Learning" is named by the one slug rule.
#[test]
fn kubeconfig_save_writes_through_a_link_with_a_slugged_name() {
    let repo = repository("");
    std::fs::write(
        repo.path().join("context.json"),
        r#"{"cluster_name": "Acme & Co Learning", "cluster_domain": "demo.example"}"#,
    )
    .expect("context");
    apply_output(
        repo.path(),
        &kubeconfig_with_server("https://1.example:6443"),
    );
    let dotfiles = repo.path().join("dotfiles");
    std::fs::create_dir_all(&dotfiles).expect("dotfiles");
    let target = dotfiles.join("kubeconfig");
    std::fs::write(
        &target,
        "apiVersion: v1\nkind: Config\ncurrent-context: \"\"\n",
    )
    .expect("target");
    let link = repo.path().join("home/.kube/config");
    std::fs::create_dir_all(link.parent().expect("parent")).expect("kube dir");
    std::os::unix::fs::symlink(&target, &link).expect("link");

    phd(repo.path())
        .args(["kubeconfig", "--save"])
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "saved context phd-acme-co-learning",
        ));
    assert!(link.is_symlink(), "the link is kept");
    let saved = read_kubeconfig(&target);
    assert_eq!(saved["current-context"], "phd-acme-co-learning");
    let mode = std::fs::metadata(&target)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}
