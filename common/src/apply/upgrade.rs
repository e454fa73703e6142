//! Taking over fields first written by client-side `kubectl apply`.
//!
//! A client-side apply records its fields under the field managers
//! `kubectl-client-side-apply` (and `before-first-apply` for what existed
//! before the first apply), with operation `Update`. A server-side apply by
//! another manager does not own those fields, so a field the manifest no
//! longer has would stay forever. kubectl moves such entries into its
//! server-side manager's `Apply` entry before the first server-side apply
//! (k8s.io/client-go/util/csaupgrade, used by `kubectl apply --server-side`);
//! phd does the same for every object its apply engine touches.
//!
//! A server-side `kubectl apply --server-side` (the original tool's later
//! versions) leaves its fields under the manager `kubectl`, operation
//! `Apply`: another server-side applier takes over only the fields it sets
//! itself, so a field phd no longer sets would stay. Those entries are
//! merged into phd's the same way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::{Map, Value};

/// The field managers of client-side `kubectl apply`.
pub const CLIENT_SIDE_MANAGERS: [&str; 2] = ["kubectl-client-side-apply", "before-first-apply"];

/// The field manager of `kubectl apply --server-side` (its default
/// `--field-manager`).
pub const KUBECTL_SERVER_SIDE_MANAGER: &str = "kubectl";

/// Whether `entries` hold fields of a `kubectl apply` (client-side, or
/// server-side with kubectl's manager) that phd must take over.
pub fn needs_upgrade(entries: &[ManagedFieldsEntry]) -> bool {
    entries.iter().any(is_client_side)
}

/// An entry of client-side `kubectl apply` (operation `Update`), or of
/// `kubectl apply --server-side` (manager `kubectl`, operation `Apply`).
fn is_client_side(entry: &ManagedFieldsEntry) -> bool {
    let manager = entry.manager.as_deref();
    match entry.operation.as_deref() {
        Some("Update") => manager.is_some_and(|manager| CLIENT_SIDE_MANAGERS.contains(&manager)),
        Some("Apply") => manager == Some(KUBECTL_SERVER_SIDE_MANAGER),
        _ => false,
    }
}

/// `entries` with every client-side apply entry merged into `manager`'s
/// `Apply` entry (made when there is none, with the API version of the
/// client-side entry) and removed. Entries of other managers are kept as
/// they are.
pub fn upgrade(entries: &[ManagedFieldsEntry], manager: &str) -> Vec<ManagedFieldsEntry> {
    let (client_side, mut kept): (Vec<ManagedFieldsEntry>, Vec<ManagedFieldsEntry>) =
        entries.iter().cloned().partition(is_client_side);
    if client_side.is_empty() {
        return kept;
    }
    let position = kept.iter().position(|entry| {
        entry.manager.as_deref() == Some(manager) && entry.operation.as_deref() == Some("Apply")
    });
    let mut target = match position {
        Some(index) => kept.remove(index),
        None => ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some("Apply".to_owned()),
            api_version: client_side[0].api_version.clone(),
            fields_type: Some("FieldsV1".to_owned()),
            fields_v1: Some(FieldsV1(Value::Object(Map::new()))),
            time: client_side[0].time.clone(),
            subresource: None,
        },
    };
    let mut fields = target
        .fields_v1
        .take()
        .map_or(Value::Object(Map::new()), |f| f.0);
    for entry in &client_side {
        if let Some(FieldsV1(set)) = &entry.fields_v1 {
            union(&mut fields, set);
        }
    }
    target.fields_v1 = Some(FieldsV1(fields));
    kept.push(target);
    kept
}

/// Adds every path of the field set `other` to `into` (field sets are trees
/// of objects whose keys are `f:name`, `k:{...}`, `v:...`, `i:n` or `.`).
fn union(into: &mut Value, other: &Value) {
    let (Value::Object(into), Value::Object(other)) = (into, other) else {
        return;
    };
    for (key, value) in other {
        match into.get_mut(key) {
            Some(existing) => union(existing, value),
            None => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("apps/v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn client_side_fields_move_into_the_apply_entry() {
        let entries = vec![
            entry(
                "kubectl-phd",
                "Apply",
                json!({"f:spec": {"f:replicas": {}}}),
            ),
            entry(
                "kubectl-client-side-apply",
                "Update",
                json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"server\"}": {"f:env": {"k:{\"name\":\"LEGACY_FLAG\"}": {".": {}}}}}}}}}),
            ),
            entry(
                "before-first-apply",
                "Update",
                json!({"f:metadata": {"f:labels": {"f:old": {}}}}),
            ),
            entry("kube-controller-manager", "Update", json!({"f:status": {}})),
        ];
        assert!(needs_upgrade(&entries));
        let upgraded = upgrade(&entries, "kubectl-phd");
        assert!(!needs_upgrade(&upgraded));
        assert_eq!(upgraded.len(), 2);
        let ours = upgraded
            .iter()
            .find(|e| e.manager.as_deref() == Some("kubectl-phd"))
            .expect("ours");
        let fields = &ours.fields_v1.as_ref().expect("fields").0;
        assert!(fields["f:spec"]["f:replicas"].is_object());
        assert!(fields["f:metadata"]["f:labels"]["f:old"].is_object());
        assert!(
            fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"server\"}"]
                ["f:env"]
                .is_object()
        );
        assert!(
            upgraded
                .iter()
                .any(|e| e.manager.as_deref() == Some("kube-controller-manager"))
        );
    }

    #[test]
    fn fields_of_kubectl_server_side_apply_move_too() {
        let entries = vec![
            entry("kubectl", "Apply", json!({"f:data": {"f:LEGACY": {}}})),
            entry("kubectl-phd", "Apply", json!({"f:data": {"f:kept": {}}})),
            // kubectl edit, kubectl label: not an apply, kept.
            entry("kubectl-edit", "Update", json!({"f:data": {"f:hand": {}}})),
        ];
        assert!(needs_upgrade(&entries));
        let upgraded = upgrade(&entries, "kubectl-phd");
        assert!(!needs_upgrade(&upgraded));
        let managers: Vec<_> = upgraded
            .iter()
            .filter_map(|e| e.manager.as_deref())
            .collect();
        assert_eq!(managers, ["kubectl-edit", "kubectl-phd"]);
        let ours = &upgraded[1].fields_v1.as_ref().expect("fields").0;
        assert!(ours["f:data"]["f:LEGACY"].is_object() && ours["f:data"]["f:kept"].is_object());
    }

    #[test]
    fn without_an_apply_entry_one_is_made() {
        let entries = vec![entry(
            "kubectl-client-side-apply",
            "Update",
            json!({"f:data": {"f:a": {}}}),
        )];
        let upgraded = upgrade(&entries, "kubectl-phd");
        assert_eq!(upgraded.len(), 1);
        assert_eq!(upgraded[0].operation.as_deref(), Some("Apply"));
        assert_eq!(upgraded[0].manager.as_deref(), Some("kubectl-phd"));
        assert_eq!(upgraded[0].api_version.as_deref(), Some("apps/v1"));
    }
}
