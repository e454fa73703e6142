//! A MongoDB wire-protocol server for tests: FerretDB v1 (built by
//! `scripts/install-test-tools` into `$PHD_CACHE_DIR/bin`) with its SQLite
//! backend, so no PostgreSQL is needed, started in a temporary directory on a
//! free loopback port and stopped when dropped. And the Python of the venv
//! with the openedx image's pymongo and boto3 ([`backup_python`]), which the
//! backup and restore scripts' tests run against it.
//!
//! The server is started as
//! `ferretdb --handler=sqlite --sqlite-url=file:<dir>/data/ --state-dir=<dir>
//! --listen-addr=127.0.0.1:<port> --debug-addr=- --telemetry=disable
//! --log-level=warn`. [`FerretDb::start`] checks no credentials at all:
//! clients must connect without a user (a client that sends one with SCRAM is
//! refused, since SCRAM is only served with new authentication; PLAIN is
//! accepted with any password). [`FerretDb::start_with_user`] adds
//! `--test-enable-new-auth --setup-database=admin --setup-username=<user>`
//! (the password through `FERRETDB_SETUP_PASSWORD`, not the command line):
//! SCRAM-SHA-256 and SCRAM-SHA-1 with that user (`authSource=admin`), every
//! command but the handshake and `ping` refused with `Unauthorized` (13)
//! before authentication, a wrong password refused with
//! `AuthenticationFailed` (18). It authenticates only: any authenticated user
//! may read and write every database (`createUser` takes no roles but `[]`).
//!
//! What FerretDB v1.24 does not do that MongoDB does, found with pymongo 4.4
//! (for the scripts that dump and restore collections): BSON Decimal128,
//! MinKey, MaxKey, JavaScript code, NaN and infinities are refused (the first
//! four and NaN by closing the connection), and so are arrays directly inside
//! arrays and keys with `.` or a leading `$` (hence DBRefs); `createIndexes`
//! refuses the `v` option that `listIndexes` returns (a restore must drop `v`
//! and `ns` from the specs it read), TTL (`expireAfterSeconds`), partial,
//! text, hashed and 2dsphere indexes, and drops `sparse` silently (a unique
//! index ignores documents without the field anyway); `find` refuses
//! `noCursorTimeout` and a `$natural` sort; `create` refuses validators and
//! collations. What works: `listDatabases` (which shows `admin` once a user
//! is set up), `listCollections`, `listIndexes`, `find` with small batches
//! and `getMore`, `insertMany` of `RawBSONDocument`s (the bytes come back
//! identical, field order included; a duplicate `_id` is E11000), ordinary
//! and unique `createIndexes`, `drop` and `dropDatabase` (of absent ones too).

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cache_dir;

/// The FerretDB release `scripts/install-test-tools` builds.
pub const FERRETDB_VERSION: &str = "v1.24.2";
/// The database of the user [`FerretDb::start_with_user`] sets up.
pub const AUTH_DATABASE: &str = "admin";

const HOST: &str = "127.0.0.1";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running FerretDB. Dropping it kills the server and removes its directory.
pub struct FerretDb {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    user: Option<(String, String)>,
}

/// Where `scripts/install-test-tools` puts FerretDB.
pub fn binary() -> Result<PathBuf> {
    let path = cache_dir()
        .join("bin")
        .join(format!("ferretdb-{FERRETDB_VERSION}"));
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "FerretDB {FERRETDB_VERSION} is not built: run scripts/install-test-tools ({} is missing)",
            path.display()
        )
    }
}

/// The Python of `$PHD_CACHE_DIR/openedx-backup-venv`, with the pymongo and
/// boto3 of the openedx image. Panics naming the fix when missing.
pub fn backup_python() -> PathBuf {
    let python = cache_dir().join("openedx-backup-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-test-tools, which makes the venv with pymongo and boto3",
        python.display()
    );
    python
}

impl FerretDb {
    /// Starts a server that checks no credentials.
    pub fn start() -> Result<Self> {
        Self::start_retrying(None)
    }

    /// Starts a server that requires authentication as `user` (in
    /// [`AUTH_DATABASE`]) with `password`, by SCRAM.
    pub fn start_with_user(user: &str, password: &str) -> Result<Self> {
        Self::start_retrying(Some((user.to_owned(), password.to_owned())))
    }

    /// The address it listens on.
    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `mongodb://127.0.0.1:PORT/`, with the user, its password and
    /// `authSource` when started with one.
    pub fn uri(&self) -> String {
        match &self.user {
            None => format!("mongodb://{HOST}:{}/", self.port),
            Some((user, password)) => format!(
                "mongodb://{}:{}@{HOST}:{}/?authSource={AUTH_DATABASE}",
                percent_encode(user),
                percent_encode(password),
                self.port
            ),
        }
    }

