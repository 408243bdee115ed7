//! The origin behind Pushpin in the side-by-side benchmark: it answers every request with a
//! GRIP stream hold on the channel named by the last path segment (`/sub/lg-7` → `lg-7`), so
//! Pushpin keeps the client's response open and publishes into it. It speaks just enough
//! HTTP/1.1 for Pushpin's requests (no bodies), keeping each connection alive.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Request heads larger than this close the connection.
const MAX_HEAD: usize = 16 * 1024;

/// The channel a request path subscribes to: its last non-empty segment, query removed.
pub fn channel_of(path: &str) -> Option<&str> {
    let path = path.split(['?', '#']).next()?;
    path.rsplit('/').find(|s| !s.is_empty())
}

/// The response that tells Pushpin to hold the stream open on `channel`.
pub fn hold_response(channel: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Grip-Hold: stream\r\nGrip-Channel: {channel}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Accepts connections until the listener fails; one task per connection.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = answer(stream).await;
        });
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        while let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            let response = {
                let head = String::from_utf8_lossy(&buf[..end]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                match channel_of(path) {
                    Some(channel) => hold_response(channel),
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned(),
                }
            };
            buf.drain(..end + 4);
            stream.write_all(response.as_bytes()).await?;
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_is_the_last_path_segment() {
        assert_eq!(channel_of("/sub/lg-7"), Some("lg-7"));
        assert_eq!(channel_of("/sub/lg-7/?x=1"), Some("lg-7"));
        assert_eq!(channel_of("/"), None);
        assert!(hold_response("lg-7").contains("\r\nGrip-Channel: lg-7\r\n"));
    }

    #[tokio::test]
    async fn every_request_on_a_connection_gets_a_hold() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(listener));
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(
                b"GET /sub/a HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/b HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .await
            .expect("write");
        let expected = format!("{}{}", hold_response("a"), hold_response("b"));
        let mut got = vec![0u8; expected.len()];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(String::from_utf8_lossy(&got), expected);
    }
}
