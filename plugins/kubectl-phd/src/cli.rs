//! The command line, as clap derive types. One variant per noun; the nouns'
//! verbs live in their own modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Namespace, for commands that work in one
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// More detail: each object and request, and the cause chain of errors (repeat for more)
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Never colour the output (also: NO_COLOR=1)
    #[arg(long, global = true)]
    pub no_color: bool,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install and configure Argo CD and Argo Workflows
    #[command(subcommand)]
    Argo(ArgoCommand),
    /// Manage the people who use Argo CD and Argo Workflows
    #[command(subcommand)]
    User(UserCommand),
    /// Check that everything phd needs is in place
    Doctor(DoctorArgs),
    /// Print the version of this plugin and the Argo releases it installs
    Version(VersionArgs),
    /// Print a shell completion script
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
    Install(ArgoInstallArgs),
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
    /// cert-manager ClusterIssuer for the ingresses' certificates
    #[arg(
        long,
        value_name = "NAME",
        default_value = "harmony-letsencrypt-global"
    )]
    pub cluster_issuer: String,
    /// IngressClass of the ingresses
    #[arg(long, value_name = "NAME", default_value = "nginx")]
    pub ingress_class: String,
    /// Output format of the report
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user: an Argo CD account and an Argo Workflows identity with a role
    Create(UserCreateArgs),
    /// Change a user's role
    Update(UserUpdateArgs),
    /// Delete a user from Argo CD and Argo Workflows
    Delete(UserDeleteArgs),
    /// List users, their roles, and what does not match between Argo CD and Argo Workflows
    List(UserListArgs),
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Everything in Argo CD and Argo Workflows
    Admin,
    /// Submit and manage workflows and templates, read logs, sync instance applications
    Developer,
    /// See applications, workflows and logs; change nothing
    Readonly,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    /// User name: lower-case letters, digits and '-', at most 32 characters
    #[arg(value_name = "USER")]
    pub name: String,
    /// The user's role
    #[arg(long, value_enum, default_value = "developer")]
    pub role: Role,
    /// Read the Argo CD password from standard input (otherwise asked on a
    /// terminal, or generated and shown once)
    #[arg(long)]
    pub password_stdin: bool,
    /// Print the Argo Workflows token (Bearer ...) on standard output
    #[arg(long)]
    pub show_token: bool,
}

#[derive(Debug, Args)]
pub struct UserUpdateArgs {
    /// User name
    #[arg(value_name = "USER")]
    pub name: String,
    /// The new role
    #[arg(long, value_enum, required = true)]
    pub role: Role,
}

#[derive(Debug, Args)]
pub struct UserDeleteArgs {
    /// User name
    #[arg(value_name = "USER")]
    pub name: String,
    /// Delete without asking
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
}
