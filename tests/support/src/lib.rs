//! A real Kubernetes control plane for tests: etcd, kube-apiserver (RBAC on)
//! and kube-controller-manager, built once from the Go module proxy
//! (`tests/controlplane`) and started on free loopback ports in a temporary
//! directory.
//!
//! Tests share one control plane per test binary through [`ControlPlane::shared`]
//! and keep apart by using their own namespaces and names ([`unique_name`]).
//! The servers stop when the test process exits, however it exits: each reads
//! its standard input from a pipe held by this process and stops at end of file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio::sync::OnceCell;

pub mod argo;
pub mod argocd;
pub mod http;
pub mod kwok;
pub mod mariadb;
pub mod mongodb;
pub mod proxy;
pub mod s3;
pub mod scripts;
pub mod tofu;
pub mod upstream;
pub mod workflows;

/// The Kubernetes release the control plane is built from (`tests/controlplane/go.mod`).
pub const KUBERNETES_VERSION: &str = "v1.34.4";
/// Bumped whenever `tests/controlplane` changes in a way that needs a rebuild.
const BUILD_REVISION: u32 = 3;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running control plane. Dropping it stops the servers and removes its directory.
pub struct ControlPlane {
    dir: PathBuf,
    processes: Vec<Process>,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// `https://127.0.0.1:PORT`
    pub server: String,
    /// A kubeconfig with a `system:masters` identity.
    pub admin_kubeconfig: PathBuf,
}

struct Process {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    child: Child,
    // Held open so the server sees end of file when this process dies.
    _stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// The shared control planes of this process, by name, each started once.
static SHARED: Mutex<BTreeMap<&'static str, &'static OnceCell<ControlPlane>>> =
    Mutex::new(BTreeMap::new());
/// What `stop_shared` stops at exit: each shared plane's processes and directory.
static SHARED_CLEANUP: Mutex<Vec<(Vec<u32>, PathBuf)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

impl ControlPlane {
    /// The bare control plane shared by the tests of this test binary,
    /// started on first use: tests that install nothing cluster-wide on it.
    pub async fn shared() -> &'static ControlPlane {
        Self::shared_named("bare").await
    }

