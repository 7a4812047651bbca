//! A backup that holds keys is sealed with a passphrase: Argon2id derives
//! an AES-256-GCM key from it and a random salt; the file is a magic line,
//! the salt, the nonce and the ciphertext (which authenticates the rest).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;

/// The first bytes of a sealed backup.
pub const MAGIC: &[u8] = b"MQRTC-SEALED-BACKUP-1\n";
const SALT: usize = 16;
const NONCE: usize = 12;

fn key(passphrase: &[u8], salt: &[u8]) -> Result<Key<Aes256Gcm>, String> {
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| format!("key derivation: {e}"))?;
    Ok(*Key::<Aes256Gcm>::from_slice(&out))
}

/// `plain` sealed under `passphrase`.
pub fn seal(plain: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, String> {
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; NONCE];
    rand::rng().fill_bytes(&mut salt);
    rand::rng().fill_bytes(&mut nonce);
    let sealed = Aes256Gcm::new(&key(passphrase, &salt)?)
        .encrypt(Nonce::from_slice(&nonce), plain)
        .map_err(|_| "encryption failed".to_string())?;
    let mut out = Vec::with_capacity(MAGIC.len() + SALT + NONCE + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Whether `bytes` is a sealed backup.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// The contents of a sealed backup, if `passphrase` is the one it was sealed with.
pub fn open(bytes: &[u8], passphrase: &[u8]) -> Result<Vec<u8>, String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .filter(|r| r.len() > SALT + NONCE)
        .ok_or("not a sealed mqrtc backup")?;
    let (salt, rest) = rest.split_at(SALT);
    let (nonce, sealed) = rest.split_at(NONCE);
    Aes256Gcm::new(&key(passphrase, salt)?)
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| "wrong passphrase, or the file was changed".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let sealed = seal(b"archive", b"correct horse").unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(open(&sealed, b"correct horse").unwrap(), b"archive");
        assert!(open(&sealed, b"wrong").is_err());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(open(&changed, b"correct horse").is_err());
        assert!(open(b"MQRTC-SEALED-BACKUP-1\nshort", b"x").is_err());
    }
}
