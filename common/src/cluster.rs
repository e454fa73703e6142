//! Cluster access (SPEC.md section 6): which kubeconfig to use, and a client
//! that fails fast and clearly when the API server cannot be reached.
//!
//! Precedence: `--kubeconfig` / `--context` flags; the cluster repository's
//! infrastructure `kubeconfig` output; `KUBECONFIG_CONTENT`; the kubeconfig
//! kubectl would use. Nothing here ever writes the user's kubeconfig.

use crate::request_log::RequestLog;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::{ClusterRepository, Environment};
use crate::tofu::Tool;
use crate::yaml_error;

/// How long to wait for the API server's first answer before giving up.
pub const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TOFU_OUTPUT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "no kubeconfig found; do one of: run inside a cluster repository whose infrastructure has \
         a `kubeconfig` output, set KUBECONFIG_CONTENT to a kubeconfig (plain or base64), or set \
         KUBECONFIG / create ~/.kube/config (or pass --kubeconfig)"
    )]
    NoKubeconfig,
    #[error(
        "inside cluster repository {root} the repository's own cluster is the default, but its \
         infrastructure gives no kubeconfig ({reasons}); apply the infrastructure (`kubectl phd \
         infra apply`), or choose another cluster explicitly with --context or --kubeconfig \
         (or KUBECONFIG_CONTENT)"
    )]
    RepositoryWithoutKubeconfig { root: PathBuf, reasons: String },
    #[error("kubeconfig file {0} does not exist")]
    MissingFile(PathBuf),
    #[error(
        "KUBECONFIG is set to {0:?}, but no file it names exists; correct or unset it, or pass \
         --kubeconfig"
    )]
    KubeconfigVariableMissing(String),
    /// `problem` is [`describe`]'s: where, never what the file holds.
    #[error("cannot read kubeconfig {path}: {problem}")]
    ReadFile { path: PathBuf, problem: String },
    #[error(
        "KUBECONFIG_CONTENT is set but holds neither a kubeconfig nor base64 of one: {problem}"
    )]
    InvalidContent { problem: String },
    #[error("KUBECONFIG_CONTENT is set but its kubeconfig defines no cluster")]
    EmptyContent,
    #[error(
        "{kind} {name:?} (--{kind}) is not in the kubeconfig from {source_description}; available: {available}"
    )]
    UnknownEntry {
        kind: &'static str,
        name: String,
        source_description: String,
        available: String,
    },
    #[error("the kubeconfig from {source_description} cannot be used: {problem}")]
    InvalidConfig {
        source_description: String,
        problem: String,
    },
    #[error(
        "the kubeconfig's credential plugin `{command}` did not finish within {}s; run it by hand to see why (an expired login, a prompt waiting for input)",
        waited.as_secs()
    )]
    ExecTimeout { command: String, waited: Duration },
    #[error("cannot create a Kubernetes client for {server}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the Kubernetes API server at {server} rejected the credentials of the kubeconfig from \
         {source_description} (401 Unauthorized): the client certificate or token is invalid or \
         expired; get fresh credentials (for example `kubectl phd kubeconfig --save`)"
    )]
    Unauthorized {
        server: String,
        source_description: String,
    },
    #[error(
        "cannot reach the Kubernetes API server at {server} within {}s; check that the cluster \
         is running and that the kubeconfig from {source_description} points at it{exec}",
        waited.as_secs()
    )]
    Timeout {
        server: String,
        source_description: String,
        waited: Duration,
        /// What to say about the user's exec credential plugin, if it has one.
        exec: String,
    },
    #[error(
        "cannot reach the Kubernetes API server at {server}; check that the cluster is running \
         and that the kubeconfig from {source_description} points at it"
    )]
    Unreachable {
        server: String,
        source_description: String,
        #[source]
        source: kube::Error,
    },
}

