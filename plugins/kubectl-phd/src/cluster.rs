//! `kubectl phd cluster create` (SPEC.md section 7.6): a cluster repository
//! rendered from `templates/cluster`, the same cookiecutter template that
//! `cookiecutter` renders, then formatted, committed and moved into place.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use include_dir::{Dir, include_dir};
use phd_common::config::{ProcessEnvironment, Setting, Settings};
use phd_common::naming;
use phd_common::render::{self, RenderedFile};
use phd_common::tofu::Tool;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::cli::OutputFormat;
use crate::output;

static CLUSTER_SCAFFOLD: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../templates/cluster");

/// The slug names the state bucket `tfstate-phd-<slug>-<environment>`, which
/// may have at most 63 characters: 12 + 30 + 1 + 20.
const MAX_SLUG_LENGTH: usize = 30;
const MAX_ENVIRONMENT_LENGTH: usize = 20;
const MAX_NAME_LENGTH: usize = 100;
/// Identity of the first commit when git has none configured.
const FALLBACK_GIT_NAME: &str = "kubectl-phd";
const FALLBACK_GIT_EMAIL: &str = "kubectl-phd@localhost";

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster repository: infrastructure code, instances directory, CI workflows (needs no cluster)
    #[command(
        after_help = "Examples:\n  kubectl phd cluster create \"Acme Learning\" lms.acme.org\n  kubectl phd cluster create \"Acme Learning\" lms.acme.org --provider aws --region eu-west-1 --github-org acme"
    )]
    Create(ClusterCreateArgs),
}

