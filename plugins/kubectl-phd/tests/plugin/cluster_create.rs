//! `kubectl phd cluster create` through the built binary, and the repository
//! it makes checked by the tools its users will run on it: cookiecutter
//! (same template, same files), actionlint and zizmor (workflows), shellcheck
//! and bash (`activate`), tofu (`fmt -check`), git.
//!
//! The tools are looked up on PATH, then in `$PHD_CACHE_DIR/bin`, where
//! `scripts/install-test-tools` puts them; a missing tool fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use phd_testkit::tool;
use predicates::prelude::*;
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The binary, isolated from this machine's git identity and phd settings.
fn phd(home: &Path) -> Command {
    let mut command = Command::cargo_bin("kubectl-phd").expect("binary built");
    command
        .current_dir(home)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"))
        .env("NO_COLOR", "1")
        .env_remove("PHD_ENVIRONMENT")
        .env_remove("GIT_AUTHOR_NAME")
        .env_remove("GIT_AUTHOR_EMAIL")
        .env_remove("GIT_COMMITTER_NAME")
        .env_remove("GIT_COMMITTER_EMAIL")
        .env_remove("EMAIL");
    command
}

/// `cluster create ARGS` in a fresh directory; returns it and the repository's path.
fn create(args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let home = tempfile::tempdir().expect("temporary directory");
    let output = phd(home.path())
        .args(["cluster", "create"])
        .args(args)
        .output()
        .expect("run kubectl-phd");
    assert!(
        output.status.success(),
        "cluster create {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(path.is_dir(), "stdout names the repository: {path:?}");
    let path = path.canonicalize().expect("canonical path");
    (home, path)
}

fn run(program: &Path, args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()))
}

