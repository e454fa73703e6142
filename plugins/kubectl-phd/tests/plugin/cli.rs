//! The built binary: help, exit codes, output, and `doctor` against the real
//! local control plane, with a clean environment for each run.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use phd_testkit::ControlPlane;
use predicates::prelude::*;
use serde_json::Value;

/// The binary with an environment that holds nothing of this machine's
/// kubeconfig: a home and working directory of its own.
fn phd(home: &Path) -> Command {
    let mut command = Command::cargo_bin("kubectl-phd").expect("binary built");
    command
        .current_dir(home)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBECONFIG_CONTENT")
        .env_remove("NO_COLOR")
        .env("RUST_BACKTRACE", "1");
    command
}

fn doctor_json(output: &[u8]) -> Value {
    serde_json::from_slice(output).expect("doctor -o json prints JSON")
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check named {name} in {report}"))
}

#[test]
fn help_lists_the_commands_and_global_flags() {
    let home = tempfile::tempdir().expect("home");
    phd(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("doctor"))
        .stdout(predicate::str::contains("--kubeconfig"))
        .stdout(predicate::str::contains("--context"))
        .stdout(predicate::str::contains("--no-color"))
        .stdout(predicate::str::contains("Usage: kubectl phd"));
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().expect("home");
    phd(home.path()).arg("--no-such-flag").assert().code(2);
    phd(home.path()).arg("no-such-command").assert().code(2);
    phd(home.path())
        .args(["completion", "tcsh"])
        .assert()
        .code(2);
    phd(home.path())
        .args(["version", "-o", "xml"])
        .assert()
        .code(2);
}

/// Issue 29: an absurd duration wrapped around (`307445734561825861m`
/// became 44 s) or panicked a debug build; every duration flag now refuses
/// what is over its cap as a usage error, before anything else happens.
#[test]
fn absurd_durations_are_usage_errors_of_every_duration_flag() {
    let home = tempfile::tempdir().expect("home");
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "instance",
                "create",
                "x",
                "--timeout",
                "307445734561825861m",
            ],
            "at most 7 days",
        ),
        (
            &[
                "instance",
                "create",
                "x",
                "--timeout",
                "4611686018427387904m",
            ],
            "at most 7 days",
        ),
        (
            &[
                "instance",
                "delete",
                "x",
                "--timeout",
                "18446744073709551615h",
            ],
            "at most 7 days",
        ),
        (
            &["instance", "delete", "x", "--timeout", "8d"],
            "not a duration",
        ),
        (
            &["user", "list", "--request-timeout", "4611686018427387904m"],
            "at most 1 hour",
        ),
        (&["doctor", "--request-timeout", "2h"], "at most 1 hour"),
    ];
    for (args, message) in cases {
        let output = phd(home.path()).args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn version_in_text_and_json() {
    let home = tempfile::tempdir().expect("home");
    phd(home.path())
        .arg("version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(format!(
            "kubectl-phd {}",
            env!("CARGO_PKG_VERSION")
        )));
    let output = phd(home.path())
        .args(["version", "-o", "json"])
        .output()
        .expect("run");
    let info: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        info["argocdVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with('v'))
    );
}

#[test]
fn global_flags_are_accepted_after_the_subcommand() {
    let home = tempfile::tempdir().expect("home");
    phd(home.path())
        .args(["version", "-v", "--no-color", "--context", "x"])
        .assert()
        .success();
    // kubectl's -n has no meaning here: refused, not silently ignored.
    phd(home.path())
        .args(["instance", "list", "-n", "demo"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "an instance is its own namespace",
        ));
}

