//! HTTP Basic authentication (RFC 7617): who may use the server (`--auth`, `--auth-file`), checking a
//! request's credentials in constant time, and the Argon2 hashes an auth file holds. Verifying a hash is slow
//! on purpose, so it runs on a worker; a credential that passed is then remembered on the loop for a while.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long a credential that passed a hash check is trusted without another. 5 min: a revoked user (the
/// server restarted with a new file) is out at once; a password guesser gains nothing from it.
const TRUSTED_FOR: Duration = Duration::from_secs(5 * 60);

/// Most credentials remembered at once. 1024; when full, the oldest is forgotten.
const MAX_TRUSTED: usize = 1024;

/// A user's secret.
#[derive(Debug, Clone)]
enum Secret {
    /// From `--auth user:password`.
    Plain(String),
    /// An Argon2 PHC string from `--auth-file`.
    Hash(String),
}

/// The users, and which requests need them.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: HashMap<String, Secret>,
    /// A hash of nothing anyone knows, verified for unknown users when the file has hashed ones, so a
    /// wrong user name takes as long as a wrong password.
    decoy: Option<String>,
    /// Only `POST /upload` needs credentials (`--auth-uploads-only`).
    pub uploads_only: bool,
}

/// What a request's `Authorization` field is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The user named is who they say.
    Passed(String),
    /// Missing, malformed, an unknown user or a wrong password: 401.
    Failed { user: Option<String> },
    /// A hashed password to verify on a worker; the user is `user` if it matches.
    Verify { user: String, password: String, hash: String },
}

impl Users {
    /// Whether anyone is configured: without users, nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Adds `user:password` from the command line.
    pub fn add_plain(&mut self, pair: &str) -> Result<(), String> {
        let (user, password) = split_pair(pair)?;
        self.users.insert(user.to_owned(), Secret::Plain(password.to_owned()));
        Ok(())
    }

    /// Reads an auth file: one `user:hash` per line (the hash from `--hash-password`); `#` starts a comment.
    pub fn add_file(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = split_pair(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            let parsed = PasswordHash::new(hash)
                .map_err(|e| format!("line {}: not an Argon2 hash: {e}", n + 1))?;
            if !["argon2id", "argon2i", "argon2d"].contains(&parsed.algorithm.as_str()) {
                return Err(format!("line {}: not an Argon2 hash but {}", n + 1, parsed.algorithm));
            }
            self.users.insert(user.to_owned(), Secret::Hash(hash.to_owned()));
        }
        if self.decoy.is_none() {
            self.decoy = Some(hash(&uuid::Uuid::new_v4().simple().to_string())?);
        }
        Ok(())
    }

    /// Checks an `Authorization` value. The password is compared in constant time, and a wrong user costs
    /// the same comparison against a dummy, so timing tells nothing.
    pub fn check(&self, authorization: Option<&str>) -> Check {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Check::Failed { user: None };
        };
        match self.users.get(&user) {
            Some(Secret::Plain(expected))
                if bool::from(password.as_bytes().ct_eq(expected.as_bytes())) =>
            {
                Check::Passed(user)
            }
            Some(Secret::Hash(hash)) => Check::Verify { user, password, hash: hash.clone() },
            Some(Secret::Plain(_)) => Check::Failed { user: Some(user) },
            None => match &self.decoy {
                // The decoy never matches, but costs what a real hash costs.
                Some(decoy) => Check::Verify { user, password, hash: decoy.clone() },
                None => {
                    let _ = password.as_bytes().ct_eq(b"not a user of this server");
                    Check::Failed { user: Some(user) }
                }
            },
        }
    }
}

/// `user:password` (the password may contain colons).
fn split_pair(pair: &str) -> Result<(&str, &str), String> {
    match pair.split_once(':') {
        Some((user, secret)) if !user.is_empty() && !secret.is_empty() => Ok((user, secret)),
        _ => Err("expected USER:SECRET".into()),
    }
}

