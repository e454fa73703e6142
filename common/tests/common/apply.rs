//! The apply engine against the real local control plane.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use phd_common::apply::{Applier, ApplyError, Outcome};
use phd_common::manifest::{self, ManifestError, ManifestSource};
use phd_testkit::{ControlPlane, unique_name};
use serde_json::json;

fn ignore(_: &phd_common::apply::Applied) {}

/// A CRD `Widget` in `group`, namespaced, with `extra_properties` documented
/// properties to make it as large as needed.
fn widget_definition(group: &str, extra_properties: usize) -> serde_json::Value {
    let mut properties = serde_json::Map::new();
    properties.insert("size".into(), json!({"type": "integer"}));
    for i in 0..extra_properties {
        properties.insert(
            format!("field{i:05}"),
            json!({"type": "string", "description": format!("Field {i}: {}", "a long description that pads the schema ".repeat(4))}),
        );
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": properties}
                }}}
            }]
        }
    })
}

fn yaml_stream(objects: &[serde_json::Value]) -> String {
    objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).expect("serialise YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
}

#[tokio::test]
async fn definitions_and_their_resources_in_one_stream_then_all_unchanged() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("apply");
    let group = format!("{}.example.com", unique_name("crd"));
    let text = yaml_stream(&[
        // The resource comes before its definition: ordering is the engine's job.
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1", "namespace": ns}, "spec": {"size": 3}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        widget_definition(&group, 0),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": format!("{ns}-reader"), "namespace": "ignored-for-cluster-scope"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "only-a-name"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "run-"}, "data": {"b": "2"}}),
    ]);
    let documents = manifest::parse("stream.yaml", &text).expect("parse");
    let applier = Applier::new(client.clone());

    let report = applier
        .apply(&documents, Some(&ns), &ignore)
        .await
        .expect("first apply");
    assert_eq!(report.objects.len(), 7);
    assert_eq!(report.count(Outcome::Created), 7, "{report:?}");

    // Namespaced objects without a namespace went to the default one given.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let settings = config_maps
        .get("settings")
        .await
        .expect("settings in the default namespace");
    assert_eq!(
        settings
            .data
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("1")
    );
    let generated = config_maps
        .list(&ListParams::default())
        .await
        .expect("list");
    assert!(generated.items.iter().any(|c| {
        c.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("run-"))
    }));
    // The cluster-scoped object exists without a namespace.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = roles
        .get(&format!("{ns}-reader"))
        .await
        .expect("cluster role");
    assert_eq!(role.metadata.namespace, None);
    // The custom resource, applied server-side with phd's field manager.
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let widget = widgets.get("w1").await.expect("widget");
    assert_eq!(widget.data["spec"]["size"], 3);
    let managers: Vec<_> = widget
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["kubectl-phd"]);

    // Again, without the generateName object (which would be a new object each time).
    let named: Vec<_> = documents
        .into_iter()
        .filter(|d| d.name().is_some())
        .collect();
    let again = applier
        .apply(&named, Some(&ns), &ignore)
        .await
        .expect("second apply");
    assert_eq!(again.count(Outcome::Unchanged), 6, "{again:?}");
}

#[tokio::test]
async fn a_changed_object_is_reported_configured() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("configured");
    namespace(&client, &ns).await;
    let applier = Applier::new(client);
    let first = manifest::parse(
        "a",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: one\n",
    )
    .expect("parse");
    applier
        .apply(&first, Some(&ns), &ignore)
        .await
        .expect("apply");
    let second = manifest::parse(
        "a",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: two\n",
    )
    .expect("parse");
    let report = applier
        .apply(&second, Some(&ns), &ignore)
        .await
        .expect("apply again");
    assert_eq!(report.objects[0].outcome, Outcome::Configured);
}

