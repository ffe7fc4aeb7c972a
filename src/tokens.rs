//! Bearer tokens for the HTTP API: issued to a user who logged in with a password, valid until
//! their expiry. A token is `user.expiry.signature`, signed with HMAC-SHA256 under a key kept in
//! the data directory, so tokens hold no server state, survive a restart, and cannot be forged
//! or extended without the key.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type Signer = Hmac<Sha256>;

/// Issues and checks tokens.
#[derive(Clone)]
pub(crate) struct Tokens {
    key: [u8; 32],
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

/// Why tokens cannot be issued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenKeyError {
    /// The key file could not be read or written.
    #[error("the API token key {path}: {error}")]
    Io {
        /// The key file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// No randomness for a new key.
    #[error("no random key could be made: {0}")]
    Random(String),
}

impl Tokens {
    /// The key in `path`, made (32 random bytes, readable by the owner only) when missing.
    pub(crate) fn open(path: &Path) -> Result<Tokens, TokenKeyError> {
        let io = |error| TokenKeyError::Io {
            path: path.display().to_string(),
            error,
        };
        if let Ok(bytes) = std::fs::read(path) {
            if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(Tokens { key });
            }
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| TokenKeyError::Random(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let temp = path.with_extension("part");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io)?;
            file.write_all(&key).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&temp, path).map_err(io)?;
        Ok(Tokens { key })
    }

    fn signature(&self, payload: &str) -> Signer {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Signer as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(payload.as_bytes());
        mac
    }

    /// A token for `user`, valid until `expires_at` (ms since the epoch).
    pub(crate) fn issue(&self, user: &str, expires_at: u64) -> String {
        let payload = format!("{}.{expires_at}", URL_SAFE_NO_PAD.encode(user));
        let signature = self.signature(&payload).finalize().into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The user a token was issued to, if it is genuine and not expired at `now` (ms).
    pub(crate) fn verify(&self, token: &str, now: u64) -> Option<String> {
        let (payload, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // Compared in constant time.
        self.signature(payload).verify_slice(&signature).ok()?;
        let (user, expires_at) = payload.split_once('.')?;
        if expires_at.parse::<u64>().ok()? <= now {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tokens_are_checked_for_forgery_and_expiry_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-token.key");
        let tokens = Tokens::open(&path).unwrap();
        let token = tokens.issue("ann.o'neil", 2_000);
        assert_eq!(tokens.verify(&token, 1_999).as_deref(), Some("ann.o'neil"));
        assert_eq!(tokens.verify(&token, 2_000), None, "expired");
        // Another expiry, or another user, with the old signature.
        let (_, signature) = token.rsplit_once('.').unwrap();
        let longer = format!(
            "{}.9999999.{signature}",
            URL_SAFE_NO_PAD.encode("ann.o'neil")
        );
        assert_eq!(tokens.verify(&longer, 1_000), None);
        let other = format!("{}.2000.{signature}", URL_SAFE_NO_PAD.encode("root"));
        assert_eq!(tokens.verify(&other, 1_000), None);
        assert_eq!(tokens.verify("garbage", 1_000), None);
        // The same key after a restart; another key refuses the token.
        let reopened = Tokens::open(&path).unwrap();
        assert_eq!(
            reopened.verify(&token, 1_000).as_deref(),
            Some("ann.o'neil")
        );
        let elsewhere = Tokens::open(&dir.path().join("other.key")).unwrap();
        assert_eq!(elsewhere.verify(&token, 1_000), None);
    }
}
