//! The HTTP client of manifest downloads and provider APIs, configured once.

use std::time::Duration;

/// A reqwest client builder with phd's user agent, a connect timeout and the
/// whole-request `timeout`. Proxies follow kubectl's rules: `HTTPS_PROXY` /
/// `HTTP_PROXY` (reqwest reads them), bypassed for the hosts of `NO_PROXY`;
/// reqwest does not take `NO_PROXY=*` (every host) as kubectl and curl do,
/// so that one is applied here.
pub fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("kubectl-phd/", env!("CARGO_PKG_VERSION")));
    let every_host = ["NO_PROXY", "no_proxy"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .is_some_and(|list| list.split(',').any(|entry| entry.trim() == "*"));
    if every_host {
        builder.no_proxy()
    } else {
        builder
    }
}