#[tokio::test]
async fn unknown_kind_is_refused_before_any_change() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("unknown");
    namespace(&client, &ns).await;
    let text = yaml_stream(&[
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before"}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}),
    ]);
    let documents = manifest::parse("bad.yaml", &text).expect("parse");
    let error = Applier::new(client.clone())
        .apply(&documents, Some(&ns), &ignore)
        .await
        .expect_err("unknown kind");
    assert!(
        matches!(error, ApplyError::UnknownKind { index: 2, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.starts_with("bad.yaml, document 2:"), "{message}");
    assert!(
        message.contains("Gadget") && message.contains("example.com/v1"),
        "{message}"
    );

    let config_maps: Api<ConfigMap> = Api::namespaced(client, &ns);
    for name in ["before", "after"] {
        assert!(
            config_maps.get_opt(name).await.expect("get").is_none(),
            "{name} must not exist"
        );
    }
}

#[tokio::test]
async fn definition_larger_than_the_client_side_annotation_limit() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let group = format!("{}.example.com", unique_name("big"));
    let definition = widget_definition(&group, 1500);
    let size = serde_json::to_vec(&definition).expect("json").len();
    assert!(
        size > 262_144,
        "the definition must exceed 262144 bytes, it has {size}"
    );
    let documents = manifest::parse("big.yaml", &yaml_stream(&[definition])).expect("parse");
    let report = Applier::new(client.clone())
        .apply(&documents, None, &ignore)
        .await
        .expect("apply big CRD");
    assert_eq!(report.count(Outcome::Created), 1);
    let definitions: Api<CustomResourceDefinition> = Api::all(client);
    let stored = definitions
        .get(&format!("widgets.{group}"))
        .await
        .expect("stored");
    let annotations = stored.metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
}

/// Serves `body` for every request on a loopback port, for `requests` requests.
fn serve(body: String, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests).flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
                line.clear();
            }
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}/install.yaml")
}

#[tokio::test]
async fn manifest_from_a_url() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("url");
    namespace(&client, &ns).await;
    let url = serve(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-url\ndata:\n  x: y\n".into(),
        1,
    );
    let documents = ManifestSource::from_location(&url)
        .documents()
        .await
        .expect("download");
    Applier::new(client.clone())
        .apply(&documents, Some(&ns), &ignore)
        .await
        .expect("apply");
    let config_maps: Api<ConfigMap> = Api::namespaced(client, &ns);
    assert!(
        config_maps
            .get_opt("from-url")
            .await
            .expect("get")
            .is_some()
    );
}

#[tokio::test]
async fn unreachable_url_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{port}/install.yaml");
    let error = ManifestSource::from_location(&url)
        .documents()
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, ManifestError::Download { .. }));
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot download manifest {url}")),
        "{error}"
    );
}

#[tokio::test]
async fn missing_file_is_a_clear_error() {
    let error = ManifestSource::from_location("/nonexistent/install.yaml")
        .documents()
        .await
        .expect_err("no file");
    assert_eq!(
        error.to_string(),
        "cannot read manifest /nonexistent/install.yaml"
    );
}

/// Applies `stream` with plain client-side `kubectl apply`, as the original
/// tool installed everything.
fn kubectl_client_side_apply(kubeconfig: &std::path::Path, stream: &str) {
    kubectl_apply(kubeconfig, stream, &[]);
}

/// `kubectl apply EXTRA -f -` of `stream`.
fn kubectl_apply(kubeconfig: &std::path::Path, stream: &str, extra: &[&str]) {
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("apply")
        .args(extra)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("write");
    assert!(child.wait().expect("kubectl").success());
}

