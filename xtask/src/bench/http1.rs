//! Minimal HTTP/1.1 (blocking), for the control requests, the relay and the emulator (the load
//! generator's async reader is `read_answer` in [`super::load`]).

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where `needle` starts in `haystack` (up to its first byte that is not UTF-8: HTTP heads are
/// ASCII). `str::find` is core's optimised searcher even in xtask's unoptimised build, which
/// keeps the load generator's own CPU low.
pub(super) fn find(haystack: &[u8], needle: &str) -> Option<usize> {
    let text = match std::str::from_utf8(haystack) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&haystack[..error.valid_up_to()]).unwrap_or_default(),
    };
    text.find(needle)
}

pub(super) struct Head {
    /// Request line or status line.
    pub(super) first: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let text = std::str::from_utf8(bytes).context("HTTP head is not UTF-8")?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Ok(Self { first, headers })
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn status(&self) -> u16 {
        self.first.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

/// Reads one HTTP message (head and body, Content-Length or chunked) from `stream`; `buffer`
/// holds bytes read past the previous message. Returns `None` at a clean end of stream.
pub(super) fn read_message(stream: &mut impl Read, buffer: &mut Vec<u8>) -> anyhow::Result<Option<(Head, Vec<u8>)>> {
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(position) = find(buffer, "\r\n\r\n") {
            break position + 4;
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            if buffer.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside an HTTP head");
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = Head::parse(&buffer[..head_end - 4])?;
    let chunked = head.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        let mut position = head_end;
        loop {
            let line_end = loop {
                if let Some(offset) = find(&buffer[position..], "\r\n") {
                    break position + offset;
                }
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    bail!("connection closed inside a chunked body");
                }
                buffer.extend_from_slice(&chunk[..read]);
            };
            let size_text = std::str::from_utf8(&buffer[position..line_end])?
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let size =
                usize::from_str_radix(&size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
            // The chunk, then its CRLF (for the last chunk: optional trailers, then CRLF).
            let needed = line_end + 2 + size + 2;
            while buffer.len() < needed {
                let read = stream.read(&mut chunk)?;
                if read == 0 {
                    bail!("connection closed inside a chunk");
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            if size == 0 {
                position = needed;
                break;
            }
            body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
            position = needed;
        }
        buffer.drain(..position);
        body
    } else {
        let length: usize = head.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buffer.len() < head_end + length {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                bail!("connection closed inside a body");
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        body
    };
    Ok(Some((head, body)))
}

/// One request on a fresh connection; (status, body).
pub(super) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    http_request_with(port, method, path, &[], body, timeout)
}

pub(super) fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut buffer = Vec::new();
    let (head, body) =
        read_message(&mut stream, &mut buffer)?.with_context(|| format!("{method} {path}: no answer"))?;
    Ok((head.status(), body))
}

#[cfg(test)]
mod tests {
    use super::read_message;

    #[test]
    fn http_messages_with_length_or_chunks_are_read() {
        let mut input: &[u8] = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut buffer = Vec::new();
        let (head, body) = read_message(&mut input, &mut buffer).expect("read").expect("message");
        assert_eq!((head.status(), body.as_slice()), (202, b"ok".as_slice()));
        let (head, body) = read_message(&mut input, &mut buffer).expect("read").expect("message");
        assert_eq!((head.status(), body.as_slice()), (200, b"abcde".as_slice()));
        assert!(read_message(&mut input, &mut buffer).expect("read").is_none());
    }
}
