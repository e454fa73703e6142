//! Size tiers (`--size small|medium|large`, config.yml PHD_SIZE): rendered
//! with the real Tutor of each release, built with `kubectl kustomize`, and
//! the namespace's ResourceQuota and LimitRange on the real control plane.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use kube::api::Api;
use kubectl_phd::size::{self, Size};
use phd_testkit::argo::WorkflowController;
use phd_testkit::unique_name;
use serde_json::{Value, json};

use crate::common::{self, config, repo_with, text, update, with_setting};
use crate::instances::kustomize;

/// Replicas of the web and worker Deployments per tier: (minimum, maximum)
/// of their autoscalers, as docs/instances.md's table of tiers gives them.
fn expected_replicas(size: Size) -> BTreeMap<&'static str, (i64, i64)> {
    let table = match size {
        Size::Small => [(1, 2), (1, 2), (1, 2), (1, 2)],
        Size::Medium => [(2, 4), (2, 3), (1, 3), (1, 3)],
        Size::Large => [(3, 8), (2, 4), (2, 6), (2, 4)],
    };
    ["lms", "cms", "lms-worker", "cms-worker"]
        .into_iter()
        .zip(table)
        .collect()
}

/// A Kubernetes quantity in thousandths of its unit (millicores, or
/// thousandths of a byte): `250m`, `2`, `0.5`, `768Mi`, `2Gi`, `512M`.
fn milli(quantity: &str) -> u128 {
    let suffixes: [(&str, u128); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("m", 1),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = quantity.strip_suffix(suffix) {
            let value: f64 = number.parse().expect("quantity number");
            return if suffix == "m" {
                value as u128
            } else {
                (value * 1000.0) as u128 * factor
            };
        }
    }
    (quantity.parse::<f64>().expect("quantity") * 1000.0) as u128
}

/// Bytes of a redis.conf memory value (`192mb`: 1024² bytes a mb, as Redis reads it).
fn redis_bytes(value: &str) -> u128 {
    let value = value.to_ascii_lowercase();
    for (suffix, factor) in [
        ("gb", 1u128 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1_000),
    ] {
        if let Some(number) = value.strip_suffix(suffix) {
            return number.parse::<u128>().expect("redis number") * factor;
        }
    }
    value.parse().expect("redis bytes")
}

fn pod_spec(object: &Value) -> &Value {
    match object["kind"].as_str() {
        Some("CronJob") => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &object["spec"]["template"]["spec"],
    }
}

fn workloads(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("Deployment" | "Job" | "StatefulSet" | "DaemonSet" | "CronJob")
            )
        })
        .collect()
}

