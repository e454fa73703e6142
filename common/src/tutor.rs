//! Tutor, the Open edX distribution that renders each instance's Kubernetes
//! manifests (SPEC.md section 7.9).
//!
//! kubectl-phd runs Tutor with tutor-contrib-drydock and its own Tutor plugin
//! (`plugins/tutor-phd/phd.py`, embedded in the binary) from a virtual
//! environment it creates on first use under the cache directory, one per
//! release ([`RELEASES`]): `python3 -m venv` and `pip install` of pinned
//! versions, the way it obtains tofu. Rendering happens in a temporary Tutor
//! root; only `env/` is copied back, file by file, so a render that changes
//! nothing leaves every file untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Tutor plugin of kubectl-phd, written into a plugins root for each run.
pub const PLUGIN: &str = include_str!("../../plugins/tutor-phd/phd.py");
/// Its name, as listed in an instance's `PLUGINS`.
pub const PLUGIN_NAME: &str = "phd";

/// One Open edX release as kubectl-phd renders it: a Tutor version and the
/// plugins that belong with it, pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Tutor's version, `MAJOR.MINOR.PATCH` (also the tag of the upstream
    /// `overhangio/openedx` image).
    pub tutor: &'static str,
    /// The Open edX release name.
    pub name: &'static str,
    /// pip requirements, each pinned with `==`.
    pub requirements: &'static [&'static str],
}

/// Releases kubectl-phd can render, newest first; the first is the default.
/// Versions checked on PyPI: tutor-contrib-drydock, tutor-mfe and
/// tutor-forum publish one line per Tutor major version.
pub const RELEASES: &[Release] = &[
    Release {
        tutor: "22.0.3",
        name: "Verawood",
        requirements: &[
            "tutor==22.0.3",
            "tutor-contrib-drydock==22.2.0",
            "tutor-mfe==22.1.0",
            "tutor-forum==22.0.0",
        ],
    },
    Release {
        tutor: "21.0.9",
        name: "Ulmo",
        requirements: &[
            "tutor==21.0.9",
            "tutor-contrib-drydock==21.2.3",
            "tutor-mfe==21.0.2",
            "tutor-forum==21.0.0",
        ],
    },
];

/// The release used when an instance names none.
pub fn default_release() -> &'static Release {
    &RELEASES[0]
}

