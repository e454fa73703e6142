//! Naming rules: what a name must look like before anything is created with it.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: String },
    #[error(
        "{what} {value:?} is not valid: use lower-case letters, digits and '-', starting with a \
         letter and ending with a letter or digit, at most {max} characters"
    )]
    NotALabel {
        what: String,
        value: String,
        max: usize,
    },
    #[error("{what} {value:?} is too long: at most {max} characters, because {why}")]
    TooLong {
        what: String,
        value: String,
        max: usize,
        why: &'static str,
    },
    #[error("{what} {value:?} is not a valid DNS name (for example: example.com)")]
    NotADomain { what: String, value: String },
    #[error(
        "{what} {value:?} is not a repository URL such as \
         https://github.com/acme/phd-acme-cluster.git or git@github.com:acme/phd-acme-cluster.git"
    )]
    NotARepositoryUrl { what: String, value: String },
    #[error("{what} {value:?} is not a valid version or git ref (for example: v3.2.3)")]
    NotAVersion { what: String, value: String },
    #[error(
        "instance name {value:?} is reserved: an instance's namespace has its name, and {value} is {why}; choose another name"
    )]
    Reserved { value: String, why: String },
}

/// Namespaces an instance may never be named after, because an instance's
/// namespace has the instance's name and `instance delete` deletes it:
/// Kubernetes' own (`default` and every `kube-*`), Argo's (`argo`,
/// `argocd`), cert-manager's, and the ingress controllers phd installs or
/// documents (Harmony's `harmony`, `ingress-nginx`). The cluster's ingress
/// namespace, when set to something else, is checked by
/// [`check_instance_namespace`].
pub const RESERVED_NAMESPACES: [&str; 6] = [
    "default",
    "argo",
    "argocd",
    "cert-manager",
    "harmony",
    "ingress-nginx",
];

/// The longest DNS-1123 label.
pub const MAX_LABEL_LENGTH: usize = 63;

/// A DNS-1123 label that starts with a letter: what Kubernetes needs of
/// namespace names and what phd needs of names it derives others from.
pub fn check_label(what: &str, value: &str) -> Result<(), NameError> {
    check_label_within(what, value, MAX_LABEL_LENGTH)
}

/// Like [`check_label`], with a tighter length limit.
pub fn check_label_within(what: &str, value: &str, max: usize) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty {
            what: what.to_owned(),
        });
    }
    let bytes = value.as_bytes();
    let valid = bytes.len() <= max
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(NameError::NotALabel {
            what: what.to_owned(),
            value: value.to_owned(),
            max,
        })
    }
}

/// The longest instance name: the MySQL user `phd-<name>` may have at most 32
/// characters, which is the tightest of the limits on names derived from it
/// (bucket `phd-<name>-<7 characters>` at most 63, namespace at most 63).
pub const MAX_INSTANCE_NAME_LENGTH: usize = 28;

/// An instance name: a DNS-1123 label short enough for every derived name.
pub fn check_instance_name(value: &str) -> Result<(), NameError> {
    match check_label_within("instance name", value, MAX_LABEL_LENGTH) {
        Ok(()) if value.len() > MAX_INSTANCE_NAME_LENGTH => Err(NameError::TooLong {
            what: "instance name".to_owned(),
            value: value.to_owned(),
            max: MAX_INSTANCE_NAME_LENGTH,
            why: "its MySQL user phd-<name> may have at most 32 characters",
        }),
        Err(NameError::NotALabel { what, value, .. }) => Err(NameError::NotALabel {
            what,
            value,
            max: MAX_INSTANCE_NAME_LENGTH,
        }),
        other => other,
    }
}

