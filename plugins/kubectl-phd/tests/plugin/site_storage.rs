//! Media on the instance's bucket (issue 27, item 1): an instance rendered by
//! `kubectl phd instance create` with the real Tutor of each release keeps
//! every Open edX file on its bucket, with the keys from its Secret only.
//!
//! The rendered LMS and CMS production settings are loaded by
//! `site_storage.py` with the real Django, django-storages, boto3 and
//! cryptography from PyPI at the openedx image's versions (a venv of
//! scripts/install-test-tools). edx-platform cannot be installed here: the
//! modules its settings import are stood in for by the stub package that
//! script writes (edx-platform's defaults of the storage settings), the
//! boundary of this test. Against moto's S3 server, one process writes a
//! file through every storage and a second process, in a mount namespace
//! and temporary directory of its own (a fresh tmpfs on /openedx, where
//! Tutor's settings put the media and data directories), reads each back:
//! the two share the bucket and nothing else. Each process's environment is
//! the rendered Deployment's, with every `secretKeyRef` read from the
//! instance's real Secret, and nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use phd_common::tutor::{RELEASES, Tutor};
use phd_testkit::argo::WorkflowController;
use phd_testkit::s3::S3Server;
use phd_testkit::unique_name;
use serde_json::Value;

use crate::common::{self, Repo, STORAGE_KEY, STORAGE_SECRET};

/// The driver of the Python side.
const DRIVER: &str = include_str!("site_storage.py");
/// The Secret's keys of the bucket's access key, and the variables boto3
/// reads them from.
const STORAGE_VARIABLES: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "storage-access-key-id"),
    ("AWS_SECRET_ACCESS_KEY", "storage-secret-access-key"),
];
/// The Open edX workloads: they load the settings, so each needs the keys.
const OPENEDX_DEPLOYMENTS: [&str; 4] = ["lms", "cms", "lms-worker", "cms-worker"];

/// The Python of the venv scripts/install-test-tools makes.
fn storage_python() -> PathBuf {
    let python = phd_testkit::cache_dir().join("openedx-storage-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/install-test-tools installs Django, django-storages and boto3 there",
        python.display()
    );
    python
}

fn run_ok(command: &mut assert_cmd::Command) -> String {
    let output = command.output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "failed: {stderr}");
    stderr
}

/// `kubectl kustomize ENV`, as objects.
fn kustomize(env: &Path) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(env)
        .output()
        .expect("kubectl kustomize");
    assert!(
        output.status.success(),
        "kustomize: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    phd_common::manifest::parse("kustomize", &text)
        .expect("kustomize output parses")
        .into_iter()
        .map(|document| document.object)
        .collect()
}

fn deployment<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

fn first_container(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]["containers"][0]
}

/// The environment a container gets: plain values, and `secretKeyRef`s
/// resolved from `secret` (the instance's real Secret) as the kubelet does.
fn container_env(container: &Value, secret: &Secret) -> BTreeMap<String, String> {
    let data = secret.data.clone().unwrap_or_default();
    let mut env = BTreeMap::new();
    for variable in container["env"].as_array().into_iter().flatten() {
        let name = variable["name"].as_str().expect("name").to_owned();
        if let Some(value) = variable["value"].as_str() {
            env.insert(name, value.to_owned());
        } else if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
            assert_eq!(reference["name"], "phd-instance-credentials", "{name}");
            let key = reference["key"].as_str().expect("key");
            let value = data
                .get(key)
                .unwrap_or_else(|| panic!("{name}: the Secret has no {key}"));
            env.insert(name, String::from_utf8(value.0.clone()).expect("utf-8"));
        }
    }
    env
}

/// Every file of `dir`, as text.
fn texts_of(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(texts_of(&path));
        } else {
            let bytes = std::fs::read(&path).expect("read");
            found.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    found
}