/// The kubeconfig flags kubectl has, which the plugin parses itself.
#[derive(Debug, Clone, Default)]
pub struct AccessOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// How long one request may wait for the API server's answer
    /// (`--request-timeout`); [`DEFAULT_REQUEST_TIMEOUT`] when `None`.
    pub request_timeout: Option<Duration>,
    /// Reports each API request (method, path, status, time) when set: `-v`;
    /// with bodies, secrets redacted: `-vv`.
    pub request_log: Option<RequestLog>,
}

/// How long one request may wait for the API server unless
/// `--request-timeout` says otherwise: a stalled server (or a dropped
/// connection the client does not hear about) becomes an error instead of a
/// hang. Applies to every read and write on the connection.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the kubeconfig in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    Flag(PathBuf),
    Infrastructure {
        tool: &'static str,
        output: String,
        dir: PathBuf,
    },
    EnvironmentBase64,
    EnvironmentPlain,
    Inherited(Vec<PathBuf>),
}

impl fmt::Display for KubeconfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(path) => write!(f, "--kubeconfig {}", path.display()),
            Self::Infrastructure { tool, output, dir } => {
                write!(f, "`{tool} output {output}` in {}", dir.display())
            }
            Self::EnvironmentBase64 => f.write_str("KUBECONFIG_CONTENT (base64)"),
            Self::EnvironmentPlain => f.write_str("KUBECONFIG_CONTENT"),
            Self::Inherited(paths) => {
                let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                f.write_str(&list.join(":"))
            }
        }
    }
}

impl KubeconfigSource {
    /// Why this source was chosen, by the precedence of SPEC.md section 6.
    pub fn why(&self) -> &'static str {
        match self {
            Self::Flag(_) => "given by --kubeconfig",
            Self::Infrastructure { .. } => "the cluster repository's own cluster",
            Self::EnvironmentBase64 | Self::EnvironmentPlain => "KUBECONFIG_CONTENT is set",
            Self::Inherited(_) => {
                "what kubectl uses (--context was given, or no cluster repository is around)"
            }
        }
    }
}

/// A chosen kubeconfig and the flags that select inside it.
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    pub kubeconfig: Kubeconfig,
    pub source: KubeconfigSource,
    pub options: AccessOptions,
    /// Sources that were looked at and passed over, with the reason, for `-v`.
    pub skipped: Vec<String>,
}

/// A connected client with what was learned while connecting.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub server: String,
    pub context: Option<String>,
    pub source: KubeconfigSource,
    pub version: Info,
    pub default_namespace: String,
}

impl ClusterAccess {
    /// Chooses the kubeconfig by the precedence of SPEC.md section 6.
    pub async fn resolve(
        options: &AccessOptions,
        repository: Option<&ClusterRepository>,
        env: &dyn Environment,
    ) -> Result<Self, AccessError> {
        let mut skipped = Vec::new();
        let (kubeconfig, source) = if let Some(path) = &options.kubeconfig {
            (read_file(path)?, KubeconfigSource::Flag(path.clone()))
        } else if options.context.is_some() {
            inherited(env)?
        } else if let Some(found) = from_infrastructure(repository, &mut skipped).await {
            found
        } else if let Some(content) = env.var("KUBECONFIG_CONTENT") {
            from_content(&content)?
        } else if let Some(repository) = repository {
            // Never silently another cluster: kubectl's current context may
            // point anywhere (issue 14.7).
            return Err(AccessError::RepositoryWithoutKubeconfig {
                root: repository.root.clone(),
                reasons: if skipped.is_empty() {
                    format!("{} is missing", repository.infrastructure_dir().display())
                } else {
                    skipped.join("; ")
                },
            });
        } else {
            inherited(env)?
        };
        let access = Self {
            kubeconfig,
            source,
            options: options.clone(),
            skipped,
        };
        access.check_context()?;
        Ok(access)
    }

    /// The context that will be used: the `--context` flag, else the current one.
    pub fn context_name(&self) -> Option<&str> {
        self.options
            .context
            .as_deref()
            .or(self.kubeconfig.current_context.as_deref())
    }

