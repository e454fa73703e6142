//! What the CLI prints, held in snapshot files (`tests/plugin/snapshots/`): the
//! `--help` of every command and the errors of common mistakes. A change of
//! any of them fails here until the new output is accepted:
//! `INSTA_UPDATE=always cargo test -p kubectl-phd --test plugin snapshots::` (or
//! `cargo insta review`), then review the diff of the `.snap` files.

use std::path::Path;

use assert_cmd::Command;
use clap::CommandFactory as _;
use kubectl_phd::cli::Cli;

/// The plugin in an empty directory, with no kubeconfig and no `PHD_*`
/// variable, at a fixed help width.
fn phd(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("kubectl-phd").expect("binary");
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("KUBECONFIG", dir.join("no-such.kubeconfig"))
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1");
    command
}

/// Every command path: `[]`, `["argo"]`, `["argo", "install"]`, ...
fn command_paths(command: &clap::Command, prefix: &[String], paths: &mut Vec<Vec<String>>) {
    paths.push(prefix.to_vec());
    for sub in command.get_subcommands() {
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_owned());
        command_paths(sub, &path, paths);
    }
}

#[test]
fn help_of_every_command() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut paths = Vec::new();
    command_paths(&Cli::command(), &[], &mut paths);
    assert!(paths.len() > 20, "{paths:?}");
    for path in paths {
        let output = phd(dir.path())
            .args(&path)
            .arg("--help")
            .output()
            .expect("run");
        assert!(output.status.success(), "{path:?} --help: {output:?}");
        let name = if path.is_empty() {
            "help".to_owned()
        } else {
            format!("help_{}", path.join("_"))
        };
        insta::assert_snapshot!(name, String::from_utf8_lossy(&output.stdout));
    }
}

/// The first lines of the errors of common mistakes, and their exit codes.
#[test]
fn errors_of_common_mistakes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cases: [(&str, &[&str]); 7] = [
        ("error_bad_instance_name", &["instance", "create", "Demo_1"]),
        ("error_namespace_flag", &["instance", "list", "-n", "demo"]),
        ("error_unknown_output", &["user", "list", "-o", "xml"]),
        (
            "error_dry_run_with_output",
            &["instance", "create", "demo", "--dry-run", "-o", "json"],
        ),
        ("error_no_kubeconfig", &["user", "list"]),
        ("error_delete_without_name", &["instance", "delete"]),
        (
            "error_reserved_user",
            &["user", "create", "admin", "--role", "admin"],
        ),
    ];
    for (name, args) in cases {
        let output = phd(dir.path()).args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr)
            .replace(&dir.path().display().to_string(), "[HOME]");
        insta::assert_snapshot!(
            name,
            format!(
                "$ kubectl phd {}\nexit code {:?}\n{stderr}",
                args.join(" "),
                output.status.code()
            )
        );
    }
}
