//! The one DigitalOcean API call the plugin makes itself. DigitalOcean
//! generates the password of a managed-database user (its API cannot set
//! one), so after the provisioning Workflow has created the MongoDB user,
//! the plugin reads that password and stores it with the instance's other
//! credentials.

use std::time::Duration;

use reqwest::Url;

const API_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum DigitalOceanError {
    #[error("{0} is not a valid DigitalOcean API URL")]
    InvalidUrl(String),
    #[error("cannot reach the DigitalOcean API at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the DigitalOcean API answered {status} for user {user} of database cluster {cluster}: {message}"
    )]
    Refused {
        status: u16,
        user: String,
        cluster: String,
        message: String,
    },
    #[error("the DigitalOcean API's answer for user {user} has no password")]
    NoPassword { user: String },
}

/// `GET /v2/databases/{cluster}/users/{user}`: the user's password.
pub async fn database_user_password(
    api_url: &str,
    token: &str,
    cluster: &str,
    user: &str,
) -> Result<String, DigitalOceanError> {
    let mut url =
        Url::parse(api_url).map_err(|_| DigitalOceanError::InvalidUrl(api_url.to_owned()))?;
    url.path_segments_mut()
        .map_err(|()| DigitalOceanError::InvalidUrl(api_url.to_owned()))?
        .pop_if_empty()
        .extend(["v2", "databases", cluster, "users", user]);
    let unreachable = |source| DigitalOceanError::Unreachable {
        url: api_url.to_owned(),
        source,
    };
    let client = crate::http::client_builder(API_TIMEOUT)
        .build()
        .map_err(unreachable)?;
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body: serde_json::Value = response
        .text()
        .await
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    if !status.is_success() {
        return Err(DigitalOceanError::Refused {
            status: status.as_u16(),
            user: user.to_owned(),
            cluster: cluster.to_owned(),
            message: body["message"].as_str().unwrap_or("no message").to_owned(),
        });
    }
    body["user"]["password"]
        .as_str()
        .filter(|password| !password.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| DigitalOceanError::NoPassword {
            user: user.to_owned(),
        })
}
