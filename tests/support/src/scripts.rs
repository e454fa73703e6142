//! Runs the script of a shipped ClusterWorkflowTemplate
//! (`manifests/workflow-templates/*.yaml`) the way its container would: the
//! exact `source` text, written to a file and run by `sh`, with nothing in the
//! environment but `PATH`, `HOME` and the variables the template's `env` sets,
//! resolved from workflow parameters (the template's defaults, or the ones a
//! test gives) and from Secret values a test gives (`secretKeyRef`).
//!
//! Every run is searched for the Secret values it was given: a script that
//! prints one makes [`Template::run`] fail.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cache_dir;

/// Keys of the Secret phd-provisioning whose values are names, hosts and
/// flags (the templates' targets), not secrets: they may appear in output.
const NOT_SECRET: [&str; 33] = [
    "mysql-root-user",
    "mysql-database",
    "mysql-user",
    "mysql-host",
    "mysql-port",
    "mongodb-provider",
    "mongodb-database",
    "mongodb-forum-database",
    "mongodb-user",
    "digitalocean-cluster-id",
    "atlas-project-id",
    "atlas-cluster-name",
    "digitalocean-api-url",
    "atlas-api-url",
    "bucket",
    "storage-type",
    "storage-region",
    "storage-endpoint-url",
    "storage-versioning",
    "storage-public",
    // restore-point-template's target: what and where, no credential.
    "restore-point-operation",
    "instance",
    "restore-point",
    "restore-point-instance",
    "restore-point-metadata",
    "backup-bucket",
    "mongodb-host",
    "mongodb-port",
    "mongodb-auth-source",
    "mongodb-replica-set",
    "mongodb-use-ssl",
    "rewrite-hosts",
    "scrub",
];

/// Where a variable of the script's environment comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A literal value; `{{workflow.parameters.NAME}}` in it is substituted.
    Value(String),
    /// `valueFrom.secretKeyRef`.
    Secret {
        name: String,
        key: String,
        optional: bool,
    },
}

/// One ClusterWorkflowTemplate with a single `script` step.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub source: String,
    /// `spec.arguments.parameters`: name and default, if any.
    pub parameters: BTreeMap<String, Option<String>>,
    /// The step's `env`, in order.
    pub env: Vec<(String, Source)>,
}

/// The shipped templates' directory.
pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/workflow-templates")
}

impl Template {
    /// Loads `manifests/workflow-templates/<name>.yaml`.
    pub fn load(name: &str) -> Result<Self> {
        let path = templates_dir().join(format!("{name}.yaml"));
        let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let yaml: Value = serde_saphyr::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", path.display()))?;
        Self::from_value(&yaml).with_context(|| format!("in {}", path.display()))
    }