fn all_containers(object: &Value) -> Vec<&Value> {
    let spec = pod_spec(object);
    ["containers", "initContainers"]
        .iter()
        .filter_map(|key| spec[key].as_array())
        .flatten()
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Checks the render of one tier and returns nothing; panics naming what is wrong.
fn check_tier(release: &str, size: Size, objects: &[Value]) {
    let label = format!("Tutor {release}, {}", size.as_str());
    // Every container of every workload: CPU and memory, requests and limits.
    let workloads = workloads(objects);
    assert!(
        workloads.len() >= 8,
        "{label}: {} workloads",
        workloads.len()
    );
    for workload in &workloads {
        for container in all_containers(workload) {
            for part in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][part][resource].is_string(),
                        "{label}: {} {} container {} has no {part}.{resource}",
                        workload["kind"],
                        workload["metadata"]["name"],
                        container["name"]
                    );
                }
            }
        }
    }
    // Replicas: the autoscalers own the count (no `replicas` for Argo CD to
    // reset), from the tier's minimum to its maximum.
    for (name, (minimum, maximum)) in expected_replicas(size) {
        let deployment = find(objects, "Deployment", name);
        assert!(
            deployment["spec"]["replicas"].is_null(),
            "{label}: Deployment {name} sets replicas"
        );
        let hpa = find(objects, "HorizontalPodAutoscaler", name);
        assert_eq!(hpa["apiVersion"], "autoscaling/v2", "{label}");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name, "{label}");
        assert_eq!(hpa["spec"]["minReplicas"], minimum, "{label}: {name}");
        assert_eq!(hpa["spec"]["maxReplicas"], maximum, "{label}: {name}");
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["name"], "cpu",
            "{label}: {name}"
        );
    }
    // LMS and CMS: one pod evicted at a time, whatever the replica count.
    for name in ["lms", "cms"] {
        let budgets: Vec<&Value> = objects
            .iter()
            .filter(|o| {
                o["kind"] == "PodDisruptionBudget"
                    && o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name
            })
            .collect();
        assert_eq!(budgets.len(), 1, "{label}: PDBs of {name}: {budgets:?}");
        assert_eq!(budgets[0]["spec"]["maxUnavailable"], 1, "{label}");
    }
    // Redis: the last maxmemory (Redis keeps the last one) below the
    // container's memory limit, no eviction, a volume that holds the RDB
    // and the AOF of a full memory.
    let conf = objects
        .iter()
        .find_map(|o| o["data"]["redis.conf"].as_str())
        .expect("redis.conf ConfigMap");
    let last = |directive: &str| {
        conf.lines()
            .rev()
            .filter_map(|line| line.trim().strip_prefix(directive))
            .find_map(|rest| rest.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{label}: no {directive}"))
            .trim()
            .to_owned()
    };
    let maxmemory = redis_bytes(&last("maxmemory"));
    assert_eq!(last("maxmemory-policy"), "noeviction", "{label}");
    let redis = find(objects, "Deployment", "redis");
    let redis_limit = milli(
        redis["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
            .as_str()
            .expect("redis limit"),
    ) / 1000;
    assert!(
        maxmemory * 5 / 4 <= redis_limit,
        "{label}: maxmemory {maxmemory} leaves no room under the limit {redis_limit}"
    );
    let redis_volume = milli(
        find(objects, "PersistentVolumeClaim", "redis")["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .expect("redis volume"),
    ) / 1000;
    assert!(
        redis_volume >= 4 * maxmemory,
        "{label}: redis volume {redis_volume} < 4 x maxmemory {maxmemory}"
    );
    // Meilisearch: indexing memory below its limit.
    let meilisearch = find(objects, "Deployment", "meilisearch");
    let container = &meilisearch["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "MEILI_MAX_INDEXING_MEMORY"),
        "{label}: Meilisearch's indexing memory is not capped"
    );

    // The tier's quota holds every Deployment at its autoscaler's maximum,
    // every Job at once and the provisioning workflows' pods (containers
    // without resources of their own get the LimitRange's defaults: three
    // Workflows at once, each pod with Argo's init, wait and main container).
    let quota = Size::resource_quota(size, Default::default());
    let hard = quota.spec.expect("spec").hard.expect("hard");
    let mut used: BTreeMap<String, u128> = BTreeMap::new();
    let mut pods = 0u128;
    for workload in &workloads {
        let name = workload["metadata"]["name"].as_str().unwrap_or_default();
        let count = match workload["kind"].as_str() {
            Some("Deployment") => expected_replicas(size)
                .get(name)
                .map(|(_, maximum)| *maximum as u128)
                .unwrap_or(1),
            _ => 1,
        };
        pods += count;
        for container in all_containers(workload) {
            for part in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    let value = container["resources"][part][resource]
                        .as_str()
                        .expect("quantity");
                    *used.entry(format!("{part}.{resource}")).or_default() += milli(value) * count;
                }
            }
        }
    }
    let reserve = 9;
    pods += 3;
    for (part, (cpu, memory)) in [
        ("requests", size::DEFAULT_REQUEST),
        ("limits", size::DEFAULT_LIMIT),
    ] {
        *used.entry(format!("{part}.cpu")).or_default() += milli(cpu) * reserve;
        *used.entry(format!("{part}.memory")).or_default() += milli(memory) * reserve;
    }
    for (key, total) in &used {
        let allowed = milli(&hard[key].0);
        assert!(
            *total <= allowed,
            "{label}: {key} of the render is {total} (thousandths), over the quota's {allowed}"
        );
    }
    assert!(
        pods <= milli(&hard["pods"].0) / 1000,
        "{label}: {pods} pods"
    );
    // Volumes: Meilisearch's old and new volume during an upgrade, and Redis's.
    let storage: u128 = objects
        .iter()
        .filter(|o| o["kind"] == "PersistentVolumeClaim")
        .map(|o| {
            let bytes = milli(
                o["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .expect("storage"),
            );
            if o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("meilisearch")
            {
                2 * bytes
            } else {
                bytes
            }
        })
        .sum();
    assert!(
        storage <= milli(&hard["requests.storage"].0),
        "{label}: volumes {storage} over the quota"
    );
}

#[test]
fn every_tier_sets_resources_replicas_budgets_autoscalers_and_fits_its_quota() {
    for release in ["22.0.3", "21.0.9"] {
        for size in Size::ALL {
            let name = "sz";
            let text_of_config = with_setting(
                &with_setting(
                    &config(name),
                    "PHD_TUTOR_VERSION",
                    &format!("\"{release}\""),
                ),
                "PHD_SIZE",
                size.as_str(),
            );
            let (repo, dir) = repo_with(name, &text_of_config);
            let output = update(&repo, name, &[]);
            assert!(
                output.status.success(),
                "{release} {}: {}",
                size.as_str(),
                text(&output)
            );
            let (_, objects) = kustomize(&dir.join("env"));
            check_tier(release, size, &objects);
        }
    }
}

#[test]
fn size_flag_is_kept_in_config_yml_and_an_unknown_tier_changes_nothing() {
    let name = "sy";
    let (repo, dir) = repo_with(name, &config(name));
    // No tier: small.
    let output = update(&repo, name, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let (_, objects) = kustomize(&dir.join("env"));
    assert_eq!(
        find(&objects, "HorizontalPodAutoscaler", "lms")["spec"]["minReplicas"],
        1
    );

    let output = update(&repo, name, &["--size", "medium"]);
    assert!(output.status.success(), "{}", text(&output));
    let config_text = std::fs::read_to_string(dir.join("config.yml")).expect("config.yml");
    assert!(
        config_text.contains("PHD_SIZE: \"medium\""),
        "{config_text}"
    );
    let (_, objects) = kustomize(&dir.join("env"));
    check_tier("22.0.3", Size::Medium, &objects);

    // An unknown tier: a usage error, nothing written.
    let before = std::fs::read_to_string(dir.join("config.yml")).expect("config.yml");
    let output = update(&repo, name, &["--size", "huge"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = text(&output);
    assert!(
        message.contains("huge") && message.contains("small") && message.contains("large"),
        "{message}"
    );
    // A second budget over LMS's pods (Drydock's) would make evictions fail.
    let output = update(
        &repo,
        name,
        &["--set", "DRYDOCK_PDB_MINAVAILABLE_PERCENTAGE_LMS=50"],
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("DRYDOCK_PDB_MINAVAILABLE_PERCENTAGE_LMS"),
        "{}",
        text(&output)
    );
    // Nor through config.yml or --set.
    let output = update(&repo, name, &["--set", "PHD_SIZE=huge"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(message.contains("PHD_SIZE is \"huge\""), "{message}");
    assert_eq!(
        std::fs::read_to_string(dir.join("config.yml")).expect("config.yml"),
        before
    );
}

/// The namespace of a created instance gets the tier's ResourceQuota and
/// LimitRange, and the API server admits, under them, the rendered objects
/// and a pod of every rendered pod template (LimitRange defaults and caps
/// and the quota are admission checks on pods, so each template is
/// submitted as a Pod, dry run); a pod over the caps is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_gets_the_tiers_quota_and_admits_the_render_under_it() {
    let plane = common::control_plane_with_argo().await;
    let client = plane.client().await.expect("client");
    let name = unique_name("size");
    let repo = common::Repo::new();
    let _controller = WorkflowController::start(client.clone(), &name);
    let output = repo
        .phd(&plane.admin_kubeconfig)
        .args([
            "instance",
            "create",
            &name,
            "--size",
            "medium",
            "--timeout",
            "60s",
        ])
        .output()
        .expect("run kubectl-phd");
    assert!(output.status.success(), "{}", text(&output));
    let dir = repo.instances().join(&name);
    let config_text = std::fs::read_to_string(dir.join("config.yml")).expect("config.yml");
    assert!(
        config_text.contains("PHD_SIZE: \"medium\""),
        "{config_text}"
    );

    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &name);
    let quota = quotas.get(size::QUOTA_NAME).await.expect("ResourceQuota");
    let expected = Size::Medium.resource_quota(Default::default());
    assert_eq!(
        quota.spec.clone().expect("spec").hard,
        expected.spec.expect("spec").hard
    );
    let ranges: Api<LimitRange> = Api::namespaced(client.clone(), &name);
    ranges.get(size::LIMITS_NAME).await.expect("LimitRange");

    let (rendered, objects) = kustomize(&dir.join("env"));
    check_tier("22.0.3", Size::Medium, &objects);
    phd_testkit::kubectl_apply(&plane.admin_kubeconfig, &rendered, "argocd-stand-in", true);
    // A pod of each template, as its controller would create it.
    let pods: Vec<String> = workloads(&objects)
        .iter()
        .map(|workload| {
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": format!("size-{}", workload["metadata"]["name"].as_str().unwrap_or_default()),
                    "namespace": name,
                },
                "spec": pod_spec(workload),
            });
            serde_json::to_string(&pod).expect("json")
        })
        .collect();
    phd_testkit::kubectl_apply(&plane.admin_kubeconfig, &pods.join("\n"), "size-test", true);
    // A container over the LimitRange's cap is refused.
    let oversized = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "oversized", "namespace": name},
        "spec": {"containers": [{
            "name": "big",
            "image": "busybox",
            "resources": {"requests": {"cpu": "1", "memory": "16Gi"}, "limits": {"cpu": "1", "memory": "16Gi"}},
        }]},
    });
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&plane.admin_kubeconfig)
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(oversized.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .expect("kubectl apply");
    assert!(!output.status.success(), "a 16Gi container was admitted");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
