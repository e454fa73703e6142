//! Where output goes and how it looks: results on stdout, progress and logs
//! on stderr, colour only on a terminal and never with `--no-color`/`NO_COLOR`.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use owo_colors::OwoColorize as _;
use serde::Serialize;

use crate::cli::GlobalArgs;

static VERBOSITY: AtomicU8 = AtomicU8::new(0);
static COLOUR_STDOUT: AtomicBool = AtomicBool::new(false);
static COLOUR_STDERR: AtomicBool = AtomicBool::new(false);

pub fn init(global: &GlobalArgs) {
    VERBOSITY.store(global.verbose, Ordering::Relaxed);
    let allowed = !global.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    COLOUR_STDOUT.store(
        allowed && std::io::stdout().is_terminal(),
        Ordering::Relaxed,
    );
    COLOUR_STDERR.store(
        allowed && std::io::stderr().is_terminal(),
        Ordering::Relaxed,
    );
}

pub fn verbosity() -> u8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// A detail shown under `-v`.
pub fn debug(message: impl AsRef<str>) {
    if verbosity() > 0 {
        eprintln!("{}", paint_stderr(message.as_ref(), Tone::Dim));
    }
}

/// A progress line on stderr.
pub fn info(message: impl AsRef<str>) {
    eprintln!("{}", message.as_ref());
}

#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Warning,
    Bad,
    Dim,
}

fn paint(text: &str, tone: Tone, enabled: bool) -> String {
    if !enabled {
        return text.to_owned();
    }
    match tone {
        Tone::Good => text.green().to_string(),
        Tone::Warning => text.yellow().to_string(),
        Tone::Bad => text.red().bold().to_string(),
        Tone::Dim => text.dimmed().to_string(),
    }
}

pub fn paint_stdout(text: &str, tone: Tone) -> String {
    paint(text, tone, COLOUR_STDOUT.load(Ordering::Relaxed))
}

pub fn paint_stderr(text: &str, tone: Tone) -> String {
    paint(text, tone, COLOUR_STDERR.load(Ordering::Relaxed))
}

/// The machine-readable formats of `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structured {
    Json,
    Yaml,
}

/// An `-o` format that may be one of the [`Structured`] ones.
pub trait StructuredFormat: Copy {
    /// `None` for the formats the command prints itself (table, wide, name, text).
    fn structured(self) -> Option<Structured>;
}

impl StructuredFormat for Structured {
    fn structured(self) -> Option<Structured> {
        Some(self)
    }
}

/// Prints `value` as JSON or YAML on standard output; the other formats
/// must be handled by the caller.
pub fn print_structured<T: Serialize>(
    value: &T,
    format: impl StructuredFormat,
) -> anyhow::Result<()> {
    match format.structured() {
        Some(Structured::Json) => println!("{}", serde_json::to_string_pretty(value)?),
        Some(Structured::Yaml) => print!("{}", serde_saphyr::to_string(value)?),
        None => anyhow::bail!("this output format is printed by the command itself"),
    }
    Ok(())
}

/// Prints a table as `kubectl get` does: upper-case headers, each column as
/// wide as its widest cell, two spaces between columns, `-` for an empty cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let cell = |text: &str| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.to_owned()
        }
    };
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(column, header)| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|text| cell(text).chars().count())
                .chain([header.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(column, text)| {
                if column == last {
                    text
                } else {
                    format!("{text:width$}", width = widths[column])
                }
            })
            .collect();
        println!("{}", padded.join("  "));
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.iter().map(|text| cell(text)).collect());
    }
}

