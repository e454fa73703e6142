//! OpenTofu with schema-serving stand-ins of its providers, so `tofu init`,
//! `tofu validate` and `tofu test` (with `mock_provider`) run offline.
//!
//! The real provider plugins cannot be downloaded here. Everything `tofu
//! validate` checks comes from a provider's schema, which OpenTofu asks for
//! over the plugin protocol; `tests/providerschema`'s
//! `terraform-provider-schema` serves a schema file and refuses every call
//! that would touch real infrastructure. [`ProviderMirror`] lays copies of it
//! out as a filesystem mirror, one per provider with its `schema.json`, and
//! names the mirror in a CLI configuration file (`TF_CLI_CONFIG_FILE`).
//!
//! Schemas, `<type>-<version>.json` in the format of `tofu providers schema
//! -json`, come from (first found wins):
//! 1. `$PHD_PROVIDER_SCHEMAS`, else `../shared/provider-schemas/` next to the
//!    workspace: real schemas, printed by OpenTofu from the real provider
//!    releases (data kept outside the repository);
//! 2. `$PHD_CACHE_DIR/provider-schemas/`: schemas that
//!    `scripts/install-test-tools` rebuilds from CDK Terrain's prebuilt
//!    provider packages on npm (`@cdktn/provider-aws`, `@cdktn/provider-random`)
//!    with `tests/providerschema`'s `schema-from-cdktn`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result, bail};

use crate::cache_dir;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Where a schema was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// Printed by `tofu providers schema -json` from the real provider.
    Real,
    /// Rebuilt from a CDK Terrain package: no `sensitive`, `deprecated` or
    /// write-only flags, no descriptions, block counts only 0/1 (see
    /// `tests/providerschema/cdktn/doc.go`).
    Rebuilt,
}

/// One provider's schema file.
#[derive(Debug, Clone)]
pub struct ProviderSchema {
    /// The provider type, as in `required_providers` (`aws`).
    pub name: String,
    /// Its address in the schema file (`registry.opentofu.org/hashicorp/aws`).
    pub source: String,
    /// The release the schema belongs to (`6.66.0`).
    pub version: String,
    pub path: PathBuf,
    pub origin: SchemaOrigin,
}

fn real_schema_dir() -> PathBuf {
    std::env::var_os("PHD_PROVIDER_SCHEMAS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(WORKSPACE).join("../shared/provider-schemas"))
}

/// The schema of provider `name`: see the module documentation for where it
/// is looked for. `Err` says where it looked.
pub fn find_schema(name: &str) -> Result<ProviderSchema> {
    let places = [
        (real_schema_dir(), SchemaOrigin::Real),
        (cache_dir().join("provider-schemas"), SchemaOrigin::Rebuilt),
    ];
    for (dir, origin) in &places {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|file| file.to_str())
                    .is_some_and(|file| {
                        file.strip_prefix(name)
                            .and_then(|rest| rest.strip_prefix('-'))
                            .is_some_and(|rest| {
                                rest.ends_with(".json")
                                    && rest.starts_with(|c: char| c.is_ascii_digit())
                            })
                    })
            })
            .collect();
        files.sort();
        let Some(path) = files.pop() else {
            continue;
        };
        let file = path
            .file_name()
            .and_then(|file| file.to_str())
            .unwrap_or_default();
        let version = file[name.len() + 1..file.len() - ".json".len()].to_owned();
        let source = schema_source(&path)?;
        return Ok(ProviderSchema {
            name: name.to_owned(),
            source,
            version,
            path,
            origin: origin.clone(),
        });
    }
    bail!(
        "no schema of the {name} provider: looked for {name}-<version>.json in {} (set PHD_PROVIDER_SCHEMAS to a folder of `tofu providers schema -json` files) and {} (scripts/install-test-tools rebuilds the aws and random schemas there)",
        places[0].0.display(),
        places[1].0.display()
    )
}

/// The provider address a schema file describes (its one `provider_schemas`
/// key), read without parsing the whole file into a tree.
fn schema_source(path: &Path) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Document {
        provider_schemas: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let document: Document =
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    let mut keys = document.provider_schemas.keys();
    match (keys.next(), keys.next()) {
        (Some(source), None) => Ok(source.clone()),
        _ => bail!("{}: expected exactly one provider", path.display()),
    }
}

