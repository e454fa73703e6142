//! Values, files and links an operator does not control (issue: hostile
//! input): a flag, a `--set` or a hand-edited config.yml never reaches Tutor
//! as template code or as a credential reference, Tutor gets none of phd's
//! environment, config.yml cannot re-target the instance, a symbolic link
//! in the repository is never written through, two updates at once lose
//! nothing, and env/ holds only what Argo CD reads.
//!
//! Every case renders with the real Tutor (`instance update --files-only`
//! needs no cluster) or stops before it; none needs a control plane.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::{config, files, repo_with, text, update, with_setting};

/// Template code that would run on the rendering machine, in Jinja's
/// syntaxes; each would create `marker` when rendered.
fn payloads(marker: &Path) -> Vec<String> {
    let marker = marker.display();
    vec![
        format!("{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"),
        format!(
            "{{%- set x = cycler.__init__.__globals__.os.popen('touch {marker}').read() %}}name"
        ),
        format!("{{{{- lipsum.__globals__['os'].system('touch {marker}') -}}}}"),
        "before {# a comment #} after".to_owned(),
    ]
}

#[test]
fn template_code_from_flags_set_and_config_yml_is_refused_and_never_run() {
    let marker_dir = tempfile::tempdir().expect("marker dir");
    let marker = marker_dir.path().join("pwned");
    let name = "hv";
    let (repo, dir) = repo_with(name, &config(name));

    for payload in payloads(&marker) {
        // A flag of instance create, even in a dry run.
        let output = repo
            .phd(&repo.dir.path().join("none.kubeconfig"))
            .args([
                "instance",
                "create",
                "other",
                "--dry-run",
                "--platform-name",
            ])
            .arg(&payload)
            .output()
            .expect("run");
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{payload}: {all}");
        assert!(
            all.contains("--platform-name: the value holds") && all.contains("Jinja"),
            "{payload}: {all}"
        );

        // --set, at the top level and inside a list.
        for set in [
            format!("PLATFORM_NAME={payload:?}"),
            format!("OPENEDX_EXTRA_PIP_REQUIREMENTS=[{payload:?}]"),
        ] {
            let output = update(&repo, name, &["--set", &set]);
            let all = text(&output);
            assert_eq!(output.status.code(), Some(1), "{set}: {all}");
            assert!(
                all.contains("--set ") && all.contains("Jinja"),
                "{set}: {all}"
            );
        }

        // A hand-edited config.yml.
        let edited = config(name).replace(
            &format!("PLATFORM_NAME: \"Open edX Instance for {name}\""),
            &format!("PLATFORM_NAME: {payload:?}"),
        );
        std::fs::write(dir.join("config.yml"), &edited).expect("edit");
        let output = update(&repo, name, &[]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{payload}: {all}");
        assert!(
            all.contains("setting PLATFORM_NAME: the value holds"),
            "{payload}: {all}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("config.yml")).expect("read"),
            edited,
            "a refused render changed config.yml"
        );
        assert!(!dir.join("env").exists(), "a refused render wrote env/");
    }
    assert!(
        !marker.exists(),
        "template code ran on the rendering machine"
    );
}

#[test]
fn references_quotes_hosts_and_types_that_would_change_the_site_are_refused() {
    let name = "hr";
    let (repo, dir) = repo_with(name, &config(name));
    let cases: [(&str, &str, &str); 11] = [
        (
            "PLATFORM_NAME",
            "\"${PHD_MYSQL_PASSWORD}\"",
            "credential reference",
        ),
        ("PLATFORM_NAME", "\"pay $HOME\"", "would expand"),
        (
            "PLATFORM_NAME",
            r#"'x" + __import__("os").getenv("PHD_OPENEDX_SECRET_KEY") + "'"#,
            "quoted strings",
        ),
        ("PLATFORM_NAME", "\"O'Reilly\"", "use \u{2019}"),
        ("PLATFORM_NAME", "\"Say \\\"hi\\\" U\"", "quoted strings"),
        (
            "PLATFORM_NAME",
            "\"two\\nlines\"",
            "control character U+000A",
        ),
        ("CONTACT_EMAIL", "\"a@x.test`id`\"", "quoted strings"),
        ("LMS_HOST", "\"a.example.org;id\"", "is not a host name"),
        ("SMTP_PORT", "\"8025\"", "must be a number"),
        ("SMTP_PORT", "70000", "is not a port number from 1 to 65535"),
        (
            "STORAGE_TYPE",
            "minio",
            "the bucket is \"s3\" or \"spaces\"",
        ),
    ];
    for (key, value, expected) in cases {
        // Through --set (refused before anything is read, but MYSQL_PORT's
        // type, which Tutor's defaults decide) ...
        let output = update(&repo, name, &["--set", &format!("{key}={value}")]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "--set {key}={value}: {all}");
        assert!(all.contains(expected), "--set {key}={value}: {all}");
        // ... and through a hand-edited config.yml.
        let edited = with_setting(&config(name), key, value);
        std::fs::write(dir.join("config.yml"), &edited).expect("edit");
        let output = update(&repo, name, &[]);
        let all = text(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "config.yml {key}: {value}: {all}"
        );
        assert!(all.contains(expected), "config.yml {key}: {value}: {all}");
        assert!(!dir.join("env").exists());
        std::fs::write(dir.join("config.yml"), config(name)).expect("restore");
    }

    // Settings phd decides: a changed list of init jobs broke the kustomize build.
    for (key, value) in [
        ("DRYDOCK_INIT_JOBS_EXCLUDED", "[]"),
        ("DRYDOCK_INGRESS", "true"),
        ("PHD_INGRESS_CLASS", "nginx"),
    ] {
        let output = update(&repo, name, &["--set", &format!("{key}={value}")]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(all.contains("kubectl-phd decides that setting"), "{all}");
        std::fs::write(
            dir.join("config.yml"),
            with_setting(&config(name), key, value),
        )
        .expect("edit");
        let output = update(&repo, name, &[]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(all.contains(&format!("config.yml sets {key}")), "{all}");
    }

    // config.yml cannot re-target the instance's manifests.
    for namespace in ["kube-system", "other-instance"] {
        let edited = config(name).replace(
            &format!("K8S_NAMESPACE: {name}"),
            &format!("K8S_NAMESPACE: {namespace}"),
        );
        std::fs::write(dir.join("config.yml"), &edited).expect("edit");
        let output = update(&repo, name, &[]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(
            all.contains("sets K8S_NAMESPACE to") && all.contains("its own namespace hr"),
            "{all}"
        );
    }
    // Nor rename it (Tutor's ID labels every object).
    std::fs::write(
        dir.join("config.yml"),
        config(name).replace(&format!("ID: {name}"), "ID: other-instance"),
    )
    .expect("edit");
    let output = update(&repo, name, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("sets ID to \"other-instance\""), "{all}");
    std::fs::write(dir.join("config.yml"), config(name)).expect("restore");

    // A plain value renders, and nothing of phd's environment reached Tutor
    // (TUTOR_PLATFORM_NAME would be a setting, and template code).
    let output = update(
        &repo,
        name,
        &["--set", "PLATFORM_NAME=\"Acme: Learn & Grow (2026)\""],
    );
    assert!(output.status.success(), "{}", text(&output));
    let lms_env =
        std::fs::read_to_string(dir.join("env/apps/openedx/config/lms.env.yml")).expect("lms env");
    assert!(lms_env.contains("Acme: Learn & Grow (2026)"), "{lms_env}");
    let rendered: String = files(&dir.join("env"))
        .iter()
        .map(|f| std::fs::read_to_string(dir.join("env").join(f)).unwrap_or_default())
        .collect();
    assert!(
        !rendered.contains("1337"),
        "TUTOR_PLATFORM_NAME reached Tutor"
    );
    assert!(!rendered.contains("root-secret-7d1e"));
    // Only phd's own credential names are resolved in the settings.
    let settings = std::fs::read_to_string(dir.join("env/apps/openedx/settings/lms/production.py"))
        .expect("settings");
    assert!(
        settings.contains("(PHD_CMS_OAUTH2_SECRET|"),
        "resolver pattern"
    );
    assert!(!settings.contains("PHD_[A-Z0-9_]+"), "resolver pattern");
}

#[test]
fn env_holds_only_what_argo_cd_reads() {
    let name = "hs";
    let (repo, dir) = repo_with(name, &config(name));
    // Files a render of an older phd left: all removed.
    std::fs::create_dir_all(dir.join("env/build/openedx")).expect("old build");
    std::fs::write(dir.join("env/build/openedx/Dockerfile"), "FROM x\n").expect("old");
    let output = update(&repo, name, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let env = dir.join("env");
    let kept = files(&env);
    let kustomization = std::fs::read_to_string(env.join("kustomization.yml")).expect("read");
    for file in &kept {
        let shown = file.display().to_string();
        assert!(
            shown == "kustomization.yml"
                || kustomization.contains(&shown)
                || kustomization.contains(
                    &file
                        .parent()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            "{shown} is not read by kustomize"
        );
    }
    for dropped in ["build", "dev", "local", "plugins/mfe/build"] {
        assert!(
            !env.join(dropped).exists(),
            "env/{dropped} is still written"
        );
    }
    let bytes: u64 = kept
        .iter()
        .map(|f| std::fs::metadata(env.join(f)).expect("meta").len())
        .sum();
    assert!(bytes < 200 * 1024, "env/ holds {bytes} bytes");
    // And what is kept still builds: every file kustomization.yml names exists.
    let (kustomize, _) = crate::instances::kustomize(&env);
    assert!(kustomize.contains("kind: Deployment"));
}

#[cfg(unix)]
#[test]
fn links_in_the_repository_are_never_followed() {
    let name = "hl";
    let (repo, dir) = repo_with(name, &config(name));
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("precious"), "keep").expect("write");

    // env/ itself a link: refused before anything changes.
    std::os::unix::fs::symlink(outside.path(), dir.join("env")).expect("link");
    let output = update(&repo, name, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("is a symbolic link"), "{all}");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("precious")).expect("read"),
        "keep"
    );
    assert_eq!(files(outside.path()), vec![PathBuf::from("precious")]);
    std::fs::remove_file(dir.join("env")).expect("unlink");

    // A link inside env/ (a directory and a file): replaced, never followed.
    std::fs::create_dir_all(dir.join("env")).expect("env");
    std::os::unix::fs::symlink(outside.path(), dir.join("env/k8s")).expect("link");
    std::os::unix::fs::symlink(
        outside.path().join("precious"),
        dir.join("env/kustomization.yml"),
    )
    .expect("link");
    let output = update(&repo, name, &[]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(files(outside.path()), vec![PathBuf::from("precious")]);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("precious")).expect("read"),
        "keep"
    );
    assert!(dir.join("env/k8s/deployments.yml").is_file());
    assert!(
        !std::fs::symlink_metadata(dir.join("env/k8s"))
            .expect("meta")
            .is_symlink()
    );

    // config.yml a link: refused (reading it would read any file).
    std::fs::rename(dir.join("config.yml"), outside.path().join("config.yml")).expect("move");
    std::os::unix::fs::symlink(outside.path().join("config.yml"), dir.join("config.yml"))
        .expect("link");
    let output = update(&repo, name, &["--set", "CONTACT_EMAIL=\"a@x.test\""]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("is a symbolic link"));
}

#[test]
fn concurrent_updates_of_one_instance_lose_nothing() {
    let name = "hc";
    let (repo, dir) = repo_with(name, &config(name));
    let kubeconfig = repo.dir.path().join("none.kubeconfig");
    for round in 0..3 {
        let email = format!("a{round}@x.test");
        let platform = format!("Round {round}");
        let mut first = repo.command(&kubeconfig);
        first.args(["instance", "update", name, "--files-only", "--set"]);
        first.arg(format!("CONTACT_EMAIL={email:?}"));
        let mut second = repo.command(&kubeconfig);
        second.args(["instance", "update", name, "--files-only", "--set"]);
        second.arg(format!("PLATFORM_NAME={platform:?}"));
        let first = first
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let second = second
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        for child in [first, second] {
            let output = child.wait_with_output().expect("wait");
            assert!(output.status.success(), "round {round}: {}", text(&output));
        }
        let config = std::fs::read_to_string(dir.join("config.yml")).expect("config");
        assert!(
            config.contains(&email) && config.contains(&platform),
            "round {round}: {config}"
        );
        // And env/ agrees with config.yml.
        let lms_env = std::fs::read_to_string(dir.join("env/apps/openedx/config/lms.env.yml"))
            .expect("lms env");
        assert!(
            lms_env.contains(&email) && lms_env.contains(&platform),
            "round {round}"
        );
    }
}

#[test]
fn a_host_of_another_instance_or_of_the_cluster_is_refused() {
    let (repo, dir) = repo_with("ha", &config("ha"));
    let other = repo.instances().join("hb");
    std::fs::create_dir_all(&other).expect("hb");
    std::fs::write(other.join("config.yml"), config("hb")).expect("hb config");
    for (set, expected) in [
        (
            "LMS_HOST=hb.lms.example.org",
            "already LMS_HOST of instance hb",
        ),
        (
            "MFE_HOST=studio.hb.lms.example.org",
            "already CMS_HOST of instance hb",
        ),
        (
            "CMS_HOST=argocd.lms.example.org",
            "a host of the cluster's own services",
        ),
        ("MFE_HOST=ha.lms.example.org", "are both ha.lms.example.org"),
        // Meilisearch's public host is derived from LMS_HOST ...
        (
            "CMS_HOST=meilisearch.hb.lms.example.org",
            "already MEILISEARCH_PUBLIC_URL of instance hb",
        ),
        // ... or set as a URL.
        (
            "MEILISEARCH_PUBLIC_URL=https://apps.hb.lms.example.org",
            "already MFE_HOST of instance hb",
        ),
        // A trailing dot is no way around it (and no valid Ingress host).
        ("LMS_HOST=hb.lms.example.org.", "is not a host name"),
    ] {
        let before = std::fs::read_to_string(dir.join("config.yml")).expect("read");
        let output = update(&repo, "ha", &["--set", set]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{set}: {all}");
        assert!(all.contains(expected), "{set}: {all}");
        assert_eq!(
            std::fs::read_to_string(dir.join("config.yml")).expect("read"),
            before
        );
    }
    // Its own hosts, re-rendered, are fine.
    let output = update(&repo, "ha", &[]);
    assert!(output.status.success(), "{}", text(&output));
}