/// Runs the driver as one process with a disk of its own: a mount
/// namespace with a fresh tmpfs on /openedx, a temporary directory for
/// HOME and TMPDIR, a copy of the settings file there, and `env` alone as
/// its environment. Returns its stdout.
fn driver(
    mode: &str,
    settings: &Path,
    bucket: &str,
    record: &Path,
    env: &BTreeMap<String, String>,
) -> String {
    let own = tempfile::tempdir().expect("temp dir");
    let copy = own.path().join("settings");
    std::fs::create_dir_all(&copy).expect("settings dir");
    let settings_copy = copy.join("production.py");
    std::fs::copy(settings, &settings_copy).expect("copy settings");
    let script = own.path().join("site_storage.py");
    std::fs::write(&script, DRIVER).expect("script");
    // The mount point of the tmpfs; the directory stays empty here.
    std::fs::create_dir_all("/openedx").expect("/openedx (the test runs as root)");
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
        .arg("mount -t tmpfs phd-test /openedx && exec \"$@\"")
        .arg("sh")
        .arg(storage_python())
        .arg(&script)
        .arg(mode)
        .arg(&settings_copy)
        .arg(bucket)
        .arg(record)
        .current_dir(own.path())
        .env_clear()
        .envs(env)
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", own.path())
        .env("TMPDIR", own.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("unshare (util-linux)");
    assert!(
        output.status.success(),
        "{mode} with {}:\n{}{}",
        settings.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The values of `secret`, each line of 12 characters or more (the lines of
/// a PEM key one by one).
fn secret_values(secret: &Secret) -> Vec<(String, String)> {
    let mut values = Vec::new();
    for (key, value) in secret.data.clone().unwrap_or_default() {
        let text = String::from_utf8_lossy(&value.0).into_owned();
        for line in text.lines().map(str::trim).filter(|l| l.len() >= 12) {
            if !line.starts_with("-----") {
                values.push((key.clone(), line.to_owned()));
            }
        }
    }
    values
}

/// What the instance of `env_dir` stores: every Open edX workload has the
/// bucket's keys from the Secret and boto3's checksum settings; no secret
/// value is in env/; the LMS and CMS settings write every storage to the
/// bucket and a second process reads it all back, as does the AWS CLI.
fn check_release(release: &str, env_dir: &Path, secret: &Secret, s3: &S3Server, bucket: &str) {
    let objects = kustomize(env_dir);
    let mut workloads: Vec<&Value> = OPENEDX_DEPLOYMENTS
        .iter()
        .map(|name| deployment(&objects, name))
        .collect();
    workloads.extend(objects.iter().filter(|o| {
        o["kind"] == "Job"
            && o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("drydock-"))
    }));
    assert!(
        workloads.len() > OPENEDX_DEPLOYMENTS.len(),
        "no Drydock job"
    );
    for workload in &workloads {
        let container = first_container(workload);
        let what = format!("{release} {}", workload["metadata"]["name"]);
        for (variable, key) in STORAGE_VARIABLES {
            let entry = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == variable)
                .unwrap_or_else(|| panic!("{what} has no {variable}"));
            assert_eq!(entry["valueFrom"]["secretKeyRef"]["key"], key, "{what}");
        }
        let env = container_env(container, secret);
        for variable in [
            "AWS_REQUEST_CHECKSUM_CALCULATION",
            "AWS_RESPONSE_CHECKSUM_VALIDATION",
        ] {
            assert_eq!(
                env.get(variable).map(String::as_str),
                Some("when_required"),
                "{what}"
            );
        }
    }

    // No secret value in any rendered file; the bucket's keys in none.
    let values = secret_values(secret);
    assert!(values.iter().any(|(_, v)| v == STORAGE_SECRET));
    for (path, text) in texts_of(env_dir) {
        for (key, value) in &values {
            assert!(
                !text.contains(value.as_str()),
                "{} holds the value of {key}",
                path.display()
            );
        }
        assert!(!text.contains(STORAGE_KEY), "{}", path.display());
    }

    let records = tempfile::tempdir().expect("records");
    for (service, settings) in [
        (
            "lms",
            env_dir.join("apps/openedx/settings/lms/production.py"),
        ),
        (
            "cms",
            env_dir.join("apps/openedx/settings/cms/production.py"),
        ),
    ] {
        let env = container_env(first_container(deployment(&objects, service)), secret);
        assert_eq!(env["AWS_ACCESS_KEY_ID"], STORAGE_KEY);
        let record = records.path().join(format!("{service}.json"));
        driver("write", &settings, bucket, &record, &env);
        let read = driver("read", &settings, bucket, &record, &env);
        let entries: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&record).expect("record")).expect("json");
        // Every storage of the list in the issue, for both services.
        let consumers: Vec<&str> = entries
            .iter()
            .map(|e| e["consumer"].as_str().unwrap_or_default())
            .collect();
        for wanted in [
            "STORAGES['default'] (django default_storage)",
            "ORA2 (django backend)",
            "SCORM xblock",
            "STORAGES['course_import_export']",
            "COURSE_IMPORT_EXPORT_STORAGE",
            "STORAGES['user_task_artifacts']",
            "USER_TASKS_ARTIFACT_STORAGE",
            "STORAGES['video_image']",
            "VIDEO_IMAGE_SETTINGS",
            "STORAGES['video_transcripts']",
            "VIDEO_TRANSCRIPTS_SETTINGS",
            "STORAGES['profile_image']",
            "GRADES_DOWNLOAD",
            "OPENEDX_LEARNING['MEDIA']",
        ] {
            assert!(
                consumers.contains(&wanted),
                "{release} {service}: {consumers:?}"
            );
        }
        if service == "lms" {
            assert!(consumers.contains(&"PROFILE_IMAGE_BACKEND"));
        }
        for entry in &entries {
            let key = entry["key"].as_str().expect("key");
            assert!(
                read.contains(key),
                "{release} {service}: {key} not read back"
            );
            // A third reader: the AWS CLI, straight from the bucket.
            let body = s3.get_object(bucket, key).expect("object in the bucket");
            assert_eq!(
                String::from_utf8_lossy(&body),
                entry["payload"].as_str().expect("payload"),
                "{release} {service} {key}"
            );
        }
    }
}

