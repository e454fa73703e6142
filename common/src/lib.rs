//! The library behind the kubectl-phd plugins: settings, cluster access and
//! the tofu runner. Each command of the plugin is a thin layer over these.

pub mod apply;
pub mod argo;
pub mod cluster;
pub mod config;
pub mod digitalocean;
pub mod fs;
pub mod git;
pub mod http;
pub mod interrupt;
pub mod manifest;
pub mod manifests;
pub mod naming;
pub mod password;
pub mod rbac;
pub mod render;
pub mod request_log;
pub mod tofu;
pub mod tutor;
pub mod wait;
pub mod workflow;
pub mod yaml_error;

pub use cluster::{AccessError, AccessOptions, Cluster, ClusterAccess, KubeconfigSource};
pub use config::{ClusterRepository, Environment, ProcessEnvironment, Setting, Settings};
