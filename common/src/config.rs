//! Settings (SPEC.md section 5): a flag beats the environment, the environment
//! beats the cluster repository's `context.json`, which beats the default.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file that marks the root of a cluster repository.
pub const CONTEXT_FILE: &str = "context.json";

/// Argo CD release installed unless overridden: the newest release, and
/// the one every test installs (its real `install.yaml`, see
/// `tests/support/src/upstream.rs`).
pub const DEFAULT_ARGOCD_VERSION: &str = "v3.6.1";
/// The cluster's ingress setting by default: what the openedx-k8s-harmony
/// chart that `cluster create` writes into `cluster/apps/harmony.yml`
/// installs (ingress-nginx's IngressClass, its Let's Encrypt ClusterIssuer,
/// and the namespace of its release).
pub const DEFAULT_INGRESS_CLASS: &str = "nginx";
pub const DEFAULT_CLUSTER_ISSUER: &str = "harmony-letsencrypt-global";
pub const DEFAULT_INGRESS_NAMESPACE: &str = "harmony";
/// Argo Workflows release installed unless overridden, and the one every
/// test installs. The newest 3.7 release: it has the fixes of the
/// `templateReferencing: Strict` bypasses phd relies on being closed
/// (CVE-2026-31892, fixed in 3.7.11; CVE-2026-54526, fixed in 3.7.15). The
/// 4.0 releases with those fixes (4.0.6 and later) cannot be fetched where
/// the tests run; 4.0.5 and older have the flaws.
pub const DEFAULT_WORKFLOWS_VERSION: &str = "v3.7.18";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{what} is required: {flag}set {env}{context}")]
    Missing {
        what: &'static str,
        flag: String,
        env: &'static str,
        context: String,
    },
    #[error("{what} {value:?} (from {origin}) is not {expected}")]
    Invalid {
        what: &'static str,
        value: String,
        origin: Origin,
        expected: String,
    },
    #[error("cannot read {path}")]
    ReadContext {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid cluster context file")]
    ParseContext {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("PHD_MONGODB_PROVIDER is {0:?}; expected one of: digitalocean_api, atlas, disabled")]
    UnknownMongoProvider(String),
    #[error(
        "no MongoDB provider is configured: set PHD_ATLAS_PUBLIC_KEY, PHD_ATLAS_PRIVATE_KEY, \
         PHD_ATLAS_PROJECT_ID and PHD_ATLAS_CLUSTER_NAME for Atlas, or PHD_MONGODB_CLUSTER_ID \
         and PHD_DIGITALOCEAN_TOKEN for DigitalOcean, or PHD_MONGODB_PROVIDER=disabled"
    )]
    NoMongoProvider,
    #[error("PHD_MONGODB_PROVIDER={provider} needs {missing} to be set")]
    IncompleteMongoProvider {
        provider: &'static str,
        missing: String,
    },
}

/// Where variables come from. The process environment in the binary; a map in tests.
pub trait Environment: Send + Sync {
    /// The value of `name`, with empty values treated as unset.
    fn var(&self, name: &str) -> Option<String>;
}

/// The environment of this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|value| !value.is_empty()).cloned()
    }
}

/// The contents of a cluster repository's `context.json`. Key names of the
/// original tool (`cloud_provider`, `cloud_region`, `github_repository`) are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(
        default,
        alias = "cloud_provider",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider: Option<String>,
    #[serde(
        default,
        alias = "cloud_region",
        skip_serializing_if = "Option::is_none"
    )]
    pub region: Option<String>,
    #[serde(
        default,
        alias = "github_repository",
        skip_serializing_if = "Option::is_none"
    )]
    pub repository: Option<String>,
    /// IngressClass of every Ingress phd writes (Argo CD, instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class: Option<String>,
    /// cert-manager ClusterIssuer of those Ingresses' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_issuer: Option<String>,
    /// Namespace of the ingress controller, admitted by each instance's NetworkPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_namespace: Option<String>,
    /// SMTP relay every new instance sends its email through (host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// Its port (`587`; a JSON number or string).
    #[serde(
        default,
        deserialize_with = "scalar_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub smtp_port: Option<String>,
    /// Whether to use STARTTLS with it (`true`/`false`; JSON boolean or string).
    #[serde(
        default,
        deserialize_with = "scalar_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub smtp_use_tls: Option<String>,
    /// The user it authenticates as (its password: `PHD_SMTP_PASSWORD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
}

/// A `context.json` value given as a string, number or boolean, as text.
fn scalar_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text)),
        Some(serde_json::Value::Number(number)) => Ok(Some(number.to_string())),
        Some(serde_json::Value::Bool(flag)) => Ok(Some(flag.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a string, number or boolean, found {other}"
        ))),
    }
}

/// A cluster repository on disk: the directory holding `context.json`.
#[derive(Debug, Clone)]
pub struct ClusterRepository {
    pub root: PathBuf,
    pub context: ClusterContext,
}

impl ClusterRepository {
    /// Finds the cluster repository containing `start` by looking for
    /// `context.json` in it and each of its parents.
    pub fn discover(start: &Path) -> Result<Option<Self>, ConfigError> {
        for dir in start.ancestors() {
            let candidate = dir.join(CONTEXT_FILE);
            if candidate.is_file() {
                return Self::open(dir).map(Some);
            }
        }
        Ok(None)
    }

    /// Opens the cluster repository rooted at `root`.
    pub fn open(root: &Path) -> Result<Self, ConfigError> {
        let path = root.join(CONTEXT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadContext {
            path: path.clone(),
            source,
        })?;
        let context = serde_json::from_str(&text)
            .map_err(|source| ConfigError::ParseContext { path, source })?;
        Ok(Self {
            root: root.to_path_buf(),
            context,
        })
    }

    /// The OpenTofu root module of this cluster.
    pub fn infrastructure_dir(&self) -> PathBuf {
        self.root.join("infrastructure")
    }
}

