//! Stored passwords: argon2id hashes in the PHC string format (`$argon2id$v=19$...`), as
//! `stompede passwd` prints them, or plain text (accepted, with a warning at start).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A user's password as the configuration holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// An argon2 hash (PHC string).
    Hashed(String),
    /// The password itself.
    Plain(String),
}

impl Stored {
    /// What a users-file or configuration value holds.
    pub fn parse(value: &str) -> Stored {
        if value.starts_with("$argon2") {
            Stored::Hashed(value.to_owned())
        } else {
            Stored::Plain(value.to_owned())
        }
    }

    /// Whether `password` is this one. Slow for a hash (that is its point): call it off the
    /// async threads.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Stored::Plain(expected) => constant_time_eq(expected.as_bytes(), password.as_bytes()),
            Stored::Hashed(phc) => PasswordHash::new(phc).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            }),
        }
    }
}

/// The argon2id hash of `password` with a fresh random salt, as a PHC string.
pub fn hash(password: &str) -> Result<String, String> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&random).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// Compares without an early exit, so response time does not reveal how much of a password
/// matched.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("s3cret é").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        let stored = Stored::parse(&phc);
        assert!(matches!(stored, Stored::Hashed(_)));
        assert!(stored.verify("s3cret é"));
        assert!(!stored.verify("s3cret e"));
        assert_ne!(hash("x").unwrap(), hash("x").unwrap(), "salted");
        assert!(Stored::parse("pw").verify("pw"));
        assert!(!Stored::parse("pw").verify("pW"));
        assert!(!Stored::parse("$argon2id$garbage").verify("garbage"));
    }
}