/// Errors of finding, installing and running Tutor.
#[derive(Debug, thiserror::Error)]
pub enum TutorError {
    #[error("Tutor {given} is not a release kubectl-phd renders; use one of: {known}")]
    UnknownRelease { given: String, known: String },
    #[error(
        "python3 was not found on PATH; kubectl-phd needs Python 3.9 or newer to install Tutor (or set PHD_PYTHON to an interpreter)"
    )]
    NoPython,
    #[error("cannot install Tutor {release} into {dir}: {message}")]
    Install {
        release: String,
        dir: PathBuf,
        message: String,
    },
    #[error(
        "Tutor {release} in {dir} reports version {found:?}; remove that directory to reinstall it"
    )]
    WrongVersion {
        release: String,
        dir: PathBuf,
        found: String,
    },
    #[error("`tutor {command}` failed: {message}")]
    Run { command: String, message: String },
    #[error("setting {key}: {reason}")]
    UnsafeValue { key: String, reason: String },
    #[error(
        "Tutor rendered {file} that is not valid {language} (line {line}: {message}); a setting's value breaks it, change that setting"
    )]
    InvalidRendering {
        file: PathBuf,
        language: &'static str,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Fs(#[from] crate::fs::FsError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TutorError + 'a {
    move |source| TutorError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Looks a release up by its Tutor version (`22.0.3` or `v22.0.3`), or by its
/// major version alone (`22`).
pub fn release(version: &str) -> Result<&'static Release, TutorError> {
    let wanted = version.trim().trim_start_matches('v');
    RELEASES
        .iter()
        .find(|r| r.tutor == wanted || r.tutor.split('.').next() == Some(wanted))
        .ok_or_else(|| TutorError::UnknownRelease {
            given: version.to_owned(),
            known: RELEASES
                .iter()
                .map(|r| r.tutor)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The cache directory for tools phd installs: `$PHD_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/phd`, else `~/.cache/phd`.
pub fn cache_dir(env: &dyn crate::Environment) -> PathBuf {
    if let Some(dir) = env.var(crate::config::Setting::CacheDir.env_name()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env.var("XDG_CACHE_HOME") {
        return Path::new(&dir).join("phd");
    }
    let home = env.var("HOME").unwrap_or_else(|| ".".to_owned());
    Path::new(&home).join(".cache").join("phd")
}

/// A Tutor installation of one release.
#[derive(Debug, Clone)]
pub struct Tutor {
    pub release: &'static Release,
    /// The virtual environment.
    pub dir: PathBuf,
}

impl Tutor {
    /// The Tutor of `release` in `cache/tutor/<version>`, installed there
    /// first when missing (about a minute; pip's output is shown on failure
    /// only). A lock file keeps two runs from installing at the same time.
    pub fn ensure(
        cache: &Path,
        release: &'static Release,
        python: Option<&str>,
        progress: &dyn Fn(&str),
    ) -> Result<Self, TutorError> {
        let dir = cache.join("tutor").join(release.tutor);
        let tutor = Self { release, dir };
        let marker = tutor.dir.join(".phd-installed");
        let expected = release.requirements.join(" ");
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(expected.as_str()) {
            return Ok(tutor);
        }
        let parent = cache.join("tutor");
        std::fs::create_dir_all(&parent).map_err(io("cannot create", &parent))?;
        let lock_path = parent.join(format!("{}.lock", release.tutor));
        let lock = std::fs::File::create(&lock_path).map_err(io("cannot create", &lock_path))?;
        lock.lock().map_err(io("cannot lock", &lock_path))?;
        // Another run may have installed it while this one waited.
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(expected.as_str()) {
            return Ok(tutor);
        }
        let python = match python {
            Some(python) => PathBuf::from(python),
            None => which::which("python3").map_err(|_| TutorError::NoPython)?,
        };
        progress(&format!(
            "installing Tutor {} ({}) into {} (once; about a minute)",
            release.tutor,
            release.requirements.join(", "),
            tutor.dir.display()
        ));
        let install_error = |message: String| TutorError::Install {
            release: release.tutor.to_owned(),
            dir: tutor.dir.clone(),
            message,
        };
        if tutor.dir.exists() {
            std::fs::remove_dir_all(&tutor.dir).map_err(io("cannot remove", &tutor.dir))?;
        }
        run_quietly(Command::new(&python).arg("-m").arg("venv").arg(&tutor.dir))
            .map_err(|m| install_error(format!("python3 -m venv: {m}")))?;
        run_quietly(
            Command::new(tutor.dir.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(release.requirements),
        )
        .map_err(|m| install_error(format!("pip install: {m}")))?;
        let found = tutor.version()?;
        if found != release.tutor {
            return Err(TutorError::WrongVersion {
                release: release.tutor.to_owned(),
                dir: tutor.dir.clone(),
                found,
            });
        }
        std::fs::write(&marker, &expected).map_err(io("cannot write", &marker))?;
        Ok(tutor)
    }

    /// `tutor --version`, as `MAJOR.MINOR.PATCH`.
    pub fn version(&self) -> Result<String, TutorError> {
        let output = isolated(&mut Command::new(self.executable()))
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(io("cannot run", &self.executable()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text
            .split_whitespace()
            .find(|word| word.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or_default()
            .to_owned())
    }

    fn executable(&self) -> PathBuf {
        self.dir.join("bin").join("tutor")
    }

    /// Renders `config` (the text of an instance's `config.yml`) in a fresh
    /// Tutor root with the phd plugin. The returned [`Rendering`] holds the
    /// `env/` Tutor wrote.
    pub fn render(&self, config: &str) -> Result<Rendering, TutorError> {
        let temp = tempfile::tempdir()
            .map_err(io("cannot create a temporary directory", Path::new("")))?;
        let root = temp.path().join("root");
        let plugins = temp.path().join("plugins");
        for dir in [&root, &plugins] {
            std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        }
        let plugin_path = plugins.join(format!("{PLUGIN_NAME}.py"));
        std::fs::write(&plugin_path, PLUGIN).map_err(io("cannot write", &plugin_path))?;
        let config_path = root.join("config.yml");
        std::fs::write(&config_path, config).map_err(io("cannot write", &config_path))?;
        let rendering = Rendering {
            tutor: self.clone(),
            _temp: temp,
            root,
            plugins,
        };
        rendering.run(&["config", "save"])?;
        rendering.check_rendered()?;
        Ok(rendering)
    }
}

/// A Tutor root that Tutor rendered; removed when dropped.
pub struct Rendering {
    tutor: Tutor,
    _temp: tempfile::TempDir,
    root: PathBuf,
    plugins: PathBuf,
}

impl Rendering {
    /// The rendered environment (`env/` of the Tutor root).
    pub fn env_dir(&self) -> PathBuf {
        self.root.join("env")
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>, TutorError> {
        let output = isolated(&mut Command::new(self.tutor.executable()))
            .args(args)
            .env("TUTOR_ROOT", &self.root)
            .env("TUTOR_PLUGINS_ROOT", &self.plugins)
            .stdin(Stdio::null())
            .output()
            .map_err(io("cannot run", &self.tutor.executable()))?;
        if !output.status.success() {
            return Err(TutorError::Run {
                command: args.join(" "),
                message: last_lines(&output.stderr, &output.stdout),
            });
        }
        Ok(output.stdout)
    }

    /// New values for Tutor's generated secrets, made by Tutor's own
    /// generators (`tutor phd secrets`): Secret key name → value. Read
    /// through a pipe, never through a file or an argument.
    pub fn generate_secrets(&self) -> Result<BTreeMap<String, String>, TutorError> {
        let stdout = self.run(&["phd", "secrets"])?;
        serde_json::from_slice(&stdout).map_err(|error| TutorError::Run {
            command: "phd secrets".into(),
            message: format!("its output is not a JSON object of strings: {error}"),
        })
    }
}

/// The only variables of phd's environment a Tutor process gets. Tutor
/// reads every `TUTOR_<SETTING>` variable as a setting, and phd's
/// environment holds the cluster's credentials (`PHD_MYSQL_ROOT_PASSWORD`,
/// storage keys): a template, a plugin or a value must find none of them.
const PASSED_ENVIRONMENT: &[&str] = &["PATH", "HOME", "TMPDIR", "SYSTEMROOT", "TEMP", "TMP"];

/// `command` with an empty environment but [`PASSED_ENVIRONMENT`], Python
/// in UTF-8 mode and writing no bytecode.
fn isolated(command: &mut Command) -> &mut Command {
    command.env_clear();
    for name in PASSED_ENVIRONMENT {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("PYTHONUTF8", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

/// Checks every value of an instance's settings before Tutor sees them
/// ([`check_value`] for each top-level setting).
///
/// Errors: [`TutorError::UnsafeValue`] naming the first setting refused.
pub fn check_config(config: &serde_json::Map<String, serde_json::Value>) -> Result<(), TutorError> {
    for (key, value) in config {
        check_value(key, value)?;
    }
    Ok(())
}

/// Checks one setting (`key`, its value as parsed from YAML) before it
/// reaches Tutor, whatever its source (a flag, `--set`, a hand-edited
/// config.yml).
///
/// Tutor renders every string setting as a Jinja template, in an
/// environment that is not sandboxed, and pastes the result as is into
/// Python settings, YAML, shell scripts and a Caddyfile, inside double or
/// single quotes or none. So, for every string in the value (in lists and
/// mappings too, keys included), refused are:
/// - Jinja's delimiters `{{`, `{%`, `{#`: template code, run on the
///   rendering machine;
/// - `$`: expanded by the init jobs' shells, and `${PHD_...}` is the form of
///   phd's credential references, resolved from the Secret in the pods;
/// - `"`, `'`, `` ` `` and `\\`: they end or change the quoted strings the
///   value is pasted into;
/// - control characters (a newline ends a Python or YAML line).
///
/// And a setting named `*_HOST` must be a host name (letters, digits,
/// `.`, `-`, `_`, `:` for an IPv6 address), since Tutor pastes hosts into
/// unquoted shell commands. Setting names are Tutor's: upper-case letters,
/// digits and `_`. Types (a port is a number) are checked against Tutor's
/// defaults by phd's Tutor plugin, once the values are known to be plain.
///
/// Errors: [`TutorError::UnsafeValue`] with the reason.
pub fn check_value(key: &str, value: &serde_json::Value) -> Result<(), TutorError> {
    let refuse = |reason: String| TutorError::UnsafeValue {
        key: key.to_owned(),
        reason,
    };
    let valid_name = key.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && key
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(refuse(
            "not a Tutor setting name (upper-case letters, digits and '_', starting with a letter)"
                .to_owned(),
        ));
    }
    let mut strings = Vec::new();
    collect_strings(value, &mut strings);
    for text in strings {
        if let Some(reason) = unsafe_text(text) {
            return Err(refuse(reason));
        }
        let host_name = |text: &str| {
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
                && !text.starts_with(['.', '-'])
                && !text.ends_with(['.', '-'])
                && !text.contains("..")
        };
        if key.ends_with("_HOST") && !text.is_empty() && !host_name(text) {
            return Err(refuse(format!(
                "{text:?} is not a host name (labels of letters, digits and '-', joined by single dots, no dot at either end)"
            )));
        }
    }
    // Tutor pastes ports unquoted into settings and shell commands.
    if key.ends_with("_PORT")
        && let Some(port) = value.as_f64()
        && !(port.fract() == 0.0 && (1.0..=65535.0).contains(&port))
    {
        return Err(refuse(format!(
            "{port} is not a port number from 1 to 65535"
        )));
    }
    Ok(())
}

fn collect_strings<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(text) => found.push(text),
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, found)),
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                found.push(key);
                collect_strings(item, found);
            }
        }
        _ => {}
    }
}

/// Why `text` may not reach Tutor, if it may not (see [`check_value`]).
fn unsafe_text(text: &str) -> Option<String> {
    for delimiter in ["{{", "{%", "{#"] {
        if text.contains(delimiter) {
            return Some(format!(
                "the value holds {delimiter:?}, Jinja template syntax that Tutor would run as code; kubectl-phd gives Tutor plain values only"
            ));
        }
    }
    if text.contains('$') {
        return Some(
            "the value holds \"$\", which the rendered shell scripts would expand (and `${PHD_...}` would be read as a credential reference)".to_owned(),
        );
    }
    if let Some(quote) = text.chars().find(|c| matches!(c, '"' | '\'' | '`' | '\\')) {
        let hint = if quote == '\'' {
            " (for an apostrophe, use \u{2019})"
        } else {
            ""
        };
        return Some(format!(
            "the value holds {quote:?}, which would end or change the quoted strings Tutor writes it into (Python settings, YAML, shell){hint}"
        ));
    }
    if let Some(control) = text.chars().find(|c| c.is_control()) {
        return Some(format!(
            "the value holds the control character U+{:04X}; a setting is one line of text",
            u32::from(control)
        ));
    }
    None
}

/// Checks, with the venv's Python, that every Python file Tutor rendered
/// compiles; checks that every YAML file parses.
const COMPILE_SCRIPT: &str = r#"
import sys
failed = 0
for path in sys.argv[1:]:
    try:
        with open(path, "rb") as source:
            compile(source.read(), path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        print("%s\t%s\t%s" % (path, getattr(error, "lineno", 0) or 0, getattr(error, "msg", str(error))))
        failed = 1
sys.exit(failed)
"#;

impl Rendering {
    /// Everything Tutor rendered must be valid before phd reports success:
    /// every `.py` file compiles (Python of the venv, the settings the pods
    /// load), every `.yml`/`.yaml` file parses as YAML.
    ///
    /// Errors: [`TutorError::InvalidRendering`] naming the first bad file
    /// (relative to `env/`), its line and the parser's message.
    fn check_rendered(&self) -> Result<(), TutorError> {
        let env = self.env_dir();
        let files = list_files(&env)?;
        let python: Vec<&PathBuf> = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "py"))
            .collect();
        if !python.is_empty() {
            let output = isolated(&mut Command::new(self.tutor.dir.join("bin").join("python")))
                .arg("-c")
                .arg(COMPILE_SCRIPT)
                .args(&python)
                .current_dir(&env)
                .stdin(Stdio::null())
                .output()
                .map_err(io("cannot run the Python of", &self.tutor.dir))?;
            if !output.status.success() {
                let text = String::from_utf8_lossy(&output.stdout);
                let mut fields = text.lines().next().unwrap_or_default().splitn(3, '\t');
                return Err(TutorError::InvalidRendering {
                    file: PathBuf::from(fields.next().unwrap_or_default()),
                    language: "Python",
                    line: fields.next().and_then(|l| l.parse().ok()).unwrap_or(0),
                    message: fields
                        .next()
                        .map(str::to_owned)
                        .unwrap_or_else(|| last_lines(&output.stderr, &output.stdout)),
                });
            }
        }
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        {
            let path = env.join(file);
            let text = std::fs::read_to_string(&path).map_err(io("cannot read", &path))?;
            if let Err(error) = serde_saphyr::from_multiple::<serde_json::Value>(&text) {
                let message = error.to_string();
                let line = message
                    .split("line ")
                    .nth(1)
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                return Err(TutorError::InvalidRendering {
                    file: file.clone(),
                    language: "YAML",
                    line,
                    message: message.lines().next().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn last_lines(stderr: &[u8], stdout: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        String::from_utf8_lossy(stderr)
    } else {
        String::from_utf8_lossy(stdout)
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| {
            !line.trim().is_empty()
                && !line.contains("Found conflicting template")
                && !line.contains("You are running Tutor as root")
                && !line.starts_with("Error applying action:")
        })
        .collect();
    // Tutor's own verdict ("Error: ...") first, when it gives one.
    let errors: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("Error: "))
        .collect();
    if !errors.is_empty() {
        return errors.join("\n  ");
    }
    let start = lines.len().saturating_sub(8);
    lines[start..].join("\n  ")
}

fn run_quietly(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(last_lines(&output.stderr, &output.stdout))
    }
}

/// What [`sync_dir`] changed, as paths relative to the target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub written: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
}

impl SyncReport {
    pub fn is_empty(&self) -> bool {
        self.written.is_empty() && self.removed.is_empty()
    }
}

/// Makes `target` hold exactly the files of `source`: writes a file only when
/// its bytes differ, removes files (and then empty directories) that
/// `source` lacks. With `dry_run`, reports without changing anything.
///
/// Never follows a symbolic link ([`crate::fs`]): `target` (or its parent)
/// being a link is an error before anything changes; a link inside `target`
/// is replaced or removed itself, its target untouched. Every file is
/// written atomically, so an interrupted run leaves whole files.
pub fn sync_dir(source: &Path, target: &Path, dry_run: bool) -> Result<SyncReport, TutorError> {
    sync_files(source, list_files(source)?, target, dry_run)
}

/// [`sync_dir`] for the files `wanted` of `source` only (relative paths,
/// sorted): `target` ends up holding exactly those.
pub fn sync_files(
    source: &Path,
    wanted: Vec<PathBuf>,
    target: &Path,
    dry_run: bool,
) -> Result<SyncReport, TutorError> {
    crate::fs::refuse_link(target)?;
    if let Some(parent) = target.parent() {
        crate::fs::refuse_link(parent)?;
    }
    let present = if target.is_dir() {
        list_files(target)?
    } else {
        Vec::new()
    };
    let mut report = SyncReport::default();
    for relative in &wanted {
        let from = source.join(relative);
        let to = target.join(relative);
        let bytes = std::fs::read(&from).map_err(io("cannot read", &from))?;
        let is_link = std::fs::symlink_metadata(&to).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link && std::fs::read(&to).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if !dry_run {
            if !target.exists() {
                std::fs::create_dir_all(target).map_err(io("cannot create", target))?;
            }
            if let Some(parent) = relative.parent() {
                crate::fs::ensure_real_dir(target, parent)?;
            }
            crate::fs::write_atomic(&to, &bytes, 0o644)?;
        }
        report.written.push(relative.clone());
    }
    for relative in present {
        if wanted.contains(&relative) {
            continue;
        }
        let path = target.join(&relative);
        if !dry_run {
            match std::fs::symlink_metadata(&path) {
                // A link to a directory that a written file replaced with a
                // real directory above: nothing left to remove.
                Ok(meta) if meta.is_dir() => continue,
                Err(_) => continue,
                Ok(_) => {}
            }
            std::fs::remove_file(&path).map_err(io("cannot remove", &path))?;
            let mut dir = path.parent();
            while let Some(parent) = dir.filter(|d| *d != target) {
                if std::fs::remove_dir(parent).is_err() {
                    break;
                }
                dir = parent.parent();
            }
        }
        report.removed.push(relative);
    }
    Ok(report)
}

/// The files of a rendered `env` that Argo CD reads: `kustomization.yml` and
/// every file it names (resources, components, generators' `files` and
/// `envs`, patches, replacements, configurations), a named directory with
/// all its files. What else Tutor renders (`build/`, `dev/`, `local/`, the
/// MFE build context, about 1.2 MB an instance) is for `docker build` and
/// docker compose, which a phd instance never runs from git: the Build
/// workflow renders its own.
///
/// Errors: `kustomization.yml` missing or not YAML ([`TutorError::Io`],
/// [`TutorError::InvalidRendering`]).
pub fn deployed_files(env: &Path) -> Result<Vec<PathBuf>, TutorError> {
    const KUSTOMIZATION: &str = "kustomization.yml";
    let path = env.join(KUSTOMIZATION);
    let text = std::fs::read_to_string(&path).map_err(io("cannot read", &path))?;
    let kustomization: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|error| TutorError::InvalidRendering {
            file: PathBuf::from(KUSTOMIZATION),
            language: "YAML",
            line: 0,
            message: error
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        })?;
    let mut named: Vec<String> = Vec::new();
    let strings = |value: Option<&serde_json::Value>, named: &mut Vec<String>| {
        for item in value
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            match item {
                serde_json::Value::String(text) => named.push(text.clone()),
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(path)) = map.get("path") {
                        named.push(path.clone());
                    }
                }
                _ => {}
            }
        }
    };
    for key in [
        "resources",
        "components",
        "bases",
        "crds",
        "patches",
        "patchesStrategicMerge",
        "patchesJson6902",
        "replacements",
        "configurations",
        "generators",
        "transformers",
        "validators",
    ] {
        strings(kustomization.get(key), &mut named);
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        for generator in kustomization
            .get(key)
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            for field in ["files", "envs"] {
                let mut listed = Vec::new();
                strings(generator.get(field), &mut listed);
                // `key=path` names the key of the data.
                named.extend(listed.into_iter().map(|entry| {
                    entry
                        .split_once('=')
                        .map_or(entry.clone(), |(_, p)| p.to_owned())
                }));
            }
            if let Some(serde_json::Value::String(file)) = generator.get("env") {
                named.push(file.clone());
            }
        }
    }
    let all = list_files(env)?;
    let mut kept: Vec<PathBuf> = vec![PathBuf::from(KUSTOMIZATION)];
    for entry in named {
        let relative = PathBuf::from(entry.trim_start_matches("./"));
        // Only paths inside env/ (a patch may be inline YAML, not a path).
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            continue;
        }
        kept.extend(
            all.iter()
                .filter(|file| file.starts_with(&relative))
                .cloned(),
        );
    }
    kept.sort();
    kept.dedup();
    Ok(kept)
}