/// Where the cluster's ingress controller is and how certificates are issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressSetting {
    /// IngressClass name (`spec.ingressClassName`).
    pub class: String,
    /// cert-manager ClusterIssuer (`cert-manager.io/cluster-issuer` annotation).
    pub cluster_issuer: String,
    /// Namespace the controller's pods run in.
    pub namespace: String,
}

/// A setting phd reads, with its environment variable, its `context.json` key
/// and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    ClusterDomain,
    Environment,
    Provider,
    Region,
    Repository,
    ArgocdVersion,
    WorkflowsVersion,
    InstancesDirectory,
    DockerRegistry,
    MysqlHost,
    MysqlPort,
    MysqlRootUser,
    MongodbHost,
    MongodbPort,
    MongodbAuthSource,
    MongodbReplicaSet,
    MongodbClusterId,
    StorageType,
    StorageRegion,
    IngressClass,
    ClusterIssuer,
    IngressNamespace,
    StorageEndpointUrl,
    RepositoryBranch,
    StorageVersioning,
    StorageMakePublic,
    MysqlCaCertificate,
    AtlasProjectId,
    AtlasClusterName,
    AtlasApiUrl,
    DigitaloceanApiUrl,
    Python,
    CacheDir,
    SmtpHost,
    SmtpPort,
    SmtpUseTls,
    SmtpUsername,
    BackupBucket,
}

