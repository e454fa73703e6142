//! The YAML this plugin ships (`manifests/` of the repository), embedded at
//! build time so the binary works offline and never applies manifests of
//! another version than itself.

use include_dir::{Dir, include_dir};

use crate::manifest::ManifestSource;

static MANIFESTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../manifests");

/// The Argo CD RBAC policy defining the roles `phd-admin`, `phd-developer`, `phd-readonly`.
pub fn argocd_policy() -> &'static str {
    MANIFESTS
        .get_file("argocd/policy.csv")
        .and_then(|file| file.contents_utf8())
        .unwrap_or_default()
}

/// The ClusterRoles of users' Argo Workflows identities: `phd-argo-admin`,
/// `phd-argo-developer`, `phd-argo-readonly`.
pub fn user_roles() -> ManifestSource {
    ManifestSource::Embedded {
        name: "manifests/rbac/user-roles.yaml".to_owned(),
        text: MANIFESTS
            .get_file("rbac/user-roles.yaml")
            .and_then(|file| file.contents_utf8())
            .unwrap_or_default(),
    }
}

/// Every ClusterWorkflowTemplate manifest in `manifests/workflow-templates/`, by file name.
pub fn workflow_templates() -> Vec<ManifestSource> {
    let Some(dir) = MANIFESTS.get_dir("workflow-templates") else {
        return Vec::new();
    };
    let mut sources: Vec<ManifestSource> = dir
        .files()
        .filter(|file| {
            file.path()
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .filter_map(|file| {
            Some(ManifestSource::Embedded {
                name: format!("manifests/{}", file.path().display()),
                text: file.contents_utf8()?,
            })
        })
        .collect();
    sources.sort_by_key(ToString::to_string);
    sources
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_policy_defines_the_three_roles() {
        let policy = super::argocd_policy();
        for role in ["role:phd-admin", "role:phd-developer", "role:phd-readonly"] {
            assert!(policy.contains(role), "{role} missing");
        }
    }
}
