//! The real Argo CD, run next to a test control plane: its application
//! controller and repo server (the binary `scripts/install-test-tools` builds
//! from the Go module proxy), Redis as its cache, and a git server on
//! loopback for the cluster repository. Out of the cluster, as Argo CD's own
//! `make start-local` runs them: the controller deploys to
//! `https://kubernetes.default.svc` through the kubeconfig it is given.
//!
//! Nothing is stood in for: Argo CD reads the repository over git's smart
//! HTTP protocol (`git http-backend`), renders it with the kustomize release
//! it pins, and applies, prunes and finalizes as it does in a cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::http::{HttpStub, Request, Response};
use crate::{Children, cache_dir, free_port};

/// A git server on a free loopback port serving every repository under a
/// folder over smart HTTP (`git http-backend` behind [`HttpStub`]). Stops
/// when dropped.
pub struct GitServer {
    stub: HttpStub,
}

impl GitServer {
    /// Serves the repositories under `root`: `<url>/<folder name>`.
    pub fn start(root: &Path) -> Result<Self> {
        let root = root.to_path_buf();
        let stub = HttpStub::start(move |request| http_backend(&root, request))?;
        Ok(Self { stub })
    }

    /// The URL of repository `name` (a folder under the root).
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.stub.url())
    }
}

/// One request through `git http-backend` as a CGI program.
fn http_backend(root: &Path, request: &Request) -> Response {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let mut command = Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &request.method)
        .env(
            "PATH_INFO",
            crate::http::percent_decode(path).unwrap_or_default(),
        )
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        // An authenticated user: git http-backend then accepts pushes.
        .env("REMOTE_USER", "phd-test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (header, variable) in [
        ("Content-Type", "CONTENT_TYPE"),
        ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ("Git-Protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = request.header(header) {
            command.env(variable, value);
        }
    }
    let mut run = || -> Result<Vec<u8>> {
        let mut child = command.spawn().context("run git http-backend")?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let body = request.body.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(&body);
        });
        let output = child
            .wait_with_output()
            .context("wait for git http-backend")?;
        let _ = writer.join();
        Ok(output.stdout)
    };
    let output = match run() {
        Ok(output) => output,
        Err(error) => return Response::empty(500).body(format!("{error:#}").into_bytes()),
    };
    // CGI: headers, a blank line, the body; `Status:` sets the status.
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, separator)) = split else {
        return Response::empty(500).body(output);
    };
    let head = String::from_utf8_lossy(&output[..at]).into_owned();
    let mut response = Response::empty(200).body(output[at + separator..].to_vec());
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("Status") {
            response.status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(500);
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response
}

/// Where `scripts/install-test-tools` puts Argo CD `version`'s binaries (under
/// the names it answers to) and the kustomize its repo server runs.
pub fn argocd_bin_dir(version: &str) -> PathBuf {
    cache_dir().join(format!("argocd-{version}")).join("bin")
}

/// How [`ArgoCd::start_with`] runs Argo CD.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Seconds between the controllers' re-reads of every Application and
    /// ApplicationSet (`--app-resync`; the ApplicationSet controller's
    /// requeue, 3 minutes in Argo CD, for git generators without webhooks).
    pub resync: u32,
    /// Seconds a branch's resolved commit is cached by the repo server;
    /// `None` keeps Argo CD's default, 3 minutes, as in a real cluster whose
    /// git host sends no webhook.
    pub revision_cache: Option<u32>,
    /// Whether the ApplicationSet controller runs too.
    pub applicationsets: bool,
}

/// Argo CD's application controller, repo server and Redis, for one control
/// plane; their logs are in a temporary directory ([`ArgoCd::logs`] reads
/// their ends for a failing test's message). Stops, and the logs go, when
/// dropped.
pub struct ArgoCd {
    children: Children,
}

impl ArgoCd {
    /// Starts Argo CD `version` against the cluster of `kubeconfig`, whose
    /// `argocd` namespace holds its install (`kubectl phd argo install`).
    /// The controller re-reads every Application each `resync` seconds, and
    /// a branch resolves to its newest commit after as long (what a webhook
    /// from the git host does in a real cluster).
    pub fn start(kubeconfig: &Path, version: &str, resync: u32) -> Result<Self> {
        Self::start_with(
            kubeconfig,
            version,
            &Options {
                resync,
                revision_cache: Some(resync),
                applicationsets: false,
            },
        )
    }

