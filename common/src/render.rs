//! Rendering of the scaffolds in `templates/`: cookiecutter layouts rendered
//! natively with minijinja, with cookiecutter's semantics so the same
//! templates also work with `cookiecutter` directly.
//!
//! Jinja settings match what the scaffolds need: undefined variables are
//! errors, nothing is HTML-escaped, trailing newlines are kept, and Python's
//! string methods (`.lower()`, `.replace()`) work as in cookiecutter.

use std::path::{Path, PathBuf};

use include_dir::{Dir, DirEntry};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: {source}")]
    Template {
        template: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("the scaffold has no cookiecutter.json")]
    NoContextFile,
    #[error("cookiecutter.json is not valid")]
    ContextFile(#[source] serde_json::Error),
    #[error("the scaffold has no single top-level directory to render")]
    NoRoot,
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A Jinja environment configured for scaffolds.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // cookiecutter's RandomStringExtension, for defaults in cookiecutter.json.
    env.add_function("random_ascii_string", |length: usize| {
        use rand::Rng as _;
        let mut rng = rand::rng();
        (0..length)
            .map(|_| char::from(rng.sample(rand::distr::Alphabetic)))
            .collect::<String>()
    });
    // cookiecutter's UUIDExtension: a random (version 4) UUID.
    env.add_function("uuid4", || {
        use rand::Rng as _;
        let mut bytes: [u8; 16] = rand::rng().random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    });
    env
}

/// Renders one template string with `context` as its variables.
pub fn render_str(
    env: &Environment<'_>,
    name: &str,
    source: &str,
    context: &Value,
) -> Result<String, RenderError> {
    env.render_named_str(name, source, context)
        .map_err(|source| RenderError::Template {
            template: name.to_owned(),
            source,
        })
}

/// The `cookiecutter` variables of a scaffold, as cookiecutter computes them:
/// each key of `cookiecutter.json` in order, a given value replacing the
/// default, string defaults rendered with the keys before them, the first
/// entry of a list as a choice's default, keys starting with `_` kept as they are.
pub fn cookiecutter_context(
    scaffold: &Dir<'_>,
    given: &Map<String, Value>,
) -> Result<Value, RenderError> {
    let text = scaffold
        .get_file("cookiecutter.json")
        .and_then(|file| file.contents_utf8())
        .ok_or(RenderError::NoContextFile)?;
    // serde_json keeps the file's key order (preserve_order), which matters here.
    let defaults: Map<String, Value> =
        serde_json::from_str(text).map_err(RenderError::ContextFile)?;
    let env = environment();
    let mut context = Map::new();
    for (key, default) in defaults {
        let value = match (given.get(&key), default) {
            (Some(value), _) => value.clone(),
            (None, default) if key.starts_with('_') => default,
            (None, Value::String(template)) => {
                let so_far = serde_json::json!({ "cookiecutter": context });
                Value::String(render_str(
                    &env,
                    &format!("cookiecutter.json:{key}"),
                    &template,
                    &so_far,
                )?)
            }
            (None, Value::Array(choices)) => choices.into_iter().next().unwrap_or(Value::Null),
            (None, other) => other,
        };
        context.insert(key, value);
    }
    Ok(Value::Object(context))
}

/// A rendered file: its path relative to the output root, and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// Renders the scaffold's single top-level template directory (named with
/// `{{cookiecutter...}}`) with `cookiecutter` as context. Returns the rendered
/// directory name and its files; nothing is written.
pub fn render_scaffold(
    scaffold: &Dir<'_>,
    cookiecutter: &Value,
) -> Result<(String, Vec<RenderedFile>), RenderError> {
    let env = environment();
    let context = serde_json::json!({ "cookiecutter": cookiecutter });
    let root = scaffold
        .dirs()
        .find(|dir| dir.path().to_string_lossy().contains("{{"))
        .ok_or(RenderError::NoRoot)?;
    let root_name = root.path().to_string_lossy().into_owned();
    let rendered_root = render_str(&env, &root_name, &root_name, &context)?;
    let mut files = Vec::new();
    collect(&env, root, root.path(), &context, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((rendered_root, files))
}

fn collect(
    env: &Environment<'_>,
    dir: &Dir<'_>,
    root: &Path,
    context: &Value,
    files: &mut Vec<RenderedFile>,
) -> Result<(), RenderError> {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(child) => collect(env, child, root, context, files)?,
            DirEntry::File(file) => {
                let relative = file.path().strip_prefix(root).unwrap_or(file.path());
                let name = relative.to_string_lossy().into_owned();
                let path = PathBuf::from(render_str(env, &name, &name, context)?);
                let contents = match file.contents_utf8() {
                    Some(text) => render_str(env, &name, text, context)?.into_bytes(),
                    None => file.contents().to_vec(),
                };
                // include_dir keeps no file modes; scripts are marked by name.
                // (`activate` is sourced, never run, so it is not one of them.)
                let executable = path.extension().is_some_and(|ext| ext == "sh");
                files.push(RenderedFile {
                    path,
                    contents,
                    executable,
                });
            }
        }
    }
    Ok(())
}

/// Writes rendered files under `dir`, creating folders as needed.
pub fn write_files(dir: &Path, files: &[RenderedFile]) -> Result<(), RenderError> {
    for file in files {
        let path = dir.join(&file.path);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &file.contents)?;
            #[cfg(unix)]
            if file.executable {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        };
        write().map_err(|source| RenderError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_no_escaping_trailing_newline_python_methods() {
        let env = environment();
        let context = serde_json::json!({"name": "My <School> & Co"});
        let out = render_str(
            &env,
            "t",
            "{{ name.lower().replace(' ', '-') }}\n",
            &context,
        )
        .expect("render");
        assert_eq!(out, "my-<school>-&-co\n");
        let error =
            render_str(&env, "t", "{{ missing }}", &context).expect_err("undefined is an error");
        assert!(error.to_string().starts_with("template t:"));
    }
}
