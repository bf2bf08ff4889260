//! A lean HTTP/1.1 client over tokio sockets: SSE streams and keep-alive request/response.
//!
//! Hand-written rather than a client crate because the benchmark holds tens of thousands of
//! streams from one process, binds each to a chosen source address (past the ~28k ephemeral
//! ports of one), and must cost little per stream next to what it measures.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `server` from `source` (any port).
pub async fn connect(server: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let stream = bound(source)?.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A socket bound to `source` that leaves the choice of its port to `connect`.
///
/// A plain bind to port 0 reserves a port for any destination, one that no socket on that
/// address holds, TIME_WAIT ones included: once earlier runs' TIME_WAIT sockets hold most of
/// the range, each bind scans it, milliseconds on the thread that also writes every client's
/// request (BENCHMARKS.md, "the 408s at the first poll were the load generator's").
/// `connect` picks for the address pair it connects, from the whole range.
fn bound(source: IpAddr) -> io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    let enable: libc::c_int = 1;
    // SAFETY: `socket` is an open socket for this call, and the option is read as a c_int
    // from a pointer to one that lives across it, with its size.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket)
}

/// One server-sent event.
#[derive(Debug, Default)]
pub struct Event {
    /// `event:`.
    pub name: String,
    /// `data:` lines joined.
    pub data: String,
}

/// An open `GET /events` response, read event by event (chunked transfer coding undone, or a
/// body that runs until the connection closes, as Nchan's EventSource).
pub struct EventStream {
    reader: BufReader<TcpStream>,
    /// The body is in chunks (herald); else it runs until the connection closes (Nchan).
    chunked: bool,
    /// Bytes of the current chunk not read yet.
    chunk_left: usize,
    line: Vec<u8>,
}

impl EventStream {
    /// Sends `GET {path}`, reads the response head (errors unless 200), then events up to the
    /// first `unread_count`: only then is the stream's position fixed, and everything
    /// committed after it certain to arrive.
    pub async fn open(stream: TcpStream, host: &str, path: &str) -> io::Result<EventStream> {
        let mut events = EventStream::request(stream, host, path).await?;
        loop {
            match events.next().await? {
                Some(event) if event.name == "unread_count" => return Ok(events),
                Some(_) => {}
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// Sends `GET {path}` and reads the response head (errors unless 200): for a server that
    /// sends no `unread_count` (Nchan).
    pub async fn open_bare(stream: TcpStream, host: &str, path: &str) -> io::Result<EventStream> {
        EventStream::request(stream, host, path).await
    }

    async fn request(mut stream: TcpStream, host: &str, path: &str) -> io::Result<EventStream> {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut reader = BufReader::with_capacity(4096, stream);
        let head = read_head(&mut reader).await?;
        if head.status != 200 {
            return Err(io::Error::other(format!("status {}", head.status)));
        }
        Ok(EventStream {
            reader,
            chunked: head.chunked,
            chunk_left: 0,
            line: Vec::new(),
        })
    }

    /// The next event with data; `None` when the stream ends.
    pub async fn next(&mut self) -> io::Result<Option<Event>> {
        let mut event = Event::default();
        loop {
            self.line.clear();
            if !self.read_body_line().await? {
                return Ok(None);
            }
            let line = String::from_utf8_lossy(&self.line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !event.data.is_empty() {
                    return Ok(Some(event));
                }
                event = Event::default();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.name = value.to_owned(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }

    /// Appends one line of the body (through `\n`) to `self.line`; false at the end.
    async fn read_body_line(&mut self) -> io::Result<bool> {
        if !self.chunked {
            return Ok(self.reader.read_until(b'\n', &mut self.line).await? > 0);
        }
        loop {
            if self.chunk_left == 0 {
                let mut size = String::new();
                if self.reader.read_line(&mut size).await? == 0 {
                    return Ok(false);
                }
                let size = size.trim();
                if size.is_empty() {
                    continue; // the CRLF after a chunk's data
                }
                let size = usize::from_str_radix(size.split(';').next().unwrap_or(""), 16)
                    .map_err(|_| io::Error::other("bad chunk size"))?;
                if size == 0 {
                    return Ok(false);
                }
                self.chunk_left = size;
            }
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(false);
            }
            let take = available.len().min(self.chunk_left);
            let piece = &available[..take];
            let (used, done) = match piece.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (take, false),
            };
            self.line.extend_from_slice(&piece[..used]);
            self.reader.consume(used);
            self.chunk_left -= used;
            if done {
                return Ok(true);
            }
        }
    }
}

/// A response's status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Last-Modified` and `Etag`: where an Nchan long-poll asks for the next message from.
    pub last_modified: Option<String>,
    pub etag: Option<String>,
}

struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    last_modified: Option<String>,
    etag: Option<String>,
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let (mut content_length, mut last_modified, mut etag) = (None, None, None);
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            return Ok(Head {
                status,
                content_length,
                chunked,
                last_modified,
                etag,
            });
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("last-modified") {
            last_modified = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("etag") {
            etag = Some(value.to_owned());
        }
    }
}

/// A keep-alive connection for plain requests (JSON answers with a Content-Length).
pub struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    /// Wraps a connected socket.
    pub fn new(stream: TcpStream, host: &str) -> Connection {
        Connection {
            reader: BufReader::with_capacity(16 * 1024, stream),
            host: host.to_owned(),
        }
    }

    /// `GET {path}` on this connection.
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.get_with(path, "").await
    }

    /// `GET {path}` with `headers` (each line ending in CRLF) on this connection.
    pub async fn get_with(&mut self, path: &str, headers: &str) -> io::Result<Response> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}\r\n",
            self.host
        );
        self.send(request).await
    }

    /// `POST {path}` with a JSON `body` and a bearer `token`, on this connection.
    pub async fn post(&mut self, path: &str, token: &str, body: &str) -> io::Result<Response> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.send(request).await
    }

    /// `POST {path}` with `body` and no credentials, on this connection.
    pub async fn post_plain(&mut self, path: &str, body: &str) -> io::Result<Response> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.send(request).await
    }

    async fn send(&mut self, request: String) -> io::Result<Response> {
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        let head = read_head(&mut self.reader).await?;
        let length = head
            .content_length
            .ok_or_else(|| io::Error::other("response without Content-Length"))?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok(Response {
            status: head.status,
            body,
            last_modified: head.last_modified,
            etag: head.etag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_socket_takes_its_port_only_when_it_connects() {
        let source = IpAddr::from([127, 0, 0, 2]);
        let socket = bound(source).unwrap();
        assert_eq!(socket.local_addr().unwrap(), SocketAddr::new(source, 0));

        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = socket.connect(server.local_addr().unwrap()).await.unwrap();
        let local = stream.local_addr().unwrap();
        assert_eq!(local.ip(), source);
        assert_ne!(local.port(), 0);
    }
}