    /// Starts Argo CD `version` as `options` say.
    pub fn start_with(kubeconfig: &Path, version: &str, options: &Options) -> Result<Self> {
        let Options {
            resync,
            revision_cache,
            applicationsets,
        } = *options;
        let bin = argocd_bin_dir(version);
        if !bin.join("argocd-application-controller").exists() {
            bail!(
                "Argo CD {version} is not built: run scripts/install-test-tools ({} is missing)",
                bin.display()
            );
        }
        let mut argocd = Self {
            children: Children::new()?,
        };
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );

        let redis_port = free_port()?;
        argocd.children.spawn(
            "redis",
            Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--port", &redis_port.to_string()])
                .current_dir(argocd.children.dir()),
        )?;
        wait_for_port(redis_port, "Redis")?;
        let redis = format!("127.0.0.1:{redis_port}");

        let repo_port = free_port()?;
        let repo_metrics = free_port()?;
        let tmp = argocd.children.dir().join("tmp");
        std::fs::create_dir_all(&tmp)?;
        argocd.children.spawn(
            "repo-server",
            Command::new(bin.join("argocd-repo-server"))
                .args([
                    "--disable-tls",
                    "--client-ca-path=",
                    "--address",
                    "127.0.0.1",
                ])
                .args(["--metrics-address", "127.0.0.1", "--redis", &redis])
                .args(["--port", &repo_port.to_string()])
                .args(["--metrics-port", &repo_metrics.to_string()])
                .args(
                    revision_cache
                        .map(|seconds| {
                            [
                                "--revision-cache-expiration".to_owned(),
                                format!("{seconds}s"),
                            ]
                        })
                        .into_iter()
                        .flatten(),
                )
                .env("PATH", &path)
                .env("TMPDIR", &tmp)
                .env("HOME", argocd.children.dir())
                .env("ARGOCD_GPG_ENABLED", "false"),
        )?;
        wait_for_port(repo_port, "argocd-repo-server")?;

        let controller_metrics = free_port()?;
        argocd.children.spawn(
            "application-controller",
            Command::new(bin.join("argocd-application-controller"))
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--namespace", "argocd", "--redis", &redis])
                .args(["--repo-server", &format!("127.0.0.1:{repo_port}")])
                .arg("--repo-server-plaintext")
                .args(["--metrics-port", &controller_metrics.to_string()])
                .args(["--app-resync", &resync.to_string()])
                // The in-cluster destination (https://kubernetes.default.svc)
                // through the kubeconfig, as Argo CD's local runs do.
                .env("ARGOCD_FAKE_IN_CLUSTER", "true")
                .env("KUBECONFIG", kubeconfig)
                .env("PATH", &path)
                .env("HOME", argocd.children.dir()),
        )?;
        if applicationsets {
            let addresses =
                [free_port()?, free_port()?, free_port()?].map(|port| format!("127.0.0.1:{port}"));
            argocd.children.spawn(
                "applicationset-controller",
                Command::new(bin.join("argocd-applicationset-controller"))
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(["--namespace", "argocd"])
                    .args(["--argocd-repo-server", &format!("127.0.0.1:{repo_port}")])
                    .arg("--repo-server-plaintext")
                    .args(["--metrics-addr", &addresses[0]])
                    .args(["--probe-addr", &addresses[1]])
                    .args(["--webhook-addr", &addresses[2]])
                    // Git generators poll every 3 minutes unless a webhook
                    // says a push happened; the tests poll as fast as the
                    // controller's resync.
                    .env(
                        "ARGOCD_APPLICATIONSET_CONTROLLER_REQUEUE_AFTER",
                        format!("{resync}s"),
                    )
                    .env("ARGOCD_FAKE_IN_CLUSTER", "true")
                    .env("KUBECONFIG", kubeconfig)
                    .env("PATH", &path)
                    .env("HOME", argocd.children.dir()),
            )?;
        }
        Ok(argocd)
    }

    /// The last `lines` lines of each component's log, for a failing test's message.
    pub fn logs(&self, lines: usize) -> String {
        self.children.logs(lines)
    }
}

fn wait_for_port(port: u16, what: &str) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not listen on port {port} within 30 s")
}
