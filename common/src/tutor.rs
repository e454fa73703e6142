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
        let output = Command::new(self.executable())
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
        let output = Command::new(self.tutor.executable())
            .args(args)
            .env("TUTOR_ROOT", &self.root)
            .env("TUTOR_PLUGINS_ROOT", &self.plugins)
            .env_remove("TUTOR_PLUGINS")
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

fn last_lines(stderr: &[u8], stdout: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        String::from_utf8_lossy(stderr)
    } else {
        String::from_utf8_lossy(stdout)
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.contains("Found conflicting template"))
        .collect();
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
pub fn sync_dir(source: &Path, target: &Path, dry_run: bool) -> Result<SyncReport, TutorError> {
    let wanted = list_files(source)?;
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
        if std::fs::read(&to).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if !dry_run {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            std::fs::write(&to, &bytes).map_err(io("cannot write", &to))?;
        }
        report.written.push(relative.clone());
    }
    for relative in present {
        if wanted.contains(&relative) {
            continue;
        }
        let path = target.join(&relative);
        if !dry_run {
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
