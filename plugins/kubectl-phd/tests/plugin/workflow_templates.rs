//! The ClusterWorkflowTemplates of manifests/workflow-templates keep the
//! contract the instance commands rely on, and their scripts pass shellcheck.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

const NAMES: [&str; 7] = [
    "mongodb-deprovision-template",
    "mongodb-provision-template",
    "mysql-deprovision-template",
    "mysql-provision-template",
    "restore-point-template",
    "storage-deprovision-template",
    "storage-provision-template",
];

fn templates() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/workflow-templates");
    let mut found: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .expect("manifests/workflow-templates")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let value = serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("read"))
                .expect("YAML");
            (path, value)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[test]
fn seven_templates_with_the_names_the_instance_commands_use() {
    let names: Vec<String> = templates()
        .iter()
        .map(|(_, t)| {
            t["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(names, NAMES);
    for (path, template) in templates() {
        assert_eq!(
            template["kind"],
            "ClusterWorkflowTemplate",
            "{}",
            path.display()
        );
        assert_eq!(template["spec"]["entrypoint"], "main");
        assert_eq!(template["spec"]["serviceAccountName"], "workflow-executor");
        let file = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(template["metadata"]["name"], file.as_str());
    }
}

/// Issue 29: a developer may submit a Workflow referencing any of these
/// templates with any arguments; none may reach the script. The templates
/// declare no parameters, and every variable is a constant or a key of the
/// instance namespace's Secrets, which only phd writes.
#[test]
fn targets_and_credentials_come_only_from_secrets_never_from_arguments() {
    let admin = "phd-provisioning";
    let allowed_secrets: BTreeSet<(&str, &str)> = [
        (admin, "mysql-root-user"),
        (admin, "mysql-root-password"),
        (admin, "mysql-ca-certificate"),
        (admin, "digitalocean-token"),
        (admin, "atlas-public-key"),
        (admin, "atlas-private-key"),
        (admin, "storage-access-key-id"),
        (admin, "storage-secret-access-key"),
        // The targets phd writes next to the credentials.
        (admin, "mysql-database"),
        (admin, "mysql-user"),
        (admin, "mysql-host"),
        (admin, "mysql-port"),
        (admin, "mongodb-provider"),
        (admin, "mongodb-database"),
        (admin, "mongodb-forum-database"),
        (admin, "mongodb-user"),
        (admin, "digitalocean-cluster-id"),
        (admin, "atlas-project-id"),
        (admin, "atlas-cluster-name"),
        (admin, "digitalocean-api-url"),
        (admin, "atlas-api-url"),
        (admin, "bucket"),
        (admin, "storage-type"),
        (admin, "storage-region"),
        (admin, "storage-endpoint-url"),
        (admin, "storage-versioning"),
        (admin, "storage-public"),
        ("phd-instance-credentials", "mysql-password"),
        ("phd-instance-credentials", "mongodb-password"),
        // restore-point-template: what and where, and the instance's own keys.
        (admin, "restore-point-operation"),
        (admin, "instance"),
        (admin, "restore-point"),
        (admin, "restore-point-instance"),
        (admin, "restore-point-metadata"),
        (admin, "backup-bucket"),
        (admin, "mongodb-host"),
        (admin, "mongodb-port"),
        (admin, "mongodb-auth-source"),
        (admin, "mongodb-replica-set"),
        (admin, "mongodb-use-ssl"),
        (admin, "rewrite-hosts"),
        (admin, "scrub"),
        ("phd-instance-credentials", "storage-access-key-id"),
        ("phd-instance-credentials", "storage-secret-access-key"),
    ]
    .into_iter()
    .collect();
    for (path, template) in templates() {
        let text = serde_json::to_string(&template).expect("json");
        assert!(
            !text.contains("{{"),
            "{}: no Argo substitution anywhere (no parameter, input or workflow field reaches the step)",
            path.display()
        );
        assert!(
            template["spec"]["arguments"].is_null(),
            "{}: no parameters",
            path.display()
        );
        let script = &template["spec"]["templates"][0]["script"];
        assert!(script["args"].is_null(), "{}: no arguments", path.display());
        for variable in script["env"].as_array().expect("env") {
            let name = variable["name"].as_str().unwrap_or_default();
            if let Some(value) = variable["value"].as_str() {
                assert!(
                    [("HOME", "/tmp"), ("WORK_DIR", "/work")].contains(&(name, value)),
                    "{}: {name}={value}",
                    path.display()
                );
                continue;
            }
            let reference = variable["valueFrom"]["secretKeyRef"]
                .as_object()
                .unwrap_or_else(|| panic!("{}: {name} has no value", path.display()));
            let secret = reference["name"].as_str().unwrap_or_default();
            let key = reference["key"].as_str().unwrap_or_default();
            assert!(
                allowed_secrets.contains(&(secret, key)),
                "{}: {secret}/{key}",
                path.display()
            );
        }
        let image = script["image"].as_str().unwrap_or_default();
        let tag = image.rsplit(':').next().unwrap_or_default();
        assert!(
            tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{}: image {image} pinned by version",
            path.display()
        );
    }
}

#[test]
fn scripts_pass_shellcheck() {
    let shellcheck = which::which("shellcheck")
        .expect("shellcheck must be installed (scripts/install-test-tools installs it)");
    for (path, template) in templates() {
        let source = template["spec"]["templates"][0]["script"]["source"]
            .as_str()
            .expect("source")
            .to_owned();
        let output = std::process::Command::new(&shellcheck)
            // SC2016: the backticks and `$` in single quotes are JMESPath and SQL, meant literally.
            .args(["--shell=sh", "--exclude=SC2016", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(source.as_bytes())?;
                child.wait_with_output()
            })
            .expect("run shellcheck");
        assert!(
            output.status.success(),
            "{}:\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    }
}