/// Issue 19.6: the scripts of `kubectl-phd completion bash|zsh|fish`
/// complete every word, flag values included, run by the shells themselves
/// with the binary on PATH (the scripts ask `kubectl-phd __complete`).
#[test]
fn completion_scripts_complete_every_word_in_each_shell() {
    let home = tempfile::tempdir().expect("home");
    let binary = assert_cmd::cargo::cargo_bin("kubectl-phd");
    let bin_dir = binary.parent().expect("target dir").to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    // Each shell: (program, a script that sources the completion and
    // prints the candidates for WORDS, one per line).
    let cases: [(&str, &str); 3] = [
        (
            "bash",
            r#"source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kubectl_phd; printf '%s\n' "${COMPREPLY[@]}""#,
        ),
        (
            "zsh",
            r#"compdef() { :; }; source "$1"; shift; compadd() { print -rl -- "${names[@]}"; }; words=("$@"); CURRENT=$#; _kubectl_phd"#,
        ),
        (
            "fish",
            r#"source $argv[1]; complete -C (string join ' ' -- $argv[2..-1])"#,
        ),
    ];
    for (shell, driver) in cases {
        if which::which(shell).is_err() {
            phd_testkit::skipped(&format!(
                "the {shell} completion script was not run: {shell} is not installed"
            ));
            continue;
        }
        let script = home.path().join(format!("completion.{shell}"));
        let output = phd(home.path())
            .args(["completion", shell])
            .output()
            .expect("run");
        assert!(output.status.success());
        std::fs::write(&script, &output.stdout).expect("script");
        let complete = |words: &[&str]| -> Vec<String> {
            let mut command = std::process::Command::new(shell);
            command.env("PATH", &path).env("HOME", home.path());
            if shell == "fish" {
                // fish's `complete -C` reads one command line; the last word is completed.
                command
                    .args(["--no-config", "-c", driver, "--"])
                    .arg(&script)
                    .args(words);
            } else {
                command.args(["-c", driver, shell]).arg(&script).args(words);
            }
            let output = command.output().expect("shell");
            assert!(output.status.success(), "{shell}: {output:?}");
            // Sorted: fish sorts what it offers, bash and zsh keep the order.
            let mut offered: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(|line| line.split('\t').next().unwrap_or_default().to_owned())
                .filter(|line| !line.is_empty())
                .collect();
            offered.sort();
            offered
        };
        // fish completes the last word of a line; an empty last word is a trailing space.
        let top = complete(&["kubectl-phd", ""]);
        assert!(top.contains(&"instance".to_owned()), "{shell}: {top:?}");
        assert_eq!(
            complete(&["kubectl-phd", "user", ""]),
            ["create", "delete", "list", "update"],
            "{shell}"
        );
        assert_eq!(
            complete(&["kubectl-phd", "user", "create", "alice", "--role", ""]),
            ["admin", "developer", "readonly"],
            "{shell}"
        );
        assert_eq!(
            complete(&["kubectl-phd", "instance", "create", "demo", "--no"]),
            ["--no-color", "--no-wait"],
            "{shell}"
        );
        assert_eq!(
            complete(&["kubectl-phd", "user", "list", "-o", ""]),
            ["json", "name", "table", "wide", "yaml"],
            "{shell}"
        );
    }
}

/// `kubectl phd completion zsh | head -1`: the reader goes away after one
/// line, and the plugin must end as Unix tools do, not panic.
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let home = tempfile::tempdir().expect("home");
    let binary = assert_cmd::cargo::cargo_bin("kubectl-phd");
    let mut child = std::process::Command::new(binary)
        .args(["completion", "zsh"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kubectl-phd");
    // Close the read end before the plugin writes its script.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
}

#[test]
fn doctor_without_any_kubeconfig_fails_with_the_hint() {
    let home = tempfile::tempdir().expect("home");
    phd(home.path())
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL kubeconfig"))
        .stdout(predicate::str::contains("KUBECONFIG_CONTENT"))
        .stderr(predicate::str::contains("panicked").not());
}

/// doctor names the instances that send email straight to recipients' MX
/// servers (Tutor's own mail server, no relay), and none once every instance
/// has a relay.
#[test]
fn doctor_warns_about_instances_without_an_smtp_relay() {
    let home = tempfile::tempdir().expect("home");
    let instances = home.path().join("instances");
    let write = |name: &str, config: &str| {
        let dir = instances.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("config.yml"), config).expect("config");
    };
    write(
        "relayed",
        "LMS_HOST: a.example\nRUN_SMTP: false\nSMTP_HOST: smtp.example.net\n",
    );
    write("direct", "LMS_HOST: b.example\n");
    write("tutorsmtp", "LMS_HOST: c.example\nSMTP_HOST: smtp\n");
    let email = || {
        let output = phd(home.path())
            .env("PHD_INSTANCES_DIRECTORY", &instances)
            .args(["doctor", "-o", "json"])
            .output()
            .expect("run");
        check(&doctor_json(&output.stdout), "email").clone()
    };
    let report = email();
    assert_eq!(report["status"], "warning", "{report}");
    let detail = report["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with("direct, tutorsmtp send email straight"),
        "{detail}"
    );
    assert!(!detail.contains("relayed"), "{detail}");
    for name in ["direct", "tutorsmtp"] {
        write(
            name,
            "RUN_SMTP: false\nSMTP_HOST: email-smtp.eu-west-1.amazonaws.com\n",
        );
    }
    let report = email();
    assert_eq!(report["status"], "ok", "{report}");
}

