//! Strong HTTP entity tags (RFC 9110 §8.8.3) from content.

use sha2::{Digest, Sha256};

/// A strong ETag: the first 96 bits of the SHA-256 of `bytes`, quoted.
pub fn strong(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