/// Where the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// DigitalOcean: DOKS, managed MySQL and MongoDB, Spaces
    Digitalocean,
    /// AWS: EKS, RDS MySQL, DocumentDB, S3
    Aws,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Self::Digitalocean => "digitalocean",
            Self::Aws => "aws",
        }
    }

    fn default_region(self) -> &'static str {
        match self {
            Self::Digitalocean => "nyc3",
            Self::Aws => "us-east-1",
        }
    }

    /// Whether `region` is spelled like one of this provider's regions
    /// (`nyc3`, `us-east-1`), which catches a region given for the other one.
    fn accepts_region(self, region: &str) -> bool {
        let bytes = region.as_bytes();
        match self {
            Self::Digitalocean => {
                bytes.len() == 4
                    && bytes[..3].iter().all(u8::is_ascii_lowercase)
                    && bytes[3].is_ascii_digit()
            }
            Self::Aws => {
                let parts: Vec<&str> = region.split('-').collect();
                parts.len() >= 3
                    && parts[0].len() == 2
                    && parts[..parts.len() - 1].iter().all(|part| {
                        !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase())
                    })
                    && parts[parts.len() - 1]
                        .parse::<u8>()
                        .is_ok_and(|number| number > 0)
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ClusterCreateArgs {
    /// Name of the cluster, such as "Acme Production"; the repository is named
    /// phd-<slug>-cluster after it (lower-case, spaces and symbols become '-')
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The cluster's DNS domain; instances are served below it
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// Cloud provider of the infrastructure
    #[arg(long, value_enum, default_value = "digitalocean")]
    pub provider: Provider,
    /// Cloud region [default: nyc3 on DigitalOcean, us-east-1 on AWS]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Environment name [env: PHD_ENVIRONMENT] [default: production]
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// GitHub organization or user that will host the repository
    #[arg(long, value_name = "ORG")]
    pub github_org: Option<String>,
    /// URL of the repository, which Argo CD deploys from [default: https://github.com/<ORG>/phd-<slug>-cluster.git]
    #[arg(long, value_name = "URL")]
    pub github_repo: Option<String>,
    /// Directory in which phd-<slug>-cluster/ is created
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// Label of the GitHub Actions runners the workflows use
    #[arg(long, value_name = "LABEL", default_value = "ubuntu-latest")]
    pub runner_label: String,
    /// Email for Let's Encrypt notifications about the cluster's certificates (the ClusterIssuer's ACME account)
    #[arg(long, value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// Where generated files take kubectl-phd from (module sources, reusable workflows, release downloads): a GitHub owner/name, for a fork or mirror [default: this build's repository]
    #[arg(long, value_name = "OWNER/NAME")]
    pub phd_repository: Option<String>,
    /// The kubectl-phd release those files use [default: this build's version]
    #[arg(long, value_name = "VERSION")]
    pub phd_version: Option<String>,
    /// Do not make a git repository
    #[arg(long)]
    pub no_git: bool,
    /// Replace phd-<slug>-cluster/ if it exists
    #[arg(long)]
    pub force: bool,
    /// Output format of the result (table: the directory's path)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// What `cluster create` made, for `-o json|yaml`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    path: PathBuf,
    cluster_name: String,
    cluster_slug: String,
    cluster_domain: String,
    environment: String,
    provider: Provider,
    region: String,
    repository: String,
    files: Vec<PathBuf>,
    formatted_with: Option<&'static str>,
    git: bool,
}

pub fn create(args: &ClusterCreateArgs) -> anyhow::Result<()> {
    // Everything is checked before anything is written.
    let given = template_inputs(args)?;
    let context = render::cookiecutter_context(&CLUSTER_SCAFFOLD, &given)
        .context("cannot render the cluster template's variables")?;
    let slug = context["cluster_slug"].as_str().unwrap_or_default();
    check_slug(&args.name, slug)?;
    let (root_name, files) = render::render_scaffold(&CLUSTER_SCAFFOLD, &context)
        .context("cannot render the cluster template")?;
    let git = if args.no_git { None } else { Some(find_git()?) };
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    let output_dir = std::path::absolute(&args.output_dir)
        .with_context(|| format!("cannot resolve {}", args.output_dir.display()))?;
    let target = output_dir.join(&root_name);
    let existing = existing_directory(&target, args.force)?;

    // Rendered, formatted and committed beside the target, then renamed into
    // place, so the target never holds a half-made repository.
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{root_name}."))
        .tempdir_in(&output_dir)
        .with_context(|| format!("cannot create a directory in {}", output_dir.display()))?;
    render::write_files(staging.path(), &files)?;
    let formatted_with = format_infrastructure(&staging.path().join("infrastructure"));
    let repository = context["github_repository"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(git) = &git {
        commit_everything(git, staging.path(), &repository, &root_name)?;
    }
    place(staging, &target, existing)?;

    let created = Created {
        path: target,
        cluster_name: args.name.clone(),
        cluster_slug: slug.to_owned(),
        cluster_domain: args.domain.clone(),
        environment: string_of(&context, "environment"),
        provider: args.provider,
        region: string_of(&context, "region"),
        repository,
        files: files.iter().map(|file| file.path.clone()).collect(),
        formatted_with,
        git: git.is_some(),
    };
    report(&created, &files);
    match args.output {
        OutputFormat::Table => println!("{}", created.path.display()),
        format => output::print_structured(&created, format)?,
    }
    Ok(())
}

/// The rule of the infrastructure modules' `environment` variable
/// (variables.tf: 2 to 20 lower-case letters, digits and '-'), so that a
/// name they would refuse at `tofu plan` is refused here (from a trial).
fn check_environment(value: &str) -> anyhow::Result<()> {
    naming::check_label_within("the environment name", value, MAX_ENVIRONMENT_LENGTH)?;
    if value.len() < 2 {
        bail!(
            "the environment name {value:?} is too short: at least 2 characters, as the infrastructure modules require"
        );
    }
    Ok(())
}

/// The template's variables given by the command line; cookiecutter.json
/// computes the rest (the slug, the default repository URL).
fn template_inputs(args: &ClusterCreateArgs) -> anyhow::Result<Map<String, Value>> {
    check_name(&args.name)?;
    naming::check_domain(&args.domain)?;
    // The flag first, so that its own limit is the one an error names.
    if let Some(flag) = &args.environment {
        check_environment(flag)?;
    }
    let environment = Settings::new(&ProcessEnvironment, None)
        .get(Setting::Environment, args.environment.as_deref())?
        .map(|resolved| resolved.value)
        .unwrap_or_else(|| "production".to_owned());
    check_environment(&environment)?;
    let provider = args.provider;
    let region = args
        .region
        .clone()
        .unwrap_or_else(|| provider.default_region().to_owned());
    if !provider.accepts_region(&region) {
        bail!(
            "{region:?} is not a {} region (for example: {})",
            provider.name(),
            provider.default_region()
        );
    }
    if let Some(org) = &args.github_org {
        check_github_org(org)?;
    }
    if let Some(url) = &args.github_repo {
        check_repository_url("--github-repo", url)?;
    }
    check_runner_label(&args.runner_label)?;

    let mut given = Map::new();
    let mut set = |key: &str, value: Value| {
        given.insert(key.to_owned(), value);
    };
    set("cluster_name", json!(args.name));
    set("cluster_domain", json!(args.domain));
    set("environment", json!(environment));
    set("provider", json!(provider.name()));
    set("region", json!(region));
    set(
        "github_organization",
        json!(args.github_org.clone().unwrap_or_default()),
    );
    if let Some(url) = &args.github_repo {
        set("github_repository", json!(url));
    }
    set("runner_label", json!(args.runner_label));
    if let Some(email) = &args.acme_email {
        if !email.contains('@') || email.chars().any(|c| c.is_whitespace() || c == '"') {
            bail!("--acme-email {email:?} is not an email address");
        }
        set("acme_email", json!(email));
    }
    let phd_repository = args
        .phd_repository
        .clone()
        .unwrap_or_else(|| project_repository().to_owned());
    let parts: Vec<&str> = phd_repository.split('/').collect();
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() != 2 || !parts.iter().all(|part| part_ok(part)) {
        bail!("--phd-repository {phd_repository:?} is not a GitHub owner/name");
    }
    let phd_version = args
        .phd_version
        .clone()
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
    let phd_version = phd_version.trim_start_matches('v').to_owned();
    let numbers: Vec<&str> = phd_version
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .collect();
    if numbers.len() != 3
        || !numbers
            .iter()
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    {
        bail!("--phd-version {phd_version:?} is not a release such as 0.1.0");
    }
    set("phd_version", json!(phd_version));
    set("phd_repository", json!(phd_repository));
    set("initialize_git", json!(!args.no_git));
    Ok(given)
}

/// `owner/name` of this project on GitHub, whose releases and reusable
/// workflows the generated repository uses.
pub fn project_repository() -> &'static str {
    let url = env!("CARGO_PKG_REPOSITORY");
    url.strip_prefix("https://github.com/")
        .unwrap_or(url)
        .trim_end_matches('/')
        .trim_end_matches(".git")
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() {
        bail!("the cluster name must not be empty");
    }
    if name.chars().count() > MAX_NAME_LENGTH {
        bail!("the cluster name is too long: at most {MAX_NAME_LENGTH} characters");
    }
    if name.chars().any(char::is_control) {
        bail!("the cluster name {name:?} contains control characters");
    }
    if let Some(letter) = name.chars().find(|c| c.is_alphanumeric() && !c.is_ascii()) {
        bail!(
            "the cluster name {name:?} contains {letter:?}: the repository is named after the \
             name's ASCII letters and digits, so spell it with those (for example \"Zurich\" for \"Zürich\")"
        );
    }
    Ok(())
}

fn check_slug(name: &str, slug: &str) -> anyhow::Result<()> {
    if slug.is_empty() {
        bail!(
            "the cluster name {name:?} has no letters or digits, which the repository is named \
             after: use a name such as \"Acme Production\""
        );
    }
    if slug.len() > MAX_SLUG_LENGTH {
        bail!(
            "the cluster name {name:?} is too long: its slug {slug:?} may have at most \
             {MAX_SLUG_LENGTH} characters, because the state bucket is named after it"
        );
    }
    Ok(())
}

fn check_github_org(org: &str) -> anyhow::Result<()> {
    let valid = !org.is_empty()
        && org.len() <= 39
        && !org.starts_with('-')
        && !org.ends_with('-')
        && org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !valid {
        bail!("--github-org {org:?} is not a GitHub organization or user name");
    }
    Ok(())
}

/// Whether a repository URL is an ssh one (`git@host:path` or `ssh://`),
/// which takes a deploy key; any other takes a token or GitHub App (Argo CD
/// matches credentials by URL).
pub(crate) fn is_ssh_url(url: &str) -> bool {
    url.starts_with("git@") || url.starts_with("ssh://")
}

/// The `argo repository` command that gives Argo CD read access to `url`:
/// a deploy key for an ssh URL, a token (or GitHub App) otherwise.
pub(crate) fn read_access_command(url: &str) -> &'static str {
    if is_ssh_url(url) {
        "kubectl phd argo repository --ssh-key-file KEY (a read-only deploy key)"
    } else {
        "kubectl phd argo repository --token-stdin < TOKEN-FILE (a read-only token; or --github-app-id)"
    }
}

/// A clone URL Argo CD and git can use, with no character that would need
/// quoting in the YAML, JSON and shell it ends up in.
/// A git repository URL (https, http, ssh or scp-like `git@host:path`) of
/// URL-safe characters; `what` names where it came from in the error.
pub(crate) fn check_repository_url(what: &str, url: &str) -> anyhow::Result<()> {
    naming::check_repository_url(what, url)?;
    Ok(())
}

fn check_runner_label(label: &str) -> anyhow::Result<()> {
    let valid = !label.is_empty()
        && label.len() <= 100
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        bail!("--runner-label {label:?} is not a runner label such as ubuntu-latest");
    }
    Ok(())
}

