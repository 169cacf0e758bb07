//! rt calls through the hub's HTTP gateway (`--via http`): HTTP/1.1
//! keep-alive connections on the generator thread's glommio executor, one
//! call in flight on each (HTTP/1.1 has no multiplexing), opened as the
//! calls in flight need them and reused after; plain with a development
//! token, or mutual TLS with the participant's certificate (`--security
//! tls`), as the native connections.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use gonets_client::ClientSecurity;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

/// The longest response head read, bytes.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// The longest response body read, bytes.
const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// One generator thread's caller: the gateway, the participant's
/// credentials, and its idle connections.
pub(crate) struct HttpCaller {
    addr: SocketAddr,
    /// The `Authorization` header line of a development token; none over TLS.
    authorization: String,
    /// The TLS client settings and server name, over mutual TLS.
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
    idle: RefCell<Vec<HttpConn>>,
}

/// A gateway connection's byte stream.
enum HttpStream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

struct HttpConn {
    stream: HttpStream,
    buf: Vec<u8>,
}

impl HttpCaller {
    /// Calls as the participant `security` names: its development token
    /// (HTTP Basic), or its certificate (mutual TLS).
    pub(crate) fn new(addr: SocketAddr, security: &ClientSecurity) -> HttpCaller {
        let (authorization, tls) = match security {
            ClientSecurity::DevToken { participant, token } => {
                let credentials = format!("{participant}:{token}");
                let basic = base64(credentials.as_bytes());
                (format!("Authorization: Basic {basic}\r\n"), None)
            }
            ClientSecurity::Tls {
                config,
                server_name,
            } => {
                // The native port's settings, but the gateway speaks HTTP/1.1.
                let mut http = (**config).clone();
                http.alpn_protocols = vec![b"http/1.1".to_vec()];
                (String::new(), Some((Arc::new(http), server_name.clone())))
            }
        };
        HttpCaller {
            addr,
            authorization,
            tls,
            idle: RefCell::new(Vec::new()),
        }
    }

    /// `POST /v1/kinds/{kind}/call` with `payload`; `Ok` on 200 (the
    /// answer), else the problem's stable code (or why the exchange failed).
    pub(crate) async fn call(&self, kind: &str, payload: &[u8]) -> Result<(), String> {
        self.post(&format!("/v1/kinds/{kind}/call"), payload, 200)
            .await
            .map(drop)
    }

    /// `POST path` with `body`: the response body when its status is
    /// `expected`, else the problem's stable code (or why the exchange failed).
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &[u8],
        expected: u16,
    ) -> Result<Vec<u8>, String> {
        let taken = self.idle.borrow_mut().pop();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: gonets\r\n{}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            self.authorization,
            body.len()
        );
        let mut conn = match taken {
            // The gateway closes a connection idle for its header timeout
            // (10 s): a request it could not even write was never read, so
            // it goes again on a fresh connection, as HTTP clients do.
            Some(mut c) => match c.send(head.as_bytes(), body).await {
                Ok(()) => c,
                Err(_) => self.fresh(head.as_bytes(), body).await?,
            },
            None => self.fresh(head.as_bytes(), body).await?,
        };
        // A connection that failed mid-exchange is dropped, not reused.
        let (status, reply) = conn.receive().await?;
        self.idle.borrow_mut().push(conn);
        match status {
            s if s == expected => Ok(reply),
            _ => Err(problem_code(&reply).unwrap_or_else(|| format!("HTTP {status}"))),
        }
    }
}

impl HttpCaller {
    /// A new connection with the request sent on it.
    async fn fresh(&self, head: &[u8], body: &[u8]) -> Result<HttpConn, String> {
        let mut conn = HttpConn::open(self.addr, self.tls.as_ref()).await?;
        conn.send(head, body).await?;
        Ok(conn)
    }
}

