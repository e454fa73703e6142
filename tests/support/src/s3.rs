//! An S3-compatible server on a free loopback port: moto's server
//! (`moto_server`, from PyPI; scripts/install-test-tools installs it with the
//! AWS CLI into the cache), stopped when dropped. And the AWS CLI, for tests
//! that look at what a script made.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cache_dir;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Access key and secret the server accepts (moto does not check them).
pub const ACCESS_KEY_ID: &str = "AKIAPHDTESTKEY00001";

/// A running S3-compatible server. Dropping it kills the server.
pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// A tool of the cache's `bin` (`aws`, `moto_server`).
pub fn cached_tool(name: &str) -> Result<PathBuf> {
    let path = cache_dir().join("bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "{} is missing: scripts/install-test-tools installs it",
            path.display()
        )
    }
}

impl S3Server {
    pub fn start() -> Result<Self> {
        let moto = cached_tool("moto_server")?;
        let dir = tempfile::Builder::new()
            .prefix("phd-s3-")
            .tempdir()
            .context("create the S3 server's directory")?;
        let port = crate::free_port()?;
        let log = dir.path().join("moto.log");
        let log_file = File::create(&log).context("create the server log")?;
        let mut command = Command::new(&moto);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("log handle")?)
            .stderr(log_file);
        crate::die_with_parent(&mut command);
        let child = command.spawn().context("start moto_server")?;
        let mut server = Self {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "moto_server exited with {status} while starting; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!("moto_server not listening after {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `aws s3api ARGS` against this server and returns its output as
    /// JSON (`null` when it prints nothing), or the CLI's error message.
    pub fn s3api(&self, args: &[&str]) -> Result<Value, String> {
        self.aws(&[&["s3api"], args].concat())
    }

    /// Runs `aws s3api put-object` with `body` as the object's content.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) -> Result<Value, String> {
        let file = self.dir.path().join("upload");
        std::fs::write(&file, body).map_err(|e| e.to_string())?;
        let file = file.display().to_string();
        self.s3api(&[
            "put-object",
            "--bucket",
            bucket,
            "--key",
            key,
            "--body",
            &file,
        ])
    }

    /// Reads an object's content.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let file = self.dir.path().join("download");
        let target = file.display().to_string();
        self.s3api(&["get-object", "--bucket", bucket, "--key", key, &target])?;
        std::fs::read(&file).map_err(|e| e.to_string())
    }

    fn aws(&self, args: &[&str]) -> Result<Value, String> {
        let aws = cached_tool("aws").map_err(|e| e.to_string())?;
        let output = Command::new(aws)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(["--output", "json"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", "test-only-secret")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let text = String::from_utf8_lossy(&output.stdout);
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
