//! What every command that talks to a cluster starts from: the global flags,
//! the environment, and the cluster repository around the working directory.

use anyhow::Context as _;
use phd_common::{
    AccessOptions, Cluster, ClusterAccess, ClusterRepository, Environment as _, ProcessEnvironment,
    Setting, Settings, naming,
};

use crate::cli::GlobalArgs;
use crate::outcome::ClusterRef;
use crate::output;

pub struct Session {
    pub global: GlobalArgs,
    pub env: ProcessEnvironment,
    pub repository: Option<ClusterRepository>,
    /// The infrastructure's outputs, once [`Session::load_outputs`] ran.
    outputs: std::sync::OnceLock<phd_common::tofu::Outputs>,
    /// Why the repository's infrastructure gave no outputs, when it has an
    /// infrastructure/ folder but they could not be read.
    outputs_problem: std::sync::OnceLock<String>,
    /// The cluster this run connected to.
    connected: std::sync::OnceLock<ClusterRef>,
}

impl Session {
    pub fn new(global: GlobalArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("cannot determine the working directory")?;
        let repository = ClusterRepository::discover(&cwd)?;
        if let Some(repository) = &repository {
            output::debug(format!("cluster repository: {}", repository.root.display()));
        }
        Ok(Self {
            global,
            env: ProcessEnvironment,
            repository,
            outputs: std::sync::OnceLock::new(),
            outputs_problem: std::sync::OnceLock::new(),
            connected: std::sync::OnceLock::new(),
        })
    }

    pub fn access_options(&self) -> AccessOptions {
        AccessOptions {
            kubeconfig: self.global.kubeconfig.clone(),
            context: self.global.context.clone(),
            cluster: self.global.cluster.clone(),
            user: self.global.user.clone(),
            request_timeout: self.global.request_timeout,
            request_log: (output::verbosity() > 0).then(|| {
                phd_common::request_log::RequestLog::new(log_request)
                    .with_bodies(output::verbosity() > 1)
            }),
        }
    }

    /// Chooses the kubeconfig, logging under `-v` which sources were passed over.
    pub async fn access(&self) -> Result<ClusterAccess, phd_common::AccessError> {
        let access =
            ClusterAccess::resolve(&self.access_options(), self.repository.as_ref(), &self.env)
                .await?;
        for reason in &access.skipped {
            output::debug(format!("skipped: {reason}"));
        }
        output::debug(format!("kubeconfig from {}", access.source));
        Ok(access)
    }

    pub fn settings(&self) -> Settings<'_> {
        let settings = Settings::new(&self.env, self.repository.as_ref());
        match self.outputs.get() {
            Some(outputs) => settings.with_outputs(&outputs.values),
            None => settings,
        }
    }

    /// Reads the cluster repository's infrastructure outputs (one `tofu
    /// output -json`), so [`Session::settings`] takes database hosts and
    /// ports from them. Nothing outside a repository or without an
    /// infrastructure/ folder; when that folder gives no outputs, why is kept
    /// for [`Session::outputs_problem`] (and logged under `-v`).
    pub async fn load_outputs(&self) {
        let Some(repository) = &self.repository else {
            return;
        };
        let dir = repository.infrastructure_dir();
        if !dir.is_dir() {
            let _ = self.outputs.set(Default::default());
            return;
        }
        let (outputs, problem) = match phd_common::tofu::Tool::find() {
            Ok(tool) => match tool.outputs(&dir, std::time::Duration::from_secs(60)).await {
                Ok(outputs) if outputs.values.is_empty() && outputs.sensitive.is_empty() => (
                    outputs,
                    Some(format!(
                        "{} output finds none in {} (not applied yet, or this checkout is not initialised: `kubectl phd infra init`, with the state bucket's credentials)",
                        tool.name,
                        dir.display()
                    )),
                ),
                Ok(outputs) => (outputs, None),
                Err(error) => (Default::default(), Some(format!("{error:#}"))),
            },
            Err(error) => (Default::default(), Some(format!("{error:#}"))),
        };
        if problem.is_none() {
            let names = |map: &std::collections::BTreeMap<String, String>| {
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            };
            output::debug(format!(
                "infrastructure outputs: {} (sensitive: {})",
                names(&outputs.values),
                names(&outputs.sensitive)
            ));
        }
        if let Some(problem) = problem {
            output::debug(format!("infrastructure outputs: {problem}"));
            let _ = self.outputs_problem.set(problem);
        }
        let _ = self.outputs.set(outputs);
    }

    /// Why the cluster repository's infrastructure gave no outputs, after
    /// [`Session::load_outputs`]; `None` when it gave some, or outside a
    /// repository with an infrastructure/ folder.
    pub fn outputs_problem(&self) -> Option<&str> {
        self.outputs_problem.get().map(String::as_str)
    }

    /// A sensitive output of the cluster repository's infrastructure, once
    /// [`Session::load_outputs`] ran; `None` outside a repository, before,
    /// or when the state has no such output. Callers keep it out of
    /// arguments and logs.
    pub fn sensitive_output(&self, name: &str) -> Option<String> {
        self.outputs
            .get()
            .and_then(|outputs| outputs.sensitive.get(name))
            .cloned()
    }

    /// The environment an instance or install belongs to: `--environment`,
    /// `PHD_ENVIRONMENT`, the repository's context.json, or the default;
    /// checked to be usable as a label value.
    pub fn environment(&self, flag: Option<&str>) -> anyhow::Result<String> {
        let environment = self
            .settings()
            .require(Setting::Environment, flag, Some("--environment"))?
            .value;
        naming::check_label("environment", &environment)?;
        Ok(environment)
    }

    /// A variable of the environment, empty meaning unset.
    pub fn env_var(&self, name: &str) -> Option<String> {
        self.env.var(name)
    }

    /// A client for the chosen cluster, checked to answer.
    pub async fn connect(&self) -> anyhow::Result<Cluster> {
        let cluster = self.access().await?.connect().await?;
        output::debug(format!(
            "connected to {} (Kubernetes {})",
            cluster.server, cluster.version.git_version
        ));
        let _ = self.connected.set(ClusterRef {
            context: cluster.context.clone(),
            // As the kubeconfig spells it (the parsed URL ends in '/').
            server: cluster.server.trim_end_matches('/').to_owned(),
        });
        Ok(cluster)
    }

    /// The cluster this run acted on, if it connected to one: the last
    /// line of every mutating command's summary, and its result's `cluster`.
    pub fn connected(&self) -> Option<&ClusterRef> {
        self.connected.get()
    }
}

/// `-v`: one line per API request, when its answer arrives.
fn log_request(line: &str) {
    output::debug(format!("request: {line}"));
}