/// Issue 14.1: fields first written by client-side `kubectl apply` are taken
/// over, as `kubectl apply --server-side` does: what the manifest no longer
/// has goes, and a re-run is unchanged. Both for an object only a
/// client-side apply wrote and one phd applied first.
#[tokio::test]
async fn fields_of_a_client_side_apply_are_taken_over() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("csa");
    namespace(&client, &ns).await;
    let object = |name: &str, legacy: bool| {
        let mut data = json!({"kept": "1"});
        if legacy {
            data["LEGACY_FLAG"] = json!("on");
        }
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": "x"}},
               "data": data})
    };
    // "old": only ever client-side applied. "mixed": phd first, then kubectl.
    kubectl_client_side_apply(
        &plane.admin_kubeconfig,
        &yaml_stream(&[object("old", true)]),
    );
    let documents = |names: &[&str]| {
        let objects: Vec<serde_json::Value> = names.iter().map(|n| object(n, false)).collect();
        manifest::parse("test", &yaml_stream(&objects)).expect("parse")
    };
    Applier::new(client.clone())
        .apply(&documents(&["mixed"]), None, &ignore)
        .await
        .expect("first apply");
    kubectl_client_side_apply(
        &plane.admin_kubeconfig,
        &yaml_stream(&[object("mixed", true)]),
    );

    let report = Applier::new(client.clone())
        .apply(&documents(&["old", "mixed"]), None, &ignore)
        .await
        .expect("take over");
    assert!(
        report
            .objects
            .iter()
            .all(|o| o.outcome == Outcome::Configured),
        "{report:?}"
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for name in ["old", "mixed"] {
        let live = config_maps.get(name).await.expect("get");
        let data = live.data.clone().unwrap_or_default();
        assert!(!data.contains_key("LEGACY_FLAG"), "{name}: {data:?}");
        assert_eq!(data.get("kept").map(String::as_str), Some("1"));
        let managers: Vec<String> = live
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| e.manager)
            .collect();
        assert!(
            !managers.iter().any(|m| m == "kubectl-client-side-apply"),
            "{name}: {managers:?}"
        );
    }
    let again = Applier::new(client.clone())
        .apply(&documents(&["old", "mixed"]), None, &ignore)
        .await
        .expect("re-run");
    assert_eq!(again.count(Outcome::Unchanged), 2, "{again:?}");
}

/// Issue 29: an object first applied by `kubectl apply --server-side`
/// (manager `kubectl`, as the original tool's later versions did) loses the
/// fields phd no longer sets, as with a client-side apply.
#[tokio::test]
async fn fields_of_a_kubectl_server_side_apply_are_taken_over() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("ssa");
    namespace(&client, &ns).await;
    let object = |legacy: bool| {
        let mut data = json!({"kept": "1"});
        if legacy {
            data["LEGACY_FLAG"] = json!("on");
        }
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "old", "namespace": ns}, "data": data})
    };
    kubectl_apply(
        &plane.admin_kubeconfig,
        &yaml_stream(&[object(true)]),
        &["--server-side"],
    );
    let documents = manifest::parse("test", &yaml_stream(&[object(false)])).expect("parse");
    Applier::new(client.clone())
        .apply(&documents, None, &ignore)
        .await
        .expect("take over");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let live = config_maps.get("old").await.expect("get");
    let data = live.data.clone().unwrap_or_default();
    assert!(!data.contains_key("LEGACY_FLAG"), "{data:?}");
    let managers: Vec<String> = live
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.manager)
        .collect();
    assert!(!managers.iter().any(|m| m == "kubectl"), "{managers:?}");
    let again = Applier::new(client.clone())
        .apply(&documents, None, &ignore)
        .await
        .expect("re-run");
    assert_eq!(again.count(Outcome::Unchanged), 1, "{again:?}");
}

