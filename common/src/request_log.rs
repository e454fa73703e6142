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
            request
                .uri()
                .path_and_query()
                .map_or_else(|| request.uri().path(), |p| p.as_str())
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
