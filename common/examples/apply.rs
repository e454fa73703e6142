//! Applies a manifest file (or URL) to the cluster of the current kubeconfig
//! with phd's apply engine, and prints what happened to each object.
//!
//! ```sh
//! cargo run --release -p phd-common --example apply -- manifest.yaml [default-namespace]
//! ```

use phd_common::apply::{Applied, Applier};
use phd_common::manifest::ManifestSource;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let location = args.next().ok_or("usage: apply MANIFEST [NAMESPACE]")?;
    let namespace = args.next();
    let documents = ManifestSource::from_location(&location).documents().await?;
    let client = kube::Client::try_default().await?;
    let print = |applied: &Applied| println!("{applied}");
    let report = Applier::new(client)
        .apply(&documents, namespace.as_deref(), &print)
        .await?;
    eprintln!("{}", report.summary());
    Ok(())
}