/// An instance name that is also free to be the instance's namespace: not
/// one of [`RESERVED_NAMESPACES`], not `kube-*`, and not the cluster's
/// ingress controller namespace (`ingress_namespace`, from the settings).
/// Every `instance` verb checks this before it changes anything.
pub fn check_instance_namespace(value: &str, ingress_namespace: &str) -> Result<(), NameError> {
    check_instance_name(value)?;
    let why = if value.starts_with("kube-") {
        Some("a Kubernetes system namespace (kube-*)".to_owned())
    } else if value == ingress_namespace {
        Some("the ingress controller's namespace".to_owned())
    } else if RESERVED_NAMESPACES.contains(&value) {
        Some(match value {
            "default" => "Kubernetes' default namespace".to_owned(),
            "argo" => "Argo Workflows' namespace".to_owned(),
            "argocd" => "Argo CD's namespace".to_owned(),
            "cert-manager" => "cert-manager's namespace".to_owned(),
            _ => "an ingress controller's namespace".to_owned(),
        })
    } else {
        None
    };
    match why {
        Some(why) => Err(NameError::Reserved {
            value: value.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// A DNS name of at least two labels, each a DNS-1123 label (digits may lead).
pub fn check_domain(value: &str) -> Result<(), NameError> {
    let what = "the cluster domain";
    if value.is_empty() {
        return Err(NameError::Empty {
            what: what.to_owned(),
        });
    }
    let valid = is_dns_subdomain(value) && value.contains('.');
    if valid {
        Ok(())
    } else {
        Err(NameError::NotADomain {
            what: what.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A DNS-1123 subdomain: at most 253 characters of dot-separated labels of
/// lower-case letters, digits and '-' (digits may lead), each 1–63 long and
/// not starting or ending with '-'. The rule of Kubernetes object names and
/// of DNS host names.
pub fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_LABEL_LENGTH
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

/// A git repository URL Argo CD and git accept (https, http, ssh or
/// scp-like `git@host:path`), of characters that need no quoting anywhere.
pub fn check_repository_url(what: &str, url: &str) -> Result<(), NameError> {
    let scheme_ok = ["https://", "http://", "ssh://", "git@"]
        .iter()
        .any(|prefix| url.starts_with(prefix) && url.len() > prefix.len());
    let characters_ok = url.len() <= 2048
        && url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/@%+".contains(&b));
    if scheme_ok && characters_ok {
        Ok(())
    } else {
        Err(NameError::NotARepositoryUrl {
            what: what.to_owned(),
            value: url.to_owned(),
        })
    }
}

/// The slug of a display name, the one rule every name phd derives from a
/// cluster name follows (repository `phd-<slug>-cluster`, kubeconfig context
/// `phd-<slug>`, the template's `cluster_slug`): lower-case ASCII letters and
/// digits; every run of other characters becomes one `-`, none at either end.
/// "Acme & Co Learning" → `acme-co-learning`.
pub fn slug(name: &str) -> String {
    name.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// A release tag or git ref that is safe to put in a URL path.
pub fn check_version(what: &str, value: &str) -> Result<(), NameError> {
    let valid = !value.is_empty()
        && value.len() <= 100
        && !value.starts_with(['-', '.'])
        && !value.contains("..")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'));
    if valid {
        Ok(())
    } else {
        Err(NameError::NotAVersion {
            what: what.to_owned(),
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for good in ["a", "production", "staging-2", "a1"] {
            assert_eq!(check_label("x", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Prod",
            "1st",
            "-a",
            "a-",
            "a_b",
            "a b",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(check_label("x", bad).is_err(), "{bad:?}");
        }
        assert!(check_label_within("x", "abcdef", 5).is_err());
    }

    #[test]
    fn instance_names() {
        assert_eq!(check_instance_name("demo"), Ok(()));
        assert_eq!(check_instance_name(&"a".repeat(28)), Ok(()));
        let error = check_instance_name(&"a".repeat(29)).expect_err("too long");
        assert!(
            error
                .to_string()
                .contains("at most 28 characters, because its MySQL user")
        );
        for bad in ["", "Demo", "my_site", "1site", "-site", "..", "a b"] {
            assert!(check_instance_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instance_names_that_are_system_namespaces_are_reserved() {
        for reserved in [
            "default",
            "argo",
            "argocd",
            "cert-manager",
            "harmony",
            "ingress-nginx",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "kube-anything",
            "my-ingress",
        ] {
            let error = check_instance_namespace(reserved, "my-ingress").expect_err(reserved);
            assert!(
                error.to_string().contains("is reserved"),
                "{reserved}: {error}"
            );
        }
        for free in ["demo", "argo2", "kube", "kubernetes-course", "defaults"] {
            assert_eq!(check_instance_namespace(free, "harmony"), Ok(()), "{free}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Acme & Co Learning"), "acme-co-learning");
        assert_eq!(slug("  My_School  2 "), "my-school-2");
        assert_eq!(slug("demo"), "demo");
        assert_eq!(slug("--"), "");
    }

    #[test]
    fn domains() {
        for good in ["example.com", "edx.my-school.org", "1.example.com"] {
            assert_eq!(check_domain(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "localhost",
            "Example.com",
            "a..b",
            "-a.com",
            "a.com.",
            "a_b.com",
            "a b.com",
        ] {
            assert!(check_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        for good in ["v3.2.3", "v3.7.4", "stable", "release-3.2", "v1.0.0+build"] {
            assert_eq!(check_version("v", good), Ok(()), "{good}");
        }
        for bad in ["", "../etc", "v1/../../x", "v1 2", "-rf", "a?b=c"] {
            assert!(check_version("v", bad).is_err(), "{bad:?}");
        }
    }
}
