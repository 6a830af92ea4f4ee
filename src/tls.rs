//! HTTPS settings: the certificate chain and key read from PEM files into a rustls `ServerConfig`, and its
//! reload on SIGHUP. The record layer itself is a transport (`transport::Tls`).
//!
//! Files are read only at startup and on the reload thread, never on the event loop.

use rustls::crypto::ring;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// TLS 1.2 sessions remembered for resumption by session ID. 4096 (about 1 MiB). Clients that take tickets
/// (TLS 1.3, and most of TLS 1.2) resume with those instead, which the server does not store.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// Largest PEM file read. 1 MiB: a long chain is a few KiB, so anything bigger is the wrong file.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The one protocol offered in ALPN: this server speaks HTTP/1.1 only.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Where the certificate chain and its key are read from (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: a PKCS#8, RSA (PKCS#1) or SEC1 private key.
    pub key: PathBuf,
}

/// Why a certificate and key can't be used.
#[derive(Debug)]
pub enum CertError {
    /// The file can't be read.
    Read(PathBuf, std::io::Error),
    /// The file is over `MAX_PEM_BYTES`.
    TooLarge(PathBuf),
    /// The file is not PEM, or its PEM is damaged.
    NotPem(PathBuf, pem::Error),
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// The key file holds no private key.
    NoKey(PathBuf),
    /// rustls refused the pair: most often, the key is not the certificate's.
    Rejected(rustls::Error),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Read(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            CertError::TooLarge(path) => {
                write!(f, "{} is over {MAX_PEM_BYTES} bytes: not a PEM file", path.display())
            }
            CertError::NotPem(path, e) => write!(f, "{} is not valid PEM: {e}", path.display()),
            CertError::NoCertificate(path) => {
                write!(f, "{} holds no certificate (no BEGIN CERTIFICATE section)", path.display())
            }
            CertError::NoKey(path) => write!(
                f,
                "{} holds no private key (PKCS#8, RSA or EC PRIVATE KEY section)",
                path.display()
            ),
            CertError::Rejected(rustls::Error::InconsistentKeys(_)) => {
                write!(f, "the private key does not match the certificate")
            }
            CertError::Rejected(e) => write!(f, "the certificate and key are unusable: {e}"),
        }
    }
}

/// The TLS settings new connections are accepted with. A reload swaps in a new certificate; connections
/// already open keep the settings they started with (each holds its own `Arc`).
pub struct Acceptor {
    /// Read again on every reload.
    files: CertFiles,
    /// What a handshake starting now uses; swapped whole by a reload.
    current: Mutex<Arc<ServerConfig>>,
    /// Kept across reloads, so a renewal does not end every client's resumable session.
    sessions: Arc<dyn StoresServerSessions>,
    /// Its keys too (rustls rotates them every 6 hours).
    ticketer: Arc<dyn ProducesTickets>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Reads the pair for the first time.
    pub fn load(files: CertFiles) -> Result<Acceptor, CertError> {
        let sessions: Arc<dyn StoresServerSessions> =
            ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        let ticketer = ring::Ticketer::new().map_err(CertError::Rejected)?;
        let config = build(&files, &sessions, &ticketer)?;
        Ok(Acceptor { files, current: Mutex::new(config), sessions, ticketer })
    }

    /// The settings for a connection accepted now.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the files again (they block: never call this on the event loop). A pair that fails leaves the
    /// current one in use.
    pub fn reload(&self) -> Result<(), CertError> {
        let config = build(&self.files, &self.sessions, &self.ticketer)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }
}

/// Reloads `acceptor` on every SIGHUP, on a thread of its own so the loop never reads a file.
pub fn reload_on_hangup(acceptor: Arc<Acceptor>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new().name("tls-reload".into()).spawn(move || {
        for _ in signals.forever() {
            match acceptor.reload() {
                Ok(()) => log::info!(
                    "TLS: reloaded {}; new connections use it",
                    acceptor.files.cert.display()
                ),
                Err(e) => log::error!("TLS: reload refused, the previous certificate stays: {e}"),
            }
        }
    })?;
    Ok(())
}

fn build(
    files: &CertFiles,
    sessions: &Arc<dyn StoresServerSessions>,
    ticketer: &Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, CertError> {
    let chain = read_pem(&files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::NotPem(files.cert.clone(), e))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate(files.cert.clone()));
    }
    let key = match PrivateKeyDer::from_pem_slice(&read_pem(&files.key)?) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => return Err(CertError::NoKey(files.key.clone())),
        Err(e) => return Err(CertError::NotPem(files.key.clone(), e)),
    };
    // TLS 1.3 and 1.2 only, with rustls's default suites (all AEAD, all forward secret).
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(CertError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(CertError::Rejected)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    // Our order of suites, not the client's: a client that prefers a weaker suite does not get it first
    // (testssl.sh rates a server without a cipher order as a HIGH finding).
    config.ignore_client_order = true;
    config.session_storage = Arc::clone(sessions);
    config.ticketer = Arc::clone(ticketer);
    Ok(Arc::new(config))
}

/// A PEM file's bytes, refusing what can't be one.
fn read_pem(path: &Path) -> Result<Vec<u8>, CertError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| CertError::Read(path.to_owned(), e))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CertError::Read(path.to_owned(), e))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(CertError::TooLarge(path.to_owned()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> CertFiles {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = CertFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.key_pair.serialize_pem()).unwrap();
        files
    }

    fn error_of(files: CertFiles) -> String {
        Acceptor::load(files).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn a_matching_pair_loads_and_offers_http_1_1() {
        let dir = crate::fuzzing::temp_dir("tls-load");
        let acceptor = Acceptor::load(pair(&dir, "a")).unwrap();
        let config = acceptor.config();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(config.ignore_client_order);
    }

    #[test]
    fn a_key_from_another_pair_is_refused_as_not_matching() {
        let dir = crate::fuzzing::temp_dir("tls-mismatch");
        let (a, b) = (pair(&dir, "a"), pair(&dir, "b"));
        let err = error_of(CertFiles { cert: a.cert, key: b.key });
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn files_without_the_right_sections_name_what_is_missing() {
        let dir = crate::fuzzing::temp_dir("tls-sections");
        let a = pair(&dir, "a");
        let swapped = CertFiles { cert: a.key.clone(), key: a.cert.clone() };
        assert!(error_of(swapped).contains("holds no certificate"));
        let no_key = CertFiles { cert: a.cert.clone(), key: a.cert.clone() };
        assert!(error_of(no_key).contains("holds no private key"));
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
        let broken = CertFiles { cert: garbage, key: a.key.clone() };
        assert!(error_of(broken).contains("not valid PEM"));
        let missing = CertFiles { cert: dir.join("none.crt"), key: a.key };
        assert!(error_of(missing).contains("cannot read"));
    }

    #[test]
    fn a_failed_reload_keeps_the_pair_in_use() {
        let dir = crate::fuzzing::temp_dir("tls-reload");
        let files = pair(&dir, "a");
        let acceptor = Acceptor::load(files.clone()).unwrap();
        let before = acceptor.config();
        std::fs::write(&files.cert, "not a certificate").unwrap();
        assert!(acceptor.reload().is_err());
        assert!(Arc::ptr_eq(&before, &acceptor.config()));
        pair(&dir, "a");
        acceptor.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &acceptor.config()));
    }
}
