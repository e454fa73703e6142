//! The library's integration tests: one test binary, whose modules share the
//! bare control plane (`ControlPlane::shared`) and keep to names of their own.
//!
//! Run one area with `cargo test -p phd-common --test common apply::`.

mod apply;
mod cluster_access;
