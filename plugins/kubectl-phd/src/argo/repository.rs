//! `kubectl phd argo repository`: Argo CD's read access to the cluster
//! repository, as the labelled repository Secret Argo CD reads
//! (<https://argo-cd.readthedocs.io/en/stable/operator-manual/declarative-setup/#repositories>).
//! Secret values come from files or standard input, never from arguments.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use phd_common::apply::{Applier, Outcome};
use phd_common::config::Setting;
use phd_common::manifest::Document;
use serde::Serialize;

use super::ARGOCD_NAMESPACE;
use crate::cli::{ArgoRepositoryArgs, ReportFormat};
use crate::output;
use crate::prompt;
use crate::session::Session;

/// The Secret phd writes; one per cluster repository.
pub const REPOSITORY_SECRET: &str = "phd-cluster-repository";
/// The label that makes Argo CD read a Secret as a repository.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    secret: String,
    url: String,
    method: &'static str,
    outcome: Outcome,
}

pub async fn repository(session: &Session, args: &ArgoRepositoryArgs) -> anyhow::Result<()> {
    let url = session
        .settings()
        .require(Setting::Repository, args.url.as_deref(), Some("--url"))?
        .value;
    crate::cluster::check_repository_url("the cluster repository", &url)?;
    let ssh_url = crate::cluster::is_ssh_url(&url);
    let mut data = BTreeMap::from([
        ("type".to_owned(), "git".to_owned()),
        ("url".to_owned(), url.clone()),
    ]);
    let method = if let Some(path) = &args.ssh_key_file {
        if !ssh_url {
            bail!(
                "--ssh-key-file needs an ssh URL, but the cluster repository is {url}: Argo CD matches credentials by URL, so either give the https URL a GitHub App (--github-app-id) or a token (--token-stdin), or use the ssh URL (git@host:owner/name.git) everywhere: \"repository\" in context.json, cluster/*.yml and instances/*/application.yml (cluster create --github-repo git@...)"
            );
        }
        data.insert(
            "sshPrivateKey".into(),
            private_key(path, "--ssh-key-file", &["OPENSSH", "RSA", "EC", ""], false)?,
        );
        "an SSH deploy key"
    } else if let Some(app_id) = args.github_app_id {
        if ssh_url {
            bail!("a GitHub App needs an https URL, not {url}");
        }
        let installation = args
            .github_app_installation_id
            .context("--github-app-installation-id is required with --github-app-id")?;
        let key_file = args
            .github_app_key_file
            .as_deref()
            .context("--github-app-key-file is required with --github-app-id")?;
        data.insert("githubAppID".into(), app_id.to_string());
        data.insert("githubAppInstallationID".into(), installation.to_string());
        data.insert(
            "githubAppPrivateKey".into(),
            // GitHub Apps sign with RSA keys (PKCS#1 as GitHub hands them out, or PKCS#8).
            private_key(key_file, "--github-app-key-file", &["RSA", ""], true)?,
        );
        "a GitHub App"
    } else if args.token_stdin {
        if ssh_url {
            bail!("a token needs an https URL, not {url}");
        }
        let token = prompt::secret_from_stdin("--token-stdin")?;
        if token.chars().any(char::is_whitespace) {
            bail!("the token from standard input contains whitespace");
        }
        data.insert("username".into(), args.username.clone());
        data.insert("password".into(), token);
        "an HTTPS token"
    } else {
        bail!("give one of --ssh-key-file, --github-app-id or --token-stdin");
    };

    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(REPOSITORY_SECRET.to_owned()),
            namespace: Some(ARGOCD_NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([
                (SECRET_TYPE_LABEL.to_owned(), "repository".to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "kubectl-phd".to_owned(),
                ),
            ])),
            ..Default::default()
        },
        data: Some(
            data.into_iter()
                .map(|(key, value)| (key, ByteString(value.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let cluster = session.connect().await?;
    phd_common::argo::require_installed(&cluster.client, &[phd_common::argo::Part::ArgoCd]).await?;
    let document = Document::from_object(
        "Argo CD repository Secret (kubectl-phd)",
        1,
        serde_json::to_value(&secret)?,
    );
    let applied = Applier::new(cluster.client.clone())
        .apply(&[document], Some(ARGOCD_NAMESPACE), &|_| {})
        .await
        .context("cannot write the repository Secret")?;
    let outcome = applied
        .objects
        .first()
        .map(|o| o.outcome)
        .unwrap_or(Outcome::Unchanged);
    let report = Report {
        secret: format!("{ARGOCD_NAMESPACE}/{REPOSITORY_SECRET}"),
        url,
        method,
        outcome,
    };
    match args.output {
        ReportFormat::Name => println!("secret/{REPOSITORY_SECRET}"),
        ReportFormat::Table => output::info(format!(
            "Argo CD reads {} with {} (Secret {}: {})",
            report.url,
            report.method,
            report.secret,
            applied.summary()
        )),
        format => output::print_structured(&report, format)?,
    }
    Ok(())
}

/// A PEM private key from `path`, checked to be one of `kinds` (the word
/// before `PRIVATE KEY` in its header: `RSA`, `OPENSSH`, `EC`, or `` for
/// PKCS#8); with `rsa_only`, a PKCS#8 key must be an RSA one.
fn private_key(path: &Path, flag: &str, kinds: &[&str], rsa_only: bool) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{flag}: cannot read {}", path.display()))?;
    // PEM is printable text in lines (issue 29: control characters were
    // accepted in secrets); named by place, never shown.
    if let Some((line, found)) = text.lines().enumerate().find_map(|(index, line)| {
        phd_common::password::control_character(line.trim_end_matches('\r'))
            .map(|found| (index + 1, found))
    }) {
        bail!(
            "{flag}: {} holds {found} on line {line}; a PEM private key is printable text",
            path.display()
        );
    }
    let header = text
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("-----BEGIN ") && line.ends_with("PRIVATE KEY-----"));
    let Some(header) = header else {
        bail!("{flag}: {} holds no PEM private key", path.display());
    };
    let kind = header
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches("PRIVATE KEY-----")
        .trim();
    let name = |k: &str| {
        if k.is_empty() {
            "PKCS#8".to_owned()
        } else {
            k.to_owned()
        }
    };
    if !kinds.contains(&kind) {
        let expected: Vec<String> = kinds.iter().map(|k| name(k)).collect();
        bail!(
            "{flag}: {} holds a key of type {}; expected {}",
            path.display(),
            name(kind),
            expected.join(" or ")
        );
    }
    if rsa_only && kind.is_empty() && !is_pkcs8_rsa(&text) {
        bail!(
            "{flag}: {} holds a PKCS#8 key that is not RSA; GitHub App keys are RSA",
            path.display()
        );
    }
    Ok(text)
}

/// Whether a PKCS#8 PEM key is an RSA key: its DER names the
/// rsaEncryption algorithm (OID 1.2.840.113549.1.1.1, RFC 8017 appendix C).
fn is_pkcs8_rsa(pem: &str) -> bool {
    use base64::Engine as _;
    const RSA_ENCRYPTION: [u8; 11] = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .is_ok_and(|der| {
            der.windows(RSA_ENCRYPTION.len())
                .any(|w| w == RSA_ENCRYPTION)
        })
}