fn bucket_in(config: &str) -> String {
    config
        .lines()
        .find_map(|line| line.strip_prefix("STORAGE_BUCKET_NAME: "))
        .expect("bucket line")
        .trim_matches('"')
        .to_owned()
}

/// Issue 27.1: every Open edX file storage of Tutor 22.0.3 and 21.0.9 is the
/// instance's bucket, written by one process and read back by another that
/// shares no disk with it; the keys come from the Secret through the
/// environment only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_open_edx_storage_is_the_bucket_in_both_releases() {
    let plane = common::control_plane_with_argo().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("media");
    let repo = Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let s3 = S3Server::start().expect("moto S3 server");
    let with_storage = |command: &mut assert_cmd::Command| {
        command
            .env("PHD_STORAGE_TYPE", "s3")
            .env("PHD_STORAGE_REGION", "us-east-1")
            .env("PHD_STORAGE_ENDPOINT_URL", &s3.endpoint);
    };
    let mut create = repo.phd(&plane.admin_kubeconfig);
    with_storage(&mut create);
    run_ok(create.args(["instance", "create", &name, "--timeout", "60s"]));
    let dir = repo.instances().join(&name);
    let config = std::fs::read_to_string(dir.join("config.yml")).expect("config.yml");
    let bucket = bucket_in(&config);
    // Stands in for the storage Workflow (whose script is tested against the
    // same server in provisioning_scripts.rs).
    s3.s3api(&["create-bucket", "--bucket", &bucket])
        .expect("create bucket");

    // The bucket's keys are in the instance's Secret, after provisioning too.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &name);
    let secret = secrets
        .get("phd-instance-credentials")
        .await
        .expect("credentials");
    let data = secret.data.clone().unwrap_or_default();
    assert_eq!(data["storage-access-key-id"].0, STORAGE_KEY.as_bytes());
    assert_eq!(
        data["storage-secret-access-key"].0,
        STORAGE_SECRET.as_bytes()
    );

    for (index, release) in RELEASES.iter().enumerate() {
        if index > 0 {
            let mut update = repo.phd(&plane.admin_kubeconfig);
            with_storage(&mut update);
            run_ok(update.args([
                "instance",
                "update",
                &name,
                "--tutor-version",
                release.tutor,
            ]));
        }
        assert!(
            std::fs::read_to_string(dir.join("config.yml"))
                .expect("config.yml")
                .contains(&format!("PHD_TUTOR_VERSION: \"{}\"", release.tutor))
        );
        check_release(release.tutor, &dir.join("env"), &secret, &s3, &bucket);
    }
}