    /// The control plane shared by the tests of this test binary that ask
    /// for `name`, started on first use and stopped when the process exits.
    /// Tests that set up the same cluster-wide state (such as Argo installed)
    /// share one name; tests that must not see that state use another.
    pub async fn shared_named(name: &'static str) -> &'static ControlPlane {
        let cell: &'static OnceCell<ControlPlane> = {
            let mut planes = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
            planes
                .entry(name)
                .or_insert_with(|| Box::leak(Box::new(OnceCell::const_new())))
        };
        cell.get_or_init(|| async {
            let plane = match Self::start().await {
                Ok(plane) => plane,
                Err(error) => panic!("cannot start the local control plane {name}: {error:?}"),
            };
            let pids = plane.processes.iter().map(|p| p.child.id()).collect();
            SHARED_CLEANUP
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((pids, plane.dir.clone()));
            // SAFETY: registering a plain extern "C" function without arguments.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(stop_shared);
            });
            plane
        })
        .await
    }

    /// Starts a new control plane in a fresh temporary directory.
    pub async fn start() -> Result<Self> {
        Self::start_with_controllers(&[]).await
    }

    /// Starts a new control plane whose controller manager also runs
    /// `controllers` (kube-controller-manager's names, such as
    /// `job-controller`, `deployment-controller`, `replicaset-controller`):
    /// for tests in which workloads come to life (with kwok as their nodes).
    pub async fn start_with_controllers(controllers: &[&str]) -> Result<Self> {
        // Ports are chosen free, then bound by the servers a moment later:
        // another test (or process) may take one in between. Such a start is
        // tried again with new ports; any other failure is returned.
        let mut attempt = 1;
        loop {
            match Self::try_start(controllers).await {
                Err(error)
                    if attempt < 3 && format!("{error:#}").contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_start(controllers: &[&str]) -> Result<Self> {
        let mut enabled = vec![
            "namespace-controller",
            "garbage-collector-controller",
            "serviceaccount-controller",
            "serviceaccount-token-controller",
            "persistentvolumeclaim-protection-controller",
        ];
        enabled.extend_from_slice(controllers);
        let binary = binary()?;
        let dir = fresh_directory()?;
        let started = Instant::now();
        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let secure_port = free_port()?;
        let server = format!("https://127.0.0.1:{secure_port}");

        let ca = certificate_authority()?;
        write(&dir.join("ca.crt"), &ca.pem())?;
        let (serving_cert, serving_key) = serving_certificate(&ca)?;
        write(&dir.join("apiserver.crt"), &serving_cert)?;
        write(&dir.join("apiserver.key"), &serving_key)?;
        let service_account_key = KeyPair::generate().context("generate service account key")?;
        write(&dir.join("sa.key"), &service_account_key.serialize_pem())?;
        write(&dir.join("sa.pub"), &service_account_key.public_key_pem())?;

        let mut plane = Self {
            dir: dir.clone(),
            processes: Vec::new(),
            ca,
            server: server.clone(),
            admin_kubeconfig: dir.join("admin.kubeconfig"),
        };
        let admin = plane.kubeconfig_for("phd-test-admin", Some("system:masters"))?;
        fs::rename(&admin, &plane.admin_kubeconfig).context("name the admin kubeconfig")?;

        let path = |name: &str| dir.join(name).display().to_string();
        plane.spawn(
            &binary,
            "etcd",
            &[
                "--name=default".into(),
                format!("--data-dir={}", path("etcd")),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;
        plane.spawn(
            &binary,
            "kube-apiserver",
            &[
                format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={secure_port}"),
                format!("--cert-dir={}", path("apiserver-certs")),
                format!("--tls-cert-file={}", path("apiserver.crt")),
                format!("--tls-private-key-file={}", path("apiserver.key")),
                format!("--client-ca-file={}", path("ca.crt")),
                format!("--service-account-key-file={}", path("sa.pub")),
                format!("--service-account-signing-key-file={}", path("sa.key")),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                "--endpoint-reconciler-type=none".into(),
                "--profiling=false".into(),
                "--v=0".into(),
            ],
        )?;
        plane.spawn(
            &binary,
            "kube-controller-manager",
            &[
                format!("--kubeconfig={}", plane.admin_kubeconfig.display()),
                format!("--controllers={}", enabled.join(",")),
                format!("--service-account-private-key-file={}", path("sa.key")),
                format!("--root-ca-file={}", path("ca.crt")),
                "--use-service-account-credentials=false".into(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--profiling=false".into(),
                "--v=0".into(),
            ],
        )?;
        plane.wait_until_ready(started).await?;
        Ok(plane)
    }

    fn spawn(&mut self, binary: &Path, name: &'static str, args: &[String]) -> Result<()> {
        let log = self.dir.join(format!("{name}.log"));
        let log_file = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut child = Command::new(binary)
            .arg(name)
            .args(args)
            .env("PHD_CONTROLPLANE_EXIT_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().context("log file handle")?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {name} from {}", binary.display()))?;
        let stdin = child.stdin.take();
        self.processes.push(Process {
            name,
            binary: binary.to_path_buf(),
            args: args.to_vec(),
            child,
            _stdin: stdin,
            log,
        });
        Ok(())
    }

    /// Ready means: the API server answers, and the controller manager has
    /// created the `default` ServiceAccount, so both halves are working.
    async fn wait_until_ready(&mut self, started: Instant) -> Result<()> {
        let client = self.client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        loop {
            for process in &mut self.processes {
                if let Some(status) = process.child.try_wait()? {
                    bail!(
                        "{} exited with {status} while starting; its log:\n{}",
                        process.name,
                        log_tail(&process.log)
                    );
                }
            }
            if let Ok(Some(_)) = accounts.get_opt("default").await {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                let logs: Vec<String> = self
                    .processes
                    .iter()
                    .map(|p| format!("--- {}\n{}", p.name, log_tail(&p.log)))
                    .collect();
                bail!(
                    "control plane not ready after {READY_TIMEOUT:?}\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A client with the admin identity, bound to the calling test's runtime.
    pub async fn client(&self) -> Result<kube::Client> {
        self.client_from(&self.admin_kubeconfig).await
    }

    /// A client for any kubeconfig file.
    pub async fn client_from(&self, kubeconfig: &Path) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Writes a kubeconfig for a new client-certificate identity `user` (in
    /// `group`, if any) and returns its path. The identity has no permissions
    /// until a test binds some.
    pub fn kubeconfig_for(&self, user: &str, group: Option<&str>) -> Result<PathBuf> {
        self.client_kubeconfig(user, group, false)
    }

    /// A kubeconfig whose client certificate, signed by the trusted
    /// authority, expired in 2020: the API server answers it with 401.
    pub fn expired_kubeconfig_for(&self, user: &str) -> Result<PathBuf> {
        self.client_kubeconfig(user, None, true)
    }

    fn client_kubeconfig(&self, user: &str, group: Option<&str>, expired: bool) -> Result<PathBuf> {
        let key = KeyPair::generate().context("generate client key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        if let Some(group) = group {
            params
                .distinguished_name
                .push(DnType::OrganizationName, group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 2);
        }
        let cert = params.signed_by(&key, &self.ca)?;
        let path = self.dir.join(format!("{user}.kubeconfig"));
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "phd-test", "cluster": {
                "server": self.server,
                "certificate-authority-data": base64(&self.ca.pem()),
            }}],
            "users": [{"name": user, "user": {
                "client-certificate-data": base64(&cert.pem()),
                "client-key-data": base64(&key.serialize_pem()),
            }}],
            "contexts": [{"name": "phd-test", "context": {"cluster": "phd-test", "user": user}}],
            "current-context": "phd-test",
        });
        write(&path, &serde_json::to_string_pretty(&kubeconfig)?)?;
        Ok(path)
    }

    /// The PEM of the certificate authority the API server trusts and serves with.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The directory holding certificates, data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Fault injection on a control plane a test owns (started with
/// [`ControlPlane::start`], not the shared one).
impl ControlPlane {
    fn process(&self, name: &str) -> Result<&Process> {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no {name} process"))
    }

    fn signal(&self, name: &str, signal: libc::c_int) -> Result<()> {
        let pid = self.process(name)?.child.id();
        // SAFETY: signalling a child process this control plane started.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            bail!(
                "cannot signal {name} ({pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Freezes the API server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause_api_server(&self) -> Result<()> {
        self.signal("kube-apiserver", libc::SIGSTOP)
    }

    /// Lets a paused API server go on (SIGCONT).
    pub fn resume_api_server(&self) -> Result<()> {
        self.signal("kube-apiserver", libc::SIGCONT)
    }

    /// Kills the API server (SIGKILL) and waits until it is gone; etcd and
    /// the controller manager keep running.
    pub fn kill_api_server(&mut self) -> Result<()> {
        let process = self
            .processes
            .iter_mut()
            .find(|p| p.name == "kube-apiserver")
            .context("no kube-apiserver process")?;
        let _ = process.child.kill();
        process
            .child
            .wait()
            .context("wait for the killed API server")?;
        Ok(())
    }

    /// Starts the API server again with the same flags on the same etcd,
    /// and waits until it answers.
    pub async fn restart_api_server(&mut self) -> Result<()> {
        let index = self
            .processes
            .iter()
            .position(|p| p.name == "kube-apiserver")
            .context("no kube-apiserver process")?;
        let mut old = self.processes.remove(index);
        if old.child.try_wait()?.is_none() {
            let _ = old.child.kill();
            let _ = old.child.wait();
        }
        let (binary, args) = (old.binary.clone(), old.args.clone());
        self.spawn(&binary, "kube-apiserver", &args)?;
        let last = self.processes.len() - 1;
        self.processes.swap(index, last);
        self.wait_until_ready(Instant::now()).await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let pids: Vec<u32> = self.processes.iter().map(|p| p.child.id()).collect();
        stop_processes(&pids);
        for process in &mut self.processes {
            let _ = process.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

extern "C" fn stop_shared() {
    let taken = SHARED_CLEANUP
        .lock()
        .map(|mut cleanup| std::mem::take(&mut *cleanup))
        .unwrap_or_default();
    for (pids, dir) in taken {
        stop_processes(&pids);
        let _ = fs::remove_dir_all(dir);
    }
}

/// SIGTERM, up to five seconds of grace, then SIGKILL.
fn stop_processes(pids: &[u32]) {
    // Reverse start order: controller manager, API server, then etcd.
    for &pid in pids.iter().rev() {
        // SAFETY: signalling a child process we started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut running: Vec<u32> = pids.to_vec();
    while !running.is_empty() && Instant::now() < deadline {
        running.retain(|&pid| {
            let mut status = 0;
            // SAFETY: reaping our own child without blocking.
            let reaped = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
            reaped == 0
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in running {
        // SAFETY: as above; the process ignored SIGTERM.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// A name no other test in this run uses: `prefix-<pid>-<n>`, a valid DNS label.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id() % 100_000)
}

/// Records that a check was skipped, and why: on stderr, and appended to the
/// file `$PHD_SKIP_LOG` names, which `scripts/test` lists after its summary
/// line (cargo hides a passing test's output, so a skip would go unseen).
pub fn skipped(message: &str) {
    eprintln!("SKIPPED: {message}");
    if let Some(path) = std::env::var_os("PHD_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(file, "{message}");
        }
    }
}

/// A program the tests need: on PATH, else in `$PHD_CACHE_DIR/bin`, where
/// `scripts/install-test-tools` puts it. Panics naming the fix when missing.
pub fn tool(name: &str) -> PathBuf {
    if let Ok(path) = which::which(name) {
        return path;
    }
    let path = cache_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "{name} is not installed: run scripts/install-test-tools, which puts it in \
         $PHD_CACHE_DIR/bin (scripts/test adds that to PATH)"
    );
    path
}

/// `kubectl apply --server-side` of a YAML stream given on standard input,
/// as `field_manager`, with `--dry-run=server` when `dry_run`; panics with
/// kubectl's error when it fails. For tests that apply what another tool
/// rendered, as Argo CD would.
pub fn kubectl_apply(kubeconfig: &Path, stream: &str, field_manager: &str, dry_run: bool) {
    use std::io::Write as _;
    let mut command = std::process::Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["apply", "--server-side", "-f", "-"])
        .arg(format!("--field-manager={field_manager}"));
    if dry_run {
        command.arg("--dry-run=server");
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("write to kubectl");
    let output = child.wait_with_output().expect("wait for kubectl");
    assert!(
        output.status.success(),
        "kubectl apply (dry run {dry_run}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub use upstream::{argocd_install_manifest, go_module_dir, workflows_install_manifest};

/// The cache directory for built tools: `$PHD_CACHE_DIR`, else `$XDG_CACHE_HOME/phd`,
/// else `~/.cache/phd`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PHD_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("phd");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("phd")
}

/// The control-plane binary: `$PHD_CONTROLPLANE_BIN`, else the cached build,
/// built now from `tests/controlplane` if missing.
pub fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PHD_CONTROLPLANE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let bin_dir = cache_dir().join("bin");
    let binary = bin_dir.join(format!(
        "phd-controlplane-{KUBERNETES_VERSION}-r{BUILD_REVISION}"
    ));
    if binary.is_file() {
        return Ok(binary);
    }
    fs::create_dir_all(&bin_dir).with_context(|| format!("create {}", bin_dir.display()))?;
    let lock = File::create(bin_dir.join(".build.lock")).context("create build lock")?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped.
    unsafe {
        use std::os::fd::AsRawFd as _;
        libc::flock(lock.as_raw_fd(), libc::LOCK_EX);
    }
    if binary.is_file() {
        return Ok(binary);
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../controlplane");
    eprintln!(
        "building etcd, kube-apiserver, kube-controller-manager and kube-scheduler {KUBERNETES_VERSION} \
         (first run on this machine only; several minutes)"
    );
    let partial = binary.with_extension("partial");
    let (major, minor) = kubernetes_major_minor();
    let version_package = "k8s.io/component-base/version";
    let ldflags = format!(
        "-s -w -X {version_package}.gitVersion={KUBERNETES_VERSION} \
         -X {version_package}.gitMajor={major} -X {version_package}.gitMinor={minor} \
         -X {version_package}.gitTreeState=clean"
    );
    let status = Command::new("go")
        .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
        .arg(&partial)
        .arg(".")
        .current_dir(&source)
        .env("GOFLAGS", "-mod=readonly")
        .status()
        .context("run `go build` (is Go installed?)")?;
    if !status.success() {
        bail!("`go build` of {} failed with {status}", source.display());
    }
    fs::rename(&partial, &binary).context("install the built control plane")?;
    Ok(binary)
}

fn kubernetes_major_minor() -> (&'static str, &'static str) {
    let mut parts = KUBERNETES_VERSION.trim_start_matches('v').split('.');
    (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"))
}

fn fresh_directory() -> Result<PathBuf> {
    let base = std::env::temp_dir().join("phd-controlplane");
    fs::create_dir_all(&base)?;
    remove_abandoned(&base);
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&base)?
        .keep();
    Ok(dir)
}

/// Removes directories left by test processes that were killed outright.
fn remove_abandoned(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .split('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Processes a test starts beside its control plane (Argo CD's, kwok, a
/// controller), each logging to `<dir>/<name>.log` in a temporary directory
/// of their own; killed, and the directory removed, when dropped.
pub struct Children {
    dir: tempfile::TempDir,
    children: Vec<(String, std::process::Child)>,
}

impl Children {
    /// An empty set, with its directory.
    pub fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir().context("a directory for the processes' logs")?,
            children: Vec::new(),
        })
    }

    /// The directory of the logs (also a fine `HOME` for the processes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `command` as `name`, its output to `<dir>/<name>.log`, killed
    /// when the test's thread ends ([`die_with_parent`]).
    pub fn spawn(&mut self, name: &str, command: &mut Command) -> Result<()> {
        let log = File::create(self.dir.path().join(format!("{name}.log")))?;
        command
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(command);
        let child = command.spawn().with_context(|| format!("start {name}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// The exit status of `name`, if it has ended.
    pub fn exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        self.children
            .iter_mut()
            .find(|(n, _)| n == name)
            .and_then(|(_, child)| child.try_wait().ok().flatten())
    }

    /// The last `lines` lines of each process's log, each headed by its name
    /// and directory: for a failing test's message.
    pub fn logs(&self, lines: usize) -> String {
        let mut text = String::new();
        for (name, _) in &self.children {
            let log =
                fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(lines).collect();
            text.push_str(&format!("--- {name} ({})\n", self.dir.path().display()));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes the child process be killed when the thread that starts it ends, so
/// that a server a test started cannot outlive the test, even when the test
/// process is killed (Linux; elsewhere the owner's `Drop` is all there is).
pub fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// PEM texts for a server the tests start with TLS: a certificate authority
/// of its own and a serving certificate it signed for `localhost` and 127.0.0.1.
pub struct TestTls {
    pub ca: String,
    pub certificate: String,
    pub key: String,
}

impl TestTls {
    pub fn generate() -> Result<Self> {
        let ca = certificate_authority()?;
        let (certificate, key) = serving_certificate(&ca)?;
        Ok(Self {
            ca: ca.pem(),
            certificate,
            key,
        })
    }
}

fn certificate_authority() -> Result<CertifiedIssuer<'static, KeyPair>> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "phd-test-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(params, key)?)
}

fn serving_certificate(ca: &CertifiedIssuer<'static, KeyPair>) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, contents: &str) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Writes, in `dir`, a kubeconfig for a server that does not exist (a free
/// loopback port): any API call through it fails, so a command that reports
/// something else with it has not called the API.
pub fn unreachable_kubeconfig(dir: &Path) -> Result<PathBuf> {
    let port = free_port()?;
    let path = dir.join("unreachable.kubeconfig");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": format!("https://127.0.0.1:{port}")}}],
        "users": [{"name": "gone", "user": {"token": "unused"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "current-context": "gone",
    });
    write(&path, &kubeconfig.to_string())?;
    Ok(path)
}

/// Serves `body` over HTTP on a loopback port for every request, in the
/// background, and returns its URL (`http://127.0.0.1:PORT/install.yaml`).
pub fn serve(body: Vec<u8>) -> Result<String> {
    use std::io::{BufRead as _, BufReader};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind")?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
                line.clear();
            }
            let mut stream = &stream;
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(header.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
    });
    Ok(format!("http://{address}/install.yaml"))
}
