//! A minimal blocking HTTP/1.1 client on `std::net` (one request per connection), for
//! the JSON-RPC client and the HTTP API tests. Raw on purpose: tests can send bytes a
//! well-behaved client never would.

use anyhow::{anyhow, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status, lower-cased header block and body (de-chunked).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// Sends `method path` to 127.0.0.1:`port` with an optional JSON body and reads the
/// whole response (the server closes the connection).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<Response> {
    request_watching(port, method, path, body, |_| {})
}

/// [`request`], calling `on_bytes` with everything received so far after every read:
/// a streamed response (server-sent events) can be acted on while it is still arriving.
pub fn request_watching(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    on_bytes: impl FnMut(&[u8]),
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let response = read_response(&mut stream, on_bytes)?;
    let text = String::from_utf8(response).context("non-UTF-8 HTTP response")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status in {head:?}"))?;
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Reads until the end of the body: `Content-Length` bytes after the header block when
/// the server sends one (some servers keep the connection open despite
/// `Connection: close`), otherwise until the server closes the connection.
fn read_response(
    stream: &mut TcpStream,
    mut on_bytes: impl FnMut(&[u8]),
) -> anyhow::Result<Vec<u8>> {
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(response);
        }
        response.extend_from_slice(&buf[..n]);
        on_bytes(&response);
        if let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|len| response.len() >= head_end + 4 + len) {
                return Ok(response);
            }
        }
    }
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).ok_or_else(|| anyhow!("short chunk"))?);
        body = rest.get(size + 2..).unwrap_or_default();
    }
}