/// DigitalOcean Spaces, with or without its endpoint in config.yml: the
/// settings name the region's endpoint and address buckets by virtual host;
/// another S3-compatible store at an endpoint of its own is addressed by path. Rendered by the real Tutor of the default release
/// from a config.yml of the instance template's keys; loaded with no
/// network use (the storages are built, not used).
#[test]
fn spaces_and_custom_endpoints_are_addressed_as_they_need() {
    let release = phd_common::tutor::default_release();
    let tutor = Tutor::ensure(&phd_testkit::cache_dir(), release, None, &|_| {})
        .expect("Tutor of the default release");
    for (storage_type, endpoint, expected_endpoint, style) in [
        (
            "spaces",
            "",
            "https://nyc3.digitaloceanspaces.com",
            "virtual",
        ),
        (
            "spaces",
            "https://nyc3.digitaloceanspaces.com",
            "https://nyc3.digitaloceanspaces.com",
            "virtual",
        ),
        (
            "s3",
            "http://minio.example.internal:9000",
            "http://minio.example.internal:9000",
            "path",
        ),
    ] {
        let config = format!(
            "ID: spaces\nPLUGINS: [mfe, forum, drydock, phd]\nK8S_NAMESPACE: spaces\n\
             LMS_HOST: spaces.lms.example.org\nCMS_HOST: studio.spaces.lms.example.org\n\
             PREVIEW_LMS_HOST: preview.spaces.lms.example.org\n\
             MFE_HOST: apps.spaces.lms.example.org\n\
             MEILISEARCH_API_KEY_UID: 0b7c6a35-3a73-4a3b-8b59-2bb8f3b1e0a1\n\
             RUN_MYSQL: false\nRUN_MONGODB: false\n\
             STORAGE_TYPE: {storage_type}\nSTORAGE_REGION: nyc3\n\
             STORAGE_BUCKET_NAME: phd-spaces-abc1234\nSTORAGE_ENDPOINT_URL: \"{endpoint}\"\n"
        );
        let rendering = tutor.render(&config).expect("render");
        let env_dir = rendering.env_dir();
        let record = tempfile::NamedTempFile::new().expect("record");
        let env = BTreeMap::from([
            ("AWS_ACCESS_KEY_ID".to_owned(), "AKIA-inspect".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                "inspect-secret".to_owned(),
            ),
        ]);
        for service in ["lms", "cms"] {
            let settings = env_dir.join(format!("apps/openedx/settings/{service}/production.py"));
            let mut env = env.clone();
            // The settings resolve these references when they load.
            for (variable, value) in phd_variables(&settings) {
                env.insert(variable, value);
            }
            let out = driver(
                "inspect",
                &settings,
                "phd-spaces-abc1234",
                record.path(),
                &env,
            );
            let storages: Vec<Value> = serde_json::from_str(&out).expect("inspect output");
            assert!(storages.len() >= 14, "{out}");
            for storage in storages {
                assert_eq!(storage["endpoint_url"], expected_endpoint, "{storage}");
                assert_eq!(storage["addressing_style"], style, "{storage}");
                assert_eq!(storage["region_name"], "nyc3", "{storage}");
            }
        }
    }
}

/// `${PHD_...}` references of a settings file, each with a value to resolve
/// it to (a fresh RSA key for the JWT key, which the settings parse).
fn phd_variables(settings: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(settings).expect("settings");
    let mut found = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${PHD_") {
        let end = rest[start..].find('}').expect("closing brace") + start;
        found.insert(rest[start + 2..end].to_owned(), "phd-test-value".to_owned());
        rest = &rest[end..];
    }
    // Read by the settings whether referenced or not (they build the JWKs).
    let output = Command::new("openssl")
        .args(["genrsa", "2048"])
        .output()
        .expect("openssl genrsa");
    found.insert(
        "PHD_JWT_RSA_PRIVATE_KEY".to_owned(),
        String::from_utf8(output.stdout).expect("pem"),
    );
    found.into_iter().collect()
}
