//! The command line, as clap derive types. One variant per noun; the nouns'
//! verbs live in their own modules.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::{Structured, StructuredFormat};

pub use crate::cluster::{ClusterCommand, ClusterCreateArgs, Provider};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-phd",
    bin_name = "kubectl phd",
    version,
    about = "Host many Open edX sites on one Kubernetes cluster with GitOps",
    long_about = None,
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's flags. kubectl rejects flags placed before a plugin's name, so
/// the plugin takes them itself, anywhere on the line.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE"
    )]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAME"
    )]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAME"
    )]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAME"
    )]
    pub user: Option<String>,
    /// Refused with a clear message: no command works in a namespace you choose (an instance is its own namespace)
    #[arg(
        short = 'n',
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAMESPACE"
    )]
    pub namespace: Option<String>,
    /// More detail: each object applied, each API request (method, path, status, time), and the cause chain of errors; -vv adds each request's and answer's JSON body, secret values redacted
    #[arg(short = 'v', long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never colour the output (also: NO_COLOR=1)
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_color: bool,
    /// How long one request may wait for the API server's answer before the command fails (5s, 1m)
    #[arg(long, global = true, help_heading = "Global options", value_name = "DURATION", value_parser = parse_request_timeout)]
    pub request_timeout: Option<Duration>,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a cluster repository (infrastructure, instances, CI workflows)
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Install and configure Argo CD and Argo Workflows
    #[command(subcommand)]
    Argo(ArgoCommand),
    /// Create, delete and inspect Open edX instances
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Manage the people who use Argo CD and Argo Workflows
    #[command(subcommand)]
    User(UserCommand),
    /// Run tofu (or terraform) in the cluster repository's infrastructure/
    #[command(
        after_help = "Examples:\n  kubectl phd infra init\n  kubectl phd infra plan\n  kubectl phd infra apply"
    )]
    Infra(InfraArgs),
    /// Print the cluster's kubeconfig from the infrastructure, or save it as a context
    #[command(
        after_help = "Examples:\n  kubectl phd kubeconfig > cluster.kubeconfig\n  kubectl phd kubeconfig --save               # context phd-<cluster> in ~/.kube/config"
    )]
    Kubeconfig(KubeconfigArgs),
    /// Check that everything phd needs is in place
    #[command(after_help = "Examples:\n  kubectl phd doctor\n  kubectl phd doctor -o json")]
    Doctor(DoctorArgs),
    /// Make the least-privilege account the generated CI workflows use, and print its kubeconfig
    #[command(
        after_help = "Examples:\n  kubectl phd ci-credentials --base64 | gh secret set KUBECONFIG_CONTENT\n  kubectl phd ci-credentials --rotate --base64"
    )]
    CiCredentials(CiCredentialsArgs),
    /// Print the version of this plugin and the Argo releases it installs
    #[command(after_help = "Examples:\n  kubectl phd version\n  kubectl phd version -o json")]
    Version(VersionArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  source <(kubectl-phd completion bash)\n  kubectl-phd completion zsh > \"${fpath[1]}/_kubectl-phd\""
    )]
    Completion(CompletionArgs),
}

/// Formats for results on standard output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

impl StructuredFormat for OutputFormat {
    fn structured(self) -> Option<Structured> {
        match self {
            Self::Table => None,
            Self::Json => Some(Structured::Json),
            Self::Yaml => Some(Structured::Yaml),
        }
    }
}

/// Formats of a list (`instance list`, `user list`), as `kubectl get`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    #[default]
    Table,
    /// The table with more columns
    Wide,
    Json,
    Yaml,
    /// One `kind/name` per line
    Name,
}

impl StructuredFormat for ListFormat {
    fn structured(self) -> Option<Structured> {
        match self {
            Self::Json => Some(Structured::Json),
            Self::Yaml => Some(Structured::Yaml),
            Self::Table | Self::Wide | Self::Name => None,
        }
    }
}

/// Formats of `argo install` and `argo repository`: their report as a table,
/// JSON or YAML, or the objects they applied as `kind/name` (as `kubectl
/// apply -o name`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Table,
    Json,
    Yaml,
    /// One `kind/name` per object applied
    Name,
}

