//! Argo Workflows as phd uses them: submit a Workflow (replacing a failed one
//! of the same name), and wait for several at once.

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::Value;

use crate::wait::{self, WaitError};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("cannot submit Workflow {namespace}/{name}")]
    Submit {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read Workflow {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete Workflow {namespace}/{name}, which phd did not submit")]
    RemoveForeign {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Workflow {namespace}/{name} is not a valid object")]
    Malformed {
        namespace: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the API server did not answer within the {}s deadline while waiting for Workflows in {namespace}",
        timeout.as_secs()
    )]
    Stalled {
        namespace: String,
        timeout: Duration,
    },
    #[error("the failed Workflow {namespace}/{name} was not removed within {timeout:?}")]
    NotRemoved {
        namespace: String,
        name: String,
        timeout: Duration,
    },
}

/// The Workflow kind of Argo Workflows.
pub fn resource() -> ApiResource {
    crate::argo::Kind::Workflow.resource()
}

/// Where a Workflow is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Submitted, not yet picked up or running.
    Pending,
    Running,
    Succeeded,
    /// Failed or Error, with what went wrong.
    Failed(String),
    /// Deleted while being waited for.
    Gone,
}

impl Phase {
    pub fn is_done(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed(_) | Self::Gone)
    }

    /// The phase of a Workflow object.
    pub fn of(workflow: &Value) -> Self {
        let status = &workflow["status"];
        match status["phase"].as_str().unwrap_or_default() {
            "Succeeded" => Self::Succeeded,
            "Failed" | "Error" => Self::Failed(failure_message(status)),
            "Running" => Self::Running,
            _ => Self::Pending,
        }
    }
}

/// The step that failed and its message, else the Workflow's own message.
fn failure_message(status: &Value) -> String {
    let failed_step = status["nodes"].as_object().and_then(|nodes| {
        nodes.values().find(|node| {
            matches!(node["phase"].as_str(), Some("Failed" | "Error"))
                && matches!(node["type"].as_str(), Some("Pod" | "Container"))
        })
    });
    match failed_step {
        Some(node) => format!(
            "step {} failed: {}",
            node["displayName"]
                .as_str()
                .or(node["name"].as_str())
                .unwrap_or("?"),
            node["message"].as_str().unwrap_or("no message")
        ),
        None => status["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned(),
    }
}

/// What [`submit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Created,
    /// A failed Workflow of the same name was deleted and this one created.
    Replaced,
    /// A Workflow of the same name that has not failed is kept and waited for.
    Kept(Phase),
}

fn api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource())
}