impl Setting {
    /// The environment variable that sets it.
    pub const fn env_name(self) -> &'static str {
        match self {
            Self::ClusterDomain => "PHD_CLUSTER_DOMAIN",
            Self::Environment => "PHD_ENVIRONMENT",
            Self::Provider => "PHD_CLOUD_PROVIDER",
            Self::Region => "PHD_CLOUD_REGION",
            Self::Repository => "PHD_CLUSTER_REPOSITORY",
            Self::ArgocdVersion => "PHD_ARGOCD_VERSION",
            Self::WorkflowsVersion => "PHD_ARGO_WORKFLOWS_VERSION",
            Self::InstancesDirectory => "PHD_INSTANCES_DIRECTORY",
            Self::DockerRegistry => "PHD_DOCKER_REGISTRY",
            Self::MysqlHost => "PHD_MYSQL_HOST",
            Self::MysqlPort => "PHD_MYSQL_PORT",
            Self::MysqlRootUser => "PHD_MYSQL_ROOT_USER",
            Self::MongodbHost => "PHD_MONGODB_HOST",
            Self::MongodbPort => "PHD_MONGODB_PORT",
            Self::MongodbAuthSource => "PHD_MONGODB_AUTH_SOURCE",
            Self::MongodbReplicaSet => "PHD_MONGODB_REPLICA_SET",
            Self::MongodbClusterId => "PHD_MONGODB_CLUSTER_ID",
            Self::StorageType => "PHD_STORAGE_TYPE",
            Self::StorageRegion => "PHD_STORAGE_REGION",
            Self::IngressClass => "PHD_INGRESS_CLASS",
            Self::ClusterIssuer => "PHD_CLUSTER_ISSUER",
            Self::IngressNamespace => "PHD_INGRESS_NAMESPACE",
            Self::StorageEndpointUrl => "PHD_STORAGE_ENDPOINT_URL",
            Self::RepositoryBranch => "PHD_CLUSTER_REPOSITORY_BRANCH",
            Self::StorageVersioning => "PHD_STORAGE_VERSIONING",
            Self::StorageMakePublic => "PHD_STORAGE_MAKE_PUBLIC",
            Self::MysqlCaCertificate => "PHD_MYSQL_CA_CERTIFICATE",
            Self::AtlasProjectId => "PHD_ATLAS_PROJECT_ID",
            Self::AtlasClusterName => "PHD_ATLAS_CLUSTER_NAME",
            Self::AtlasApiUrl => "PHD_ATLAS_API_URL",
            Self::DigitaloceanApiUrl => "PHD_DIGITALOCEAN_API_URL",
            Self::Python => "PHD_PYTHON",
            Self::CacheDir => "PHD_CACHE_DIR",
            Self::SmtpHost => "PHD_SMTP_HOST",
            Self::SmtpPort => "PHD_SMTP_PORT",
            Self::SmtpUseTls => "PHD_SMTP_USE_TLS",
            Self::SmtpUsername => "PHD_SMTP_USERNAME",
            Self::BackupBucket => "PHD_BACKUP_BUCKET",
        }
    }

    /// A short human name for error messages.
    pub fn description(self) -> &'static str {
        match self {
            Self::ClusterDomain => "the cluster domain",
            Self::Environment => "the environment name",
            Self::Provider => "the cloud provider",
            Self::Region => "the cloud region",
            Self::Repository => "the cluster repository URL",
            Self::ArgocdVersion => "the Argo CD version",
            Self::WorkflowsVersion => "the Argo Workflows version",
            Self::InstancesDirectory => "the instances directory",
            Self::DockerRegistry => "the Docker registry",
            Self::MysqlHost => "the MySQL host",
            Self::MysqlPort => "the MySQL port",
            Self::MysqlRootUser => "the MySQL admin user",
            Self::MongodbHost => "the MongoDB host",
            Self::MongodbPort => "the MongoDB port",
            Self::MongodbAuthSource => "the MongoDB authentication database",
            Self::MongodbReplicaSet => "the MongoDB replica set",
            Self::MongodbClusterId => "the ID of DigitalOcean's managed MongoDB cluster",
            Self::StorageType => "the storage type",
            Self::StorageRegion => "the storage region",
            Self::IngressClass => "the IngressClass",
            Self::ClusterIssuer => "the cert-manager ClusterIssuer",
            Self::IngressNamespace => "the ingress controller's namespace",
            Self::StorageEndpointUrl => "the storage endpoint URL",
            Self::RepositoryBranch => "the cluster repository branch",
            Self::StorageVersioning => "whether new buckets keep object versions",
            Self::StorageMakePublic => "whether new buckets are publicly readable",
            Self::MysqlCaCertificate => "the MySQL server's CA certificate",
            Self::AtlasProjectId => "the MongoDB Atlas project ID",
            Self::AtlasClusterName => "the MongoDB Atlas cluster name",
            Self::AtlasApiUrl => "the MongoDB Atlas API URL",
            Self::DigitaloceanApiUrl => "the DigitalOcean API URL",
            Self::Python => "the Python interpreter that installs Tutor",
            Self::CacheDir => "the directory of the tools phd installs",
            Self::SmtpHost => "the SMTP relay host",
            Self::SmtpPort => "the SMTP relay port",
            Self::SmtpUseTls => "whether to use STARTTLS with the SMTP relay",
            Self::SmtpUsername => "the SMTP relay user",
            Self::BackupBucket => "the bucket of the instances' restore points",
        }
    }

    /// What a value must look like, checked by [`Settings::get`] before any
    /// command uses it: values end up in YAML files, object annotations,
    /// Workflow parameters and shell commands, so each is held to the
    /// narrowest form its consumer accepts.
    fn kind(self) -> Kind {
        match self {
            Self::ClusterDomain => Kind::Domain,
            Self::Environment | Self::IngressNamespace => Kind::Label,
            Self::IngressClass | Self::ClusterIssuer => Kind::Subdomain,
            Self::ArgocdVersion | Self::WorkflowsVersion | Self::RepositoryBranch => Kind::Version,
            Self::MysqlPort | Self::MongodbPort | Self::SmtpPort => Kind::Port,
            Self::StorageType => Kind::OneOf(&["s3", "spaces"]),
            Self::StorageVersioning | Self::StorageMakePublic | Self::SmtpUseTls => {
                Kind::OneOf(&["true", "false"])
            }
            Self::MysqlCaCertificate => Kind::PemOrPath,
            Self::Provider => Kind::OneOf(&["aws", "digitalocean"]),
            Self::MysqlHost | Self::MongodbHost | Self::DockerRegistry => Kind::Host,
            Self::SmtpHost => Kind::HostName,
            Self::Region | Self::StorageRegion => Kind::Region,
            Self::Repository => Kind::RepositoryUrl,
            Self::StorageEndpointUrl | Self::AtlasApiUrl | Self::DigitaloceanApiUrl => Kind::Url,
            Self::MysqlRootUser
            | Self::MongodbAuthSource
            | Self::MongodbReplicaSet
            | Self::MongodbClusterId
            | Self::AtlasProjectId
            | Self::AtlasClusterName
            | Self::SmtpUsername
            | Self::BackupBucket => Kind::Token,
            Self::InstancesDirectory | Self::Python | Self::CacheDir => Kind::Path,
        }
    }

    /// Checks `value` against this setting's rule; `origin` names where it came from.
    pub fn check(self, value: &str, origin: &Origin) -> Result<(), ConfigError> {
        let kind = self.kind();
        if kind.accepts(value) {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            what: self.description(),
            value: value.to_owned(),
            origin: origin.clone(),
            expected: kind.expected(),
        })
    }

    /// The value `context.json` gives, directly or derived from the
    /// provider and region (a DigitalOcean cluster stores media in Spaces of
    /// its region; an AWS one in S3 of its region).
    fn in_context(self, context: &ClusterContext) -> Option<String> {
        let given = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let provider = given(&context.provider);
        let region = given(&context.region);
        match self {
            Self::ClusterDomain => given(&context.cluster_domain),
            Self::Environment => given(&context.environment),
            Self::Provider => provider,
            Self::Region | Self::StorageRegion => region,
            Self::Repository => given(&context.repository),
            Self::IngressClass => given(&context.ingress_class),
            Self::ClusterIssuer => given(&context.cluster_issuer),
            Self::IngressNamespace => given(&context.ingress_namespace),
            Self::SmtpHost => given(&context.smtp_host),
            Self::SmtpPort => given(&context.smtp_port),
            Self::SmtpUseTls => given(&context.smtp_use_tls),
            Self::SmtpUsername => given(&context.smtp_username),
            Self::StorageType => match provider.as_deref()? {
                "digitalocean" => Some("spaces".to_owned()),
                "aws" => Some("s3".to_owned()),
                _ => None,
            },
            Self::StorageEndpointUrl => match (provider.as_deref()?, region) {
                ("digitalocean", Some(region)) => {
                    Some(format!("https://{region}.digitaloceanspaces.com"))
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The infrastructure output that gives this setting, if one does (the
    /// generated root module's outputs.tf).
    pub fn output_name(self) -> Option<&'static str> {
        match self {
            Self::MysqlHost => Some("mysql_host"),
            Self::MysqlPort => Some("mysql_port"),
            Self::MysqlRootUser => Some("mysql_root_user"),
            Self::MongodbHost => Some("mongodb_host"),
            Self::MongodbPort => Some("mongodb_port"),
            Self::MongodbClusterId => Some("mongodb_cluster_id"),
            Self::BackupBucket => Some("backups_bucket"),
            _ => None,
        }
    }

    fn default_value(self) -> Option<&'static str> {
        match self {
            Self::Environment => Some("production"),
            Self::ArgocdVersion => Some(DEFAULT_ARGOCD_VERSION),
            Self::WorkflowsVersion => Some(DEFAULT_WORKFLOWS_VERSION),
            Self::InstancesDirectory => Some("instances"),
            Self::DockerRegistry => Some("ghcr.io"),
            Self::MysqlPort => Some("3306"),
            Self::MysqlRootUser => Some("root"),
            Self::MongodbPort => Some("27017"),
            Self::MongodbAuthSource => Some("admin"),
            Self::StorageType => Some("s3"),
            Self::IngressClass => Some(DEFAULT_INGRESS_CLASS),
            Self::ClusterIssuer => Some(DEFAULT_CLUSTER_ISSUER),
            Self::IngressNamespace => Some(DEFAULT_INGRESS_NAMESPACE),
            Self::StorageVersioning | Self::StorageMakePublic => Some("false"),
            Self::AtlasApiUrl => Some("https://cloud.mongodb.com"),
            Self::DigitaloceanApiUrl => Some("https://api.digitalocean.com"),
            _ => None,
        }
    }
}

/// A secret phd reads from the environment only: never from a flag (process
/// arguments are visible to every user of the machine), `context.json` (in
/// git) or a log. Commands hand them to the cluster in Secrets, never in
/// Workflow parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    MysqlRootPassword,
    StorageAccessKeyId,
    StorageSecretAccessKey,
    DigitaloceanToken,
    AtlasPublicKey,
    AtlasPrivateKey,
    ArgoAdminPassword,
    DockerRegistryCredentials,
    SmtpPassword,
}

impl Credential {
    /// The environment variable that holds it.
    pub const fn env_name(self) -> &'static str {
        match self {
            Self::MysqlRootPassword => "PHD_MYSQL_ROOT_PASSWORD",
            Self::StorageAccessKeyId => "PHD_STORAGE_ACCESS_KEY_ID",
            Self::StorageSecretAccessKey => "PHD_STORAGE_SECRET_ACCESS_KEY",
            Self::DigitaloceanToken => "PHD_DIGITALOCEAN_TOKEN",
            Self::AtlasPublicKey => "PHD_ATLAS_PUBLIC_KEY",
            Self::AtlasPrivateKey => "PHD_ATLAS_PRIVATE_KEY",
            Self::ArgoAdminPassword => "PHD_ARGO_ADMIN_PASSWORD",
            Self::DockerRegistryCredentials => "PHD_DOCKER_REGISTRY_CREDENTIALS",
            Self::SmtpPassword => "PHD_SMTP_PASSWORD",
        }
    }

    /// A short human name for messages.
    pub fn description(self) -> &'static str {
        match self {
            Self::MysqlRootPassword => "the MySQL admin password",
            Self::StorageAccessKeyId => "the storage access key ID",
            Self::StorageSecretAccessKey => "the storage secret access key",
            Self::DigitaloceanToken => "the DigitalOcean API token",
            Self::AtlasPublicKey => "the MongoDB Atlas public API key",
            Self::AtlasPrivateKey => "the MongoDB Atlas private API key",
            Self::ArgoAdminPassword => "the Argo CD admin password",
            Self::DockerRegistryCredentials => "the Docker registry credentials (user:token)",
            Self::SmtpPassword => "the SMTP relay password",
        }
    }
}