impl StructuredFormat for ReportFormat {
    fn structured(self) -> Option<Structured> {
        match self {
            Self::Json => Some(Structured::Json),
            Self::Yaml => Some(Structured::Yaml),
            Self::Table | Self::Name => None,
        }
    }
}

/// Formats of a mutating command's result (schema: docs/output.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ResultFormat {
    /// Progress and a summary on standard error; a generated password or a token on standard output
    #[default]
    Text,
    /// The result object on standard output
    Json,
    /// The result object on standard output
    Yaml,
    /// `kind/name` on standard output, then a generated password or a token
    Name,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ArgoCommand {
    /// Install Argo CD and Argo Workflows at pinned versions, configured for phd (idempotent)
    #[command(
        after_help = "Examples:\n  kubectl phd argo install                      # both, at the tested releases\n  kubectl phd argo install --argocd-only --domain lms.example.com\n  kubectl phd argo install -o json             # a report for scripts"
    )]
    Install(ArgoInstallArgs),
    /// Give Argo CD read access to the cluster repository (deploy key, GitHub App or token; idempotent)
    #[command(
        after_help = "Examples:\n  kubectl phd argo repository --ssh-key-file ~/.ssh/phd-deploy-key\n  printf %s \"$TOKEN\" | kubectl phd argo repository --token-stdin"
    )]
    Repository(ArgoRepositoryArgs),
}

/// How Argo CD authenticates to the cluster repository: exactly one method.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("method").required(true).args(["ssh_key_file", "github_app_id", "token_stdin"])))]
pub struct ArgoRepositoryArgs {
    /// Repository URL [env: PHD_CLUSTER_REPOSITORY] [default: "repository" of context.json]
    #[arg(long, visible_alias = "repository", value_name = "URL")]
    pub url: Option<String>,
    /// SSH deploy key: a file holding the private key (the URL must be an ssh one: git@host:path or ssh://)
    #[arg(long, value_name = "FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// GitHub App: its ID (with --github-app-installation-id and --github-app-key-file)
    #[arg(long, value_name = "ID", requires_all = ["github_app_installation_id", "github_app_key_file"])]
    pub github_app_id: Option<u64>,
    /// GitHub App: the installation ID on the repository's owner
    #[arg(long, value_name = "ID")]
    pub github_app_installation_id: Option<u64>,
    /// GitHub App: a file holding the App's private key (RSA, PEM); the URL must be an https one
    #[arg(long, value_name = "FILE")]
    pub github_app_key_file: Option<PathBuf>,
    /// HTTPS token (a fine-grained read-only token), read from standard input; the URL must be an https one
    #[arg(long)]
    pub token_stdin: bool,
    /// User name that goes with the token
    #[arg(
        long,
        value_name = "NAME",
        default_value = "x-access-token",
        requires = "token_stdin"
    )]
    pub username: String,
    /// Output format of the report
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ReportFormat,
}