/// Submits `workflow` (a complete Workflow object with metadata.name and
/// namespace). A failed Workflow of the same name is replaced; one that is
/// running or succeeded is kept, so a re-run picks up where the last stopped.
pub async fn submit(client: &kube::Client, workflow: &Value) -> Result<Submitted, WorkflowError> {
    let namespace = workflow["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let name = workflow["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let workflows = api(client, &namespace);
    let read_error = |source| WorkflowError::Read {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let mut replaced = false;
    if let Some(existing) = workflows.get_opt(&name).await.map_err(read_error)? {
        let existing = serde_json::to_value(existing).unwrap_or_default();
        match Phase::of(&existing) {
            Phase::Failed(_) => {
                workflows
                    .delete(&name, &DeleteParams::foreground())
                    .await
                    .map_err(read_error)?;
                wait_until_gone(&workflows, &namespace, &name).await?;
                replaced = true;
            }
            phase => return Ok(Submitted::Kept(phase)),
        }
    }
    let object: DynamicObject =
        serde_json::from_value(workflow.clone()).map_err(|source| WorkflowError::Malformed {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    workflows
        .create(&PostParams::default(), &object)
        .await
        .map_err(|source| WorkflowError::Submit {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    Ok(if replaced {
        Submitted::Replaced
    } else {
        Submitted::Created
    })
}

async fn wait_until_gone(
    workflows: &Api<DynamicObject>,
    namespace: &str,
    name: &str,
) -> Result<(), WorkflowError> {
    let timeout = Duration::from_secs(60);
    let gone = wait::until(timeout, Duration::from_millis(200), |_| async {
        Ok::<_, kube::Error>(workflows.get_opt(name).await?.is_none().then_some(()))
    });
    gone.await.map_err(|error| match error {
        WaitError::Failed(source) => WorkflowError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        },
        WaitError::TimedOut { timeout } | WaitError::Stalled { timeout } => {
            WorkflowError::NotRemoved {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                timeout,
            }
        }
    })
}

/// Deletes every Workflow of `namespace` that `own` does not recognise
/// (`own` sees each whole Workflow object), in the foreground, and waits
/// until each is gone: its pods (which the API server deletes first, being
/// the Workflow's dependents) can then no longer start with a Secret stored
/// afterwards. Returns the names deleted.
///
/// # Errors
/// [`WorkflowError::Read`] when the list or a deletion is refused,
/// [`WorkflowError::NotRemoved`] when one is still there after a minute.
pub async fn remove_foreign(
    client: &kube::Client,
    namespace: &str,
    own: &(dyn Fn(&Value) -> bool + Sync),
) -> Result<Vec<String>, WorkflowError> {
    let workflows = api(client, namespace);
    let listed = workflows
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|source| WorkflowError::Read {
            namespace: namespace.to_owned(),
            name: "(all)".to_owned(),
            source,
        })?;
    let foreign: Vec<String> = listed
        .items
        .into_iter()
        .filter(|workflow| !own(&serde_json::to_value(workflow).unwrap_or_default()))
        .filter_map(|workflow| workflow.metadata.name)
        .collect();
    for name in &foreign {
        match workflows.delete(name, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(WorkflowError::RemoveForeign {
                    namespace: namespace.to_owned(),
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    for name in &foreign {
        wait_until_gone(&workflows, namespace, name).await?;
    }
    Ok(foreign)
}

/// The current phase of one Workflow; `Gone` when it does not exist.
pub async fn phase(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Phase, WorkflowError> {
    let found = api(client, namespace)
        .get_opt(name)
        .await
        .map_err(|source| WorkflowError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
    Ok(match found {
        None => Phase::Gone,
        Some(workflow) => Phase::of(&serde_json::to_value(workflow).unwrap_or_default()),
    })
}

/// Sees the phase of every Workflow waited for, and the time waited so far.
pub type WaitProgress<'a> = dyn Fn(&[(String, Phase)], Duration) + Sync + 'a;

/// Waits until every Workflow in `namespace` named in `names` is done, or
/// `timeout` passes; polls them all at once. `progress` sees every poll.
/// Returns the last phase of each, in the order given.
pub async fn wait_all(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
    timeout: Duration,
    progress: &WaitProgress<'_>,
) -> Result<Vec<(String, Phase)>, WorkflowError> {
    // The phases of the last poll, returned as they are when time runs out.
    let last = std::sync::Mutex::new(Vec::new());
    let done = wait::until(timeout, Duration::from_millis(250), |waited| {
        let last = &last;
        async move {
            let phases =
                futures::future::join_all(names.iter().map(|name| phase(client, namespace, name)))
                    .await;
            let mut current = Vec::with_capacity(names.len());
            for (name, phase) in names.iter().zip(phases) {
                current.push((name.clone(), phase?));
            }
            progress(&current, waited);
            let all_done = current.iter().all(|(_, phase)| phase.is_done());
            let mut kept = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *kept = current;
            Ok(all_done.then(|| kept.clone()))
        }
    });
    match done.await {
        Ok(phases) => Ok(phases),
        Err(WaitError::Failed(error)) => Err(error),
        Err(WaitError::TimedOut { .. }) => Ok(last
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)),
        Err(WaitError::Stalled { timeout }) => Err(WorkflowError::Stalled {
            namespace: namespace.to_owned(),
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phases_and_failure_messages() {
        assert_eq!(Phase::of(&json!({})), Phase::Pending);
        assert_eq!(
            Phase::of(&json!({"status": {"phase": "Running"}})),
            Phase::Running
        );
        let failed = json!({"status": {"phase": "Failed", "message": "child failed", "nodes": {
            "a": {"phase": "Succeeded", "type": "Steps", "displayName": "main"},
            "b": {"phase": "Failed", "type": "Pod", "displayName": "create-database", "message": "Access denied for user 'root'"}
        }}});
        assert_eq!(
            Phase::of(&failed),
            Phase::Failed("step create-database failed: Access denied for user 'root'".into())
        );
        let error = json!({"status": {"phase": "Error", "message": "template not found"}});
        assert_eq!(
            Phase::of(&error),
            Phase::Failed("template not found".into())
        );
    }
}
