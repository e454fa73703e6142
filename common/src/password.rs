//! Passwords: generation, the checks of a chosen one (and of any secret a
//! person hands phd: no control characters), and the bcrypt hashes Argo CD
//! stores.

use rand::Rng as _;
use rand::distr::Alphanumeric;

const BCRYPT_COST: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is blank: it has only spaces")]
    Blank,
    #[error("the password is too short: {0} bytes, at least {MIN_LENGTH}")]
    TooShort(usize),
    #[error(
        "the password is too long: {0} bytes, at most {MAX_LENGTH} (bcrypt, which Argo CD uses, ignores everything after byte {MAX_LENGTH}, so a longer password would not be what protects the account)"
    )]
    TooLong(usize),
    #[error(
        "the password contains {0}; use printable characters only (it must be typeable at Argo CD's login)"
    )]
    Control(ControlCharacter),
    #[error("cannot hash the password")]
    Hash(#[source] bcrypt::BcryptError),
}

/// The shortest password phd accepts from a user.
pub const MIN_LENGTH: usize = 8;
/// The longest: bcrypt reads only the first 72 bytes of its input.
pub const MAX_LENGTH: usize = 72;

/// A control character found in a secret, described without the secret:
/// which character (`NUL`, `a line break`, `U+001B`) and where (the
/// position counts characters from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCharacter {
    pub name: String,
    pub position: usize,
}

impl std::fmt::Display for ControlCharacter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a control character ({}) at character {}",
            self.name, self.position
        )
    }
}

/// The first control character (Unicode category Cc: NUL, tab, line
/// breaks, escape, DEL, the C1 range) in `secret`, if any. A password,
/// token or key with one is a pasting accident, a file with Windows line
/// ends, or an attempt to cut a value short where it is stored (C strings,
/// environment variables, HTTP headers): never what was meant.
pub fn control_character(secret: &str) -> Option<ControlCharacter> {
    secret
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control())
        .map(|(index, c)| ControlCharacter {
            name: match c {
                '\0' => "NUL".to_owned(),
                '\t' => "a tab".to_owned(),
                '\n' => "a line break".to_owned(),
                '\r' => "a carriage return".to_owned(),
                '\u{1b}' => "ESC".to_owned(),
                '\u{7f}' => "DEL".to_owned(),
                other => format!("U+{:04X}", u32::from(other)),
            },
            position: index + 1,
        })
}

/// A password a person chose: 8 to 72 bytes (bcrypt's limit), not only
/// white space, no control character ([`control_character`]). Checked
/// before anything is stored.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.trim().is_empty() {
        return Err(PasswordError::Blank);
    }
    if let Some(found) = control_character(password) {
        return Err(PasswordError::Control(found));
    }
    match password.len() {
        n if n < MIN_LENGTH => Err(PasswordError::TooShort(n)),
        n if n > MAX_LENGTH => Err(PasswordError::TooLong(n)),
        _ => Ok(()),
    }
}

/// A random password of `length` letters and digits (about 5.95 bits each):
/// safe to paste into shells, YAML and URLs without quoting.
pub fn generate(length: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// The bcrypt hash of `password`, in the `$2a$` form Argo CD writes itself.
///
/// # Errors
/// What [`check`] refuses, or bcrypt's own failure.
pub fn bcrypt_hash(password: &str) -> Result<String, PasswordError> {
    check(password)?;
    let hash = bcrypt::hash_with_result(password, BCRYPT_COST).map_err(PasswordError::Hash)?;
    Ok(hash.format_for_version(bcrypt::Version::TwoA))
}

/// Whether `password` matches `hash`; a malformed hash matches nothing.
pub fn bcrypt_matches(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_random_and_plain() {
        let first = generate(24);
        assert_eq!(first.len(), 24);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, generate(24));
    }

    #[test]
    fn hashes_verify_and_refuse_other_passwords() {
        let hash = bcrypt_hash("s3cret 'quoted' $x").expect("hash");
        assert!(hash.starts_with("$2a$10$"));
        assert!(bcrypt_matches("s3cret 'quoted' $x", &hash));
        assert!(!bcrypt_matches("other", &hash));
        assert!(!bcrypt_matches("s3cret", "not a hash"));
        assert!(matches!(bcrypt_hash(""), Err(PasswordError::Empty)));
    }

    #[test]
    fn chosen_passwords_are_8_to_72_bytes_and_not_blank() {
        assert!(matches!(check("   "), Err(PasswordError::Blank)));
        assert!(matches!(check("\t\n  \n"), Err(PasswordError::Blank)));
        assert!(matches!(check("short"), Err(PasswordError::TooShort(5))));
        assert!(matches!(
            check(&"x".repeat(73)),
            Err(PasswordError::TooLong(73))
        ));
        // Bytes, not characters: 36 two-byte characters are 72 bytes.
        assert!(check(&"é".repeat(36)).is_ok());
        assert!(matches!(
            check(&"é".repeat(37)),
            Err(PasswordError::TooLong(74))
        ));
        assert!(check("eight ch").is_ok());
        assert!(bcrypt_hash(&"y".repeat(80)).is_err());
    }

    /// Issue 29: a NUL or another control character was accepted.
    #[test]
    fn control_characters_are_refused_and_named_without_the_password() {
        for (password, name, position) in [
            ("abc\0defghij", "NUL", 4),
            ("abcdefgh\n", "a line break", 9),
            ("\tabcdefgh", "a tab", 1),
            ("abcdefgh\r", "a carriage return", 9),
            ("abc\u{1b}[2Jdefgh", "ESC", 4),
            ("abcdefgh\u{7f}", "DEL", 9),
            ("ab\u{85}cdefgh", "U+0085", 3),
        ] {
            let error = check(password).expect_err(password);
            let PasswordError::Control(found) = &error else {
                panic!("{password:?}: {error}");
            };
            assert_eq!((found.name.as_str(), found.position), (name, position));
            let message = error.to_string();
            assert!(message.contains(name), "{message}");
            assert!(
                !message.contains("abc") && !message.contains("fgh"),
                "{message}"
            );
            assert!(bcrypt_hash(password).is_err());
        }
        // Spaces and non-ASCII letters are printable.
        assert!(check("correct horse é").is_ok());
        assert_eq!(control_character("token-123"), None);
    }
}