/// Prints an error once. The first line names what failed, the step that
/// failed inside it (the innermost of phd's own causes, such as
/// "install.yaml, document 7: cannot apply Service argocd/x") and, after a colon, the
/// underlying reason ([`reason_at`]): the API server's own message, a lost
/// connection, a credential plugin's output. `-v` adds every cause.
pub fn print_error(error: &anyhow::Error) {
    let label = paint_stderr("error:", Tone::Bad);
    let top = error.to_string();
    let causes: Vec<&(dyn std::error::Error + 'static)> = error.chain().skip(1).collect();
    let mut shown = 0;
    match reason_at(error) {
        Some((_, reason)) if top.contains(&reason) => eprintln!("{label} {top}"),
        Some((index, reason)) => {
            shown += 1;
            // The step is phd's own: above the first error of the client
            // (kube's, and the HTTP and I/O errors it wraps).
            let first_client = causes
                .iter()
                .position(|cause| cause.downcast_ref::<kube::Error>().is_some())
                .filter(|first| *first <= index);
            let step = first_client
                .unwrap_or(index)
                .checked_sub(1)
                .map(|above| causes[above].to_string())
                .filter(|step| !top.contains(step.as_str()) && !reason.contains(step.as_str()));
            match step {
                Some(step) => {
                    shown += 1;
                    eprintln!("{label} {top}: {step}: {reason}");
                }
                None => eprintln!("{label} {top}: {reason}"),
            }
        }
        None => eprintln!("{label} {top}"),
    }
    if verbosity() > 0 {
        // A wrapper that repeats its source's text (kube's `ServiceError: X`
        // over `X`) is shown once.
        let mut above = String::new();
        for cause in causes {
            let text = describe(cause);
            if !above.ends_with(&text) {
                eprintln!("  caused by: {text}");
            }
            above = text;
        }
    } else if causes.len() > shown {
        eprintln!(
            "{}",
            paint_stderr("  (run with -v to see every cause)", Tone::Dim)
        );
    }
}

/// The most telling cause of `error`, if it has causes: the API server's
/// message for a refused request, "lost the connection to the API server"
/// when the connection broke, "the API server did not answer within …"
/// for a timeout, else the innermost cause; and the index, among the causes
/// (the chain without `error` itself), of the cause it comes from.
fn reason_at(error: &anyhow::Error) -> Option<(usize, String)> {
    let causes: Vec<&(dyn std::error::Error + 'static)> = error.chain().skip(1).collect();
    let innermost = causes.last()?;
    let innermost_index = causes.len() - 1;
    let through_client = causes.iter().any(|cause| {
        matches!(
            cause.downcast_ref::<kube::Error>(),
            Some(kube::Error::HyperError(_) | kube::Error::Service(_))
        )
    });
    for (index, cause) in causes.iter().enumerate() {
        if let Some(kube::Error::Api(_)) = cause.downcast_ref::<kube::Error>() {
            return Some((index, describe(*cause)));
        }
        if through_client && let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => {
                    return Some((
                        index,
                        format!("the API server did not answer in time ({io})"),
                    ));
                }
                ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe
                | UnexpectedEof | NotConnected => {
                    return Some((
                        index,
                        format!("lost the connection to the API server ({io})"),
                    ));
                }
                _ => {}
            }
        }
    }
    let text = describe(*innermost);
    if through_client {
        let lower = text.to_ascii_lowercase();
        if lower.contains("elapsed") || lower.contains("timed out") || lower.contains("timeout") {
            return Some((
                innermost_index,
                format!("the API server did not answer in time ({text})"),
            ));
        }
        if lower.contains("connection") || lower.contains("closed") || lower.contains("refused") {
            return Some((
                innermost_index,
                format!("lost the connection to the API server ({text})"),
            ));
        }
    }
    Some((innermost_index, text))
}

/// One cause as a person reads it: a refused API request as the API
/// server's message with its code and reason (kube's own text of it is a
/// debug dump), anything else as its `Display`.
pub fn describe(cause: &(dyn std::error::Error + 'static)) -> String {
    // kube prints a failed credential plugin's output as a byte-array dump.
    let exec = cause.downcast_ref::<kube::client::AuthError>().or_else(|| {
        match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Auth(auth)) => Some(auth),
            _ => None,
        }
    });
    if let Some(kube::client::AuthError::AuthExecRun { cmd, out, .. }) = exec {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return format!(
            "the credential plugin `{cmd}` failed ({}): {}",
            out.status,
            stderr.trim()
        );
    }
    match cause.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", status.reason)
            };
            format!("{} ({}{reason})", status.message, status.code)
        }
        _ => cause.to_string(),
    }
}
