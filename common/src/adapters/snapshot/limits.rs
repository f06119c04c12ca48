//! Limits on what a snapshot file may make a reader hold in memory.
//!
//! A CSV record is buffered whole by the parser, so a file with one line of a
//! few gigabytes (a missing newline, a runaway quote in a generated file, or a
//! hostile file) would be read into memory before any error. [`LineLimit`]
//! wraps the file and fails the read as soon as a physical line grows past
//! [`MAX_LINE_BYTES`]: the load stops with a permanent `snapshot_invalid`.

use std::io::{self, Read};

/// Longest physical line (bytes between two `\n`) of a CSV file.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// A reader that fails with `InvalidData` once a line exceeds `max` bytes.
pub struct LineLimit<R> {
    inner: R,
    max: usize,
    /// Bytes since the last `\n`.
    current: usize,
    /// 1-based number of the line being read.
    line: u64,
}

impl<R: Read> LineLimit<R> {
    /// `inner`, failing on a line longer than `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineLimit {
            inner,
            max,
            current: 0,
            line: 1,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        match chunk.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                // Every complete line in the chunk, then the start of the next.
                let mut start = 0;
                for (i, _) in chunk.iter().enumerate().filter(|(_, &b)| b == b'\n') {
                    self.current += i - start;
                    self.check()?;
                    self.current = 0;
                    self.line += 1;
                    start = i + 1;
                }
                self.current = n - last - 1;
            }
            None => self.current += n,
        }
        self.check()?;
        Ok(n)
    }
}

impl<R> LineLimit<R> {
    fn check(&self) -> io::Result<()> {
        if self.current > self.max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} bytes (snapswitch's limit for one CSV line)",
                    self.line, self.max
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], max: usize, chunk: usize) -> io::Result<Vec<u8>> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        LineLimit::new(Chunked(data, chunk), max).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn lines_up_to_the_limit_pass_whatever_the_chunking() {
        let data = b"abcd\nefgh\n\nijkl";
        for chunk in 1..=data.len() {
            assert_eq!(read_all(data, 4, chunk).unwrap(), data, "chunk {chunk}");
        }
    }

    #[test]
    fn a_longer_line_fails_and_is_named() {
        let data = b"abcd\nefghi\nxy";
        for chunk in 1..=data.len() {
            let err = read_all(data, 4, chunk).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(
                err.to_string().starts_with("line 2 is longer than 4 bytes"),
                "{err}"
            );
        }
        assert!(read_all(b"abcde", 4, 2).is_err());
    }
}
