//! A tower layer for kube's client that reports each API request when its
//! answer arrives: method, path with query, HTTP status and time taken, as
//! `GET /api/v1/namespaces/demo 200 12ms` (what `kubectl -v=6` shows).
//!
//! With bodies on (the plugin's `-vv`, like `kubectl -v=8`), the request's
//! and the answer's JSON bodies follow that line, each cut at
//! [`BODY_LIMIT`] characters, with every secret value replaced by
//! `<redacted>` first ([`redact`]): the `data` and `stringData` of Secrets
//! (and of anything read or written under a `secrets` path), their
//! last-applied annotation, and a TokenRequest's token. A body that is not
//! JSON is never shown, only its size. Headers are never shown. Watch and
//! log streams are passed through untouched (their bodies never end).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;

/// Where the lines go (the plugin's `-v` output).
pub type RequestLogger = fn(&str);

/// An error of kube's HTTP stack, boxed as kube's client expects it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An answer's body after this layer: the original stream, or the bytes
/// already read to show them.
pub type LoggedBody = UnsyncBoxBody<Bytes, BoxError>;

/// How many characters of one body `-vv` shows (kubectl -v=8 cuts at
/// 10240; bodies here are objects, a few KiB tell what was sent).
pub const BODY_LIMIT: usize = 4096;

/// What replaces a secret value in a shown body.
pub const REDACTED: &str = "<redacted>";

/// The layer: wraps kube's HTTP service in [`Logged`].
#[derive(Debug, Clone, Copy)]
pub struct RequestLog {
    log: RequestLogger,
    bodies: bool,
}

impl RequestLog {
    /// Request lines only (`-v`).
    pub fn new(log: RequestLogger) -> Self {
        Self { log, bodies: false }
    }

    /// Request lines and, when `bodies`, the redacted bodies (`-vv`).
    pub fn with_bodies(self, bodies: bool) -> Self {
        Self { bodies, ..self }
    }
}

impl<S> tower::Layer<S> for RequestLog {
    type Service = Logged<S>;

    fn layer(&self, inner: S) -> Logged<S> {
        Logged {
            inner,
            options: *self,
        }
    }
}

/// kube's HTTP service, reporting each request to its logger.
#[derive(Clone)]
pub struct Logged<S> {
    inner: S,
    options: RequestLog,
}

impl<S, R> tower::Service<http::Request<kube::client::Body>> for Logged<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = http::Response<LoggedBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let line = format!(
            "{} {}",
            request.method(),
            target(&path, request.uri().query())
        );
        let RequestLog { log, bodies } = self.options;
        let streamed = is_stream(request.uri().query());
        // kube builds every request body from bytes in memory, so a copy
        // is at hand without touching what is sent.
        let sent = bodies.then(|| request.body().try_clone()).flatten();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match answer.await {
                Ok(response) => response,
                Err(error) => {
                    let error: BoxError = error.into();
                    let took = started.elapsed().as_millis();
                    log(&format!("{line} failed after {took}ms: {error}"));
                    return Err(error);
                }
            };
            let took = started.elapsed().as_millis();
            log(&format!("{line} {} {took}ms", response.status().as_u16()));
            if let Some(sent) = sent
                && let Ok(sent) = sent.collect_bytes().await
                && !sent.is_empty()
            {
                log(&format!("request body: {}", shown(&path, &sent)));
            }
            if !bodies || streamed {
                return Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()));
            }
            let (parts, body) = response.into_parts();
            let received = body.collect().await.map_err(Into::into)?.to_bytes();
            if !received.is_empty() {
                log(&format!("response body: {}", shown(&path, &received)));
            }
            let body = Full::new(received).map_err(|never| match never {});
            Ok(http::Response::from_parts(parts, body.boxed_unsync()))
        })
    }
}

/// Whether the request opens a stream (a watch, a followed log) whose body
/// never ends, so it must not be read here.
fn is_stream(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|parameter| parameter == "watch=true" || parameter == "follow=true")
}

/// A body as `-vv` shows it: its JSON with secret values redacted, on one
/// line, cut at [`BODY_LIMIT`] characters; or only its size when it is not
/// JSON (nothing unparsed can be checked for secrets).
pub fn shown(path: &str, body: &[u8]) -> String {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return format!("({} bytes, not JSON, not shown)", body.len());
    };
    redact(path, &mut value);
    let text = value.to_string();
    match text.char_indices().nth(BODY_LIMIT) {
        Some((cut, _)) => format!(
            "{}… ({} more characters)",
            &text[..cut],
            text[cut..].chars().count()
        ),
        None => text,
    }
}

/// Replaces every secret value in a request's or answer's JSON body with
/// [`REDACTED`], in place: the `data` and `stringData` values and the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation of each
/// Secret (an object of kind `Secret`, an item of a `SecretList`, or any
/// object sent to or read from a path whose resource is `secrets`, such as
/// a patch that names no kind), and `status.token` of a `TokenRequest`.
pub fn redact(path: &str, body: &mut Value) {
    let secrets_path = path.split('/').any(|segment| segment == "secrets");
    walk(body, secrets_path);
}