fn find_git() -> anyhow::Result<PathBuf> {
    which::which("git")
        .map_err(|_| anyhow::anyhow!("git is not installed: install it, or pass --no-git"))
}

/// Whether `target` exists and may be replaced.
fn existing_directory(target: &Path, force: bool) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(target) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error).with_context(|| format!("cannot inspect {}", target.display())),
        Ok(metadata) if !metadata.is_dir() => {
            bail!("{} exists and is not a directory", target.display())
        }
        Ok(_) if force => Ok(true),
        Ok(_) => bail!(
            "{} already exists; pass --force to replace it, or --output-dir to create the repository elsewhere",
            target.display()
        ),
    }
}

/// `tofu fmt` (or `terraform fmt`) in `dir`, when one of them is installed.
/// The templates are formatted already; this keeps them so whatever the tool's version.
fn format_infrastructure(dir: &Path) -> Option<&'static str> {
    let tool = Tool::find().ok()?;
    let result = Command::new(&tool.path)
        .args(["fmt", "-list=false"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match result {
        Ok(done) if done.status.success() => Some(tool.name),
        Ok(done) => {
            output::info(format!(
                "warning: `{} fmt` failed in infrastructure/: {}",
                tool.name,
                String::from_utf8_lossy(&done.stderr).trim()
            ));
            None
        }
        Err(error) => {
            output::info(format!("warning: cannot run {}: {error}", tool.name));
            None
        }
    }
}

/// `git init` on branch main, the remote when there is one, and one commit
/// with every file.
fn commit_everything(
    git: &Path,
    dir: &Path,
    repository: &str,
    root_name: &str,
) -> anyhow::Result<()> {
    let run = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        let done = Command::new(git)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run git {}", args.first().unwrap_or(&"")))?;
        Ok(done)
    };
    let check = |args: &[&str]| -> anyhow::Result<()> {
        let done = run(args)?;
        if !done.status.success() {
            bail!(
                "`git {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&done.stderr).trim()
            );
        }
        Ok(())
    };
    check(&["init", "--quiet", "--initial-branch=main"])?;
    if !repository.is_empty() {
        check(&["remote", "add", "origin", repository])?;
    }
    check(&["add", "--all"])?;
    // Fallbacks only for what git has no value of: configured values, and
    // GIT_AUTHOR_* / GIT_COMMITTER_* variables (which beat -c), win.
    let configured = run(&["config", "--get-regexp", r"^user\.(name|email)$"])?;
    let configured = String::from_utf8_lossy(&configured.stdout);
    let mut commit: Vec<String> = Vec::new();
    for (key, fallback) in [
        ("user.name", FALLBACK_GIT_NAME),
        ("user.email", FALLBACK_GIT_EMAIL),
    ] {
        let has_value = configured.lines().any(|line| {
            line.split_once(' ')
                .is_some_and(|(name, value)| name == key && !value.trim().is_empty())
        });
        if !has_value {
            commit.extend(["-c".to_owned(), format!("{key}={fallback}")]);
        }
    }
    let message = format!("Cluster repository {root_name}");
    commit.extend(["commit", "--quiet", "--message", &message].map(str::to_owned));
    check(&commit.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Moves the staged repository to `target`, replacing the existing one
/// (`--force`) only once the new one is complete.
fn place(staging: tempfile::TempDir, target: &Path, existing: bool) -> anyhow::Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let previous = if existing {
        let aside = tempfile::Builder::new()
            .prefix(".phd-replaced.")
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
        let aside_path = aside.path().join("previous");
        std::fs::rename(target, &aside_path)
            .with_context(|| format!("cannot move {} aside", target.display()))?;
        Some((aside, aside_path))
    } else {
        None
    };
    let staged = staging.keep();
    if let Err(error) = std::fs::rename(&staged, target) {
        let _ = std::fs::remove_dir_all(&staged);
        if let Some((_, aside_path)) = &previous {
            let _ = std::fs::rename(aside_path, target);
        }
        return Err(error).with_context(|| format!("cannot create {}", target.display()));
    }
    // Dropping the TempDir removes the replaced repository.
    drop(previous);
    Ok(())
}

fn string_of(context: &Value, key: &str) -> String {
    context[key].as_str().unwrap_or_default().to_owned()
}

fn report(created: &Created, files: &[RenderedFile]) {
    let path = created.path.display();
    output::info(format!(
        "created {path}: {} files for {} in {}{}{}",
        files.len(),
        created.provider.name(),
        created.region,
        match created.formatted_with {
            Some(tool) => format!(", formatted with {tool} fmt"),
            None => String::new(),
        },
        if created.git {
            ", git repository with one commit on branch main"
        } else {
            ""
        },
    ));
    let bucket = format!(
        "tfstate-phd-{}-{}",
        created.cluster_slug, created.environment
    );
    let mut steps = Vec::new();
    if created.repository.is_empty() {
        // Argo CD reads the URL from cluster/ too (argo install refuses an
        // empty one): every place is named (from a trial).
        steps.push(format!(
            "create a repository for it, then write its URL as \"repository\" in {path}/context.json and as the empty repoURL and sourceRepos entries of cluster/ (grep -rn '\"\"' {path}/cluster), commit and push; or create the repository again with --github-org (or --github-repo)"
        ));
    } else if created.git {
        steps.push(format!(
            "create the empty repository {} and push: git -C {path} push -u origin main",
            created.repository
        ));
    } else {
        steps.push(format!(
            "make it a git repository and push it to {}",
            created.repository
        ));
    }
    steps.push(format!(
        "create the state bucket {bucket} and export the cloud credentials (see README.md)"
    ));
    steps.push(format!(
        "cd {path} && kubectl phd infra init && kubectl phd infra apply"
    ));
    steps.push(
        "kubectl phd argo install (inside the repository: also the cluster services of cluster/)"
            .to_owned(),
    );
    // The credential that fits the URL: Argo CD matches them by URL.
    steps.push(format!(
        "{}: Argo CD's read access",
        read_access_command(&created.repository)
    ));
    steps.push(
        "kubectl phd ci-credentials --base64 | gh secret set KUBECONFIG_CONTENT, and the other repository secrets (README.md, \"Instances\")"
            .to_owned(),
    );
    output::info("next steps:");
    for (number, step) in steps.iter().enumerate() {
        output::info(format!("  {}. {step}", number + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read access cluster create and doctor suggest fits the URL: what
    /// `argo repository` accepts for it (a deploy key only for ssh URLs).
    #[test]
    fn suggested_read_access_fits_the_url() {
        for (url, fits) in [
            ("git@github.com:acme/cluster.git", "--ssh-key-file"),
            ("ssh://git@github.com/acme/cluster.git", "--ssh-key-file"),
            ("https://github.com/acme/cluster.git", "--token-stdin"),
        ] {
            assert!(read_access_command(url).contains(fits), "{url}");
        }
    }
}
