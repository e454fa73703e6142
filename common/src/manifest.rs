//! Multi-document YAML manifests: where they come from (embedded in the
//! binary, a file, a URL) and their documents as untyped objects.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot download manifest {url}; check the address and the network, or pass a local file"
    )]
    Download {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("manifest location {0} is neither a file nor an http:// or https:// URL")]
    UnsupportedScheme(String),
    #[error("{source_name} is not valid YAML")]
    Parse {
        source_name: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{source_name}, document {index}: {problem}")]
    Invalid {
        source_name: String,
        index: usize,
        problem: String,
    },
}

/// Where a manifest comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// Shipped inside the binary, so the plugin never applies manifests of
    /// another version than itself.
    Embedded {
        name: String,
        text: &'static str,
    },
    File(PathBuf),
    Url(String),
}

impl ManifestSource {
    /// A URL when `location` starts with `http://` or `https://`, else a path.
    pub fn from_location(location: &str) -> Self {
        // Any `scheme://` is a URL; one other than http(s) fails to download
        // with its own words, not as a missing file (from a trial).
        if location.contains("://") {
            Self::Url(location.to_owned())
        } else {
            Self::File(PathBuf::from(location))
        }
    }

    /// The manifest's text.
    pub async fn load(&self) -> Result<String, ManifestError> {
        match self {
            Self::Embedded { text, .. } => Ok((*text).to_owned()),
            Self::File(path) => {
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|source| ManifestError::Read {
                        path: path.clone(),
                        source,
                    })
            }
            Self::Url(url) if !is_http(url) => Err(ManifestError::UnsupportedScheme(url.clone())),
            Self::Url(url) => download(url)
                .await
                .map_err(|source| ManifestError::Download {
                    url: url.clone(),
                    source,
                }),
        }
    }

    /// The manifest's documents.
    pub async fn documents(&self) -> Result<Vec<Document>, ManifestError> {
        let text = self.load().await?;
        parse(&self.to_string(), &text)
    }
}

impl fmt::Display for ManifestSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded { name, .. } => write!(f, "{name} (built in)"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

async fn download(url: &str) -> Result<String, reqwest::Error> {
    let client = crate::http::client_builder(DOWNLOAD_TIMEOUT).build()?;
    client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// One Kubernetes object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Where it came from, for error messages: the manifest's name.
    pub source_name: String,
    /// 1-based position in its manifest.
    pub index: usize,
    pub object: Value,
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> Option<&str> {
        self.object["metadata"]["name"].as_str()
    }

    pub fn generate_name(&self) -> Option<&str> {
        self.object["metadata"]["generateName"].as_str()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    /// `Kind name` (or `Kind name-*` for generated names), for messages.
    pub fn describe(&self) -> String {
        self.describe_in(None)
    }

    /// [`Document::describe`] with the namespace the object is sent to:
    /// `Kind namespace/name`.
    pub fn describe_in(&self, namespace: Option<&str>) -> String {
        let name = match (self.name(), self.generate_name()) {
            (Some(name), _) => name.to_owned(),
            (None, Some(prefix)) => format!("{prefix}*"),
            (None, None) => return self.kind().to_owned(),
        };
        match namespace {
            Some(namespace) => format!("{} {namespace}/{name}", self.kind()),
            None => format!("{} {name}", self.kind()),
        }
    }

    /// Builds a document from a typed or `json!` object, for objects phd makes itself.
    pub fn from_object(source_name: &str, index: usize, object: Value) -> Self {
        Self {
            source_name: source_name.to_owned(),
            index,
            object,
        }
    }
}

/// YAML as Kubernetes reads it, with two deliberate choices: only `true` and
/// `false` are booleans (a ConfigMap value `y` stays the string "y"), and
/// `0644` is octal as kubectl reads file modes. Limits are raised for upstream
/// install manifests, whose CRD schemas are large and deeply nested.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 50_000_000;
    budget.max_nodes = 20_000_000;
    budget.max_depth = 1_000;
    budget.max_documents = 100_000;
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.legacy_octal_numbers = true;
    options.budget = Some(budget);
    options
}

/// Splits a multi-document YAML stream into objects. Empty documents are
/// skipped; `kind: List` is flattened; every object must have an apiVersion,
/// a kind and a name or generateName.
pub fn parse(source_name: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let values: Vec<Value> = serde_saphyr::from_multiple_with_options(text, yaml_options())
        .map_err(|source| ManifestError::Parse {
            source_name: source_name.to_owned(),
            source: Box::new(source),
        })?;
    let mut documents = Vec::new();
    let invalid = |index: usize, problem: &str| ManifestError::Invalid {
        source_name: source_name.to_owned(),
        index,
        problem: problem.to_owned(),
    };
    for (position, value) in values.into_iter().enumerate() {
        let index = position + 1;
        let objects = match value {
            Value::Null => continue,
            Value::Object(ref map) if map.is_empty() => continue,
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                match map.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => return Err(invalid(index, "a List without items")),
                }
            }
            Value::Object(_) => vec![value],
            _ => {
                return Err(invalid(
                    index,
                    "not a Kubernetes object (expected a mapping)",
                ));
            }
        };
        for object in objects {
            let document = Document {
                source_name: source_name.to_owned(),
                index,
                object,
            };
            if document.api_version().is_empty() || document.kind().is_empty() {
                return Err(invalid(index, "missing apiVersion or kind"));
            }
            if document.name().is_none() && document.generate_name().is_none() {
                return Err(invalid(
                    index,
                    &format!(
                        "{} has neither metadata.name nor metadata.generateName",
                        document.kind()
                    ),
                ));
            }
            documents.push(document);
        }
    }
    Ok(documents)
}

