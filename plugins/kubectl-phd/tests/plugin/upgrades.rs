//! Release upgrades of an instance (issue: restore points, clones and
//! release upgrades): what the render must do so that the next sync of a
//! new release does not stall on data the new release cannot read.

use std::path::Path;

use crate::common::{config, repo_with, text, update};

/// The Meilisearch Deployment's claim and the PersistentVolumeClaims of a
/// rendered env/, as kustomize builds it.
fn meilisearch_volumes(env: &Path) -> (String, String, Vec<String>) {
    let (_, objects) = crate::instances::kustomize(env);
    let deployment = objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "meilisearch")
        .expect("Deployment meilisearch");
    let spec = &deployment["spec"]["template"]["spec"];
    let image = spec["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_owned();
    let claim = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .expect("claim")
        .to_owned();
    let claims = objects
        .iter()
        .filter(|o| o["kind"] == "PersistentVolumeClaim")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    (image, claim, claims)
}

/// Tutor 21 runs Meilisearch v1.8.4, Tutor 22 v1.36.0, which refuses the old
/// data ("database version (1.8.4) is incompatible") and crash-loops, so
/// Argo CD never leaves wave 0. The render names Meilisearch's volume after
/// its release: an upgrade starts on a new volume, which the CMS init hook
/// of that sync fills again, and the old one is pruned.
#[test]
fn an_upgrade_moves_meilisearch_to_a_volume_of_its_release() {
    let name = "up";
    let old = config(name).replace(
        "PHD_TUTOR_VERSION: \"22.0.3\"",
        "PHD_TUTOR_VERSION: \"21.0.9\"",
    );
    let (repo, dir) = repo_with(name, &old);
    let output = update(&repo, name, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let (image21, claim21, claims21) = meilisearch_volumes(&dir.join("env"));
    assert!(image21.ends_with(":v1.8.4"), "{image21}");
    assert_eq!(claim21, "meilisearch-v1-8-4");
    assert!(claims21.contains(&claim21), "{claims21:?}");

    let output = update(&repo, name, &["--tutor-version", "22.0.3"]);
    assert!(output.status.success(), "{}", text(&output));
    let (image22, claim22, claims22) = meilisearch_volumes(&dir.join("env"));
    assert!(image22.ends_with(":v1.36.0"), "{image22}");
    assert_eq!(claim22, "meilisearch-v1-36-0");
    assert!(claims22.contains(&claim22), "{claims22:?}");
    // The old volume is no longer in git: Argo CD prunes it.
    assert!(!claims22.contains(&claim21), "{claims22:?}");
    // And the CMS init hook of that sync refills the index, as the empty
    // volume asks, while on other syncs it does not reindex every course
    // again (hours on a large site).
    let (_, objects) = crate::instances::kustomize(&dir.join("env"));
    let cms_hook: String = objects
        .iter()
        .filter(|o| {
            o["kind"] == "Job"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("drydock-cms-job"))
        })
        .map(|o| o["spec"]["template"]["spec"]["containers"].to_string())
        .collect();
    assert!(
        cms_hook.contains("reindex_course --active")
            && cms_hook.contains("the full reindex only when Meilisearch holds no document"),
        "the CMS init hook: {cms_hook}"
    );
    assert_eq!(
        cms_hook.matches("reindex_course --active").count(),
        1,
        "an unguarded reindex is left: {cms_hook}"
    );

    // A custom image without a tag gets a volume named by its digest.
    let output = update(
        &repo,
        name,
        &[
            "--set",
            "DOCKER_IMAGE_MEILISEARCH=registry.example.org/search",
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let (_, claim, _) = meilisearch_volumes(&dir.join("env"));
    let suffix = claim.strip_prefix("meilisearch-").expect("prefix");
    assert_eq!(suffix.len(), 12, "{claim}");
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{claim}");
}
