//! The few git operations phd's day-2 commands make in the cluster
//! repository, with the operator's own `git` (its credentials, hooks and
//! signing configuration): find the repository, commit an instance's folder,
//! push, and compare commits. Each returns git's own message on failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not installed (it is needed to commit and push the cluster repository)")]
    Missing,
    #[error("`git {command}` in {dir} failed: {message}")]
    Failed {
        command: String,
        dir: PathBuf,
        message: String,
    },
}

fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let program = which::which("git").map_err(|_| GitError::Missing)?;
    let output = Command::new(program)
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|error| GitError::Failed {
            command: args.join(" "),
            dir: dir.to_owned(),
            message: error.to_string(),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let message = if stderr.trim().is_empty() {
            stdout.trim().to_owned()
        } else {
            stderr.trim().to_owned()
        };
        return Err(GitError::Failed {
            command: args.join(" "),
            dir: dir.to_owned(),
            message,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The top folder of the git repository `dir` is in.
///
/// # Errors
/// Not in a repository, or git missing.
pub fn root(dir: &Path) -> Result<PathBuf, GitError> {
    git(dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from)
}

/// The commit `HEAD` names.
///
/// # Errors
/// No commit yet, or git missing.
pub fn head(dir: &Path) -> Result<String, GitError> {
    git(dir, &["rev-parse", "HEAD"])
}

/// Commits everything under `paths` (added, changed, removed) with
/// `message`; `None` when nothing there changed.
///
/// # Errors
/// git refused (no identity configured, a hook failed, ...).
pub fn commit(root: &Path, paths: &[&Path], message: &str) -> Result<Option<String>, GitError> {
    let mut add = vec!["add", "--all", "--"];
    let texts: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    add.extend(texts.iter().map(String::as_str));
    git(root, &add)?;
    let mut staged = vec!["diff", "--cached", "--name-only", "--"];
    staged.extend(texts.iter().map(String::as_str));
    if git(root, &staged)?.is_empty() {
        return Ok(None);
    }
    let mut command = vec!["commit", "--quiet", "-m", message, "--"];
    command.extend(texts.iter().map(String::as_str));
    git(root, &command)?;
    head(root).map(Some)
}

/// Pushes the current branch to its upstream (or `origin`, same name).
///
/// # Errors
/// The push was refused or the remote is unreachable: git's message.
pub fn push(root: &Path) -> Result<(), GitError> {
    let branch = git(root, &["rev-parse", "--abbrev-ref", "HEAD"])?;
    git(
        root,
        &["push", "--quiet", "origin", &format!("HEAD:{branch}")],
    )
    .map(|_| ())
}

/// Whether commit `ancestor` is `descendant` or one of its ancestors;
/// `false` when either is unknown here.
pub fn contains(root: &Path, descendant: &str, ancestor: &str) -> bool {
    descendant == ancestor
        || git(root, &["merge-base", "--is-ancestor", ancestor, descendant]).is_ok()
}

/// Whether `paths` have changes not committed (or files not added).
///
/// # Errors
/// git refused.
pub fn dirty(root: &Path, paths: &[&Path]) -> Result<bool, GitError> {
    let mut status = vec!["status", "--porcelain", "--"];
    let texts: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    status.extend(texts.iter().map(String::as_str));
    Ok(!git(root, &status)?.is_empty())
}

/// The identity git commits with in `root` (`user.name <user.email>`).
///
/// # Errors
/// No `user.email` or `user.name` is configured: git would refuse to commit.
pub fn identity(root: &Path) -> Result<String, GitError> {
    let email = git(root, &["config", "user.email"]);
    let name = git(root, &["config", "user.name"]);
    match (name, email) {
        (Ok(name), Ok(email)) if !name.is_empty() && !email.is_empty() => {
            Ok(format!("{name} <{email}>"))
        }
        _ => Err(GitError::Failed {
            command: "config user.email".into(),
            dir: root.to_owned(),
            message: "no user.name and user.email configured: set them (`git config --global user.email you@example.org`, and user.name) before anything is changed".into(),
        }),
    }
}
