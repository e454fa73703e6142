//! A MariaDB server of the system's packages (`mariadbd`, `mariadb-install-db`,
//! `mariadb`; scripts/install-test-tools installs them), started in a temporary
//! directory on a free loopback port and stopped when dropped.
//!
//! Its administrator is `root@'%'` with a password, reachable over TCP, as on a
//! managed database; `root@localhost` without a password is kept for the
//! test's own look-ups over the server's socket (with `skip-name-resolve`, TCP
//! clients never match `localhost`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::scripts::which_in_system;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running MariaDB server. Dropping it kills the server and removes its directory.
pub struct MariaDb {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub socket: PathBuf,
    pub root_password: String,
}

/// A program of the MariaDB packages, in `PATH` or the system directories.
pub fn program(name: &str) -> Result<PathBuf> {
    which_in_system(name)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
        .with_context(|| {
            format!("{name} is not installed (scripts/install-test-tools installs MariaDB)")
        })
}

impl MariaDb {
    /// Starts a server whose `root@'%'` has `root_password`; `server_args` are
    /// added to mariadbd's command line (`--sql-mode=...`, say).
    pub fn start(root_password: &str, server_args: &[&str]) -> Result<Self> {
        let install_db = program("mariadb-install-db")?;
        let mariadbd = program("mariadbd")?;
        let dir = tempfile::Builder::new()
            .prefix("phd-mariadb-")
            .tempdir()
            .context("create the MariaDB directory")?;
        let data = dir.path().join("data");
        let socket = dir.path().join("mariadb.sock");
        let log = dir.path().join("mariadbd.log");
        // Its own temporary directory: nothing shared with other servers or cleaners of /tmp.
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).context("create the server's tmpdir")?;
        let tmpdir = format!("--tmpdir={}", tmp.display());
        // Small and unsynced: throwaway data.
        let tuning = [
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--skip-log-bin",
        ];
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "--user=root".to_owned()
        } else {
            format!("--user={}", current_user())
        };
        let install = Command::new(&install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(&user)
            .arg(&tmpdir)
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ])
            .args(tuning)
            .stdin(Stdio::null())
            .output()
            .context("run mariadb-install-db")?;
        if !install.status.success() {
            bail!(
                "mariadb-install-db failed with {}:\n{}{}",
                install.status,
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            );
        }
        let port = crate::free_port()?;
        let log_file = File::create(&log).context("create the server log")?;
        let mut command = Command::new(&mariadbd);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(&user)
            .arg(&tmpdir)
            .arg("--skip-networking=0")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mariadbd.pid").display()
            ))
            .arg("--skip-name-resolve")
            .args(tuning)
            .args(server_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().context("log handle")?)
            .stderr(log_file);
        crate::die_with_parent(&mut command);
        let child = command.spawn().context("start mariadbd")?;
        let mut server = Self {
            child,
            dir,
            port,
            socket,
            root_password: root_password.to_owned(),
        };
        server.wait_until_ready(&log)?;
        // sql_mode cleared so that the password literal means the same whatever server_args say.
        server.socket_sql(&format!(
            "SET SESSION sql_mode = '';
             DELETE FROM mysql.global_priv WHERE User = 'root' AND Host <> 'localhost';
             FLUSH PRIVILEGES;
             CREATE USER 'root'@'%' IDENTIFIED BY {password};
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;",
            password = sql_string(root_password)
        ))?;
        Ok(server)
    }

    fn wait_until_ready(&mut self, log: &Path) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "mariadbd exited with {status} while starting; its log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            if self.socket.exists() && self.socket_sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "mariadbd not ready after {READY_TIMEOUT:?}; its log:\n{}",
                    fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `sql` as `root@localhost` over the socket and returns the rows,
    /// tab-separated, without column names, values unescaped (`--raw`).
    pub fn socket_sql(&self, sql: &str) -> Result<String> {
        let output = Command::new(program("mariadb")?)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--user=root", "--batch", "--raw", "--skip-column-names"])
            .args(["--execute", sql])
            .env_remove("MYSQL_PWD")
            .stdin(Stdio::null())
            .output()
            .context("run mariadb")?;
        if !output.status.success() {
            bail!(
                "mariadb over the socket failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs `sql` over TCP as `user` with `password`, the way an application
    /// logs in, and returns the output or the client's error message.
    pub fn tcp_sql(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(program("mariadb").map_err(|e| e.to_string())?)
            .arg("--no-defaults")
            .args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={user}"))
            .args(["--batch", "--raw", "--skip-column-names"])
            .args(["--execute", sql])
            // The password through the environment, never on the command line.
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// The server's directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` as a SQL string literal (default `sql_mode`).
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `text` as a SQL identifier.
pub fn sql_identifier(text: &str) -> String {
    format!("`{}`", text.replace('`', "``"))
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer to static storage or null; read at once.
    unsafe {
        let entry = libc::getpwuid(libc::geteuid());
        if entry.is_null() || (*entry).pw_name.is_null() {
            return std::env::var("USER").unwrap_or_else(|_| "nobody".to_owned());
        }
        std::ffi::CStr::from_ptr((*entry).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}
