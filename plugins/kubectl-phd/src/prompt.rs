//! Questions to the person at the terminal, and secrets read from standard
//! input. Without a terminal nothing is asked: destructive commands then need
//! `--yes`, and secrets come from stdin.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

use anyhow::{Context as _, bail};

/// Prints `prompt` to stderr and reads one line of answer, trimmed. Fails
/// without a terminal, naming `flag`, the way to confirm without one.
fn ask(prompt: &str, flag: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to go on without confirmation: standard input is not a terminal; pass {flag} to confirm"
        );
    }
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(answer.trim().to_owned())
}

/// Asks `question`; true only for "y" or "yes". Fails without a terminal.
pub fn confirm(question: &str, flag: &str) -> anyhow::Result<bool> {
    let answer = ask(&format!("{question} [y/N] "), flag)?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// All of standard input, without the trailing line end. Empty is an
/// error, and so is a control character anywhere else (a NUL, a line break
/// inside, an escape sequence): the error says which and where, never the
/// secret.
pub fn secret_from_stdin(flag: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read standard input for {flag}"))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        bail!("{flag} was given but standard input was empty");
    }
    // Only white space: the caller's check says "blank".
    if !secret.trim().is_empty()
        && let Some(found) = phd_common::password::control_character(&secret)
    {
        bail!(
            "{flag}: standard input holds {found}; give the secret alone, in printable characters (printf '%s' \"$SECRET\" | ...); nothing was changed"
        );
    }
    Ok(secret)
}

/// A password from standard input (`--password-stdin` and the like),
/// checked by [`phd_common::password::check`] before anything changes.
pub fn password_from_stdin(flag: &str) -> anyhow::Result<String> {
    let password = secret_from_stdin(flag)?;
    phd_common::password::check(&password).with_context(|| format!("{flag}: cannot use it"))?;
    Ok(password)
}

/// Whether a person can be asked for a password.
pub fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks for a new password twice, without echo.
pub fn new_password(whose: &str) -> anyhow::Result<String> {
    let first = rpassword::prompt_password(format!("New password for {whose}: "))
        .context("cannot read the password from the terminal")?;
    phd_common::password::check(&first)?;
    let second = rpassword::prompt_password("Repeat it: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Asks the person to type `expected` to go on. Fails without a terminal.
pub fn confirm_typed(what: &str, expected: &str, flag: &str) -> anyhow::Result<bool> {
    let answer = ask(&format!("{what}\nType {expected:?} to confirm: "), flag)?;
    Ok(answer == expected)
}