/// The user and password of a `Basic` credential.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `password` matches an Argon2 PHC `hash`: the slow check a worker makes.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// The Argon2id PHC string of `password` with a fresh random salt, for an auth file.
pub fn hash(password: &str) -> Result<String, String> {
    let salt =
        SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Credentials that passed a hash check lately, per event loop, keyed by the whole `Authorization` value.
#[derive(Debug, Default)]
pub struct Trusted {
    passed: HashMap<String, (String, Instant)>,
}

impl Trusted {
    /// The user a remembered `Authorization` value stands for, if it passed less than `TRUSTED_FOR` ago.
    pub fn get(&self, authorization: &str, now: Instant) -> Option<&str> {
        let (user, at) = self.passed.get(authorization)?;
        (now.duration_since(*at) < TRUSTED_FOR).then_some(user.as_str())
    }

    /// Remembers a value that passed.
    pub fn insert(&mut self, authorization: String, user: String, now: Instant) {
        if self.passed.len() >= MAX_TRUSTED {
            self.passed.retain(|_, (_, at)| now.duration_since(*at) < TRUSTED_FOR);
            if self.passed.len() >= MAX_TRUSTED {
                let oldest =
                    self.passed.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.passed.remove(&oldest);
                }
            }
        }
        self.passed.insert(authorization, (user, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_password))
    }

    #[test]
    fn plain_credentials_pass_or_fail_without_saying_why() {
        let mut users = Users::default();
        users.add_plain("ann:s3cret:with:colons").unwrap();
        assert_eq!(
            users.check(Some(&basic("ann:s3cret:with:colons"))),
            Check::Passed("ann".into())
        );
        assert_eq!(
            users.check(Some(&basic("ann:wrong"))),
            Check::Failed { user: Some("ann".into()) }
        );
        assert_eq!(
            users.check(Some(&basic("bob:s3cret:with:colons"))),
            Check::Failed { user: Some("bob".into()) }
        );
        assert_eq!(users.check(None), Check::Failed { user: None });
        for malformed in ["Basic", "Basic !!!", "Bearer abc", &basic("no-colon")] {
            assert_eq!(users.check(Some(malformed)), Check::Failed { user: None }, "{malformed}");
        }
        assert_eq!(
            users.check(Some(&basic("ann:s3cret:with:colons").replace("Basic", "basic"))),
            Check::Passed("ann".into())
        );
    }

    #[test]
    fn a_hashed_user_is_verified_against_the_hash() {
        let hash = hash("hunter2").unwrap();
        assert!(verify("hunter2", &hash));
        assert!(!verify("hunter3", &hash));
        assert!(!verify("hunter2", "not a hash"));
        let mut users = Users::default();
        users.add_file(&format!("# users\n\ncarol:{hash}\n")).unwrap();
        assert!(
            matches!(users.check(Some(&basic("carol:x"))), Check::Verify { user, .. } if user == "carol")
        );
        assert!(users.add_file("dave:plaintext").is_err());
        let scrypt = "erin:$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert!(users.add_file(scrypt).is_err_and(|e| e.contains("not an Argon2 hash")));
        assert!(users.add_plain("nopassword").is_err() && users.add_plain(":x").is_err());
    }

    #[test]
    fn trusted_credentials_expire_and_are_bounded() {
        let mut trusted = Trusted::default();
        let t0 = Instant::now();
        trusted.insert("Basic x".into(), "ann".into(), t0);
        assert_eq!(trusted.get("Basic x", t0), Some("ann"));
        assert_eq!(trusted.get("Basic x", t0 + TRUSTED_FOR), None);
        for i in 0..MAX_TRUSTED + 10 {
            trusted.insert(format!("Basic {i}"), "u".into(), t0 + Duration::from_millis(i as u64));
        }
        assert!(trusted.passed.len() <= MAX_TRUSTED);
    }
}
