//! Running OpenTofu (or Terraform when tofu is absent) in a cluster
//! repository's `infrastructure/` directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum TofuError {
    #[error("neither tofu nor terraform is installed; install OpenTofu and retry")]
    NotInstalled,
    #[error("cannot run {tool}")]
    Spawn {
        tool: Tool,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} did not finish within {timeout:?}")]
    Timeout { tool: Tool, timeout: Duration },
}

/// A state's outputs as text: `values` may go anywhere (settings, messages);
/// `sensitive` (outputs marked `sensitive = true`) stay in memory, for the
/// caller that needs one (never printed, never passed as an argument; no
/// `Debug`, so no log can show them).
#[derive(Default, Clone)]
pub struct Outputs {
    pub values: std::collections::BTreeMap<String, String>,
    pub sensitive: std::collections::BTreeMap<String, String>,
}

/// Which infrastructure-as-code program is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: &'static str,
    pub path: PathBuf,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Tool {
    /// `tofu` if it is on `PATH`, else `terraform`.
    pub fn find() -> Result<Self, TofuError> {
        ["tofu", "terraform"]
            .into_iter()
            .find_map(|name| which::which(name).ok().map(|path| Self { name, path }))
            .ok_or(TofuError::NotInstalled)
    }

    /// The raw value of output `name` in `dir`, or `None` when the output does
    /// not exist or the state cannot be read (no state yet, backend not initialised).
    pub async fn output_raw(
        &self,
        dir: &Path,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<String>, TofuError> {
        let output = self
            .run(dir, &["output", "-no-color", "-raw", name], timeout)
            .await?;
        if !output.status.success() {
            return Ok(None);
        }
        Ok(String::from_utf8(output.stdout).ok())
    }

    /// Every output of the state in `dir`, as text (strings as they are,
    /// numbers and booleans printed), from one `output -json`, the sensitive
    /// ones apart; empty when there is no state.
    pub async fn outputs(&self, dir: &Path, timeout: Duration) -> Result<Outputs, TofuError> {
        let output = self
            .run(dir, &["output", "-no-color", "-json"], timeout)
            .await?;
        let parsed: serde_json::Value = if output.status.success() {
            serde_json::from_slice(&output.stdout).unwrap_or_default()
        } else {
            serde_json::Value::Null
        };
        let mut outputs = Outputs::default();
        for (name, output) in parsed.as_object().into_iter().flatten() {
            let text = match &output["value"] {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Number(number) => number.to_string(),
                serde_json::Value::Bool(flag) => flag.to_string(),
                _ => continue,
            };
            if text.is_empty() {
                continue;
            }
            if output["sensitive"] == true {
                outputs.sensitive.insert(name.clone(), text);
            } else {
                outputs.values.insert(name.clone(), text);
            }
        }
        Ok(outputs)
    }

    /// Runs the tool with `args` in `dir`, without input, within `timeout`.
    async fn run(
        &self,
        dir: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Result<std::process::Output, TofuError> {
        let mut command = Command::new(&self.path);
        command
            .args(args)
            .current_dir(dir)
            .env("TF_IN_AUTOMATION", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| TofuError::Timeout {
                tool: self.clone(),
                timeout,
            })?
            .map_err(|source| TofuError::Spawn {
                tool: self.clone(),
                source,
            })
    }
}
