//! Size tiers of an instance (`--size small|medium|large`, config.yml
//! `PHD_SIZE`): the namespace's ResourceQuota and LimitRange. The tier's
//! requests, limits, replicas, PodDisruptionBudgets, autoscalers and Redis
//! and Meilisearch sizing are rendered by phd's Tutor plugin (`SIZES` in
//! plugins/tutor-phd/phd.py); the quota here leaves room for all of that at
//! the autoscalers' maximum, every init hook at once and the provisioning
//! workflows' pods (tests/plugin/sizes.rs checks that they agree).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Map, Value};

/// The config.yml setting that holds the tier.
pub const SIZE_KEY: &str = "PHD_SIZE";

/// An instance's size tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Size {
    /// One replica of each web and worker Deployment (autoscaled to 2)
    #[default]
    Small,
    /// Two LMS and CMS replicas (autoscaled to 4 and 3)
    Medium,
    /// Three LMS and two CMS replicas (autoscaled to 8 and 4)
    Large,
}

/// Totals of a tier's ResourceQuota: (requests.cpu, requests.memory,
/// limits.cpu, limits.memory, pods, requests.storage), in Kubernetes
/// quantities.
struct Quota {
    requests_cpu: &'static str,
    requests_memory: &'static str,
    limits_cpu: &'static str,
    limits_memory: &'static str,
    pods: &'static str,
    storage: &'static str,
}

impl Size {
    /// All tiers, smallest first.
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// The tier's name in config.yml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }

    /// The tier `config` (config.yml's settings) names: `PHD_SIZE`, small
    /// when unset. Errors on any other value, naming the accepted ones.
    pub fn from_config(config: &Map<String, Value>) -> anyhow::Result<Size> {
        match config.get(SIZE_KEY) {
            None | Some(Value::Null) => Ok(Size::default()),
            Some(Value::String(value)) => Self::ALL
                .into_iter()
                .find(|size| size.as_str() == value)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{SIZE_KEY} is {value:?} in config.yml: expected small, medium or large"
                    )
                }),
            Some(other) => {
                anyhow::bail!(
                    "{SIZE_KEY} is {other} in config.yml: expected small, medium or large"
                )
            }
        }
    }

    fn quota(self) -> Quota {
        match self {
            Size::Small => Quota {
                requests_cpu: "6",
                requests_memory: "24Gi",
                limits_cpu: "28",
                limits_memory: "48Gi",
                pods: "40",
                storage: "20Gi",
            },
            Size::Medium => Quota {
                requests_cpu: "10",
                requests_memory: "36Gi",
                limits_cpu: "44",
                limits_memory: "72Gi",
                pods: "60",
                storage: "40Gi",
            },
            Size::Large => Quota {
                requests_cpu: "28",
                requests_memory: "56Gi",
                limits_cpu: "84",
                limits_memory: "120Gi",
                pods: "100",
                storage: "80Gi",
            },
        }
    }

    /// The namespace's ResourceQuota (`phd-quota`) for this tier, with the
    /// given metadata's name replaced. Units: CPU in cores, memory and
    /// storage in bytes (Kubernetes quantities).
    pub fn resource_quota(
        self,
        mut metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> ResourceQuota {
        let quota = self.quota();
        metadata.name = Some(QUOTA_NAME.to_owned());
        let hard = [
            ("requests.cpu", quota.requests_cpu),
            ("requests.memory", quota.requests_memory),
            ("limits.cpu", quota.limits_cpu),
            ("limits.memory", quota.limits_memory),
            ("pods", quota.pods),
            ("requests.storage", quota.storage),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), Quantity(value.to_owned())))
        .collect::<BTreeMap<_, _>>();
        ResourceQuota {
            metadata,
            spec: Some(ResourceQuotaSpec {
                hard: Some(hard),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The namespace's LimitRange (`phd-limits`): requests and limits for a
    /// container that sets none (the Argo Workflows executor's containers of
    /// the provisioning pods, any plugin's sidecar), so that every pod is
    /// admitted under the quota; and a cap per container.
    pub fn limit_range(
        self,
        mut metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> LimitRange {
        metadata.name = Some(LIMITS_NAME.to_owned());
        let quantities = |cpu: &str, memory: &str| {
            BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(memory.to_owned())),
            ])
        };
        LimitRange {
            metadata,
            spec: Some(LimitRangeSpec {
                limits: vec![LimitRangeItem {
                    type_: "Container".to_owned(),
                    default_request: Some(quantities(DEFAULT_REQUEST.0, DEFAULT_REQUEST.1)),
                    default: Some(quantities(DEFAULT_LIMIT.0, DEFAULT_LIMIT.1)),
                    max: Some(quantities("4", "8Gi")),
                    ..Default::default()
                }],
            }),
        }
    }
}

/// Name of the namespace's ResourceQuota.
pub const QUOTA_NAME: &str = "phd-quota";
/// Name of the namespace's LimitRange.
pub const LIMITS_NAME: &str = "phd-limits";
/// (CPU, memory) requested by a container that sets no request.
pub const DEFAULT_REQUEST: (&str, &str) = ("100m", "128Mi");
/// (CPU, memory) limits of a container that sets no limit.
pub const DEFAULT_LIMIT: (&str, &str) = ("500m", "512Mi");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tier_comes_from_config_yml_and_defaults_to_small() {
        let config = |text: &str| crate::instance::render::parse_config(text).expect("yaml");
        assert_eq!(Size::from_config(&config("ID: a\n")).unwrap(), Size::Small);
        assert_eq!(
            Size::from_config(&config("PHD_SIZE: large\n")).unwrap(),
            Size::Large
        );
        let error = Size::from_config(&config("PHD_SIZE: huge\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("huge") && error.contains("small, medium or large"),
            "{error}"
        );
        assert!(Size::from_config(&config("PHD_SIZE: 3\n")).is_err());
    }
}
