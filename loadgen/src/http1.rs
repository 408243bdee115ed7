//! The client side of HTTP/1.1 that a streaming subscriber needs, and nothing more: write one
//! GET, read the response head, then decode the body as it streams (chunked, sized, or up to
//! the close). Keeping this by hand keeps a subscriber at one socket and one small buffer.

use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 16 * 1024;
/// Response headers parsed at most.
const MAX_HEADERS: usize = 32;

/// A `GET` of `path` that asks for an event stream, authenticated with `token`.
pub fn stream_request(path: &str, host: &str, token: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\nAuthorization: Bearer {token}\r\n\
         User-Agent: nft-loadgen\r\n\r\n"
    )
    .into_bytes()
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Chunked,
    Length(u64),
    UntilClose,
}

/// The parts of a response head a subscriber acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub framing: Framing,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The peer closed before the head was complete.
    ClosedEarly,
    HeadTooLarge,
    Malformed(String),
    Io(std::io::ErrorKind),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::ClosedEarly => write!(f, "closed before the response head"),
            HttpError::HeadTooLarge => write!(f, "response head over {MAX_HEAD} bytes"),
            HttpError::Malformed(what) => write!(f, "malformed response: {what}"),
            HttpError::Io(kind) => write!(f, "i/o: {kind}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Reads from `stream` into `buf` until a complete response head is there. Answers the head;
/// the bytes after it (the start of the body) are left in `buf[..]`, with its length.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(ResponseHead, usize), HttpError> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            buf.resize((buf.len() * 2).clamp(1024, MAX_HEAD), 0);
        }
        let n = stream
            .read(&mut buf[filled..])
            .await
            .map_err(|e| HttpError::Io(e.kind()))?;
        if n == 0 {
            return Err(HttpError::ClosedEarly);
        }
        filled += n;
        if let Some((head, consumed)) = parse_head(&buf[..filled])? {
            buf.copy_within(consumed..filled, 0);
            return Ok((head, filled - consumed));
        }
    }
}

/// Parses a response head from the start of `bytes`: `None` while incomplete, else the head
/// and its length in bytes.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(ResponseHead, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let consumed = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let status = response
        .code
        .ok_or_else(|| HttpError::Malformed("no status code".to_owned()))?;
    let mut framing = Framing::UntilClose;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = String::from_utf8_lossy(header.value);
            if value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            {
                framing = Framing::Chunked;
            }
        } else if header.name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked
        {
            let length = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| HttpError::Malformed("bad content-length".to_owned()))?;
            framing = Framing::Length(length);
        }
    }
    Ok(Some((ResponseHead { status, framing }, consumed)))
}

/// Turns the bytes of a response body, as they arrive, into its payload.
#[derive(Debug)]
pub enum BodyDecoder {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Chunked => BodyDecoder::Chunked(ChunkedDecoder::default()),
            Framing::Length(n) => BodyDecoder::Length(n),
            Framing::UntilClose => BodyDecoder::UntilClose,
        }
    }

    /// Feeds body bytes; payload goes to `out`. Bytes past the end of the body are ignored.
    pub fn feed(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        match self {
            BodyDecoder::Chunked(decoder) => decoder.feed(input, out),
            BodyDecoder::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                if take > 0 {
                    out(&input[..take]);
                }
                *left -= take as u64;
                Ok(())
            }
            BodyDecoder::UntilClose => {
                out(input);
                Ok(())
            }
        }
    }

    /// True once the body has ended by its own framing (not by the connection closing).
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Chunked(decoder) => decoder.is_done(),
            BodyDecoder::Length(left) => *left == 0,
            BodyDecoder::UntilClose => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// Reading the hexadecimal chunk size.
    #[default]
    Size,
    /// Skipping a chunk extension up to the end of the size line.
    Extension,
    /// Seen CR after the size line.
    SizeLf,
    /// This many payload bytes of the current chunk are still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (after the last, empty chunk).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    Done,
}

/// A streaming decoder of `Transfer-Encoding: chunked`; it keeps no bytes, only its state.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
}

/// Chunks larger than this are refused as malformed.
const MAX_CHUNK: u64 = 1 << 40;

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        use ChunkState as S;
        while let Some((&byte, rest)) = input.split_first() {
            if let S::Data(left) = self.state {
                let take = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                out(&input[..take]);
                input = &input[take..];
                let left = left - take as u64;
                self.state = if left == 0 { S::DataCr } else { S::Data(left) };
                continue;
            }
            input = rest;
            self.state = match (self.state, byte) {
                (S::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                    self.size = self.size * 16 + digit;
                    if self.size > MAX_CHUNK {
                        return Err(HttpError::Malformed("chunk size too large".to_owned()));
                    }
                    S::Size
                }
                (S::Size, b';' | b' ' | b'\t') => S::Extension,
                (S::Size | S::Extension, b'\r') => S::SizeLf,
                (S::Size | S::Extension | S::SizeLf, b'\n') => {
                    let size = std::mem::take(&mut self.size);
                    if size == 0 {
                        S::TrailerStart
                    } else {
                        S::Data(size)
                    }
                }
                (S::Extension, _) => S::Extension,
                (S::DataCr, b'\r') => S::DataLf,
                (S::DataCr | S::DataLf, b'\n') => S::Size,
                (S::TrailerStart, b'\r') => S::TrailerLf,
                (S::TrailerStart | S::TrailerLf, b'\n') => S::Done,
                (S::TrailerLine, b'\n') => S::TrailerStart,
                (S::TrailerStart | S::TrailerLine, _) => S::TrailerLine,
                (S::Done, _) => return Ok(()),
                (state, byte) => {
                    return Err(HttpError::Malformed(format!(
                        "unexpected byte {byte:#04x} in chunked body ({state:?})"
                    )))
                }
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(encoded: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut decoder = ChunkedDecoder::default();
        let mut payload = Vec::new();
        for part in encoded.chunks(piece) {
            decoder
                .feed(part, &mut |bytes| payload.extend_from_slice(bytes))
                .expect("valid chunked body");
        }
        (payload, decoder.is_done())
    }

    #[test]
    fn chunked_bodies_decode_the_same_however_they_are_split() {
        let encoded =
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
        for piece in 1..encoded.len() {
            let (payload, done) = decode_in_pieces(encoded, piece);
            assert_eq!(
                payload, b"hello, world0123456789abcdef",
                "piece size {piece}"
            );
            assert!(done);
        }
    }

    #[test]
    fn an_open_chunked_stream_is_not_done() {
        let (payload, done) = decode_in_pieces(b"3\r\nabc\r\n", 2);
        assert_eq!(payload, b"abc");
        assert!(!done);
    }

    #[test]
    fn garbage_in_a_chunk_size_is_an_error() {
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.feed(b"zz\r\n", &mut |_| {}).is_err());
    }

    #[test]
    fn the_head_names_status_and_framing() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n5\r\n";
        let (head, used) = parse_head(raw).expect("parses").expect("complete");
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(&raw[used..], b"5\r\n");

        let raw = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}";
        let (head, _) = parse_head(raw).expect("parses").expect("complete");
        assert_eq!(
            head,
            ResponseHead {
                status: 429,
                framing: Framing::Length(2)
            }
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").expect("partial"), None);
    }

    #[tokio::test]
    async fn read_head_leaves_the_body_start_in_the_buffer() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
        let mut reader = raw;
        let mut buf = vec![0; 8];
        let (head, body) = read_head(&mut reader, &mut buf).await.expect("head");
        assert_eq!(head.framing, Framing::Chunked);
        assert_eq!(&buf[..body], b"3\r\nabc\r\n");
    }
}
