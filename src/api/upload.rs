//! Receiving large files over HTTP without holding them in memory: a request body streamed to a
//! file in the data folder under a byte limit, an idle timeout per chunk and a SHA-256 taken on
//! the way, written beside its final name and renamed into place only when complete (a broken
//! upload leaves nothing behind). [`MultipartFile`] takes the first file out of a
//! `multipart/form-data` body as it streams, which is how many chargers POST diagnostics.
//! It knows nothing of firmware, chargers or routes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::problem::Problem;

/// How long a client may send nothing in the middle of a body.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A file received whole.
#[derive(Debug, Clone)]
pub struct Received {
    pub size: u64,
    pub sha256: String,
    /// The file name the multipart part gave, when the body was multipart and gave one.
    pub filename: Option<String>,
}

/// Why a body was not kept; each maps to the problem answered.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the body stopped arriving")]
    Stalled,
    #[error("the body could not be read: {0}")]
    Broken(String),
    #[error("the multipart body is malformed: {0}")]
    Multipart(&'static str),
    #[error("the file could not be written: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    pub fn problem(&self) -> Problem {
        match self {
            UploadError::TooLarge(_) => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large")
                    .detail(self.to_string())
            }
            UploadError::Stalled => Problem::new(StatusCode::REQUEST_TIMEOUT, "Request timeout")
                .detail(format!(
                    "no part of the body arrived for {} s",
                    IDLE_TIMEOUT.as_secs()
                )),
            UploadError::Broken(_) | UploadError::Multipart(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "Unreadable body").detail(self.to_string())
            }
            UploadError::Io(e) => Problem::internal(e),
        }
    }
}