    fn from_value(yaml: &Value) -> Result<Self> {
        let name = string(&yaml["metadata"]["name"], "metadata.name")?;
        let entrypoint = string(&yaml["spec"]["entrypoint"], "spec.entrypoint")?;
        let templates = yaml["spec"]["templates"]
            .as_array()
            .context("spec.templates is not a list")?;
        let step = templates
            .iter()
            .find(|t| t["name"] == entrypoint.as_str())
            .with_context(|| format!("no template named {entrypoint}"))?;
        let script = &step["script"];
        if !script.is_object() {
            bail!("template {entrypoint} has no script");
        }
        let mut parameters = BTreeMap::new();
        if let Some(list) = yaml["spec"]["arguments"]["parameters"].as_array() {
            for parameter in list {
                let name = string(&parameter["name"], "parameter name")?;
                let default = parameter["value"].as_str().map(str::to_owned);
                parameters.insert(name, default);
            }
        }
        let mut env = Vec::new();
        for variable in script["env"].as_array().into_iter().flatten() {
            let name = string(&variable["name"], "env name")?;
            let source = if let Some(value) = variable["value"].as_str() {
                Source::Value(value.to_owned())
            } else if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
                Source::Secret {
                    name: reference
                        .get("name")
                        .and_then(Value::as_str)
                        .with_context(|| format!("env {name}: secretKeyRef without name"))?
                        .to_owned(),
                    key: reference
                        .get("key")
                        .and_then(Value::as_str)
                        .with_context(|| format!("env {name}: secretKeyRef without key"))?
                        .to_owned(),
                    optional: reference
                        .get("optional")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }
            } else {
                bail!("env {name}: neither a value nor a secretKeyRef");
            };
            env.push((name, source));
        }
        let command = script["command"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            name,
            image: string(&script["image"], "script.image")?,
            command,
            source: string(&script["source"], "script.source")?,
            parameters,
            env,
        })
    }

    /// The environment the container would get, as Argo and Kubernetes would
    /// build it: parameters substituted, Secret keys looked up. A required
    /// parameter or non-optional Secret key that is not given is an error, as
    /// it is for Argo (submission refused) and Kubernetes (container not started).
    pub fn environment(&self, inputs: &Inputs) -> Result<Vec<(String, String)>> {
        for name in inputs.parameters.keys() {
            if !self.parameters.contains_key(name) {
                bail!("{} has no parameter {name}", self.name);
            }
        }
        let mut parameters = BTreeMap::new();
        for (name, default) in &self.parameters {
            let value = inputs
                .parameters
                .get(name)
                .or(default.as_ref())
                .with_context(|| format!("parameter {name} of {} is required", self.name))?;
            parameters.insert(name.as_str(), value.as_str());
        }
        let mut env = Vec::new();
        for (name, source) in &self.env {
            match source {
                Source::Value(value) => {
                    env.push((name.clone(), substitute(value, &parameters)?));
                }
                Source::Secret {
                    name: secret,
                    key,
                    optional,
                } => match inputs.secrets.get(&(secret.clone(), key.clone())) {
                    Some(value) => env.push((name.clone(), value.clone())),
                    None if *optional => {}
                    None => bail!(
                        "env {name} of {} needs key {key} of Secret {secret}",
                        self.name
                    ),
                },
            }
        }
        Ok(env)
    }

    /// Runs the script and waits for it, up to two minutes.
    pub fn run(&self, inputs: &Inputs) -> Result<Run> {
        let environment = self.environment(inputs)?;
        let work = tempfile::Builder::new()
            .prefix("phd-script-")
            .tempdir()
            .context("create a directory for the script")?;
        let script = work.path().join("script");
        fs::write(&script, &self.source).context("write the script")?;
        // A fresh, empty HOME, as a new container's /tmp is.
        let home = work.path().join("home");
        fs::create_dir(&home).context("create HOME")?;
        let path = self.path(work.path())?;
        let shell = self.command.first().map(String::as_str).unwrap_or("sh");
        let mut command = Command::new(which(shell, &path)?);
        command
            .args(self.command.iter().skip(1))
            .arg(&script)
            .env_clear()
            .env("PATH", &path)
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .env("HOME", &home)
            .envs(&inputs.extra_env)
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("run the script of {}", self.name))?;
        let output = wait_with_timeout(child, Duration::from_secs(120))
            .with_context(|| format!("the script of {}", self.name))?;
        let run = Run {
            template: self.name.clone(),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        for ((secret, key), value) in &inputs.secrets {
            if (secret == "phd-provisioning" && NOT_SECRET.contains(&key.as_str()))
                || value.len() < 4
            {
                continue;
            }
            for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                if text.contains(value.as_str()) {
                    bail!(
                        "the script of {} printed the value of {key} of Secret {secret} on {stream}",
                        self.name
                    );
                }
            }
        }
        Ok(run)
    }

    /// `PATH` for the script: the test tools in the cache, then the system's.
    /// For the curl image (Alpine: busybox and curl), busybox's applets come
    /// first, so that the script meets busybox's sh, sed, od, awk and the rest.
    fn path(&self, work: &Path) -> Result<OsString> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if self.image.contains("curlimages/curl") {
            let busybox = which_in_system("busybox")
                .context("busybox is needed (scripts/install-test-tools installs it)")?;
            let applets = work.join("busybox");
            fs::create_dir(&applets).context("create the busybox directory")?;
            let list = Command::new(&busybox)
                .arg("--list")
                .output()
                .context("busybox --list")?;
            for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
                symlink(&busybox, applets.join(applet))
                    .with_context(|| format!("link busybox applet {applet}"))?;
            }
            dirs.push(applets);
        }
        dirs.push(cache_dir().join("bin"));
        dirs.extend(SYSTEM_PATH.iter().map(PathBuf::from));
        std::env::join_paths(dirs).context("join PATH")
    }
}

