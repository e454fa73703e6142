//! Passwords: generation and the bcrypt hashes Argo CD stores.

use rand::Rng as _;
use rand::distr::Alphanumeric;

const BCRYPT_COST: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("cannot hash the password")]
    Hash(#[source] bcrypt::BcryptError),
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
pub fn bcrypt_hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
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
}