#[derive(Debug, Args)]
pub struct ArgoInstallArgs {
    /// Install only Argo CD
    #[arg(long, conflicts_with = "workflows_only")]
    pub argocd_only: bool,
    /// Install only Argo Workflows
    #[arg(long)]
    pub workflows_only: bool,
    /// Argo CD release to install [env: PHD_ARGOCD_VERSION] [default: the tested one, see `version`]
    #[arg(long, value_name = "VERSION")]
    pub argocd_version: Option<String>,
    /// Argo Workflows release to install [env: PHD_ARGO_WORKFLOWS_VERSION]
    #[arg(long, value_name = "VERSION")]
    pub workflows_version: Option<String>,
    /// Argo CD install manifest to use instead of the release's (URL or file, for air-gapped clusters)
    #[arg(long, value_name = "URL|PATH")]
    pub argocd_manifest: Option<String>,
    /// Argo Workflows install manifest to use instead of the release's (URL or file)
    #[arg(long, value_name = "URL|PATH")]
    pub workflows_manifest: Option<String>,
    /// Read the Argo CD admin password from standard input and set it
    /// (otherwise PHD_ARGO_ADMIN_PASSWORD, else one is generated once)
    #[arg(long)]
    pub admin_password_stdin: bool,
    /// Also expose argo-server at workflows.<domain>
    #[arg(long)]
    pub workflows_ingress: bool,
    /// The cluster's domain; Argo CD is served at argocd.<domain> [env: PHD_CLUSTER_DOMAIN]
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Environment whose Argo CD project (phd-<environment>) is created [env: PHD_ENVIRONMENT] [default: production]
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    /// The cluster repository, the only source the project allows [env: PHD_CLUSTER_REPOSITORY]
    #[arg(long, value_name = "URL")]
    pub repository: Option<String>,
    /// cert-manager ClusterIssuer for the ingresses' certificates [env: PHD_CLUSTER_ISSUER] [default: harmony-letsencrypt-global]
    #[arg(long, value_name = "NAME")]
    pub cluster_issuer: Option<String>,
    /// IngressClass of the ingresses [env: PHD_INGRESS_CLASS] [default: nginx]
    #[arg(long, value_name = "NAME")]
    pub ingress_class: Option<String>,
    /// Output format of the report
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ReportFormat,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user: an Argo CD account and an Argo Workflows identity with a role
    #[command(
        after_help = "Examples:\n  kubectl phd user create alice                 # developer; password asked or generated\n  kubectl phd user create bob --role admin\n  printf %s \"$PASSWORD\" | kubectl phd user create carol --password-stdin"
    )]
    Create(UserCreateArgs),
    /// Change a user's role
    #[command(after_help = "Examples:\n  kubectl phd user update alice --role readonly")]
    Update(UserUpdateArgs),
    /// Delete a user from Argo CD and Argo Workflows
    #[command(
        after_help = "Examples:\n  kubectl phd user delete alice --yes\n  kubectl phd user delete alice --yes --ignore-not-found"
    )]
    Delete(UserDeleteArgs),
    /// List users, their roles, and what does not match between Argo CD and Argo Workflows
    #[command(after_help = "Examples:\n  kubectl phd user list\n  kubectl phd user list -o json")]
    List(UserListArgs),
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Everything in Argo CD and Argo Workflows
    Admin,
    /// Run workflows in instance namespaces, read logs, sync instance applications
    Developer,
    /// See applications, workflows and logs; change nothing
    Readonly,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// User name: lower-case letters, digits and '-', at most 32 characters
    #[arg(value_name = "USER")]
    pub name: String,
    /// The new user's role [default: developer]; an existing user keeps
    /// its role (change it with `user update`)
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Read the Argo CD password from standard input (otherwise asked on a
    /// terminal, or generated and shown once)
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the Argo Workflows token (Bearer ...) on standard output
    #[arg(long)]
    pub show_token: bool,
    /// Output format of the result: text (a summary on standard error), json or yaml (one result object: kind, name, action, cluster, objects, external), name (kind/name)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct UserUpdateArgs {
    /// User name
    #[arg(value_name = "USER")]
    pub name: String,
    /// The new role
    #[arg(long, value_enum, required = true)]
    pub role: Role,
    /// Output format of the result: text (a summary on standard error), json or yaml (one result object: kind, name, action, cluster, objects, external), name (kind/name)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct UserDeleteArgs {
    /// User name
    #[arg(value_name = "USER")]
    pub name: String,
    /// Delete without asking
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Succeed when the user does not exist
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Output format of the result: text (a summary on standard error), json or yaml (one result object: kind, name, action, cluster, objects, external), name (kind/name)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ListFormat,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create an instance: files, namespace, databases, bucket, Argo CD Application (idempotent)
    #[command(
        after_help = "Examples:\n  kubectl phd instance create demo --platform-name \"Demo University\"\n  kubectl phd instance create demo --dry-run   # what would be written and applied\n  kubectl phd instance create demo --no-wait\n\nNeeds: PHD_MYSQL_ROOT_PASSWORD, PHD_STORAGE_ACCESS_KEY_ID, PHD_STORAGE_SECRET_ACCESS_KEY, a MongoDB provider (PHD_ATLAS_* or PHD_MONGODB_CLUSTER_ID + PHD_DIGITALOCEAN_TOKEN, or PHD_MONGODB_PROVIDER=disabled), and outside a cluster repository PHD_CLUSTER_DOMAIN and PHD_CLUSTER_REPOSITORY. Inside one, hosts, storage and the MySQL admin's password come from the repository and its infrastructure (docs/instances.md)."
    )]
    Create(InstanceCreateArgs),
    /// Change an instance's config.yml, re-render its env/ with Tutor and re-apply its cluster objects
    #[command(
        after_help = "Examples:\n  kubectl phd instance update demo --set PLATFORM_NAME=\"Demo U\"\n  kubectl phd instance update demo --tutor-version 22 --dry-run\n  kubectl phd instance update demo --smtp-password-stdin < smtp-password.txt"
    )]
    Update(InstanceUpdateArgs),
    /// Delete an instance with its data (asks first)
    #[command(
        after_help = "Examples:\n  kubectl phd instance delete demo             # asks first: type the name\n  kubectl phd instance delete demo --yes --timeout 20m\n  kubectl phd instance delete demo --dry-run\n\nWith the cluster repository's ApplicationSet, remove the instance from git first (git rm -r instances/demo, commit, push): phd refuses while instances/demo is in your checkout, and, before deleting anything, asks Argo CD to refresh the Application and refuses while Argo CD still finds it in the branch it reads (docs/instances.md, \"delete\").\n\nNeeds the credentials of instance create (PHD_MYSQL_ROOT_PASSWORD, PHD_STORAGE_*, the MongoDB provider's) for the deprovision Workflows."
    )]
    Delete(InstanceDeleteArgs),
    /// List instances found in the cluster and in the repository
    #[command(
        after_help = "Examples:\n  kubectl phd instance list\n  kubectl phd instance list -o json"
    )]
    List(InstanceListArgs),
    /// Show one instance: namespace, Application, provisioning
    #[command(
        after_help = "Examples:\n  kubectl phd instance status demo\n  kubectl phd instance status demo -o yaml"
    )]
    Status(InstanceStatusArgs),
    /// Make a restore point: the instance's MySQL and MongoDB dumps and a copy of its bucket, in the cluster's backups bucket
    #[command(
        after_help = "Examples:\n  kubectl phd instance backup demo\n  kubectl phd instance backup demo --point before-upgrade --timeout 2h\n  kubectl phd instance backup demo -o json\n  kubectl phd instance backup demo --keep 7   # and remove the oldest points beyond 7\n\nRuns the Workflow template restore-point-template (`kubectl phd argo install` ships it) in the instance namespace; needs PHD_BACKUP_BUCKET, or the cluster repository's infrastructure output backups_bucket (docs/restore-points.md)."
    )]
    Backup(InstanceBackupArgs),
    /// List an instance's restore points
    #[command(
        after_help = "Examples:\n  kubectl phd instance backups demo\n  kubectl phd instance backups demo -o json"
    )]
    Backups(InstanceBackupsArgs),
    /// Put a restore point back: the instance's databases and media become the point's (asks first)
    #[command(
        after_help = "Examples:\n  kubectl phd instance restore demo --from 20261203-031500   # asks first: type the name\n  kubectl phd instance restore demo --from before-upgrade --yes\n\nStops the site (its Open edX Deployments at 0 replicas, Argo CD's automated sync paused) while the Workflow runs, then starts it again. The instance's files in git are not changed: the point's commit is reported (docs/restore-points.md)."
    )]
    Restore(InstanceRestoreArgs),
    /// Upgrade instances to an Open edX release: restore point, render, commit and push, wait for Argo CD; a fleet in waves
    #[command(
        after_help = "Examples:\n  kubectl phd instance upgrade demo --to 22.0.3 --dry-run\n  kubectl phd instance upgrade demo --to 22.0.3 --push\n  kubectl phd instance upgrade --all --to 22.0.3 --wave 1,5,25% --push\n\nEach wave starts once the one before is Synced and Healthy in Argo CD with its hooks done; the first failure stops the run, and running the same command again continues (docs/upgrades.md)."
    )]
    Upgrade(InstanceUpgradeArgs),
    /// Make a new instance from a restore point of another: its own databases, bucket, credentials and hosts, the source's data, outbound email off
    #[command(
        after_help = "Examples:\n  kubectl phd instance clone demo demo-staging                 # a restore point of demo now, then the copy\n  kubectl phd instance clone demo demo-staging --from before-22-0-3-20261203-150712 --scrub\n\nThe staging rehearsal of an upgrade: clone, then `kubectl phd instance upgrade demo-staging --to 22.0.3 --push` (docs/restore-points.md#clone).\n\nNeeds what instance create needs (PHD_MYSQL_ROOT_PASSWORD, PHD_STORAGE_*, the MongoDB provider's settings) and the backups bucket (PHD_BACKUP_BUCKET or the infrastructure's backups_bucket output)."
    )]
    Clone(InstanceCloneArgs),
    /// Sync an instance now and wait: resumes a failed or stuck sync once its cause is fixed (Argo CD's automated sync does not retry a failed commit)
    #[command(
        after_help = "Examples:\n  kubectl phd instance sync demo\n  kubectl phd instance sync demo --timeout 20m -o json\n  kubectl phd instance sync demo --no-wait"
    )]
    Sync(InstanceSyncArgs),
}

