//! Secrets at rest. The Signature and DeviceCredential formulas need the
//! secret itself, so those are encrypted (AES-256-GCM) under a master key
//! kept in its own file, outside the database: a copy of `mqrtc.sqlite`
//! alone does not let anyone compute a password. Tokens need only be
//! compared, so only their SHA-256 is stored.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::StoreError;

/// The key that encrypts stored secrets.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, StoreError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        crate::private::check(path, crate::private::Readers::Owner)?;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let raw = b64
                    .decode(text.trim())
                    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
                if raw.len() != 32 {
                    return Err(StoreError::Corrupt(format!(
                        "{}: not a 32-byte key",
                        path.display()
                    )));
                }
                Ok(MasterKey(*Key::<Aes256Gcm>::from_slice(&raw)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; 32];
                rand::rng().fill_bytes(&mut raw);
                crate::private::create_new(path, b64.encode(raw).as_bytes())
                    .map_err(|e| StoreError::Io(path.display().to_string(), e))?;
                Ok(MasterKey(*Key::<Aes256Gcm>::from_slice(&raw)))
            }
            Err(e) => Err(StoreError::Io(path.display().to_string(), e)),
        }
    }

    /// A random key (tests, in-memory stores).
    pub fn random() -> MasterKey {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        MasterKey(*Key::<Aes256Gcm>::from_slice(&raw))
    }

    /// Encrypts `plain`: a random 12-byte nonce followed by the ciphertext.
    pub fn seal(&self, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(&self.0);
        let mut out = nonce.to_vec();
        // Encryption into a Vec cannot fail for inputs under 64 GiB.
        out.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
                .unwrap_or_default(),
        );
        out
    }

    /// Decrypts what [`MasterKey::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<String, StoreError> {
        if sealed.len() < 12 {
            return Err(StoreError::Corrupt("sealed secret too short".into()));
        }
        let (nonce, body) = sealed.split_at(12);
        let plain = Aes256Gcm::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| {
                StoreError::Corrupt(
                    "a secret does not decrypt: wrong master.key for this database?".into(),
                )
            })?;
        String::from_utf8(plain).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Hex SHA-256 of a token, as stored and looked up.
pub fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let k = MasterKey::random();
        let sealed = k.seal("s3cret");
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cret"),
            "not stored in clear"
        );
        assert_eq!(k.open(&sealed).unwrap(), "s3cret");
        assert!(MasterKey::random().open(&sealed).is_err());
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&p).unwrap();
        let b = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(b.open(&a.seal("x")).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
