//! What reading a file at the origin found: its SHA-256, how much was read, and whether
//! the part read ends at a line end.

use super::error::SourceError;

/// What [`Source::digest`] read of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// SHA-256 (lower-case hex) of the bytes read.
    pub sha256: String,
    /// How many bytes were read.
    pub bytes: u64,
    /// The last byte read, if any (whether the part read ends at a line end).
    pub last: Option<u8>,
}

/// Hashes up to `limit` bytes of `reader` (see [`Source::digest`]).
pub(crate) async fn digest_of(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    limit: u64,
    path: &str,
) -> Result<Digest, SourceError> {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt;
    let (mut hasher, mut buf) = (sha2::Sha256::new(), vec![0u8; 1 << 20]);
    let (mut bytes, mut last) = (0u64, None);
    while bytes < limit {
        let want = buf
            .len()
            .min((limit - bytes).min(usize::MAX as u64) as usize);
        let n = reader
            .read(&mut buf[..want])
            .await
            .map_err(|e| SourceError::io(format!("reading {path}"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
        last = Some(buf[n - 1]);
    }
    Ok(Digest {
        sha256: crate::local::hash::to_hex(&hasher.finalize()),
        bytes,
        last,
    })
}
