//! Just enough HTTP/1.1 for etcd's JSON gateway: one POST per connection
//! (`Connection: close`), a body by `Content-Length`, chunks, or to the
//! end; and a streamed response read message by message (a watch).
//!
//! A connection per request costs a loopback or LAN round trip, against a
//! consensus write that costs a disk sync on a majority: not where the
//! time goes, and nothing to keep alive across a member's failure.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// An endpoint: `host:port`, from `http://host:port[/]`.
pub fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    (!rest.is_empty() && !rest.contains('/') && rest.contains(':')).then_some(rest)
}

fn connect(endpoint: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{endpoint}: no address"));
    for addr in endpoint.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A response whose headers have been read.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    reader: BufReader<TcpStream>,
    chunked: bool,
    length: Option<usize>,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    done: bool,
}

/// Sends `body` to `path` and reads the response's headers.
pub fn post(endpoint: &str, path: &str, body: &[u8], timeout: Duration) -> io::Result<Response> {
    let mut stream = connect(endpoint, timeout)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("status line {line:?}")))?;
    let (mut chunked, mut length) = (false, None);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short".into()));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().ok();
            }
        }
    }
    Ok(Response {
        status,
        reader,
        chunked,
        length,
        chunk_left: 0,
        done: false,
    })
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP: {why}"))
}

/// Longest body or streamed message read.
const LIMIT: usize = 16 << 20;

impl Response {
    /// The whole body.
    pub fn body(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if let (false, Some(n)) = (self.chunked, self.length) {
            if n > LIMIT {
                return Err(bad(format!("a body of {n} bytes")));
            }
            out.resize(n, 0);
            self.reader.read_exact(&mut out)?;
            return Ok(out);
        }
        let mut buf = [0u8; 8192];
        loop {
            let n = self.read_some(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
            if out.len() > LIMIT {
                return Err(bad("a body past 16 MiB".into()));
            }
        }
    }

    /// The next newline-terminated message of a streamed body; `None` at
    /// its end. A read timeout surfaces as `WouldBlock`/`TimedOut`.
    pub fn next_message(&mut self, pending: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = pending.iter().position(|&b| b == b'\n') {
                let message: Vec<u8> = pending.drain(..=at).collect();
                return Ok(Some(message));
            }
            let mut buf = [0u8; 8192];
            let n = self.read_some(&mut buf)?;
            if n == 0 {
                return Ok((!pending.is_empty()).then(|| std::mem::take(pending)));
            }
            pending.extend_from_slice(&buf[..n]);
            if pending.len() > LIMIT {
                return Err(bad("a message past 16 MiB".into()));
            }
        }
    }

    /// Sets how long a read may wait.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }

    /// Reads body bytes, undoing chunked framing.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if !self.chunked {
            return self.reader.read(buf);
        }
        if self.chunk_left == 0 {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                self.done = true;
                return Ok(0);
            }
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| bad(format!("chunk size {line:?}")))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.chunk_left = size;
        }
        let want = buf.len().min(self.chunk_left);
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad("a chunk cut short".into()));
        }
        self.chunk_left -= n;
        if self.chunk_left == 0 {
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn endpoints_are_plain_http_urls() {
        assert_eq!(authority("http://127.0.0.1:2379"), Some("127.0.0.1:2379"));
        assert_eq!(authority("http://etcd-1:2379/"), Some("etcd-1:2379"));
        assert_eq!(authority("https://x:1"), None);
        assert_eq!(authority("http://x"), None);
        assert_eq!(authority("http://x:1/v3"), None);
    }
}
