//! A tower layer for kube's client that reports each API request when its
//! answer arrives: method, path with query, HTTP status and time taken, as
//! `GET /api/v1/namespaces/demo 200 12ms` (what `kubectl -v=6` shows). Only
//! the request line is reported, never a body or a header, so no credential
//! or Secret value can reach the log.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Where the lines go (the plugin's `-v` output).
pub type RequestLogger = fn(&str);

/// The layer: wraps kube's HTTP service in [`Logged`].
#[derive(Clone, Copy)]
pub struct RequestLog {
    log: RequestLogger,
}

impl RequestLog {
    pub fn new(log: RequestLogger) -> Self {
        Self { log }
    }
}

impl<S> tower::Layer<S> for RequestLog {
    type Service = Logged<S>;

    fn layer(&self, inner: S) -> Logged<S> {
        Logged {
            inner,
            log: self.log,
        }
    }
}

/// kube's HTTP service, reporting each request to its logger.
#[derive(Clone)]
pub struct Logged<S> {
    inner: S,
    log: RequestLogger,
}

impl<S, B, R> tower::Service<http::Request<B>> for Logged<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let line = format!(
            "{} {}",
            request.method(),
            target(request.uri().path(), request.uri().query())
        );
        let log = self.log;
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            let took = started.elapsed().as_millis();
            match &result {
                Ok(response) => log(&format!("{line} {} {took}ms", response.status().as_u16())),
                Err(error) => log(&format!("{line} failed after {took}ms: {error}")),
            }
            result
        })
    }
}

/// The request's path and query as a reader expects it: without the empty
/// parameters kube's query builder can leave (`?&fieldManager=phd` becomes
/// `?fieldManager=phd`, a lone `?` goes).
fn target(path: &str, query: Option<&str>) -> String {
    let parameters: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|parameter| !parameter.is_empty())
        .collect();
    if parameters.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parameters.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn empty_query_parameters_are_left_out() {
        assert_eq!(
            target(
                "/api/v1/namespaces/argocd/configmaps/argocd-cm",
                Some("&fieldManager=phd&force=true")
            ),
            "/api/v1/namespaces/argocd/configmaps/argocd-cm?fieldManager=phd&force=true"
        );
        assert_eq!(target("/api/v1/namespaces", Some("")), "/api/v1/namespaces");
        assert_eq!(target("/api/v1/namespaces", None), "/api/v1/namespaces");
        assert_eq!(target("/version", Some("a=1&&b=2")), "/version?a=1&b=2");
    }
}