/// Each request's outcome in a `send_requests` reply (`n` of them).
pub(crate) fn batch_results(reply: &[u8], n: usize) -> Vec<Result<(), String>> {
    let parsed: Option<Vec<Result<(), String>>> = (|| {
        let v: serde_json::Value = serde_json::from_slice(reply).ok()?;
        let results = v.get("results")?.as_array()?;
        Some(
            results
                .iter()
                .map(|r| match r.get("problem") {
                    None => Ok(()),
                    Some(p) => Err(p
                        .get("code")
                        .and_then(|c| c.as_str())
                        .unwrap_or("PROBLEM")
                        .to_owned()),
                })
                .collect(),
        )
    })();
    match parsed {
        Some(rs) if rs.len() == n => rs,
        _ => vec![Err("BadReply".into()); n],
    }
}

impl HttpStream {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            HttpStream::Plain(s) => s.write_all(bytes).await,
            HttpStream::Tls(s) => s.write_all(bytes).await,
        }
    }

    /// Sends what TLS holds back (a plain socket holds nothing).
    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            HttpStream::Plain(s) => s.flush().await,
            HttpStream::Tls(s) => s.flush().await,
        }
    }

    async fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
        match self {
            HttpStream::Plain(s) => s.read(into).await,
            HttpStream::Tls(s) => s.read(into).await,
        }
    }
}

/// The TLS handshake with the gateway, bounded like a native connection's.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    tcp: S,
    config: &Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<futures_rustls::client::TlsStream<S>, String> {
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| format!("server name {server_name:?}: {e}"))?;
    let connector = futures_rustls::TlsConnector::from(config.clone());
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with the gateway: {e}"))
}

impl HttpConn {
    async fn open(
        addr: SocketAddr,
        tls: Option<&(Arc<rustls::ClientConfig>, String)>,
    ) -> Result<HttpConn, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to the gateway at {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let stream = match tls {
            None => HttpStream::Plain(tcp),
            Some((config, name)) => HttpStream::Tls(Box::new(handshake(tcp, config, name).await?)),
        };
        Ok(HttpConn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK_BYTES),
        })
    }

    /// Sends one request.
    async fn send(&mut self, head: &[u8], body: &[u8]) -> Result<(), String> {
        let io = |e: std::io::Error| format!("gateway connection: {e}");
        self.stream.write_all(head).await.map_err(io)?;
        self.stream.write_all(body).await.map_err(io)?;
        self.stream.flush().await.map_err(io)
    }

    /// Reads one response: its status and body.
    async fn receive(&mut self) -> Result<(u16, Vec<u8>), String> {
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > HEAD_BYTES_MAX {
                return Err("gateway response head over 16 KiB".into());
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| "head not UTF-8")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or("no status in the gateway's response")?;
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or("no Content-Length in the gateway's response")?;
        if length > BODY_BYTES_MAX {
            return Err(format!("gateway response body of {length} bytes"));
        }
        // Bounded by `length`.
        while self.buf.len() < head_end + length {
            self.read_more().await?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok((status, body))
    }

    async fn read_more(&mut self) -> Result<(), String> {
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK_BYTES, 0);
        let n = self.stream.read(&mut self.buf[old..]).await;
        self.buf.truncate(old + *n.as_ref().unwrap_or(&0));
        match n {
            Ok(0) => Err("the gateway closed the connection".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("gateway connection: {e}")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The stable code of a problem body (`"code":"NAME"`).
fn problem_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(v.get("code")?.as_str()?.to_owned())
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_credentials_when_encoded_then_standard_base64() {
        assert_eq!(base64(b"LGC1:dev-lgc1"), "TEdDMTpkZXYtbGdjMQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn given_a_batch_reply_when_read_then_one_outcome_a_request() {
        let reply =
            br#"{"results":[{"accepted":{"id":"x"}},{"problem":{"code":"QUOTA_EXCEEDED"}}]}"#;
        let rs = batch_results(reply, 2);
        assert_eq!(rs, vec![Ok(()), Err("QUOTA_EXCEEDED".to_owned())]);
        assert_eq!(batch_results(reply, 3), vec![Err("BadReply".to_owned()); 3]);
    }

    #[test]
    fn given_a_problem_body_when_read_then_its_code() {
        let body = br#"{"code":"DEADLINE_EXCEEDED","status":504}"#;
        assert_eq!(problem_code(body).as_deref(), Some("DEADLINE_EXCEEDED"));
        assert_eq!(problem_code(b"nope"), None);
    }
}
