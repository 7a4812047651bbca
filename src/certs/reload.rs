//! A TLS certificate that follows its files. `mqrtc certs rotate`, or the
//! appliance's own renewal, replaces `server.pem` and `server.key`; new
//! handshakes on every TLS listener (MQTT over TLS, secure WebSocket,
//! HTTPS) then use the new certificate, without restarting a listener or
//! dropping a connection. Clients that trust the CA notice nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsFiles;

/// How often the files' modification times are looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Serves the certificate in `cert`/`key`, read again when they change.
#[derive(Debug)]
pub struct FollowFiles {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    current: Arc<CertifiedKey>,
    stamp: Option<(SystemTime, SystemTime)>,
    checked: Instant,
}

impl FollowFiles {
    /// Loads `files` now (an error if they do not make a certificate).
    pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<FollowFiles>> {
        let stamp = stamp(&files.cert, &files.key);
        let current = Arc::new(read(&files.cert, &files.key)?);
        Ok(Arc::new(FollowFiles {
            cert: files.cert.clone(),
            key: files.key.clone(),
            state: Mutex::new(Loaded {
                current,
                stamp,
                checked: Instant::now(),
            }),
        }))
    }

    /// The certificate to present now, read again first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.checked.elapsed() >= CHECK_EVERY {
            s.checked = Instant::now();
            let now = stamp(&self.cert, &self.key);
            if now.is_some() && now != s.stamp {
                match read(&self.cert, &self.key) {
                    Ok(k) => {
                        s.current = Arc::new(k);
                        s.stamp = now;
                        tracing::info!(cert = %self.cert.display(), "TLS certificate changed on disk: new handshakes use the new one");
                    }
                    // Half-way through a rotation (the key is written
                    // first): keep the old pair, look again next time.
                    Err(e) => tracing::debug!("TLS certificate not reloaded yet: {e:#}"),
                }
            }
        }
        s.current.clone()
    }
}

impl ResolvesServerCert for FollowFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(cert: &std::path::Path, key: &std::path::Path) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

/// The certificate chain and key, checked to belong together.
fn read(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<CertifiedKey> {
    let pem = std::fs::read(cert).with_context(|| cert.display().to_string())?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{}: no certificate", cert.display());
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow!("{}: {e}", key.display()))?;
    CertifiedKey::from_der(chain, key_der, &rustls::crypto::ring::default_provider())
        .map_err(|e| anyhow!("{} with {}: {e}", cert.display(), key.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_certificate_is_served_once_both_files_match() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let files = super::super::issue(dir.path(), &names, super::super::Renew::IfDue).unwrap();
        let f = FollowFiles::load(&files).unwrap();
        let first = f.current();
        // Only the key replaced (a rotation half-way): the old pair stays.
        let other = tempfile::tempdir().unwrap();
        let o = super::super::issue(other.path(), &names, super::super::Renew::IfDue).unwrap();
        std::fs::copy(&o.key, &files.key).unwrap();
        f.state.lock().unwrap().checked -= CHECK_EVERY;
        assert_eq!(
            f.current().cert,
            first.cert,
            "mismatched files are not used"
        );
        // A real rotation: both replaced.
        super::super::issue(dir.path(), &names, super::super::Renew::Server).unwrap();
        f.state.lock().unwrap().checked -= CHECK_EVERY;
        let second = f.current();
        assert_ne!(second.cert, first.cert, "the new certificate is served");
        second.keys_match().unwrap();
    }
}