    /// Every `--context`, `--cluster` and `--user` names an entry of the
    /// kubeconfig; kubectl refuses unknown ones too, rather than falling back
    /// to anonymous access.
    fn check_context(&self) -> Result<(), AccessError> {
        let kubeconfig = &self.kubeconfig;
        let entries: [(&'static str, Option<&String>, Vec<&str>); 3] = [
            (
                "context",
                self.options.context.as_ref(),
                kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
            (
                "cluster",
                self.options.cluster.as_ref(),
                kubeconfig
                    .clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
            (
                "user",
                self.options.user.as_ref(),
                kubeconfig
                    .auth_infos
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect(),
            ),
        ];
        for (kind, wanted, available) in entries {
            let Some(name) = wanted else { continue };
            if available.contains(&name.as_str()) {
                continue;
            }
            return Err(AccessError::UnknownEntry {
                kind,
                name: name.clone(),
                source_description: self.source.to_string(),
                available: if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                },
            });
        }
        Ok(())
    }

    /// Builds a client and checks, within [`REACHABILITY_TIMEOUT`], that the
    /// API server answers.
    pub async fn connect(&self) -> Result<Cluster, AccessError> {
        let options = KubeConfigOptions {
            context: self.options.context.clone(),
            cluster: self.options.cluster.clone(),
            user: self.options.user.clone(),
        };
        let mut config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &options)
            .await
            .map_err(|error| AccessError::InvalidConfig {
                source_description: self.source.to_string(),
                problem: describe(&error),
            })?;
        let request_timeout = self
            .options
            .request_timeout
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        config.connect_timeout = Some(CONNECT_TIMEOUT.min(request_timeout));
        config.read_timeout = Some(request_timeout);
        config.write_timeout = Some(request_timeout);
        // The read timeout counts from each request, not from when a pooled
        // connection went idle.
        config.reset_reader_on_write = true;
        let exec = config
            .auth_info
            .exec
            .as_ref()
            .map(|exec| {
                format!(
                    ", and that its credential plugin `{}` answers (it did not finish)",
                    exec.command.as_deref().unwrap_or("?")
                )
            })
            .unwrap_or_default();
        let server = config.cluster_url.to_string();
        let default_namespace = config.default_namespace.clone();
        // kube runs an exec credential plugin synchronously while it builds
        // the client: on the blocking pool, with a deadline, so a plugin
        // that never ends is cut off with a message instead of a hang.
        let plugin = config
            .auth_info
            .exec
            .as_ref()
            .and_then(|exec| exec.command.clone());
        let request_log = self.options.request_log;
        let waited = REACHABILITY_TIMEOUT.min(request_timeout);
        let built = tokio::time::timeout(
            waited,
            tokio::task::spawn_blocking(move || {
                let builder = kube::client::ClientBuilder::try_from(config)?;
                Ok(match request_log {
                    Some(layer) => builder.with_layer(&layer).build(),
                    None => builder.build(),
                })
            }),
        )
        .await;
        let client = match built {
            Err(_) => {
                return Err(match plugin {
                    Some(command) => AccessError::ExecTimeout { command, waited },
                    None => AccessError::Timeout {
                        server,
                        source_description: self.source.to_string(),
                        waited,
                        exec,
                    },
                });
            }
            Ok(Err(joined)) => Err(kube::Error::Service(Box::new(joined))),
            Ok(Ok(result)) => result,
        }
        .map_err(|source| match source {
            // The client key or certificate, loaded only now: described
            // without their data, like every kubeconfig problem.
            kube::Error::InferKubeconfig(error) => AccessError::InvalidConfig {
                source_description: self.source.to_string(),
                problem: describe(&error),
            },
            source => AccessError::Client {
                server: server.clone(),
                source,
            },
        })?;
        // In a task of its own: a token refresh runs the exec plugin again
        // inside the request; the deadline here keeps running on another thread.
        let probe = {
            let client = client.clone();
            tokio::spawn(async move { client.apiserver_version().await })
        };
        let version = match tokio::time::timeout(waited, probe)
            .await
            .map(|joined| joined.unwrap_or_else(|error| Err(kube::Error::Service(Box::new(error)))))
        {
            Err(_) => {
                return Err(AccessError::Timeout {
                    server,
                    source_description: self.source.to_string(),
                    waited,
                    exec,
                });
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 401 => {
                return Err(AccessError::Unauthorized {
                    server,
                    source_description: self.source.to_string(),
                });
            }
            Ok(Err(source)) => {
                return Err(AccessError::Unreachable {
                    server,
                    source_description: self.source.to_string(),
                    source,
                });
            }
            Ok(Ok(version)) => version,
        };
        Ok(Cluster {
            client,
            server,
            context: self.context_name().map(str::to_owned),
            source: self.source.clone(),
            version,
            default_namespace,
        })
    }
}

fn read_file(path: &Path) -> Result<Kubeconfig, AccessError> {
    if !path.exists() {
        return Err(AccessError::MissingFile(path.to_path_buf()));
    }
    Kubeconfig::read_from(path).map_err(|error| AccessError::ReadFile {
        path: path.to_path_buf(),
        problem: describe(&error),
    })
}

/// Why a kubeconfig cannot be read or used, without any of its content
/// (issue 29): kube's messages quote the YAML value that did not fit (a
/// token, a key, a pasted `.env` line) and a base64 decoder's names a byte
/// of the data. A parse failure says where ([`yaml_error::describe`]: line
/// and column, and the expected shape); data that does not decode says
/// which entry. Nothing is kept as a source error, so `-v`'s cause chain
/// holds nothing more.
pub fn describe(error: &kube::config::KubeconfigError) -> String {
    use kube::config::{KubeconfigError as E, LoadDataError};
    let data = |what: &str, error: &LoadDataError| match error {
        LoadDataError::DecodeBase64(_) => format!("the {what} data is not valid base64"),
        LoadDataError::ReadFile(io, path) => {
            format!("cannot read the {what} file {}: {io}", path.display())
        }
        LoadDataError::NoBase64DataOrFile => {
            format!("the {what} is given neither as data nor as a file")
        }
    };
    match error {
        E::Parse(error) => yaml_error::describe(error),
        E::ReadConfig(io, _) => io.to_string(),
        E::LoadCertificateAuthority(error) => data("certificate authority", error),
        E::LoadClientCertificate(error) => data("client certificate", error),
        E::LoadClientKey(error) => data("client key", error),
        E::ParseCertificates(_) => "its certificates are not valid PEM".to_owned(),
        // The rest name no content: a context's name at most.
        other => other.to_string(),
    }
}

/// The kubeconfig kubectl would use: every existing file of `KUBECONFIG`,
/// merged in order, else `~/.kube/config`.
fn inherited(env: &dyn Environment) -> Result<(Kubeconfig, KubeconfigSource), AccessError> {
    let paths: Vec<PathBuf> = match env.var("KUBECONFIG") {
        Some(list) => std::env::split_paths(&list)
            .filter(|path| !path.as_os_str().is_empty() && path.is_file())
            .collect(),
        None => home_dir(env)
            .map(|home| home.join(".kube").join("config"))
            .filter(|path| path.is_file())
            .into_iter()
            .collect(),
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let mut next = read_file(path)?;
        // kubectl's rule for every field: the first non-empty value wins.
        // `kubectl config set-cluster --kubeconfig new.yaml` writes
        // `current-context: ""`, which must not hide the next file's.
        let empty = |value: &Option<String>| value.as_deref().is_some_and(str::is_empty);
        if empty(&next.current_context) {
            next.current_context = None;
        }
        // kubectl does not compare these between files either.
        next.kind = None;
        next.api_version = None;
        merged = Some(match merged {
            None => next,
            Some(current) => current.merge(next).map_err(|error| AccessError::ReadFile {
                path: path.clone(),
                problem: describe(&error),
            })?,
        });
    }
    let kubeconfig = merged.ok_or_else(|| match env.var("KUBECONFIG") {
        // kubectl skips the missing files of the list; when it names no file
        // at all, saying so beats the generic hint.
        Some(list) if !list.is_empty() => AccessError::KubeconfigVariableMissing(list),
        _ => AccessError::NoKubeconfig,
    })?;
    Ok((kubeconfig, KubeconfigSource::Inherited(paths)))
}

fn home_dir(env: &dyn Environment) -> Option<PathBuf> {
    env.var("HOME")
        .or_else(|| env.var("USERPROFILE"))
        .map(PathBuf::from)
}

/// The kubeconfig in the cluster repository's infrastructure outputs, if a
/// tofu (or terraform) state there has one that parses.
async fn from_infrastructure(
    repository: Option<&ClusterRepository>,
    skipped: &mut Vec<String>,
) -> Option<(Kubeconfig, KubeconfigSource)> {
    let dir = repository?.infrastructure_dir();
    if !dir.is_dir() {
        return None;
    }
    let tool = match Tool::find() {
        Ok(tool) => tool,
        Err(error) => {
            skipped.push(format!("{}: {error}", dir.display()));
            return None;
        }
    };
    // `kubeconfig_content` is the output name of repositories made by the original tool.
    for output in ["kubeconfig", "kubeconfig_content"] {
        match tool.output_raw(&dir, output, TOFU_OUTPUT_TIMEOUT).await {
            Ok(Some(text)) => match parse_kubeconfig(&text) {
                Ok(kubeconfig) => {
                    return Some((
                        kubeconfig,
                        KubeconfigSource::Infrastructure {
                            tool: tool.name,
                            output: output.to_owned(),
                            dir,
                        },
                    ));
                }
                Err(problem) => skipped.push(format!(
                    "`{tool} output {output}` in {} is not a kubeconfig: {problem}",
                    dir.display()
                )),
            },
            Ok(None) => skipped.push(format!(
                "`{tool} output {output}` in {} gave nothing",
                dir.display()
            )),
            Err(error) => skipped.push(error.to_string()),
        }
    }
    None
}

/// A kubeconfig with at least one cluster; else why not, without content
/// ([`describe`]).
fn parse_kubeconfig(text: &str) -> Result<Kubeconfig, String> {
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|error| describe(&error))?;
    if kubeconfig.clusters.is_empty() {
        return Err("it defines no cluster".to_owned());
    }
    Ok(kubeconfig)
}

/// `KUBECONFIG_CONTENT`: base64 of a kubeconfig, or the kubeconfig itself.
/// Content that is neither is described by where it failed, never quoted.
pub fn from_content(content: &str) -> Result<(Kubeconfig, KubeconfigSource), AccessError> {
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let mut base64_problem = None;
    if let Some(text) = &decoded {
        match parse_kubeconfig(text) {
            Ok(kubeconfig) => return Ok((kubeconfig, KubeconfigSource::EnvironmentBase64)),
            Err(problem) => base64_problem = Some(problem),
        }
    }
    let kubeconfig = match Kubeconfig::from_yaml(content.trim()) {
        Ok(kubeconfig) => kubeconfig,
        Err(error) => {
            return Err(AccessError::InvalidContent {
                problem: match base64_problem {
                    // Valid base64: the decoded text is what was meant.
                    Some(problem) => {
                        format!("its base64 decodes to text that is not a kubeconfig ({problem})")
                    }
                    None => describe(&error),
                },
            });
        }
    };
    if kubeconfig.clusters.is_empty() {
        return Err(match base64_problem {
            Some(problem) => AccessError::InvalidContent {
                problem: format!("its base64 decodes to text that is not a kubeconfig ({problem})"),
            },
            None => AccessError::EmptyContent,
        });
    }
    Ok((kubeconfig, KubeconfigSource::EnvironmentPlain))
}