fn assert_clean(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Every file below `root` except `.git/`: relative path → (contents, executable).
fn tree(root: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, (Vec<u8>, bool)>) {
        for entry in std::fs::read_dir(dir).expect("read directory") {
            let path = entry.expect("directory entry").path();
            if path.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&path)
                    .expect("metadata")
                    .permissions()
                    .mode();
                let relative = path.strip_prefix(root).expect("below root");
                files.insert(
                    relative.to_string_lossy().into_owned(),
                    (std::fs::read(&path).expect("read file"), mode & 0o111 != 0),
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

fn names(files: &BTreeMap<String, (Vec<u8>, bool)>) -> Vec<&str> {
    files.keys().map(String::as_str).collect()
}

const EVERY_FILE: [&str; 20] = [
    ".github/workflows/build.yml",
    ".github/workflows/create-instance.yml",
    ".github/workflows/delete-instance.yml",
    ".github/workflows/update-instance.yml",
    ".github/zizmor.yml",
    ".gitignore",
    "README.md",
    "activate",
    "cluster/apps/cluster-autoscaler.yml",
    "cluster/apps/harmony.yml",
    "cluster/apps/instances.yml",
    "cluster/apps/storage-class.yml",
    "cluster/project.yml",
    "cluster/root.yml",
    "context.json",
    "infrastructure/main.tf",
    "infrastructure/outputs.tf",
    "infrastructure/providers.tf",
    "infrastructure/variables.tf",
    "instances/.gitkeep",
];

#[test]
fn digitalocean_repository_has_every_file_and_the_given_values() {
    let (_home, repo) = create(&[
        "Acme Production",
        "learn.acme.org",
        "--github-org",
        "acme",
        "--no-git",
    ]);
    assert_eq!(
        repo.file_name().and_then(|n| n.to_str()),
        Some("phd-acme-production-cluster")
    );
    assert_eq!(names(&tree(&repo)), EVERY_FILE);

    let context: Value = serde_json::from_str(&read(&repo.join("context.json"))).expect("JSON");
    assert_eq!(context["cluster_name"], "Acme Production");
    assert_eq!(context["cluster_slug"], "acme-production");
    assert_eq!(context["cluster_domain"], "learn.acme.org");
    assert_eq!(context["environment"], "production");
    assert_eq!(context["provider"], "digitalocean");
    assert_eq!(context["region"], "nyc3");
    assert_eq!(
        context["repository"],
        "https://github.com/acme/phd-acme-production-cluster.git"
    );

    let main = read(&repo.join("infrastructure/main.tf"));
    assert!(main.contains(&format!(
        "source = \"git::https://github.com/phd-project/kubectl-phd.git//infrastructure/modules/digitalocean?ref=v{VERSION}\""
    )));
    assert!(main.contains("jsondecode(file(\"${path.module}/../context.json\"))"));
    let providers = read(&repo.join("infrastructure/providers.tf"));
    assert!(providers.contains("backend \"s3\""));
    assert!(providers.contains("bucket = \"tfstate-phd-acme-production-production\""));
    assert!(providers.contains("s3 = \"https://nyc3.digitaloceanspaces.com\""));
    assert!(providers.contains("source  = \"digitalocean/digitalocean\""));
    assert!(!providers.contains("hashicorp/aws"));
    assert!(!providers.contains("token"), "no credential in the code");
    let outputs = read(&repo.join("infrastructure/outputs.tf"));
    assert!(
        outputs.contains(
            "output \"kubeconfig\" {\n  description = \"Kubeconfig of the cluster, read by `kubectl phd kubeconfig` and by kubectl phd inside this repository.\"\n  value       = module.cluster.kubeconfig\n  sensitive   = true\n}"
        ),
        "{outputs}"
    );

    let gitignore = read(&repo.join(".gitignore"));
    for ignored in [".kubeconfig", ".terraform/", "*.tfstate", "*.tfstate.*"] {
        assert!(gitignore.lines().any(|line| line == ignored), "{ignored}");
    }
    let activate = read(&repo.join("activate"));
    assert!(activate.contains("export KUBECONFIG=\"$root/infrastructure/.kubeconfig\""));
    let readme = read(&repo.join("README.md"));
    assert!(readme.starts_with("# phd-acme-production-cluster\n"));
    assert!(readme.contains("on DigitalOcean (nyc3)"));
    assert!(readme.contains("tfstate-phd-acme-production-production"));

    let create = read(&repo.join(".github/workflows/create-instance.yml"));
    assert!(create.contains(&format!(
        "uses: phd-project/kubectl-phd/.github/workflows/create-instance.yml@v{VERSION}"
    )));
    assert!(create.contains(&format!("phd-version: \"{VERSION}\"")));
    assert!(create.contains("runner-label: \"ubuntu-latest\""));
    assert!(create.contains("instance-name: ${{ inputs.instance-name }}"));
    let delete = read(&repo.join(".github/workflows/delete-instance.yml"));
    assert!(delete.contains("confirmation: ${{ inputs.confirmation }}"));
    assert!(delete.contains(&format!(
        "uses: phd-project/kubectl-phd/.github/workflows/delete-instance.yml@v{VERSION}"
    )));
}

/// From a trial: the README and next steps suggested a deploy key for an
/// https URL, which `argo repository` must refuse (Argo CD matches
/// credentials by URL). Each suggests the credential that fits the URL.
#[test]
fn the_suggested_read_access_fits_the_repository_url() {
    for (url, fits, misfits) in [
        (
            "https://github.com/school/infra.git",
            "--token-stdin",
            "--ssh-key-file",
        ),
        (
            "git@github.com:school/infra.git",
            "--ssh-key-file",
            "--token-stdin",
        ),
    ] {
        let home = tempfile::tempdir().expect("temporary directory");
        let output = phd(home.path())
            .args([
                "cluster",
                "create",
                "School",
                "school.example.edu",
                "--no-git",
            ])
            .args(["--github-repo", url])
            .output()
            .expect("run kubectl-phd");
        assert!(output.status.success());
        let steps = String::from_utf8_lossy(&output.stderr);
        let step = steps
            .lines()
            .find(|line| line.contains("kubectl phd argo repository"))
            .expect("a step for Argo CD's read access");
        assert!(
            step.contains(fits) && !step.contains(misfits),
            "{url}: {step}"
        );
        let repo = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let readme = read(&repo.join("README.md"));
        assert!(
            readme.contains(&format!("kubectl phd argo repository {fits}"))
                && !readme.contains(&format!("kubectl phd argo repository {misfits}")),
            "{url}: {readme}"
        );
    }
}

#[test]
fn aws_repository_uses_the_aws_module_and_an_s3_backend() {
    let (_home, repo) = create(&[
        "Big School",
        "school.example.edu",
        "--provider",
        "aws",
        "--region",
        "eu-west-1",
        "--environment",
        "staging",
        "--github-repo",
        "git@github.com:school/infra.git",
        "--runner-label",
        "self-hosted",
        "--no-git",
    ]);
    assert_eq!(
        repo.file_name().and_then(|n| n.to_str()),
        Some("phd-big-school-cluster")
    );
    assert_eq!(names(&tree(&repo)), EVERY_FILE);
    let context: Value = serde_json::from_str(&read(&repo.join("context.json"))).expect("JSON");
    assert_eq!(context["provider"], "aws");
    assert_eq!(context["region"], "eu-west-1");
    assert_eq!(context["environment"], "staging");
    assert_eq!(context["repository"], "git@github.com:school/infra.git");

    let main = read(&repo.join("infrastructure/main.tf"));
    assert!(main.contains(&format!("//infrastructure/modules/aws?ref=v{VERSION}\"")));
    let providers = read(&repo.join("infrastructure/providers.tf"));
    assert!(providers.contains("bucket       = \"tfstate-phd-big-school-staging\""));
    assert!(providers.contains("region       = \"eu-west-1\""));
    assert!(providers.contains("use_lockfile = true"));
    assert!(providers.contains("source  = \"hashicorp/aws\""));
    assert!(!providers.contains("digitalocean"));
    let variables = read(&repo.join("infrastructure/variables.tf"));
    assert!(variables.contains("EC2 instance type"));
    let readme = read(&repo.join("README.md"));
    assert!(readme.contains("on AWS (eu-west-1)"));
    assert!(readme.contains("LocationConstraint=eu-west-1"));
    let build = read(&repo.join(".github/workflows/build.yml"));
    assert!(build.contains("runs-on: self-hosted"));
}

#[test]
fn spaces_and_underscores_become_dashes_and_nothing_is_stripped() {
    for (name, environment, directory) in [
        (
            "My_Big  Cluster ",
            "production",
            "phd-my-big-cluster-cluster",
        ),
        // The original tool removed "phd-", "-cluster" and the environment's
        // name from the slug: "Product" in "prod" became "uct".
        ("Product", "prod", "phd-product-cluster"),
        (
            "PHD Production Cluster",
            "production",
            "phd-phd-production-cluster-cluster",
        ),
        ("Acme & Co.", "production", "phd-acme-co-cluster"),
    ] {
        let (_home, repo) = create(&[
            name,
            "example.com",
            "--environment",
            environment,
            "--no-git",
        ]);
        assert_eq!(
            repo.file_name().and_then(|n| n.to_str()),
            Some(directory),
            "{name:?}"
        );
        // One slug rule: the template's (for cookiecutter users) is phd's,
        // which also names the kubeconfig context (`phd-<slug>`).
        assert_eq!(
            format!("phd-{}-cluster", phd_common::naming::slug(name)),
            directory,
            "{name:?}"
        );
        let context: Value = serde_json::from_str(&read(&repo.join("context.json"))).expect("JSON");
        assert_eq!(context["cluster_name"], name);
        assert_eq!(context["environment"], environment);
    }
}

/// Runs `cluster create ARGS` expecting exit 1 with `message` on stderr, and
/// checks that nothing was written.
fn refused(args: &[&str], message: &str) {
    let home = tempfile::tempdir().expect("temporary directory");
    let out = home.path().join("out");
    phd(home.path())
        .args(["cluster", "create", "--output-dir"])
        .arg(&out)
        .args(args)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(message));
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn names_without_letters_or_digits_are_refused_before_anything_is_written() {
    for name in ["!!!", "---", "___", "  ", "$%&/()"] {
        let message = if name.trim().is_empty() {
            "the cluster name must not be empty"
        } else {
            "has no letters or digits"
        };
        // `--` so that clap takes "---" as the name, not as a flag.
        refused(&["--", name, "example.com"], message);
    }
}

#[test]
fn invalid_values_are_refused_before_anything_is_written() {
    refused(&["Zürich", "example.com"], "spell it with those");
    refused(
        &["a".repeat(31).as_str(), "example.com"],
        "at most 30 characters",
    );
    refused(&["Acme", "Example.COM"], "is not a valid DNS name");
    refused(&["Acme", "localhost"], "is not a valid DNS name");
    refused(
        &["Acme", "example.com", "--environment", "Prod"],
        "environment name",
    );
    // The modules' own rule (2 to 20 characters), named as such (from a trial).
    refused(
        &["Acme", "example.com", "--environment", "p"],
        "at least 2 characters",
    );
    refused(
        &["Acme", "example.com", "--environment", "1prod"],
        "at most 20 characters",
    );
    refused(
        &[
            "Acme",
            "example.com",
            "--provider",
            "aws",
            "--region",
            "nyc3",
        ],
        "is not a aws region",
    );
    refused(
        &["Acme", "example.com", "--region", "us-east-1"],
        "is not a digitalocean region",
    );
    refused(
        &["Acme", "example.com", "--github-org", "ac me"],
        "--github-org",
    );
    refused(
        &[
            "Acme",
            "example.com",
            "--github-repo",
            "https://x/\"; rm -rf /",
        ],
        "--github-repo",
    );
    refused(
        &["Acme", "example.com", "--runner-label", "a b"],
        "--runner-label",
    );
    // A usage error is exit 2, from clap.
    let home = tempfile::tempdir().expect("temporary directory");
    phd(home.path())
        .args([
            "cluster",
            "create",
            "Acme",
            "example.com",
            "--provider",
            "gcp",
        ])
        .assert()
        .code(2);
}

#[test]
fn an_existing_repository_is_replaced_only_with_force() {
    let (home, repo) = create(&["Acme", "example.com", "--no-git"]);
    std::fs::write(repo.join("notes.txt"), "mine").expect("write");
    phd(home.path())
        .args(["cluster", "create", "Acme", "example.com", "--no-git"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists; pass --force"));
    assert_eq!(read(&repo.join("notes.txt")), "mine", "left alone");

    phd(home.path())
        .args(["cluster", "create", "Acme", "example.com", "--force"])
        .assert()
        .success();
    assert!(!repo.join("notes.txt").exists(), "replaced");
    assert!(repo.join(".git").is_dir());
    assert_eq!(names(&tree(&repo)), EVERY_FILE);
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .expect("read")
        .map(|entry| entry.expect("entry").file_name())
        .filter(|name| name.to_string_lossy().starts_with(".phd"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary directories left: {leftovers:?}"
    );
}

#[test]
fn no_git_leaves_no_git_directory() {
    let (_home, repo) = create(&["Acme", "example.com", "--no-git"]);
    assert!(!repo.join(".git").exists());
}

#[test]
fn the_git_repository_has_one_commit_with_every_file() {
    let (_home, repo) = create(&["Acme", "example.com", "--github-org", "acme"]);
    let git = |args: &[&str]| {
        let output = run(Path::new("git"), args, &repo);
        assert_clean(&format!("git {args:?}"), &output);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(git(&["rev-list", "--count", "HEAD"]), "1");
    assert_eq!(git(&["branch", "--show-current"]), "main");
    assert_eq!(git(&["status", "--porcelain", "--ignored"]), "");
    let committed: Vec<String> = git(&["ls-files"]).lines().map(str::to_owned).collect();
    assert_eq!(committed, EVERY_FILE);
    assert_eq!(
        git(&["remote", "get-url", "origin"]),
        "https://github.com/acme/phd-acme-cluster.git"
    );
    // No identity is configured in the test's home: the fallback is used.
    assert_eq!(
        git(&["log", "--format=%an <%ae>|%s"]),
        "kubectl-phd <kubectl-phd@localhost>|Cluster repository phd-acme-cluster"
    );
}

#[test]
fn a_configured_git_identity_is_used() {
    let home = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        home.path().join(".gitconfig"),
        "[user]\n\tname = Ada Operator\n\temail = ada@example.com\n",
    )
    .expect("write");
    phd(home.path())
        .args(["cluster", "create", "Acme", "example.com"])
        .assert()
        .success();
    let output = run(
        Path::new("git"),
        &["log", "--format=%an <%ae>"],
        &home.path().join("phd-acme-cluster"),
    );
    assert_clean("git log", &output);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Ada Operator <ada@example.com>"
    );
}

#[test]
fn json_output_describes_the_repository() {
    let home = tempfile::tempdir().expect("temporary directory");
    let output = phd(home.path())
        .args([
            "cluster",
            "create",
            "Acme",
            "example.com",
            "--no-git",
            "-o",
            "json",
        ])
        .output()
        .expect("run");
    assert!(output.status.success());
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(created["clusterSlug"], "acme");
    assert_eq!(created["provider"], "digitalocean");
    assert_eq!(created["git"], false);
    assert_eq!(
        created["files"].as_array().map(Vec::len),
        Some(EVERY_FILE.len())
    );
    assert!(
        created["path"]
            .as_str()
            .is_some_and(|path| path.ends_with("/phd-acme-cluster"))
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("next steps:"), "{stderr}");
}

/// The same inputs through `cookiecutter` (its own Jinja, its own hook) give
/// the same files, byte for byte and mode for mode.
#[test]
fn cookiecutter_renders_the_same_files() {
    let cookiecutter = tool("cookiecutter");
    let template = Path::new(WORKSPACE).join("templates/cluster");
    for (name, extra) in [
        (
            "Acme & Co's Prod_Cluster",
            &["--provider", "aws", "--github-org", "acme"][..],
        ),
        ("Product", &["--environment", "prod"][..]),
        (
            "Open edX",
            &[
                "--region",
                "fra1",
                "--environment",
                "staging",
                "--github-repo",
                "git@github.com:acme/cluster.git",
                "--runner-label",
                "self-hosted",
            ][..],
        ),
    ] {
        let mut args = vec![name, "example.com", "--no-git"];
        args.extend_from_slice(extra);
        let (_home, native) = create(&args);

        let work = tempfile::tempdir().expect("temporary directory");
        let flag = |flag: &str| {
            extra
                .iter()
                .position(|arg| *arg == flag)
                .map(|index| extra[index + 1])
        };
        let mut context = vec![
            format!("cluster_name={name}"),
            "cluster_domain=example.com".to_owned(),
            "initialize_git=no".to_owned(),
        ];
        for (flag_name, key) in [
            ("--provider", "provider"),
            ("--region", "region"),
            ("--environment", "environment"),
            ("--github-org", "github_organization"),
            ("--github-repo", "github_repository"),
            ("--runner-label", "runner_label"),
        ] {
            if let Some(value) = flag(flag_name) {
                context.push(format!("{key}={value}"));
            }
        }
        let mut command = std::process::Command::new(&cookiecutter);
        command
            .arg("--no-input")
            .arg("--output-dir")
            .arg(work.path())
            .arg(&template)
            .args(&context)
            .env("HOME", work.path());
        let output = command.output().expect("run cookiecutter");
        assert_clean("cookiecutter", &output);
        let rendered = work.path().join(native.file_name().expect("name"));
        assert!(
            rendered.is_dir(),
            "cookiecutter made {}",
            rendered.display()
        );
        let (native_files, cookiecutter_files) = (tree(&native), tree(&rendered));
        assert_eq!(names(&native_files), names(&cookiecutter_files));
        for (path, native_file) in &native_files {
            let theirs = &cookiecutter_files[path];
            assert!(
                native_file == theirs,
                "{path} differs for {name:?}:\n--- kubectl phd\n{}\n--- cookiecutter\n{}",
                String::from_utf8_lossy(&native_file.0),
                String::from_utf8_lossy(&theirs.0)
            );
        }
    }
}

/// With its defaults, cookiecutter's hook makes the same first commit.
#[test]
fn cookiecutter_hook_commits_every_file() {
    let cookiecutter = tool("cookiecutter");
    let work = tempfile::tempdir().expect("temporary directory");
    let output = std::process::Command::new(&cookiecutter)
        .arg("--no-input")
        .arg("--output-dir")
        .arg(work.path())
        .arg(Path::new(WORKSPACE).join("templates/cluster"))
        .env("HOME", work.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", work.path().join(".gitconfig"))
        .output()
        .expect("run cookiecutter");
    assert_clean("cookiecutter", &output);
    let repo = work.path().join("phd-open-edx-cluster");
    let output = run(Path::new("git"), &["ls-files"], &repo);
    assert_clean("git ls-files", &output);
    let committed: Vec<&str> = std::str::from_utf8(&output.stdout)
        .expect("UTF-8")
        .lines()
        .collect();
    assert_eq!(committed, EVERY_FILE);
}

fn workflows(repo: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo.join(".github/workflows"))
        .expect("workflows")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn lint_workflows(repo: &Path, files: &[PathBuf]) {
    assert!(!files.is_empty());
    let actionlint = tool("actionlint");
    let zizmor = tool("zizmor");
    let output = std::process::Command::new(&actionlint)
        .args(files)
        .current_dir(repo)
        .output()
        .expect("run actionlint");
    assert_clean("actionlint", &output);
    // From the repository's root, so zizmor reads its .github/zizmor.yml.
    let output = std::process::Command::new(&zizmor)
        .arg("--offline")
        .arg("--no-progress")
        .args(files)
        .current_dir(repo)
        .output()
        .expect("run zizmor");
    assert_clean("zizmor", &output);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("No findings to report"), "zizmor: {report}");
}

#[test]
fn generated_workflows_pass_actionlint_and_zizmor() {
    for provider in ["digitalocean", "aws"] {
        let (_home, repo) = create(&[
            "Acme",
            "example.com",
            "--provider",
            provider,
            "--github-org",
            "acme",
            "--no-git",
        ]);
        let files = workflows(&repo);
        assert_eq!(files.len(), 4);
        lint_workflows(&repo, &files);
        for file in &files {
            let text = read(file);
            for (number, line) in text.lines().enumerate() {
                // Third-party actions pinned by full commit hash.
                if let Some(action) = line
                    .trim()
                    .strip_prefix("- uses: ")
                    .or_else(|| line.trim().strip_prefix("uses: "))
                    && !action.starts_with("phd-project/kubectl-phd/")
                {
                    let reference = action.split_once('@').map(|(_, r)| r).unwrap_or("");
                    let hash = reference.split_whitespace().next().unwrap_or("");
                    assert!(
                        hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{}:{}: {line}",
                        file.display(),
                        number + 1
                    );
                }
            }
        }
    }
}

#[test]
fn reusable_workflows_pass_actionlint_and_zizmor() {
    let workspace = Path::new(WORKSPACE).canonicalize().expect("workspace");
    let files = vec![
        workspace.join(".github/workflows/create-instance.yml"),
        workspace.join(".github/workflows/delete-instance.yml"),
    ];
    lint_workflows(&workspace, &files);
    for file in &files {
        let text = read(file);
        assert!(text.contains("\n  workflow_call:\n"), "{}", file.display());
        // Installed from the releases of the given repository, this project's
        // by default, checked against their checksums.
        let project = env!("CARGO_PKG_REPOSITORY").trim_start_matches("https://github.com/");
        assert!(
            text.contains(&format!("        default: {project}\n")),
            "{}",
            file.display()
        );
        assert!(
            text.contains("PHD_RELEASES=\"https://github.com/$PHD_REPOSITORY/releases/download\"")
        );
        assert!(text.contains("sha256sum --check --strict"));
    }
}

/// No `${{ }}` inside a `run:` script: inputs reach scripts through `env:`.
#[test]
fn workflow_scripts_take_inputs_only_from_the_environment() {
    let (_home, repo) = create(&["Acme", "example.com", "--no-git"]);
    let mut files = workflows(&repo);
    files.push(Path::new(WORKSPACE).join(".github/workflows/create-instance.yml"));
    files.push(Path::new(WORKSPACE).join(".github/workflows/delete-instance.yml"));
    for file in files {
        let text = read(&file);
        let mut run_indent: Option<usize> = None;
        for (number, line) in text.lines().enumerate() {
            let indent = line.len() - line.trim_start().len();
            if let Some(run) = run_indent {
                if line.trim().is_empty() || indent > run {
                    assert!(
                        !line.contains("${{"),
                        "{}:{}: expression in a script: {line}",
                        file.display(),
                        number + 1
                    );
                    continue;
                }
                run_indent = None;
            }
            if let Some(script) = line.trim_start().strip_prefix("run:") {
                assert!(!script.contains("${{"), "{}:{}", file.display(), number + 1);
                run_indent = Some(indent);
            }
        }
    }
}

#[test]
fn template_defaults_match_this_release() {
    let defaults: Value = serde_json::from_str(&read(
        &Path::new(WORKSPACE).join("templates/cluster/cookiecutter.json"),
    ))
    .expect("cookiecutter.json is JSON");
    assert_eq!(defaults["phd_version"], VERSION);
    assert_eq!(
        format!(
            "https://github.com/{}",
            defaults["phd_repository"].as_str().unwrap_or("")
        ),
        env!("CARGO_PKG_REPOSITORY")
    );
}

#[test]
fn activate_passes_shellcheck() {
    let (_home, repo) = create(&["Acme", "example.com", "--no-git"]);
    let output = run(&tool("shellcheck"), &["activate"], &repo);
    assert_clean("shellcheck activate", &output);
}

/// Sources `activate` twice from another directory, then `deactivate_phd`,
/// in bash with the caller's options given by `options`.
fn source_activate_twice(repo: &Path, options: &str, kubeconfig_before: Option<&str>) {
    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let elsewhere = elsewhere.path().canonicalize().expect("canonical");
    let script = r#"
        fail() { echo "FAIL: $*" >&2; exit 1; }
        PS1='$ '
        options_before="$(set -o; shopt)"
        source "$REPO/activate" 2>/dev/null || fail "first source"
        source "$REPO/activate" 2>/dev/null || fail "second source"
        [ "$KUBECONFIG" = "$REPO/infrastructure/.kubeconfig" ] || fail "KUBECONFIG is $KUBECONFIG"
        [ "$PWD" = "$REPO" ] || fail "working directory is $PWD"
        case "$PS1" in "(phd-acme) \$ ") ;; *) fail "prompt is $PS1" ;; esac
        [ "$(bash -c 'echo "$KUBECONFIG"')" = "$REPO/infrastructure/.kubeconfig" ] || fail "KUBECONFIG not exported"
        deactivate_phd
        if [ -n "${EXPECTED_KUBECONFIG+set}" ]; then
          [ "${KUBECONFIG-unset}" = "$EXPECTED_KUBECONFIG" ] || fail "KUBECONFIG restored as ${KUBECONFIG-unset}"
        else
          [ -z "${KUBECONFIG+set}" ] || fail "KUBECONFIG should be unset, is $KUBECONFIG"
        fi
        [ "$PWD" = "$ELSEWHERE" ] || fail "working directory restored as $PWD"
        [ "$PS1" = '$ ' ] || fail "prompt restored as $PS1"
        ! type deactivate_phd >/dev/null 2>&1 || fail "deactivate_phd still defined"
        [ -z "${_PHD_OLD_PWD+set}${_PHD_OLD_KUBECONFIG+set}${_PHD_OLD_PS1+set}" ] || fail "variables left"
        [ "$(set -o; shopt)" = "$options_before" ] || fail "shell options changed"
        echo ok
    "#;
    let mut command = std::process::Command::new("bash");
    command
        .args(["--noprofile", "--norc", "-c"])
        .arg(format!("{options}\n{script}"))
        .current_dir(&elsewhere)
        .env("REPO", repo)
        .env("ELSEWHERE", &elsewhere);
    match kubeconfig_before {
        Some(value) => command
            .env("KUBECONFIG", value)
            .env("EXPECTED_KUBECONFIG", value),
        None => command
            .env_remove("KUBECONFIG")
            .env_remove("EXPECTED_KUBECONFIG"),
    };
    let output = command.output().expect("run bash");
    assert_clean(&format!("sourcing activate with {options:?}"), &output);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

#[test]
fn activate_can_be_sourced_twice_and_deactivate_restores_everything() {
    let (_home, repo) = create(&["Acme", "example.com", "--no-git"]);
    source_activate_twice(&repo, "", Some("/home/me/.kube/config:/home/me/other"));
    source_activate_twice(&repo, "", Some(""));
    source_activate_twice(&repo, "", None);
    source_activate_twice(&repo, "set -euo pipefail", None);
    source_activate_twice(&repo, "set -u; shopt -s nullglob", Some("/tmp/k"));
}

#[test]
fn generated_infrastructure_is_formatted() {
    let tofu = tool("tofu");
    for provider in ["digitalocean", "aws"] {
        // With no tofu on PATH the plugin cannot format anything, so this
        // checks the templates themselves.
        let home = tempfile::tempdir().expect("temporary directory");
        let empty = tempfile::tempdir().expect("temporary directory");
        let output = phd(home.path())
            .env("PATH", empty.path())
            .args([
                "cluster",
                "create",
                "Acme",
                "example.com",
                "--no-git",
                "--provider",
                provider,
            ])
            .output()
            .expect("run");
        assert_clean("cluster create", &output);
        let infrastructure = home.path().join("phd-acme-cluster/infrastructure");
        let output = run(
            &tofu,
            &["fmt", "-check", "-diff", "-recursive"],
            &infrastructure,
        );
        assert_clean(
            &format!("{} fmt -check ({provider})", tofu.display()),
            &output,
        );
    }
}

/// One setting names where generated files take kubectl-phd from: a fork
/// changes it once, at creation, and every module source, reusable workflow
/// and release download follows.
#[test]
fn a_fork_is_named_once_and_every_file_follows() {
    let (_home, repo) = create(&[
        "Fork",
        "fork.example.org",
        "--github-org",
        "acme",
        "--phd-repository",
        "acme-mirror/kubectl-phd-fork",
        "--phd-version",
        "9.8.7",
        "--no-git",
    ]);
    let context: Value =
        serde_json::from_str(&read(&repo.join("context.json"))).expect("context.json");
    assert_eq!(context["phd_repository"], "acme-mirror/kubectl-phd-fork");
    assert_eq!(context["phd_version"], "9.8.7");
    let files = tree(&repo);
    let mut uses = 0;
    for (path, (bytes, _)) in &files {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains("phd-project/"),
            "{path} still names phd-project"
        );
        for line in text.lines().filter(|l| l.contains("kubectl-phd-fork")) {
            uses += 1;
            if line.contains("@v") || line.contains("?ref=v") {
                assert!(line.contains("9.8.7"), "{path}: {line}");
            }
        }
    }
    // main.tf's module source, four workflows' `uses:` and `phd-repository:`, zizmor.yml.
    assert!(uses >= 10, "{uses} references to the fork");
    // The reusable workflows download the release from the repository they are given.
    let reusable = read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.github/workflows/create-instance.yml"),
    );
    assert!(reusable.contains("https://github.com/$PHD_REPOSITORY/releases/download"));
    assert!(!reusable.contains("github.com/phd-project/kubectl-phd/releases"));
    refused(
        &["Fork", "fork.example.org", "--phd-repository", "not a repo"],
        "is not a GitHub owner/name",
    );
    refused(
        &["Fork", "fork.example.org", "--phd-version", "latest"],
        "is not a release such as 0.1.0",
    );
}