#[derive(Debug, Args)]
pub struct InstanceSyncArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// How long to wait for Synced and Healthy (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Ask for the sync and return
    #[arg(long)]
    pub no_wait: bool,
    /// Output format of the Application's state at the end
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct InstanceCloneArgs {
    /// The instance to copy (only read)
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// The new instance's name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The source's restore point to copy (default: one made now)
    #[arg(long = "from", value_name = "POINT")]
    pub point: Option<String>,
    /// Replace learners' names, emails and passwords in the copy (staff and superusers keep theirs)
    #[arg(long)]
    pub scrub: bool,
    /// Keep outbound email on in the copy (off by default: the copy would mail the source's learners)
    #[arg(long)]
    pub with_email: bool,
    /// How long to wait for each step: the restore point, the provisioning, the restore (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Output format of the result: text (a summary on standard error), json or yaml, name (kind/name)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct InstanceUpgradeArgs {
    /// Instances to upgrade
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
    /// Every instance of the repository's instances directory
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    /// The Tutor release to upgrade to (22.0.3, or a major version: 22)
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// Wave sizes, in instances (1, 5) or shares of the fleet (25%); the last repeats
    #[arg(long, value_name = "SIZES", default_value = "1,25%")]
    pub wave: String,
    /// Commit and push each wave's instance folders, then wait for Argo CD to sync them
    #[arg(long)]
    pub push: bool,
    /// Allow a downgrade (Open edX migrations do not run backwards: prefer `instance restore`)
    #[arg(long)]
    pub force: bool,
    /// Make no restore point before the render
    #[arg(long)]
    pub no_backup: bool,
    /// How long to wait for each restore point and for each wave's sync (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the table of instances
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ListFormat,
}