/// A custom resource that uses a field its definition gains in the same
/// manifest keeps that field: it is applied only after the changed definition
/// (applied next to it, the old schema could prune the field). Upgrades of
/// Argo and cert-manager are exactly this. Several rounds, so a race shows.
#[tokio::test]
async fn resources_wait_for_their_changed_definition() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let ns = unique_name("upgrade");
    namespace(&client, &ns).await;
    let group = format!("{}.example.com", unique_name("crd"));
    let applier = Applier::new(client.clone());
    let definition = |fields: usize| {
        let mut definition = widget_definition(&group, 200);
        let properties = &mut definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"];
        for round in 0..fields {
            properties[format!("added{round}")] = json!({"type": "string"});
        }
        definition
    };
    let first = manifest::parse("v0.yaml", &yaml_stream(&[definition(0)])).expect("parse");
    applier.apply(&first, Some(&ns), &ignore).await.expect("v0");
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    for round in 0..4 {
        let field = format!("added{round}");
        let text = yaml_stream(&[
            json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
                   "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 1, field.clone(): "kept"}}),
            definition(round + 1),
        ]);
        let documents = manifest::parse("upgrade.yaml", &text).expect("parse");
        applier
            .apply(&documents, Some(&ns), &ignore)
            .await
            .expect("upgrade");
        let widget = widgets.get("w").await.expect("widget");
        assert_eq!(
            widget.data["spec"][&field], "kept",
            "round {round}: {:?}",
            widget.data
        );
    }
}

/// A large object that is already as the manifest says is compared, not sent
/// again; a field removed from the manifest or changed by someone else is
/// still put right (the comparison must not hide either).
#[tokio::test]
async fn large_objects_are_compared_and_still_converge() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await.expect("client");
    let group = format!("{}.example.com", unique_name("big"));
    let applier = Applier::new(client.clone());
    let with_labels = |labels: serde_json::Value| {
        let mut definition = widget_definition(&group, 600);
        definition["metadata"]["labels"] = labels;
        definition
    };
    let apply = |definition: serde_json::Value| {
        let applier = &applier;
        async move {
            let documents =
                manifest::parse("big.yaml", &yaml_stream(&[definition])).expect("parse");
            assert!(documents[0].object.to_string().len() > 64 * 1024);
            applier
                .apply(&documents, None, &ignore)
                .await
                .expect("apply")
        }
    };
    let definitions: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("widgets.{group}");
    let labels =
        |definition: CustomResourceDefinition| definition.metadata.labels.unwrap_or_default();

    let first = apply(with_labels(json!({"tier": "one", "extra": "yes"}))).await;
    assert_eq!(first.count(Outcome::Created), 1);
    let version = definitions
        .get(&name)
        .await
        .expect("get")
        .metadata
        .resource_version;
    let again = apply(with_labels(json!({"tier": "one", "extra": "yes"}))).await;
    assert_eq!(again.count(Outcome::Unchanged), 1, "{again:?}");
    assert_eq!(
        definitions
            .get(&name)
            .await
            .expect("get")
            .metadata
            .resource_version,
        version
    );

    // A label dropped from the manifest goes from the object.
    let dropped = apply(with_labels(json!({"tier": "one"}))).await;
    assert_eq!(dropped.count(Outcome::Configured), 1, "{dropped:?}");
    let live = labels(definitions.get(&name).await.expect("get"));
    assert!(!live.contains_key("extra"), "{live:?}");

    // Someone else's change to a field phd owns is taken back.
    let mut other = with_labels(json!({"tier": "two"}));
    other["metadata"] = json!({"name": name, "labels": {"tier": "two"}});
    let other = json!({"apiVersion": other["apiVersion"], "kind": other["kind"], "metadata": other["metadata"]});
    definitions
        .patch(
            &name,
            &kube::api::PatchParams::apply("someone-else").force(),
            &kube::api::Patch::Apply(&other),
        )
        .await
        .expect("other manager");
    assert_eq!(
        labels(definitions.get(&name).await.expect("get"))["tier"],
        "two"
    );
    let restored = apply(with_labels(json!({"tier": "one"}))).await;
    assert_eq!(restored.count(Outcome::Configured), 1, "{restored:?}");
    assert_eq!(
        labels(definitions.get(&name).await.expect("get"))["tier"],
        "one"
    );
}