/// Issue 29: a kubeconfig that does not parse was quoted in the error (a
/// private key, a `.env` line with a password, a token), so CI logs got
/// secrets. From every source (`--kubeconfig`, `KUBECONFIG`,
/// `KUBECONFIG_CONTENT` plain and base64) and with `-v` (the cause chain),
/// the error says where it failed, never what is there.
#[test]
fn an_unparsable_kubeconfig_is_located_never_quoted() {
    use base64::Engine as _;
    let home = tempfile::tempdir().expect("home");
    let secret = "SeCrEt-0123456789";
    let good_head = "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\nclusters:\n- name: x\n  cluster: {server: \"https://127.0.0.1:1\"}\n";
    let broken = [
        // A private key pasted where the list of users belongs.
        format!(
            "{good_head}users: \"-----BEGIN RSA PRIVATE KEY-----\\nMIIEow{secret}\\n-----END RSA PRIVATE KEY-----\"\n"
        ),
        // A .env file given as the kubeconfig.
        format!("PHD_MYSQL_ROOT_PASSWORD={secret}\nPHD_STORAGE_TYPE=s3\n"),
        // A token line that breaks the YAML.
        format!("{good_head}users:\n- name: x\n  user:\n    token: {secret}: \"\n"),
        // A token where a mapping belongs.
        format!("{good_head}users:\n- name: x\n  user: [token: {secret}]\n"),
    ];
    // Parses, but its client key is not base64: refused when the client is made.
    let bad_data = format!(
        "{good_head}users:\n- name: x\n  user:\n    client-certificate-data: aGVsbG8K\n    client-key-data: \"{secret}!\"\n"
    );
    for (index, text) in broken.iter().chain([&bad_data]).enumerate() {
        let path = home.path().join(format!("broken-{index}.kubeconfig"));
        std::fs::write(&path, text).expect("write");
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        let sources: [(&str, Option<&str>, Option<&str>); 4] = [
            ("--kubeconfig", None, None),
            ("KUBECONFIG", None, None),
            ("KUBECONFIG_CONTENT", Some(text.as_str()), None),
            ("KUBECONFIG_CONTENT", None, Some(encoded.as_str())),
        ];
        for (source, plain, base64) in sources {
            for verbose in [false, true] {
                for command in [&["user", "list"][..], &["doctor", "-o", "json"][..]] {
                    let mut phd = phd(home.path());
                    match source {
                        "--kubeconfig" => {
                            phd.arg("--kubeconfig").arg(&path);
                        }
                        "KUBECONFIG" => {
                            phd.env("KUBECONFIG", &path);
                        }
                        _ => {
                            phd.env("KUBECONFIG_CONTENT", plain.or(base64).unwrap_or_default());
                        }
                    }
                    if verbose {
                        phd.arg("-vv");
                    }
                    let output = phd.args(command).output().expect("run");
                    let printed = format!(
                        "{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    );
                    let case = format!("case {index}, {source}, -v {verbose}, {command:?}");
                    assert_eq!(output.status.code(), Some(1), "{case}: {printed}");
                    for leaked in [secret, "MIIEow", "PHD_MYSQL_ROOT_PASSWORD", "SeCrEt"] {
                        assert!(!printed.contains(leaked), "{case}: {printed}");
                    }
                    assert!(!printed.contains("panicked"), "{case}: {printed}");
                    if index < broken.len() {
                        assert!(printed.contains("at line "), "{case}: {printed}");
                    } else {
                        assert!(
                            printed.contains("client key data is not valid base64"),
                            "{case}: {printed}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn doctor_with_garbage_kubeconfig_content_fails_clearly() {
    let home = tempfile::tempdir().expect("home");
    let output = phd(home.path())
        .env("KUBECONFIG_CONTENT", "this is not a kubeconfig")
        .args(["doctor", "-o", "json"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let report = doctor_json(&output.stdout);
    assert_eq!(check(&report, "kubeconfig")["status"], "failed");
    assert!(
        check(&report, "kubeconfig")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("KUBECONFIG_CONTENT is set but"))
    );
    // Every row is there, skipped (from a trial: the API server row was missing).
    assert_eq!(check(&report, "API server")["status"], "skipped");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

#[test]
fn missing_kubeconfig_file_is_one_clear_error() {
    let home = tempfile::tempdir().expect("home");
    phd(home.path())
        .args(["doctor", "--kubeconfig", "/nonexistent/kubeconfig"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "kubeconfig file /nonexistent/kubeconfig does not exist",
        ));
}

#[tokio::test]
async fn doctor_passes_against_the_control_plane() {
    let plane = ControlPlane::shared().await;
    let home = tempfile::tempdir().expect("home");
    let output = phd(home.path())
        .args(["doctor", "-o", "json", "--kubeconfig"])
        .arg(&plane.admin_kubeconfig)
        .output()
        .expect("run");
    let report = doctor_json(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["ok"], true);
    assert!(
        check(&report, "API server")["detail"]
            .as_str()
            .is_some_and(|d| d.contains(phd_testkit::KUBERNETES_VERSION))
    );
    assert_eq!(check(&report, "permissions")["status"], "ok");
    // Nothing of Argo is installed on a bare control plane: reported, not fatal.
    assert_eq!(check(&report, "Argo CD")["status"], "warning");
    assert!(
        check(&report, "Argo CD")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("kubectl phd argo install"))
    );
}

#[tokio::test]
async fn doctor_names_the_permissions_an_unprivileged_user_lacks() {
    let plane = ControlPlane::shared().await;
    let kubeconfig = plane
        .kubeconfig_for(&phd_testkit::unique_name("intern"), None)
        .expect("kubeconfig");
    let home = tempfile::tempdir().expect("home");
    let output = phd(home.path())
        .args(["doctor", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("0 of 13 needed permissions granted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("create namespaces cluster-wide is denied"),
        "{stdout}"
    );
}

/// Issue 18: an error is printed once, its first line naming what failed;
/// `-v` adds each cause once (a wrapper that repeats its source, kube's
/// `ServiceError: X` over `X`, is not printed twice); without `-v` a hint
/// says how to see them.
#[tokio::test]
async fn verbose_adds_each_cause_of_an_error_once() {
    let plane = ControlPlane::shared().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("kubeconfig");
    let mut config: Value = serde_json::from_str(&text).expect("json");
    config["clusters"][0]["cluster"]["server"] = Value::String(format!("https://127.0.0.1:{port}"));
    let home = tempfile::tempdir().expect("home");
    let run = |verbose: bool| {
        let mut command = phd(home.path());
        command.env("KUBECONFIG_CONTENT", config.to_string());
        if verbose {
            command.arg("-v");
        }
        let output = command.args(["user", "list"]).output().expect("run");
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let quiet = run(false);
    let errors: Vec<&str> = quiet.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{quiet}");
    assert!(
        errors[0].contains("cannot reach the Kubernetes API server"),
        "{quiet}"
    );
    assert!(!quiet.contains("caused by:"), "{quiet}");
    assert!(quiet.contains("run with -v to see every cause"), "{quiet}");

    let verbose = run(true);
    let causes: Vec<&str> = verbose
        .lines()
        .filter_map(|line| line.strip_prefix("  caused by: "))
        .collect();
    assert!(!causes.is_empty(), "{verbose}");
    for pair in causes.windows(2) {
        assert!(!pair[0].ends_with(pair[1]), "a cause repeated: {verbose}");
    }
}

#[tokio::test]
async fn doctor_fails_clearly_when_the_server_is_down() {
    let plane = ControlPlane::shared().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let text = std::fs::read_to_string(&plane.admin_kubeconfig).expect("kubeconfig");
    let mut config: Value = serde_json::from_str(&text).expect("json");
    config["clusters"][0]["cluster"]["server"] = Value::String(format!("https://127.0.0.1:{port}"));
    let home = tempfile::tempdir().expect("home");
    let start = Instant::now();
    let output = phd(home.path())
        .env("KUBECONFIG_CONTENT", config.to_string())
        .arg("doctor")
        .output()
        .expect("run");
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "cannot reach the Kubernetes API server at https://127.0.0.1:{port}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("skip permissions"), "{stdout}");
}

#[test]
fn kubectl_runs_the_plugin_from_path() {
    let binary = assert_cmd::cargo::cargo_bin("kubectl-phd");
    let bin_dir = tempfile::tempdir().expect("bin dir");
    std::os::unix::fs::symlink(&binary, bin_dir.path().join("kubectl-phd")).expect("link plugin");
    let path = std::env::join_paths(std::iter::once(bin_dir.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let kubectl = which::which("kubectl").expect("kubectl must be installed for this test");
    let output = std::process::Command::new(kubectl)
        .args(["phd", "version"])
        .env("PATH", path)
        .output()
        .expect("run kubectl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .starts_with(&format!("kubectl-phd {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// The binary linked under another name, as a package or a user would install it.
fn linked_as(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("bin dir");
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("kubectl-phd"), &link).expect("link");
    (dir, link)
}

#[test]
fn kubectl_plugin_completion_protocol() {
    let (_dir, completer) = linked_as("kubectl_complete-phd");
    // kubectl runs: kubectl_complete-phd __complete <words...> <word being completed>
    let output = std::process::Command::new(&completer)
        .args(["__complete", ""])
        .output()
        .expect("run");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&":4"),
        "the directive comes last: {stdout}"
    );
    for noun in ["argo", "instance", "user", "doctor"] {
        assert!(
            lines.iter().any(|l| l.split('\t').next() == Some(noun)),
            "{noun} in {stdout}"
        );
    }
    let output = std::process::Command::new(&completer)
        .args(["__complete", "instance", "d"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("delete\t"), "{stdout}");

    // Issue 19.6: through kubectl itself, values too: roles, and the
    // instances of the cluster repository around the working directory.
    let repo = tempfile::tempdir().expect("repository");
    std::fs::write(repo.path().join("context.json"), "{}").expect("context");
    for name in ["demo", "dev-site"] {
        let dir = repo.path().join("instances").join(name);
        std::fs::create_dir_all(&dir).expect("instance dir");
        std::fs::write(dir.join("config.yml"), "ID: x\n").expect("config");
    }
    let bin = completer.parent().expect("dir").to_path_buf();
    std::os::unix::fs::symlink(
        assert_cmd::cargo::cargo_bin("kubectl-phd"),
        bin.join("kubectl-phd"),
    )
    .expect("link the plugin");
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let kubectl = |words: &[&str]| {
        let output = std::process::Command::new("kubectl")
            .arg("__complete")
            .arg("phd")
            .args(words)
            .current_dir(repo.path())
            .env("PATH", &path)
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| !l.starts_with(':'))
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kubectl(&["user", "create", "alice", "--role", ""]),
        ["admin", "developer", "readonly"]
    );
    assert_eq!(kubectl(&["instance", "status", ""]), ["demo", "dev-site"]);
    assert_eq!(kubectl(&["instance", "delete", "dev"]), ["dev-site"]);
}

#[test]
fn original_command_names_translate_their_arguments() {
    let home = tempfile::tempdir().expect("home");
    let (_dir, legacy) = linked_as("phd_create_argo_user");
    // --password on the command line is refused, without echoing the password.
    let output = std::process::Command::new(&legacy)
        .args(["alice", "--password", "hunter2"])
        .current_dir(home.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--password-stdin") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    // A bad name reaches `user create`'s validation: the command was translated.
    let output = std::process::Command::new(&legacy)
        .args(["Alice", "--role", "admin"])
        .current_dir(home.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("user name \"Alice\""));
}

#[test]
fn doctor_reports_tutor_missing_installable_and_installed() {
    let home = tempfile::tempdir().expect("home");
    let cache = home.path().join("cache");
    let status = |configure: &dyn Fn(&mut Command)| {
        let mut command = phd(home.path());
        command
            .env("PHD_CACHE_DIR", &cache)
            .env_remove("PHD_PYTHON")
            .env("KUBECONFIG_CONTENT", "not a kubeconfig")
            .args(["doctor", "-o", "json"]);
        configure(&mut command);
        let output = command.output().expect("run");
        check(&doctor_json(&output.stdout), "Tutor")["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // No Python: nothing can render an instance.
    let empty_path = home.path().join("empty-bin");
    std::fs::create_dir_all(&empty_path).expect("dir");
    assert_eq!(
        status(&|c| {
            c.env("PATH", &empty_path);
        }),
        "failed"
    );
    // Python present: Tutor is installed on first use.
    let python = which::which("python3").expect("python3 for the tests");
    assert_eq!(
        status(&|c| {
            c.env("PATH", &empty_path).env("PHD_PYTHON", &python);
        }),
        "warning"
    );
    // Installed: the cache holds the release's virtual environment.
    let release = phd_common::tutor::default_release();
    let venv = cache.join("tutor").join(release.tutor);
    std::fs::create_dir_all(&venv).expect("dir");
    std::fs::write(venv.join(".phd-installed"), release.requirements.join(" ")).expect("marker");
    assert_eq!(status(&|_| {}), "ok");
}

/// Issue 19.1: the README's first command installs a `kubectl-phd` that
/// kubectl finds, so the next step it prints (`kubectl phd doctor`) works.
/// Run as the README says, into a temporary root (in debug mode and with the
/// workspace's target directory, so the test reuses what the suite built).
#[test]
fn the_quick_start_installs_a_plugin_kubectl_finds() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(workspace.join("README.md")).expect("README");
    let install = "cargo install --locked --path plugins/kubectl-phd";
    assert!(readme.contains(install), "the README's quick start changed");
    let root = tempfile::tempdir().expect("root");
    let status = std::process::Command::new(env!("CARGO"))
        .args(install.split_whitespace().skip(1))
        .arg("--root")
        .arg(root.path())
        .args(["--debug", "--quiet"])
        // A target directory of its own, kept in the cache: `cargo install`
        // builds without the test build's dev-dependency features, so sharing
        // `target/` would rebuild the dependencies back and forth.
        .env(
            "CARGO_TARGET_DIR",
            phd_testkit::cache_dir().join("quick-start-target"),
        )
        .current_dir(&workspace)
        .status()
        .expect("cargo install");
    assert!(status.success());
    let path = std::env::join_paths(std::iter::once(root.path().join("bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let kubectl = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("HOME", root.path())
            .output()
            .expect("kubectl")
    };
    let plugins = kubectl(&["plugin", "list"]);
    assert!(
        String::from_utf8_lossy(&plugins.stdout).contains("kubectl-phd"),
        "{}",
        String::from_utf8_lossy(&plugins.stderr)
    );
    let out = root.path().join("out");
    let output = kubectl(&[
        "phd",
        "cluster",
        "create",
        "Demo",
        "demo.example.com",
        "--no-git",
        "--output-dir",
        out.to_str().expect("utf-8"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.join("phd-demo-cluster/context.json").is_file());
    let doctor = kubectl(&["phd", "doctor", "--help"]);
    assert!(doctor.status.success());
}

/// Commands that need Argo refuse, before any change, on a cluster without
/// it, naming what is missing and the command that installs it (one check,
/// `phd_common::argo::require_installed`, for every command).
#[tokio::test]
async fn commands_that_need_argo_say_so_on_a_cluster_without_it() {
    let plane = ControlPlane::shared().await;
    let home = tempfile::tempdir().expect("home");
    let cases: [(&[&str], &str); 6] = [
        (&["instance", "list"], "Argo Workflows is not installed"),
        (
            &["instance", "status", "demo"],
            "Argo Workflows is not installed",
        ),
        (&["ci-credentials"], "Argo CD is not installed"),
        (
            &[
                "argo",
                "repository",
                "--url",
                "https://github.com/acme/phd-acme-cluster.git",
                "--token-stdin",
            ],
            "Argo CD is not installed",
        ),
        (&["user", "list"], "Argo CD is not installed"),
        (&["user", "create", "alice"], "Argo CD is not installed"),
    ];
    for (args, expected) in cases {
        let output = phd(home.path())
            .arg("--kubeconfig")
            .arg(&plane.admin_kubeconfig)
            .args(args)
            .write_stdin("a-token\n")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        let first = stderr
            .lines()
            .find(|line| line.starts_with("error:"))
            .unwrap_or_default();
        assert!(
            first.contains(expected) && first.contains("run `kubectl phd argo install` first"),
            "{args:?}: {stderr}"
        );
    }
    // Nothing was made on the way.
    let client = plane.client().await.expect("client");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    for name in ["argocd", "argo", "phd-ci"] {
        assert!(
            namespaces.get_opt(name).await.expect("read").is_none(),
            "namespace {name} appeared"
        );
    }
}