/// Streams `body` into `target` (through `target` + `.partial`), at most `limit` bytes of file
/// content; with `boundary`, the body is `multipart/form-data` and its first file part is kept.
pub async fn receive(
    body: Body,
    target: &Path,
    limit: u64,
    boundary: Option<&str>,
) -> Result<Received, UploadError> {
    let partial = partial_path(target);
    let result = write_partial(body, &partial, limit, boundary).await;
    match result {
        Ok(received) => {
            tokio::fs::rename(&partial, target).await?;
            Ok(received)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e)
        }
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

async fn write_partial(
    body: Body,
    partial: &Path,
    limit: u64,
    boundary: Option<&str>,
) -> Result<Received, UploadError> {
    let mut file = tokio::fs::File::create(partial).await?;
    let mut hash = Sha256::new();
    let mut size: u64 = 0;
    let mut multipart = boundary.map(MultipartFile::new);
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
            Err(_) => return Err(UploadError::Stalled),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(UploadError::Broken(e.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        let data: &[u8] = match multipart.as_mut() {
            Some(m) => {
                out.clear();
                m.feed(&chunk, &mut out)?;
                &out
            }
            None => &chunk,
        };
        size = size
            .checked_add(data.len() as u64)
            .filter(|s| *s <= limit)
            .ok_or(UploadError::TooLarge(limit))?;
        hash.update(data);
        file.write_all(data).await?;
    }
    let filename = match multipart {
        Some(m) => m.finish()?,
        None => None,
    };
    file.flush().await?;
    file.sync_all().await?;
    Ok(Received {
        size,
        sha256: hex(&hash.finalize()),
        filename,
    })
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `boundary` of a `multipart/form-data` content type, if it is one.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// The largest header block of one part.
const MAX_PART_HEADERS: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Looking for the next delimiter; `keep`: the bytes before it are the file.
    Seek {
        keep: bool,
    },
    /// Just past a delimiter: `\r\n` (a part follows) or `--` (the end).
    AfterDelimiter,
    Headers,
    Done,
}

/// Takes the first part with a file name (or, when none has one, the first part) out of a
/// multipart body fed in arbitrary chunks; the other parts are skipped.
pub struct MultipartFile {
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    stage: Stage,
    buf: Vec<u8>,
    taken: bool,
    filename: Option<String>,
}

impl MultipartFile {
    pub fn new(boundary: &str) -> Self {
        MultipartFile {
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            stage: Stage::Seek { keep: false },
            // The body starts with `--boundary`: a leading CRLF makes it one more delimiter.
            buf: b"\r\n".to_vec(),
            taken: false,
            filename: None,
        }
    }

    /// Feeds one chunk; the file's bytes found in it go to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), UploadError> {
        self.buf.extend_from_slice(chunk);
        loop {
            match self.stage {
                Stage::Done => {
                    self.buf.clear();
                    return Ok(());
                }
                Stage::Seek { keep } => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        if keep {
                            out.extend_from_slice(&self.buf[..at]);
                        }
                        self.buf.drain(..at + self.delimiter.len());
                        self.stage = Stage::AfterDelimiter;
                    }
                    None => {
                        // Keep what could be the start of a delimiter split across chunks.
                        let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                        if keep {
                            out.extend_from_slice(&self.buf[..safe]);
                        }
                        self.buf.drain(..safe);
                        return Ok(());
                    }
                },
                Stage::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    if self.buf.starts_with(b"--") {
                        self.stage = Stage::Done;
                    } else if self.buf.starts_with(b"\r\n") {
                        self.buf.drain(..2);
                        self.stage = Stage::Headers;
                    } else {
                        // Transport padding (spaces) before the CRLF is allowed by RFC 2046.
                        match find(&self.buf, b"\r\n") {
                            Some(at)
                                if self.buf[..at].iter().all(|b| *b == b' ' || *b == b'\t') =>
                            {
                                self.buf.drain(..at + 2);
                                self.stage = Stage::Headers;
                            }
                            Some(_) => return Err(UploadError::Multipart("junk after a boundary")),
                            None if self.buf.len() > 256 => {
                                return Err(UploadError::Multipart("junk after a boundary"));
                            }
                            None => return Ok(()),
                        }
                    }
                }
                Stage::Headers => match find(&self.buf, b"\r\n\r\n") {
                    Some(at) => {
                        let headers = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                        self.buf.drain(..at + 4);
                        let filename = part_filename(&headers);
                        let keep = !self.taken && filename.is_some();
                        if keep {
                            self.taken = true;
                            self.filename = filename;
                        }
                        self.stage = Stage::Seek { keep };
                    }
                    None if self.buf.len() > MAX_PART_HEADERS => {
                        return Err(UploadError::Multipart("part headers too long"));
                    }
                    None => return Ok(()),
                },
            }
        }
    }

    /// The end of the body: the closing delimiter must have been seen and a file found.
    pub fn finish(self) -> Result<Option<String>, UploadError> {
        if self.stage != Stage::Done {
            return Err(UploadError::Multipart("the closing boundary is missing"));
        }
        if !self.taken {
            return Err(UploadError::Multipart(
                "no part carries a file (filename=…)",
            ));
        }
        Ok(self.filename)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `filename` from a part's `Content-Disposition: form-data; name="file"; filename="x.zip"`.
fn part_filename(headers: &str) -> Option<String> {
    let disposition = headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    })?;
    disposition.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<u8> {
        b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
          --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"diag.zip\"\r\n\
          Content-Type: application/zip\r\n\r\nPK\x03\x04\r\n--Xy not yet\r\n--XyZ--\r\n"
            .to_vec()
    }

    #[test]
    fn the_file_part_comes_out_whatever_the_chunking() {
        let body = body();
        for size in [1, 2, 3, 7, 13, body.len()] {
            let mut m = MultipartFile::new("XyZ");
            let mut out = Vec::new();
            for chunk in body.chunks(size) {
                m.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(
                m.finish().unwrap().as_deref(),
                Some("diag.zip"),
                "chunk {size}"
            );
            assert_eq!(out, b"PK\x03\x04\r\n--Xy not yet", "chunk {size}");
        }
    }

    #[test]
    fn a_truncated_or_fileless_body_is_refused() {
        let body = body();
        let mut m = MultipartFile::new("XyZ");
        m.feed(&body[..body.len() - 9], &mut Vec::new()).unwrap();
        assert!(m.finish().is_err());
        let mut m = MultipartFile::new("XyZ");
        m.feed(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--",
            &mut Vec::new(),
        )
        .unwrap();
        assert!(m.finish().is_err());
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            multipart_boundary("multipart/form-data; boundary=\"abc\"").as_deref(),
            Some("abc")
        );
        assert_eq!(multipart_boundary("application/octet-stream"), None);
    }
}