/// The shape of a setting's value.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A DNS name of two or more labels (`crate::naming::check_domain`).
    Domain,
    /// A DNS-1123 label: namespace and environment names.
    Label,
    /// A DNS-1123 subdomain: names of cluster-scoped objects.
    Subdomain,
    /// A release tag or git ref (`crate::naming::check_version`).
    Version,
    /// A TCP port, 1–65535.
    Port,
    /// One of a fixed list.
    OneOf(&'static [&'static str]),
    /// A host name or address, optionally with `:port` or a path (registries).
    Host,
    /// A bare host name or IPv4 address: letters, digits, '.', '-' (no port).
    HostName,
    /// A cloud region: lower-case letters, digits and '-'.
    Region,
    /// A git repository URL (`crate::naming::check_repository_url`).
    RepositoryUrl,
    /// An http(s) URL without spaces, quotes or control characters.
    Url,
    /// A user, database or replica set name: letters, digits, `-_.@`.
    Token,
    /// A file system path without control characters.
    Path,
    /// PEM text (`-----BEGIN ...`) or the path of a file holding it; the
    /// blocks themselves are checked by whoever reads them.
    PemOrPath,
}

impl Kind {
    fn accepts(self, value: &str) -> bool {
        let chars_in = |allowed: &dyn Fn(char) -> bool| {
            !value.is_empty() && value.len() <= 253 && value.chars().all(allowed)
        };
        match self {
            Self::Domain => crate::naming::check_domain(value).is_ok(),
            Self::Label => crate::naming::check_label("value", value).is_ok(),
            Self::Subdomain => crate::naming::is_dns_subdomain(value),
            Self::Version => crate::naming::check_version("value", value).is_ok(),
            Self::Port => {
                value.parse::<u16>().is_ok_and(|port| port > 0) && !value.starts_with('+')
            }
            Self::OneOf(choices) => choices.contains(&value),
            Self::Host => chars_in(&|c| c.is_ascii_alphanumeric() || ".-_:/[]".contains(c)),
            Self::HostName => {
                chars_in(&|c| c.is_ascii_alphanumeric() || ".-".contains(c))
                    && !value.starts_with(['-', '.'])
            }
            Self::Region => chars_in(&|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            Self::RepositoryUrl => crate::naming::check_repository_url("value", value).is_ok(),
            Self::Url => {
                (value.starts_with("https://") || value.starts_with("http://"))
                    && chars_in(&|c| c.is_ascii_graphic() && !"\"'`\\<>{}|^".contains(c))
            }
            Self::Token => chars_in(&|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)),
            Self::Path => !value.is_empty() && !value.chars().any(char::is_control),
            Self::PemOrPath => {
                value.trim_start().starts_with("-----BEGIN") || Self::Path.accepts(value)
            }
        }
    }

    fn expected(self) -> String {
        let text = match self {
            Self::Domain => "a DNS name such as example.com",
            Self::Label => {
                "a DNS label (lower-case letters, digits and '-', starting with a letter, at most 63 characters)"
            }
            Self::Subdomain => "a Kubernetes object name: lower-case letters, digits, '-' and '.'",
            Self::Version => "a release tag or git ref such as v3.2.3",
            Self::Port => "a port number from 1 to 65535",
            Self::OneOf(choices) => return format!("one of: {}", choices.join(", ")),
            Self::Host => "a host name or address, optionally with :port",
            Self::HostName => "a host name such as smtp.example.com, without a port",
            Self::Region => "a region such as us-east-1 or nyc3",
            Self::RepositoryUrl => {
                "a repository URL such as https://github.com/acme/phd-acme-cluster.git"
            }
            Self::Url => "an http(s) URL without spaces, quotes or control characters",
            Self::Token => "a name of letters, digits, '-', '_', '.' and '@'",
            Self::Path => "a path without control characters",
            Self::PemOrPath => "PEM text or the path of a PEM file",
        };
        text.to_owned()
    }
}