/// A filesystem mirror of schema-serving providers and the CLI configuration
/// that makes OpenTofu install from it only. Removed on drop.
pub struct ProviderMirror {
    dir: tempfile::TempDir,
    pub providers: Vec<ProviderSchema>,
}

impl ProviderMirror {
    /// A mirror with each provider of `names` (`["aws", "random"]`). `Err`
    /// when a schema or the stand-in binary is missing, saying which and where
    /// it was looked for.
    pub fn new(names: &[&str]) -> Result<Self> {
        let binary = cache_dir().join("bin").join("terraform-provider-schema");
        if !binary.is_file() {
            bail!(
                "{} is not built: run scripts/install-test-tools",
                binary.display()
            );
        }
        let dir = tempfile::tempdir().context("temporary directory")?;
        let mut providers = Vec::new();
        for name in names {
            let schema = find_schema(name)?;
            let package = dir
                .path()
                .join("mirror")
                .join(&schema.source)
                .join(&schema.version)
                .join(format!(
                    "{}_{}",
                    std::env::consts::OS,
                    go_arch(std::env::consts::ARCH)
                ));
            std::fs::create_dir_all(&package)
                .with_context(|| format!("create {}", package.display()))?;
            // A copy, not a link: the program finds its schema.json next to
            // the path it was started from, after links are resolved.
            let program = package.join(format!(
                "terraform-provider-{}_v{}",
                schema.name, schema.version
            ));
            std::fs::copy(&binary, &program)
                .with_context(|| format!("copy {} to {}", binary.display(), program.display()))?;
            std::fs::copy(&schema.path, package.join("schema.json"))
                .with_context(|| format!("copy {}", schema.path.display()))?;
            providers.push(schema);
        }
        let config = format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = {:?}\n  }}\n}}\n",
            dir.path().join("mirror").display().to_string()
        );
        std::fs::write(dir.path().join("tofurc"), config).context("write tofurc")?;
        Ok(Self { dir, providers })
    }

    /// `tofu args…` in `workdir`, installing providers from this mirror only.
    pub fn tofu(&self, workdir: &Path, args: &[&str]) -> Output {
        let tofu = crate::tool("tofu");
        Command::new(&tofu)
            .args(args)
            .current_dir(workdir)
            .env("TF_CLI_CONFIG_FILE", self.dir.path().join("tofurc"))
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .output()
            .unwrap_or_else(|error| panic!("run {}: {error}", tofu.display()))
    }

    /// `tofu init -backend=false` then `tofu validate -json` in `workdir`;
    /// panics when init fails. The diagnostics of validate, as
    /// `(severity, summary, detail)`, empty when valid.
    pub fn validate(&self, workdir: &Path) -> Vec<Diagnostic> {
        let init = self.tofu(
            workdir,
            &["init", "-backend=false", "-input=false", "-no-color"],
        );
        assert!(
            init.status.success(),
            "tofu init in {}:\n{}{}",
            workdir.display(),
            String::from_utf8_lossy(&init.stdout),
            String::from_utf8_lossy(&init.stderr)
        );
        let validate = self.tofu(workdir, &["validate", "-json", "-no-color"]);
        #[derive(serde::Deserialize)]
        struct Report {
            #[serde(default)]
            diagnostics: Vec<Diagnostic>,
        }
        let report: Report = serde_json::from_slice(&validate.stdout).unwrap_or_else(|error| {
            panic!(
                "tofu validate -json in {}: {error}\n{}{}",
                workdir.display(),
                String::from_utf8_lossy(&validate.stdout),
                String::from_utf8_lossy(&validate.stderr)
            )
        });
        report.diagnostics
    }
}

/// One diagnostic of `tofu validate -json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Diagnostic {
    pub severity: String,
    pub summary: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub range: Option<Range>,
}

/// Where a diagnostic points.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Range {
    pub filename: String,
    pub start: Position,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Position {
    pub line: u32,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.range {
            Some(range) => write!(
                f,
                "{}: {}:{}: {}: {}",
                self.severity, range.filename, range.start.line, self.summary, self.detail
            ),
            None => write!(f, "{}: {}: {}", self.severity, self.summary, self.detail),
        }
    }
}

/// Go's name of a CPU architecture, as in provider package directories.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
