//! The plugin's integration tests: one test binary, so the tests share the
//! control planes they can (`ControlPlane::shared` for a bare cluster,
//! [`common::control_plane_with_argo`] for one with Argo installed) and run
//! side by side; each module is one area of the product and keeps to
//! namespaces and names of its own. Tests that break a control plane, need
//! controllers, or must see a first install start planes of their own.
//!
//! Run one area with `cargo test -p kubectl-phd --test plugin users::`.

mod argo_install;
mod argocd_sync;
mod cli;
mod cluster_create;
mod common;
mod faults;
mod hostile_values;
mod infra;
mod infrastructure_modules;
mod instances;
mod krew;
mod provisioning_scripts;
mod restore_points;
mod site_storage;
mod sizes;
mod snapshots;
mod upgrades;
mod users;
mod workflow_templates;