/// Every file below `dir`, relative to it, sorted.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, TutorError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(io("cannot read", &current))? {
            let entry = entry.map_err(io("cannot read", &current))?;
            let path = entry.path();
            if entry
                .file_type()
                .map_err(io("cannot read", &path))?
                .is_dir()
            {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.push(relative.to_path_buf());
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_found_by_version_or_major() {
        assert_eq!(release("22.0.3").unwrap().tutor, "22.0.3");
        assert_eq!(release("v21.0.9").unwrap().tutor, "21.0.9");
        assert_eq!(release("22").unwrap().tutor, "22.0.3");
        let error = release("19.0.0").unwrap_err().to_string();
        assert!(
            error.contains("19.0.0") && error.contains("22.0.3"),
            "{error}"
        );
    }

    #[test]
    fn every_requirement_is_pinned_and_tutor_matches() {
        for release in RELEASES {
            assert!(release.requirements.iter().all(|r| r.contains("==")));
            assert!(
                release
                    .requirements
                    .contains(&format!("tutor=={}", release.tutor).as_str())
            );
            let major = release.tutor.split('.').next().unwrap();
            assert!(
                release
                    .requirements
                    .iter()
                    .any(|r| r.starts_with(&format!("tutor-contrib-drydock=={major}.")))
            );
        }
    }

    #[test]
    fn sync_writes_only_differences_and_removes_stale_files() {
        let source = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(source.path().join("k8s")).unwrap();
        std::fs::write(source.path().join("k8s/a.yml"), "a").unwrap();
        std::fs::write(source.path().join("b.yml"), "b").unwrap();
        std::fs::create_dir_all(target.path().join("old")).unwrap();
        std::fs::write(target.path().join("old/c.yml"), "c").unwrap();
        std::fs::write(target.path().join("b.yml"), "b").unwrap();

        let dry = sync_dir(source.path(), target.path(), true).unwrap();
        assert_eq!(dry.written, vec![PathBuf::from("k8s/a.yml")]);
        assert_eq!(dry.removed, vec![PathBuf::from("old/c.yml")]);
        assert!(
            target.path().join("old/c.yml").exists(),
            "dry run changed a file"
        );

        let report = sync_dir(source.path(), target.path(), false).unwrap();
        assert_eq!(report, dry);
        assert!(!target.path().join("old").exists());
        assert_eq!(
            std::fs::read_to_string(target.path().join("k8s/a.yml")).unwrap(),
            "a"
        );
        assert!(
            sync_dir(source.path(), target.path(), false)
                .unwrap()
                .is_empty()
        );
    }
}