/// Where a resolved value came from, for `-v` output and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Environment(&'static str),
    /// An output of the cluster repository's infrastructure (`tofu output`).
    Infrastructure(&'static str),
    ContextFile(PathBuf),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("command-line flag"),
            Self::Environment(name) => write!(f, "environment variable {name}"),
            Self::Infrastructure(name) => write!(f, "infrastructure output {name}"),
            Self::ContextFile(path) => write!(f, "{}", path.display()),
            Self::Default => f.write_str("default"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub value: String,
    pub origin: Origin,
}

/// Resolves settings from one environment and, when there is one, the cluster repository.
pub struct Settings<'a> {
    env: &'a dyn Environment,
    repository: Option<&'a ClusterRepository>,
    outputs: Option<&'a std::collections::BTreeMap<String, String>>,
}

impl<'a> Settings<'a> {
    pub fn new(env: &'a dyn Environment, repository: Option<&'a ClusterRepository>) -> Self {
        Self {
            env,
            repository,
            outputs: None,
        }
    }

    /// Also reads the infrastructure's outputs (`Tool::outputs`), between
    /// the environment and `context.json`.
    pub fn with_outputs(mut self, outputs: &'a std::collections::BTreeMap<String, String>) -> Self {
        self.outputs = Some(outputs);
        self
    }

    /// The environment these settings read.
    pub fn environment(&self) -> &'a dyn Environment {
        self.env
    }

    /// The cluster repository these settings read, if any.
    pub fn repository(&self) -> Option<&'a ClusterRepository> {
        self.repository
    }

    /// The value of `setting`: `flag` if given, else the environment, else
    /// `context.json`, else the default.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the value does not have the setting's
    /// form ([`Setting::check`]), naming where it came from.
    pub fn get(
        &self,
        setting: Setting,
        flag: Option<&str>,
    ) -> Result<Option<Resolved>, ConfigError> {
        let resolved = self.lookup(setting, flag);
        if let Some(resolved) = &resolved {
            setting.check(&resolved.value, &resolved.origin)?;
        }
        Ok(resolved)
    }

    /// Checks the value of each of `settings` that is set anywhere (no
    /// flag), so a bad one is named before anything else is reported, such
    /// as required values that are missing.
    ///
    /// # Errors
    /// The first [`ConfigError::Invalid`], in the order given.
    pub fn check_all(&self, settings: &[Setting]) -> Result<(), ConfigError> {
        settings
            .iter()
            .try_for_each(|setting| self.get(*setting, None).map(drop))
    }

    fn lookup(&self, setting: Setting, flag: Option<&str>) -> Option<Resolved> {
        if let Some(value) = flag.filter(|value| !value.is_empty()) {
            return Some(Resolved {
                value: value.to_owned(),
                origin: Origin::Flag,
            });
        }
        if let Some(value) = self.env.var(setting.env_name()) {
            return Some(Resolved {
                value,
                origin: Origin::Environment(setting.env_name()),
            });
        }
        self.from_repository(setting).or_else(|| {
            setting.default_value().map(|value| Resolved {
                value: value.to_owned(),
                origin: Origin::Default,
            })
        })
    }

    /// What the cluster repository says (its infrastructure's outputs, then
    /// `context.json`), whatever flags and variables say.
    pub fn from_repository(&self, setting: Setting) -> Option<Resolved> {
        if let (Some(outputs), Some(name)) = (self.outputs, setting.output_name())
            && let Some(value) = outputs.get(name).filter(|v| !v.is_empty())
        {
            return Some(Resolved {
                value: value.clone(),
                origin: Origin::Infrastructure(name),
            });
        }
        let repository = self.repository?;
        setting
            .in_context(&repository.context)
            .map(|value| Resolved {
                value,
                origin: Origin::ContextFile(repository.root.join(CONTEXT_FILE)),
            })
    }

    /// The value of `credential` from the environment (empty meaning unset);
    /// no other source is consulted.
    pub fn credential(&self, credential: Credential) -> Option<String> {
        self.env.var(credential.env_name())
    }

    /// Like [`Settings::get`], but a missing value is an error naming the flag
    /// and variable that would set it.
    pub fn require(
        &self,
        setting: Setting,
        flag: Option<&str>,
        flag_name: Option<&str>,
    ) -> Result<Resolved, ConfigError> {
        self.get(setting, flag)?
            .ok_or_else(|| ConfigError::Missing {
                what: setting.description(),
                flag: flag_name
                    .map(|name| format!("pass {name} or "))
                    .unwrap_or_default(),
                env: setting.env_name(),
                context: if setting.in_context(&ClusterContext::full()).is_none() {
                    String::new()
                } else if let Some(repository) = self.repository {
                    // Inside a repository whose context.json lacks it: say so,
                    // not "run inside a repository".
                    let file = repository.root.join(CONTEXT_FILE);
                    match setting {
                        Setting::Repository => format!(
                            "; {} has no repository URL (the repository was made without --github-org or --github-repo): create it on your git host, write its URL as `repository` there and in the empty repoURL and sourceRepos entries of cluster/ (`grep -rn '\"\"' cluster`), commit and push",
                            file.display()
                        ),
                        _ => format!("; {} has no value for it", file.display()),
                    }
                } else {
                    format!(" (or run inside a cluster repository whose {CONTEXT_FILE} has it)")
                },
            })
    }

    /// The MongoDB provider: named by `PHD_MONGODB_PROVIDER`, or detected from
    /// which credentials are set. Never silently nothing.
    /// The cluster's ingress setting (SPEC.md 7.10): one IngressClass,
    /// ClusterIssuer and controller namespace that `argo install`, each
    /// instance's Ingresses and its NetworkPolicy all use. Flags first, then
    /// `PHD_INGRESS_CLASS`, `PHD_CLUSTER_ISSUER`, `PHD_INGRESS_NAMESPACE`, then
    /// `context.json`, then the defaults.
    pub fn ingress(
        &self,
        class: Option<&str>,
        cluster_issuer: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<IngressSetting, ConfigError> {
        Ok(IngressSetting {
            class: self
                .require(Setting::IngressClass, class, Some("--ingress-class"))?
                .value,
            cluster_issuer: self
                .require(
                    Setting::ClusterIssuer,
                    cluster_issuer,
                    Some("--cluster-issuer"),
                )?
                .value,
            namespace: self
                .require(
                    Setting::IngressNamespace,
                    namespace,
                    Some("--ingress-namespace"),
                )?
                .value,
        })
    }

    /// The MongoDB provider, all of whose variables are set.
    ///
    /// # Errors
    /// What [`Settings::mongodb_provider_needs`] returns, and
    /// [`ConfigError::IncompleteMongoProvider`] naming the provider's
    /// variables that are not set.
    pub fn mongodb_provider(&self) -> Result<MongodbProvider, ConfigError> {
        let (provider, missing) = self.mongodb_provider_needs()?;
        if missing.is_empty() {
            Ok(provider)
        } else {
            Err(ConfigError::IncompleteMongoProvider {
                provider: provider.name(),
                missing: missing.join(", "),
            })
        }
    }

    /// The MongoDB provider chosen (`PHD_MONGODB_PROVIDER`, else the one
    /// whose variables are set) and its required variables that are not
    /// set, so that a dry run can preview without them.
    ///
    /// # Errors
    /// [`ConfigError::UnknownMongoProvider`] for a name it does not know,
    /// [`ConfigError::NoMongoProvider`] when none is chosen.
    pub fn mongodb_provider_needs(
        &self,
    ) -> Result<(MongodbProvider, Vec<&'static str>), ConfigError> {
        let named = self.env.var("PHD_MONGODB_PROVIDER");
        let provider = match named.as_deref() {
            Some("digitalocean_api" | "digitalocean") => MongodbProvider::DigitalOcean,
            Some("atlas") => MongodbProvider::Atlas,
            Some("disabled" | "none") => return Ok((MongodbProvider::Disabled, Vec::new())),
            Some(other) => return Err(ConfigError::UnknownMongoProvider(other.to_owned())),
            None if ATLAS_VARIABLES
                .iter()
                .any(|name| self.env.var(name).is_some()) =>
            {
                MongodbProvider::Atlas
            }
            // The cluster ID may come from the repository's infrastructure.
            None if self.get(Setting::MongodbClusterId, None)?.is_some()
                && self.credential(Credential::DigitaloceanToken).is_some() =>
            {
                MongodbProvider::DigitalOcean
            }
            None => return Err(ConfigError::NoMongoProvider),
        };
        let missing: Vec<&'static str> = provider
            .required_variables()
            .iter()
            .copied()
            .filter(|name| match *name {
                name if name == Setting::MongodbClusterId.env_name() => {
                    !matches!(self.get(Setting::MongodbClusterId, None), Ok(Some(_)))
                }
                _ => self.env.var(name).is_none(),
            })
            .collect();
        Ok((provider, missing))
    }
}