#[derive(Debug, Args)]
pub struct InstanceBackupArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The restore point's name: lower-case letters, digits and '-' (default: the UTC time, 20261203-031500)
    #[arg(long, value_name = "POINT")]
    pub point: Option<String>,
    /// Retention: after this point, remove the oldest points until N are left
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub keep: Option<u16>,
    /// How long to wait for the Workflow (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Output format of the result: text (a summary on standard error), json or yaml, name (kind/name)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct InstanceBackupsArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ListFormat,
}

#[derive(Debug, Args)]
pub struct InstanceRestoreArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The restore point to put back (`kubectl phd instance backups NAME` lists them)
    #[arg(long = "from", value_name = "POINT")]
    pub point: String,
    /// Restore without asking
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How long to wait for the Workflow (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Output format of the result: text (a summary on standard error), json or yaml, name (kind/name)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct InstanceCreateArgs {
    /// Instance name: lower-case letters, digits and '-', starting with a letter, at most 28 characters
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The platform's display name (PLATFORM_NAME)
    #[arg(long, value_name = "TEXT")]
    pub platform_name: Option<String>,
    /// edx-platform repository to build from
    #[arg(long, value_name = "URL")]
    pub edx_platform_repository: Option<String>,
    /// edx-platform branch or tag
    #[arg(long, value_name = "REF")]
    pub edx_platform_version: Option<String>,
    /// Tutor release
    #[arg(long, value_name = "VERSION")]
    pub tutor_version: Option<String>,
    /// Size tier: requests and limits of every container, replicas, autoscaling and the namespace's quota (docs/instances.md) [default: small]
    #[arg(long, value_enum, value_name = "TIER")]
    pub size: Option<crate::instance::size::Size>,
    /// Environment (Argo CD project phd-<environment>) [env: PHD_ENVIRONMENT] [default: production]
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    #[command(flatten)]
    pub ingress: IngressArgs,
    /// How long to wait for provisioning (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Return after submitting the provisioning workflows
    #[arg(long)]
    pub no_wait: bool,
    /// Print the files and objects that would be created; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the result: text (a summary on standard error), json or yaml (one result object: kind, name, action, cluster, objects, external), name (kind/name); not with --dry-run
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t,
        conflicts_with = "dry_run"
    )]
    pub output: ResultFormat,
    /// Set when another command runs this one as a step (`instance upgrade`,
    /// `instance clone`): that command says what comes next.
    #[arg(skip)]
    pub part_of: Option<&'static str>,
}

