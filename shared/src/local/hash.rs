//! Digests as stored in `bitacora_control.sha256`: lower-case hex.

/// Lower-case hex of a digest.
pub fn to_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of the first `size` bytes of the file at `path`.
pub fn file_prefix_sha256(path: &std::path::Path, size: u64) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let (mut hasher, mut buf) = (sha2::Sha256::new(), vec![0; 1 << 20]);
    let mut prefix = std::fs::File::open(path)?.take(size);
    loop {
        match prefix.read(&mut buf)? {
            0 => return Ok(to_hex(&hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn known_digest() {
        assert_eq!(
            super::to_hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