const DIGITALOCEAN_VARIABLES: [&str; 2] = [
    Setting::MongodbClusterId.env_name(),
    Credential::DigitaloceanToken.env_name(),
];

const ATLAS_VARIABLES: [&str; 4] = [
    Credential::AtlasPublicKey.env_name(),
    Credential::AtlasPrivateKey.env_name(),
    Setting::AtlasProjectId.env_name(),
    Setting::AtlasClusterName.env_name(),
];

impl ClusterContext {
    fn full() -> Self {
        let some = || Some(String::from("x"));
        Self {
            cluster_name: some(),
            cluster_domain: some(),
            environment: some(),
            provider: some(),
            region: some(),
            repository: some(),
            ingress_class: some(),
            cluster_issuer: some(),
            ingress_namespace: some(),
            smtp_host: some(),
            smtp_port: some(),
            smtp_use_tls: some(),
            smtp_username: some(),
        }
    }
}

/// How an instance's MongoDB database and user are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MongodbProvider {
    DigitalOcean,
    Atlas,
    Disabled,
}

impl MongodbProvider {
    /// The name used in `PHD_MONGODB_PROVIDER` and in workflow parameters.
    pub fn name(self) -> &'static str {
        match self {
            Self::DigitalOcean => "digitalocean_api",
            Self::Atlas => "atlas",
            Self::Disabled => "disabled",
        }
    }

    /// The variables this provider cannot work without.
    pub fn required_variables(self) -> &'static [&'static str] {
        match self {
            Self::DigitalOcean => &DIGITALOCEAN_VARIABLES,
            Self::Atlas => &ATLAS_VARIABLES,
            Self::Disabled => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn repository(json: &str) -> (tempfile::TempDir, ClusterRepository) {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join(CONTEXT_FILE), json).expect("write context.json");
        let repository = ClusterRepository::open(dir.path()).expect("open repository");
        (dir, repository)
    }

    #[test]
    fn flag_beats_environment_beats_context_beats_default() {
        let (_dir, repo) =
            repository(r#"{"cluster_domain":"ctx.example","environment":"staging"}"#);
        let vars = env(&[("PHD_CLUSTER_DOMAIN", "env.example")]);
        let settings = Settings::new(&vars, Some(&repo));

        let flag = settings
            .get(Setting::ClusterDomain, Some("flag.example"))
            .expect("valid");
        assert_eq!(
            flag.map(|r| (r.value, r.origin)),
            Some(("flag.example".into(), Origin::Flag))
        );

        let from_env = settings
            .get(Setting::ClusterDomain, None)
            .expect("valid")
            .map(|r| r.value);
        assert_eq!(from_env.as_deref(), Some("env.example"));

        let from_context = settings
            .get(Setting::Environment, None)
            .expect("valid")
            .map(|r| r.value);
        assert_eq!(from_context.as_deref(), Some("staging"));

        let no_repo = Settings::new(&vars, None);
        let default = no_repo.get(Setting::Environment, None).expect("valid");
        assert_eq!(
            default.map(|r| (r.value, r.origin)),
            Some(("production".into(), Origin::Default))
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let vars = env(&[("PHD_ENVIRONMENT", "")]);
        let settings = Settings::new(&vars, None);
        assert_eq!(
            settings
                .get(Setting::Environment, Some(""))
                .expect("valid")
                .map(|r| r.value)
                .as_deref(),
            Some("production")
        );
    }

    #[test]
    fn values_are_checked_before_use_naming_their_origin() {
        let vars = env(&[
            ("PHD_MYSQL_PORT", "abc"),
            ("PHD_MONGODB_PORT", "99999"),
            ("PHD_MYSQL_HOST", "db.internal\nEVIL: 1"),
            ("PHD_STORAGE_TYPE", "gcs"),
            ("PHD_INGRESS_NAMESPACE", "Bad_NS"),
            ("PHD_STORAGE_REGION", "nyc3"),
            ("PHD_STORAGE_VERSIONING", "yes"),
            ("PHD_ATLAS_API_URL", "cloud.mongodb.com"),
            ("PHD_ATLAS_PROJECT_ID", "p1; rm -rf"),
        ]);
        let settings = Settings::new(&vars, None);
        for (setting, value) in [
            (Setting::MysqlPort, "abc"),
            (Setting::MongodbPort, "99999"),
            (Setting::MysqlHost, "db.internal\nEVIL: 1"),
            (Setting::StorageType, "gcs"),
            (Setting::IngressNamespace, "Bad_NS"),
            (Setting::StorageVersioning, "yes"),
            (Setting::AtlasApiUrl, "cloud.mongodb.com"),
            (Setting::AtlasProjectId, "p1; rm -rf"),
        ] {
            let error = settings.get(setting, None).expect_err(value);
            let text = error.to_string();
            assert!(text.contains(setting.env_name()), "{text}");
            assert!(text.contains(" is not "), "{text}");
            assert!(settings.require(setting, None, None).is_err());
        }
        assert_eq!(
            settings
                .get(Setting::StorageRegion, None)
                .expect("valid")
                .map(|r| r.value)
                .as_deref(),
            Some("nyc3")
        );
        let flag = settings
            .get(Setting::MysqlPort, Some("0"))
            .expect_err("port 0");
        assert!(flag.to_string().contains("command-line flag"));
        for good in ["1", "3306", "65535"] {
            assert!(
                settings.get(Setting::MysqlPort, Some(good)).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn missing_required_value_names_flag_and_variable() {
        let vars = env(&[]);
        let settings = Settings::new(&vars, None);
        let error = settings
            .require(Setting::ClusterDomain, None, Some("--domain"))
            .expect_err("no domain anywhere");
        let message = error.to_string();
        assert!(message.contains("--domain"), "{message}");
        assert!(message.contains("PHD_CLUSTER_DOMAIN"), "{message}");
        assert!(message.contains("context.json"), "{message}");
    }

    #[test]
    fn missing_value_inside_a_repository_names_its_context_file() {
        // As `cluster create` writes it without --github-org/--github-repo.
        let (dir, repo) = repository(r#"{"cluster_domain":"a.example","repository":""}"#);
        let vars = env(&[]);
        let settings = Settings::new(&vars, Some(&repo));
        let message = settings
            .require(Setting::Repository, None, Some("--repository"))
            .expect_err("no repository URL")
            .to_string();
        let file = dir.path().join(CONTEXT_FILE);
        assert!(
            message.contains(&format!("{} has no repository URL", file.display())),
            "{message}"
        );
        assert!(message.contains("--repository"), "{message}");
        assert!(!message.contains("run inside"), "{message}");
        let (dir, repo) = repository(r#"{"repository":"https://github.com/o/r"}"#);
        let settings = Settings::new(&vars, Some(&repo));
        let message = settings
            .require(Setting::ClusterDomain, None, None)
            .expect_err("no domain")
            .to_string();
        let file = dir.path().join(CONTEXT_FILE);
        assert!(
            message.contains(&format!("{} has no value for it", file.display())),
            "{message}"
        );
    }

    #[test]
    fn original_context_keys_are_accepted() {
        let (_dir, repo) = repository(
            r#"{"cluster_domain":"a.example","cloud_provider":"aws","cloud_region":"eu-west-1","github_repository":"https://github.com/o/r"}"#,
        );
        assert_eq!(repo.context.provider.as_deref(), Some("aws"));
        assert_eq!(repo.context.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            repo.context.repository.as_deref(),
            Some("https://github.com/o/r")
        );
    }

    #[test]
    fn smtp_relay_comes_from_context_json_checked() {
        let (_dir, repo) = repository(
            r#"{"smtp_host":"smtp.example.net","smtp_port":587,"smtp_use_tls":true,"smtp_username":"apikey"}"#,
        );
        let vars = env(&[]);
        let settings = Settings::new(&vars, Some(&repo));
        let value = |setting| {
            settings
                .get(setting, None)
                .expect("valid")
                .map(|resolved| resolved.value)
        };
        assert_eq!(
            value(Setting::SmtpHost).as_deref(),
            Some("smtp.example.net")
        );
        assert_eq!(value(Setting::SmtpPort).as_deref(), Some("587"));
        assert_eq!(value(Setting::SmtpUseTls).as_deref(), Some("true"));
        assert_eq!(value(Setting::SmtpUsername).as_deref(), Some("apikey"));
        // The environment beats context.json; a port or host that would
        // break config.yml is refused, naming the variable.
        for (variable, bad) in [
            ("PHD_SMTP_PORT", "587x"),
            ("PHD_SMTP_HOST", "smtp.example.net:587"),
            ("PHD_SMTP_USE_TLS", "yes"),
        ] {
            let vars = env(&[(variable, bad)]);
            let settings = Settings::new(&vars, Some(&repo));
            let setting = [Setting::SmtpPort, Setting::SmtpHost, Setting::SmtpUseTls]
                .into_iter()
                .find(|s| s.env_name() == variable)
                .expect("setting");
            let error = settings.get(setting, None).expect_err(bad).to_string();
            assert!(error.contains(variable) && error.contains(bad), "{error}");
        }
        // Without a relay the settings are unset, not defaulted.
        let vars = env(&[]);
        assert!(
            Settings::new(&vars, None)
                .get(Setting::SmtpHost, None)
                .expect("valid")
                .is_none()
        );
        // A password is a credential: the environment only.
        let vars = env(&[("PHD_SMTP_PASSWORD", "p")]);
        assert_eq!(
            Settings::new(&vars, None)
                .credential(Credential::SmtpPassword)
                .as_deref(),
            Some("p")
        );
    }

    #[test]
    fn discovery_walks_up_to_the_context_file() {
        let (dir, _) = repository(r#"{"cluster_domain":"a.example"}"#);
        let nested = dir.path().join("instances/demo");
        std::fs::create_dir_all(&nested).expect("nested dir");
        let found = ClusterRepository::discover(&nested)
            .expect("discover")
            .expect("found");
        assert_eq!(found.root, dir.path());
    }

    #[test]
    fn broken_context_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join(CONTEXT_FILE), "{not json").expect("write");
        let error = ClusterRepository::discover(dir.path()).expect_err("invalid json");
        assert!(
            error
                .to_string()
                .contains("not a valid cluster context file")
        );
    }

    #[test]
    fn mongodb_provider_is_detected_or_refused() {
        let atlas = env(&[
            ("PHD_ATLAS_PUBLIC_KEY", "p"),
            ("PHD_ATLAS_PRIVATE_KEY", "k"),
            ("PHD_ATLAS_PROJECT_ID", "id"),
            ("PHD_ATLAS_CLUSTER_NAME", "c"),
        ]);
        assert_eq!(
            Settings::new(&atlas, None).mongodb_provider().ok(),
            Some(MongodbProvider::Atlas)
        );

        let digitalocean = env(&[
            ("PHD_MONGODB_CLUSTER_ID", "c"),
            ("PHD_DIGITALOCEAN_TOKEN", "t"),
        ]);
        assert_eq!(
            Settings::new(&digitalocean, None).mongodb_provider().ok(),
            Some(MongodbProvider::DigitalOcean)
        );

        // Inside a DigitalOcean cluster repository the cluster ID is the
        // infrastructure's output; only the token is a secret to set.
        let (_dir, repo) = repository(r#"{"provider":"digitalocean"}"#);
        let outputs = std::collections::BTreeMap::from([(
            "mongodb_cluster_id".to_owned(),
            "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30".to_owned(),
        )]);
        let token = env(&[("PHD_DIGITALOCEAN_TOKEN", "t")]);
        let in_repository = Settings::new(&token, Some(&repo)).with_outputs(&outputs);
        assert_eq!(
            in_repository.mongodb_provider().ok(),
            Some(MongodbProvider::DigitalOcean)
        );
        let id = in_repository
            .get(Setting::MongodbClusterId, None)
            .expect("valid")
            .expect("from the outputs");
        assert_eq!(id.value, "9cc10173-e9ea-4176-9dbc-a4cee4c4ff30");
        assert_eq!(id.origin, Origin::Infrastructure("mongodb_cluster_id"));
        let named = env(&[
            ("PHD_MONGODB_PROVIDER", "digitalocean_api"),
            ("PHD_DIGITALOCEAN_TOKEN", "t"),
        ]);
        assert!(
            Settings::new(&named, Some(&repo))
                .with_outputs(&outputs)
                .mongodb_provider()
                .is_ok()
        );
        let error = Settings::new(&named, Some(&repo))
            .mongodb_provider()
            .expect_err("no cluster ID without the outputs");
        assert!(
            error.to_string().contains("PHD_MONGODB_CLUSTER_ID"),
            "{error}"
        );

        let nothing = env(&[]);
        assert!(matches!(
            Settings::new(&nothing, None).mongodb_provider(),
            Err(ConfigError::NoMongoProvider)
        ));

        let unknown = env(&[("PHD_MONGODB_PROVIDER", "mlab")]);
        assert!(matches!(
            Settings::new(&unknown, None).mongodb_provider(),
            Err(ConfigError::UnknownMongoProvider(name)) if name == "mlab"
        ));

        let half = env(&[
            ("PHD_MONGODB_PROVIDER", "atlas"),
            ("PHD_ATLAS_PUBLIC_KEY", "p"),
        ]);
        let error = Settings::new(&half, None)
            .mongodb_provider()
            .expect_err("incomplete");
        assert!(error.to_string().contains("PHD_ATLAS_PRIVATE_KEY"));

        let disabled = env(&[("PHD_MONGODB_PROVIDER", "disabled")]);
        assert_eq!(
            Settings::new(&disabled, None).mongodb_provider().ok(),
            Some(MongodbProvider::Disabled)
        );
    }

    #[test]
    fn credentials_come_from_the_environment_only() {
        let vars = env(&[
            ("PHD_STORAGE_ACCESS_KEY_ID", "AKIA1"),
            ("PHD_ATLAS_PRIVATE_KEY", ""),
        ]);
        let settings = Settings::new(&vars, None);
        assert_eq!(
            settings
                .credential(Credential::StorageAccessKeyId)
                .as_deref(),
            Some("AKIA1")
        );
        // Empty is unset, as for every variable.
        assert_eq!(settings.credential(Credential::AtlasPrivateKey), None);
        assert_eq!(
            Setting::StorageMakePublic.default_value(),
            Some("false"),
            "buckets are private unless asked"
        );
    }

    /// The registry is the one reader of `PHD_*` variables: no source file of
    /// the library or the plugin names one in an environment read.
    #[test]
    fn no_phd_variable_is_read_outside_the_registry() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        let mut dirs = vec![
            root.join("common/src"),
            root.join("plugins/kubectl-phd/src"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("source directory") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 20, "sources found: {}", files.len());
        let reads = ["var(\"PHD_", "var_os(\"PHD_", "env_var(\"PHD_"];
        for file in files
            .iter()
            .filter(|f| !f.ends_with("common/src/config.rs"))
        {
            let text = std::fs::read_to_string(file).expect("source");
            for read in reads {
                assert!(
                    !text.contains(read),
                    "{} reads a PHD_ variable itself ({read}...); declare it in config::Setting or config::Credential",
                    file.display()
                );
            }
        }
    }
}
