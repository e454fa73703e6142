//! Passwords: generation and the bcrypt hashes Argo CD stores.

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
    #[error("cannot hash the password")]
    Hash(#[source] bcrypt::BcryptError),
}

/// The shortest password phd accepts from a user.
pub const MIN_LENGTH: usize = 8;
/// The longest: bcrypt reads only the first 72 bytes of its input.
pub const MAX_LENGTH: usize = 72;

/// A password a person chose: 8 to 72 bytes (bcrypt's limit), not only
/// white space. Checked before anything is stored.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.trim().is_empty() {
        return Err(PasswordError::Blank);
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
}
