//! `kubectl phd version`

use phd_common::config::{DEFAULT_ARGOCD_VERSION, DEFAULT_WORKFLOWS_VERSION};
use serde::Serialize;

use crate::cli::{OutputFormat, VersionArgs};
use crate::output;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    version: &'static str,
    argocd_version: &'static str,
    argo_workflows_version: &'static str,
}

pub fn show(args: &VersionArgs) -> anyhow::Result<()> {
    let info = VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        argocd_version: DEFAULT_ARGOCD_VERSION,
        argo_workflows_version: DEFAULT_WORKFLOWS_VERSION,
    };
    match args.output {
        OutputFormat::Table => {
            println!("kubectl-phd {}", info.version);
            println!(
                "installs Argo CD {} and Argo Workflows {} by default",
                info.argocd_version, info.argo_workflows_version
            );
        }
        format => output::print_structured(&info, format)?,
    }
    Ok(())
}