fn walk(value: &mut Value, secret: bool) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| walk(item, secret)),
        Value::Object(object) => {
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let is_secret = secret || kind == "Secret";
            let items_are_secrets = is_secret || kind == "SecretList";
            if kind == "TokenRequest"
                && let Some(token) = object
                    .get_mut("status")
                    .and_then(|status| status.get_mut("token"))
            {
                *token = Value::from(REDACTED);
            }
            if is_secret {
                for field in ["data", "stringData"] {
                    if let Some(Value::Object(entries)) = object.get_mut(field) {
                        entries
                            .values_mut()
                            .for_each(|entry| *entry = Value::from(REDACTED));
                    }
                }
                if let Some(applied) = object
                    .get_mut("metadata")
                    .and_then(|metadata| metadata.get_mut("annotations"))
                    .and_then(|annotations| {
                        annotations.get_mut("kubectl.kubernetes.io/last-applied-configuration")
                    })
                {
                    *applied = Value::from(REDACTED);
                }
            }
            for (field, child) in object.iter_mut() {
                walk(child, field == "items" && items_are_secrets);
            }
        }
        _ => {}
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

#[cfg(test)]
mod redaction {
    use serde_json::json;

    use super::{BODY_LIMIT, REDACTED, redact, shown};

    #[test]
    fn secret_values_are_redacted_wherever_a_secret_appears() {
        // A Secret applied under its own path.
        let mut applied = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "mysql", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"czNjcjN0\"}}",
                "owner": "phd"}},
            "data": {"password": "czNjcjN0"}, "stringData": {"token": "s3cr3t"}
        });
        redact("/api/v1/namespaces/demo/secrets/mysql", &mut applied);
        assert_eq!(applied["data"]["password"], REDACTED);
        assert_eq!(applied["stringData"]["token"], REDACTED);
        assert_eq!(
            applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            REDACTED
        );
        assert_eq!(applied["metadata"]["annotations"]["owner"], "phd");
        assert_eq!(applied["metadata"]["name"], "mysql");

        // A patch that names no kind, sent to a Secret's path.
        let mut patch = json!({"data": {"admin.password": "JDJiJDEw"}});
        redact(
            "/api/v1/namespaces/argocd/secrets/argocd-secret",
            &mut patch,
        );
        assert_eq!(patch["data"]["admin.password"], REDACTED);

        // A list of Secrets: its items carry no kind.
        let mut list = json!({"kind": "SecretList", "items": [
            {"metadata": {"name": "a"}, "data": {"token": "dG9rZW4="}}
        ]});
        redact("/api/v1/secrets", &mut list);
        assert_eq!(list["items"][0]["data"]["token"], REDACTED);

        // A Secret inside something else (a List of mixed kinds).
        let mut mixed = json!({"kind": "List", "items": [
            {"kind": "ConfigMap", "data": {"url": "https://example.org"}},
            {"kind": "Secret", "data": {"key": "a2V5"}}
        ]});
        redact("/api/v1/namespaces/demo/configmaps", &mut mixed);
        assert_eq!(mixed["items"][0]["data"]["url"], "https://example.org");
        assert_eq!(mixed["items"][1]["data"]["key"], REDACTED);

        // A service account token.
        let mut token = json!({"kind": "TokenRequest", "spec": {"expirationSeconds": 3600},
            "status": {"token": "eyJhbGciOi", "expirationTimestamp": "2026-12-01T00:00:00Z"}});
        redact(
            "/api/v1/namespaces/argocd/serviceaccounts/ci/token",
            &mut token,
        );
        assert_eq!(token["status"]["token"], REDACTED);
        assert_eq!(token["spec"]["expirationSeconds"], 3600);
    }

    #[test]
    fn other_bodies_are_shown_as_sent() {
        let mut config = json!({"kind": "ConfigMap", "data": {"accounts.alice": "apiKey, login"}});
        let before = config.clone();
        redact(
            "/api/v1/namespaces/argocd/configmaps/argocd-cm",
            &mut config,
        );
        assert_eq!(config, before);
    }

    #[test]
    fn bodies_are_cut_and_non_json_is_never_shown() {
        assert_eq!(
            shown("/api/v1/namespaces/demo/secrets/x", b"password: s3cr3t"),
            "(16 bytes, not JSON, not shown)"
        );
        let long = serde_json::to_vec(&json!({"data": "é".repeat(BODY_LIMIT)})).unwrap_or_default();
        let cut = shown("/api/v1/namespaces/demo/configmaps/x", &long);
        assert!(cut.ends_with("… (11 more characters)"), "{cut}");
        assert_eq!(
            cut.split('…').next().map(|s| s.chars().count()),
            Some(BODY_LIMIT)
        );
    }
}