/// The cluster's ingress setting, as flags of the instance commands; unset
/// flags fall back to `PHD_INGRESS_*`, then `context.json`, then the defaults
/// (`Settings::ingress`).
#[derive(Debug, Default, Args)]
pub struct IngressArgs {
    /// Namespace of the ingress controller, which the instance's network policy admits [env: PHD_INGRESS_NAMESPACE] [default: harmony]
    #[arg(long, value_name = "NAMESPACE")]
    pub ingress_namespace: Option<String>,
    /// IngressClass of the instance's Ingresses [env: PHD_INGRESS_CLASS] [default: nginx]
    #[arg(long, value_name = "NAME")]
    pub ingress_class: Option<String>,
    /// cert-manager ClusterIssuer of the instance's certificates [env: PHD_CLUSTER_ISSUER] [default: harmony-letsencrypt-global]
    #[arg(long, value_name = "NAME")]
    pub cluster_issuer: Option<String>,
}

impl IngressArgs {
    /// The resolved setting.
    pub fn resolve(
        &self,
        settings: &phd_common::Settings<'_>,
    ) -> Result<phd_common::config::IngressSetting, phd_common::config::ConfigError> {
        settings.ingress(
            self.ingress_class.as_deref(),
            self.cluster_issuer.as_deref(),
            self.ingress_namespace.as_deref(),
        )
    }
}

#[derive(Debug, Args)]
pub struct CiCredentialsArgs {
    /// Replace the account's token: the old kubeconfig stops working
    #[arg(long)]
    pub rotate: bool,
    /// Print the kubeconfig base64-encoded (for KUBECONFIG_CONTENT)
    #[arg(long)]
    pub base64: bool,
    /// Output format (table: the kubeconfig itself)
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct InstanceUpdateArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Tutor release to render with (22.0.3, 21.0.9, or a major version: 22)
    #[arg(long, value_name = "VERSION")]
    pub tutor_version: Option<String>,
    /// Change the size tier (small, medium, large): re-renders requests, limits, replicas, autoscaling and the namespace's quota
    #[arg(long, value_enum, value_name = "TIER")]
    pub size: Option<crate::instance::size::Size>,
    /// edx-platform branch or tag (EDX_PLATFORM_VERSION, used by image builds)
    #[arg(long, value_name = "REF")]
    pub edx_platform_version: Option<String>,
    /// Set a Tutor setting in config.yml (repeatable); VALUE is YAML (true, 3, text)
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub set: Vec<String>,
    /// Environment (Argo CD project phd-<environment>) [env: PHD_ENVIRONMENT] [default: production]
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
    #[command(flatten)]
    pub ingress: IngressArgs,
    /// Store the SMTP relay's password, read from standard input, in the instance's Secret (key smtp-password; never in config.yml or env/)
    #[arg(long, conflicts_with = "files_only")]
    pub smtp_password_stdin: bool,
    /// Only change the files; do not connect to the cluster
    #[arg(long)]
    pub files_only: bool,
    /// Print what would change; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the result: text (a summary on standard error), json or yaml (one result object: kind, name, action, cluster, objects, external), name (kind/name); not with --dry-run
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t,
        conflicts_with = "dry_run"
    )]
    pub output: ResultFormat,
    /// Set when another command runs this one as a step (`instance upgrade`,
    /// `instance clone`): that command says what comes next.
    #[arg(skip)]
    pub part_of: Option<&'static str>,
}

