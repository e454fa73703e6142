//! Where output goes and how it looks: results on stdout, progress and logs
//! on stderr, colour only on a terminal and never with `--no-color`/`NO_COLOR`.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use owo_colors::OwoColorize as _;
use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};

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

/// Prints `value` as JSON or YAML; `table` must be handled by the caller.
pub fn print_structured<T: Serialize>(value: &T, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(value)?),
        OutputFormat::Table => anyhow::bail!("table output is printed by the command itself"),
    }
    Ok(())
}

/// Prints an error once, with its cause chain under `-v`.
pub fn print_error(error: &anyhow::Error) {
    let label = paint_stderr("error:", Tone::Bad);
    eprintln!("{label} {error}");
    let causes: Vec<String> = error.chain().skip(1).map(ToString::to_string).collect();
    if causes.is_empty() {
        return;
    }
    if verbosity() > 0 {
        for cause in causes {
            eprintln!("  caused by: {cause}");
        }
    } else {
        eprintln!(
            "{}",
            paint_stderr("  (run with -v to see the cause)", Tone::Dim)
        );
    }
}