    /// The server's directory (SQLite files under `data/`, its log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far: for a failing test's message.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("ferretdb.log")).unwrap_or_default()
    }

    // The port is chosen free, then bound by the server a moment later:
    // another process may take it in between. Such a start is tried again
    // with a new port; any other failure is returned.
    fn start_retrying(user: Option<(String, String)>) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::try_start(user.clone()) {
                Err(error)
                    if attempt < 3 && format!("{error:#}").contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn try_start(user: Option<(String, String)>) -> Result<Self> {
        let ferretdb = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("phd-ferretdb-")
            .tempdir()
            .context("create the FerretDB directory")?;
        let data = dir.path().join("data");
        fs::create_dir(&data).context("create the SQLite directory")?;
        let port = crate::free_port()?;
        let log = dir.path().join("ferretdb.log");
        let log_file = File::create(&log).context("create the server log")?;
        let mut command = Command::new(&ferretdb);
        command
            .arg("--handler=sqlite")
            .arg(format!("--sqlite-url=file:{}/", data.display()))
            .arg(format!("--state-dir={}", dir.path().display()))
            .arg(format!("--listen-addr={HOST}:{port}"))
            // No HTTP server for metrics and profiling, no reports to FerretDB Inc.
            .args(["--debug-addr=-", "--telemetry=disable", "--log-level=warn"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("log handle")?)
            .stderr(log_file);
        // Every flag can also come from a FERRETDB_* variable: none of the caller's.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("FERRETDB_") {
                command.env_remove(name);
            }
        }
        if let Some((name, password)) = &user {
            command
                .arg("--test-enable-new-auth")
                .arg(format!("--setup-database={AUTH_DATABASE}"))
                .arg(format!("--setup-username={name}"))
                // The password through the environment, never on the command line.
                .env("FERRETDB_SETUP_PASSWORD", password);
        }
        crate::die_with_parent(&mut command);
        let child = command.spawn().context("start ferretdb")?;
        let mut server = Self {
            child,
            dir,
            port,
            user,
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "ferretdb exited with {status} while starting; its log:\n{}",
                    self.log()
                );
            }
            // FerretDB sets up its user before it listens; a `ping` answered
            // is a server that serves.
            if ping(self.port).is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "ferretdb not ready after {READY_TIMEOUT:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FerretDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `{ping: 1, $db: "admin"}` in an OP_MSG (which needs no
/// authentication) and checks that the answer has `ok: 1.0`.
fn ping(port: u16) -> Result<()> {
    const OP_MSG: i32 = 2013;
    let mut document = Vec::new();
    document.push(0x10); // int32
    document.extend_from_slice(b"ping\0");
    document.extend_from_slice(&1i32.to_le_bytes());
    document.push(0x02); // string
    document.extend_from_slice(b"$db\0");
    document.extend_from_slice(&6i32.to_le_bytes());
    document.extend_from_slice(b"admin\0");
    document.push(0);
    let document_length = i32::try_from(document.len() + 4)?;
    let mut body = Vec::new();
    body.extend_from_slice(&0u32.to_le_bytes()); // flag bits
    body.push(0); // section kind 0: the body document
    body.extend_from_slice(&document_length.to_le_bytes());
    body.extend_from_slice(&document);
    let mut message = Vec::new();
    message.extend_from_slice(&i32::try_from(body.len() + 16)?.to_le_bytes());
    message.extend_from_slice(&1i32.to_le_bytes()); // request id
    message.extend_from_slice(&0i32.to_le_bytes()); // response to
    message.extend_from_slice(&OP_MSG.to_le_bytes());
    message.extend_from_slice(&body);

    let mut stream = TcpStream::connect((HOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&message)?;
    let mut header = [0u8; 16];
    stream.read_exact(&mut header)?;
    let length = i32::from_le_bytes(header[0..4].try_into()?);
    let opcode = i32::from_le_bytes(header[12..16].try_into()?);
    if opcode != OP_MSG || !(16..=1 << 20).contains(&length) {
        bail!("not an OP_MSG answer (opcode {opcode}, length {length})");
    }
    let mut reply = vec![0u8; usize::try_from(length)? - 16];
    stream.read_exact(&mut reply)?;
    // A double 1.0 named "ok".
    let mut ok = vec![0x01];
    ok.extend_from_slice(b"ok\0");
    ok.extend_from_slice(&1f64.to_le_bytes());
    if !reply
        .windows(ok.len())
        .any(|window| window == ok.as_slice())
    {
        bail!("ping not ok");
    }
    Ok(())
}

/// `text` with every byte but RFC 3986's unreserved characters percent-encoded,
/// for the user and password of a connection string.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}