/// Whether `url` is one this tool downloads: http:// or https://.
fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_stream_with_empty_documents_and_lists() {
        let text = "---\n# just a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: b\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    generateName: c-\n";
        let documents = parse("test", text).expect("parses");
        let described: Vec<String> = documents.iter().map(Document::describe).collect();
        assert_eq!(described, ["ConfigMap a", "Secret b", "Secret c-*"]);
    }

    /// From a trial: `ftp://…` was read as a file path ("No such file").
    #[tokio::test]
    async fn a_location_with_another_scheme_is_named_as_such() {
        let error = ManifestSource::from_location("ftp://example.org/install.yaml")
            .load()
            .await
            .expect_err("ftp");
        assert!(
            matches!(error, ManifestError::UnsupportedScheme(_)),
            "{error}"
        );
        assert!(matches!(
            ManifestSource::from_location("manifests/install.yaml"),
            ManifestSource::File(_)
        ));
    }

    #[test]
    fn objects_without_identity_are_refused_with_their_position() {
        let error = parse("m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nkind: ConfigMap\nmetadata:\n  name: x\n")
            .expect_err("no apiVersion");
        assert_eq!(
            error.to_string(),
            "m.yaml, document 2: missing apiVersion or kind"
        );
        let error = parse("m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
            .expect_err("no name");
        assert!(
            error
                .to_string()
                .contains("neither metadata.name nor metadata.generateName")
        );
        let error = parse("m.yaml", "- 1\n- 2\n").expect_err("a list");
        assert!(error.to_string().contains("not a Kubernetes object"));
    }

    #[test]
    fn yaml_scalars_as_kubernetes_needs_them() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  y: y\n  on: 'on'\n  mode: 0644\n  flag: true\n";
        let documents = parse("t", text).expect("parses");
        let data = &documents[0].object["data"];
        assert_eq!(data["y"], "y");
        assert_eq!(data["mode"], 420);
        assert_eq!(data["flag"], true);
    }

    #[test]
    fn broken_yaml_names_the_source() {
        let error = parse("broken.yaml", "a: [1, 2\n").expect_err("unterminated");
        assert!(
            error
                .to_string()
                .starts_with("broken.yaml is not valid YAML")
        );
    }

    #[test]
    fn locations_are_urls_or_paths() {
        assert_eq!(
            ManifestSource::from_location("https://x/y.yaml"),
            ManifestSource::Url("https://x/y.yaml".into())
        );
        assert_eq!(
            ManifestSource::from_location("./y.yaml"),
            ManifestSource::File("./y.yaml".into())
        );
    }
}