const SYSTEM_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// `program` in the system directories of `PATH` (not the caller's `PATH`).
pub fn which_in_system(program: &str) -> Option<PathBuf> {
    SYSTEM_PATH
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

fn which(program: &str, path: &OsString) -> Result<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{program} is not in the script's PATH"))
}

fn string(value: &Value, what: &str) -> Result<String> {
    value
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{what} is missing or not a string"))
}

/// Substitutes `{{workflow.parameters.NAME}}`, as Argo does.
fn substitute(value: &str, parameters: &BTreeMap<&str, &str>) -> Result<String> {
    const OPEN: &str = "{{workflow.parameters.";
    let mut result = String::new();
    let mut rest = value;
    while let Some(start) = rest.find(OPEN) {
        result.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find("}}")
            .with_context(|| format!("unclosed parameter reference in {value:?}"))?;
        let name = &after[..end];
        let parameter = parameters
            .get(name)
            .with_context(|| format!("{value:?} refers to an undeclared parameter {name}"))?;
        result.push_str(parameter);
        rest = &after[end + 2..];
    }
    result.push_str(rest);
    Ok(result)
}

fn wait_with_timeout(
    mut child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output> {
    use std::io::Read as _;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout.read_to_end(&mut buffer);
        buffer
    });
    let err = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer);
        buffer
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// What a test gives a script: parameters, Secret values, and (rarely) extra
/// environment that the cluster, not the template, would provide.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub parameters: BTreeMap<String, String>,
    pub secrets: BTreeMap<(String, String), String>,
    pub extra_env: BTreeMap<String, String>,
}

impl Inputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a workflow parameter.
    pub fn parameter(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parameters.insert(name.to_owned(), value.into());
        self
    }

    /// Sets key `key` of Secret `secret`.
    pub fn secret(mut self, secret: &str, key: &str, value: impl Into<String>) -> Self {
        self.secrets
            .insert((secret.to_owned(), key.to_owned()), value.into());
        self
    }

    /// Removes key `key` of Secret `secret`.
    pub fn without_secret(mut self, secret: &str, key: &str) -> Self {
        self.secrets.remove(&(secret.to_owned(), key.to_owned()));
        self
    }

    /// Adds a variable the template does not set (a proxy, say).
    pub fn extra_env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.extra_env.insert(name.to_owned(), value.into());
        self
    }
}

/// The outcome of one script run.
#[derive(Debug, Clone)]
pub struct Run {
    pub template: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics, showing the output, unless the script succeeded.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "{self}");
        self
    }

    /// Panics unless the script failed and its standard error contains each of `needles`.
    #[track_caller]
    pub fn assert_failure_mentioning(&self, needles: &[&str]) -> &Self {
        assert!(!self.success(), "expected a failure: {self}");
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "expected {needle:?} in standard error: {self}"
            );
        }
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the script of {} exited with {} after {:.1?}\n--- stdout\n{}--- stderr\n{}",
            self.template, self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_declared_parameters_only() {
        let parameters = BTreeMap::from([("a", "1"), ("b-c", "two")]);
        assert_eq!(
            substitute(
                "x{{workflow.parameters.a}}y{{workflow.parameters.b-c}}",
                &parameters
            )
            .expect("substitute"),
            "x1ytwo"
        );
        assert!(substitute("{{workflow.parameters.zz}}", &parameters).is_err());
        assert!(substitute("{{workflow.parameters.a", &parameters).is_err());
    }
}