#[derive(Debug, Args)]
pub struct InstanceDeleteArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Delete without asking
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// How long to wait for each step (90s, 10m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait)]
    pub timeout: Duration,
    /// Print what would be deleted; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Succeed when the instance does not exist
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Output format of the result: text (a summary on standard error), json or yaml (one result object: kind, name, action, cluster, objects, external), name (kind/name); not with --dry-run
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t,
        conflicts_with = "dry_run"
    )]
    pub output: ResultFormat,
}

#[derive(Debug, Args)]
pub struct InstanceListArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: ListFormat,
}

#[derive(Debug, Args)]
pub struct InstanceStatusArgs {
    /// Instance name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// `KEY=VALUE` of `instance update --set`; the key and value are checked later.
fn parse_setting(text: &str) -> Result<String, String> {
    match text.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(text.to_owned()),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// The longest wait a `--timeout` accepts: 7 days. Longer is a typo (or
/// an attack on the arithmetic), never a wait anyone means.
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest `--request-timeout`: one hour for one request to answer.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// A wait (`--timeout`): `10m`, `90s`, `1h`, or plain seconds, more than
/// zero and at most [`MAX_WAIT`].
///
/// # Errors
/// A message for clap's usage error (exit 2): not a duration, zero, or
/// longer than the cap (never wrapped around or saturated).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    parse_duration(text, MAX_WAIT, "7 days (168h)")
}

/// `--request-timeout`: as [`parse_wait`], at most [`MAX_REQUEST_TIMEOUT`].
///
/// # Errors
/// As [`parse_wait`].
pub fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text, MAX_REQUEST_TIMEOUT, "1 hour (1h)")
}

/// Parses `10m`, `90s`, `1h`, or plain seconds, refusing zero and anything
/// longer than `max` (described as `max_text`). The arithmetic is checked:
/// a number too large for any unit is refused, not wrapped (from issue 29:
/// `307445734561825861m` wrapped to 44 s, and a larger one panicked).
fn parse_duration(text: &str, max: Duration, max_text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || format!("{text:?} is not a duration such as 90s, 10m or 1h");
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let multiplier: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(not_a_duration()),
    };
    if number.is_empty() {
        return Err(not_a_duration());
    }
    let too_long = || format!("{text} is too long: at most {max_text}");
    // Only digits are left: a failed parse is a number too large for u64.
    let value: u64 = number.parse().map_err(|_| too_long())?;
    let seconds = value.checked_mul(multiplier).ok_or_else(too_long)?;
    if seconds == 0 {
        return Err("the timeout must be more than zero".into());
    }
    let duration = Duration::from_secs(seconds);
    if duration > max {
        return Err(too_long());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_parsed_and_capped_without_overflow() {
        assert_eq!(parse_wait("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_wait("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_wait("168h"), Ok(MAX_WAIT));
        assert_eq!(parse_wait("45"), Ok(Duration::from_secs(45)));
        // Issue 29: these wrapped to 44 s, or panicked in a debug build.
        for absurd in [
            "307445734561825861m",
            "4611686018427387904m",
            "18446744073709551615h",
            "99999999999999999999999s",
            "169h",
            "604801",
        ] {
            let error = parse_wait(absurd).expect_err(absurd);
            assert!(error.contains("at most 7 days"), "{absurd}: {error}");
        }
        assert!(parse_request_timeout("2h").is_err_and(|e| e.contains("at most 1 hour")));
        assert_eq!(parse_request_timeout("1h"), Ok(MAX_REQUEST_TIMEOUT));
        for bad in ["", "m", "10d", "-5s", "1.5m", "0", "0m"] {
            assert!(parse_wait(bad).is_err(), "{bad:?}");
        }
    }
}

#[derive(Debug, Args)]
pub struct InfraArgs {
    /// Arguments for tofu, e.g. `plan` or `apply -auto-approve`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "TOFU ARGS"
    )]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Merge it into your kubeconfig (first file of KUBECONFIG, else ~/.kube/config) as its own context
    #[arg(long)]
    pub save: bool,
    /// Name of the saved context [default: phd-<cluster name>]
    #[arg(long, value_name = "NAME", requires = "save")]
    pub context_name: Option<String>,
}
