//! A streaming parser of the `text/event-stream` format: bytes in, in pieces of any size;
//! complete frames out, through a callback that borrows the parser's buffers (no allocation
//! per frame once the buffers have grown to the largest frame seen).
//!
//! Lines end with LF, CRLF or a lone CR, as the format allows. A frame ends at an empty line
//! and is handed out if it had any field; comment lines (`:`…) are skipped.

use memchr::memchr2;

/// Lines longer than this are refused: a stream that sends one is broken or hostile.
pub const MAX_LINE: usize = 1 << 20;

/// One dispatched frame. `id` is the `id:` field of this frame only (the format's
/// "last event id" carried over from earlier frames is not applied), so control frames,
/// which carry no `id:`, are told apart from events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub id: Option<&'a [u8]>,
    /// The `data:` lines joined with `\n`; empty if there were none.
    pub data: &'a [u8],
    pub has_data: bool,
    pub retry: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct LineTooLong;

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an SSE line is longer than {MAX_LINE} bytes")
    }
}

impl std::error::Error for LineTooLong {}

#[derive(Debug, Default)]
pub struct SseParser {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The previous piece ended in CR: an LF at the start of the next one belongs to it.
    after_cr: bool,
    data: Vec<u8>,
    has_data: bool,
    id: Vec<u8>,
    has_id: bool,
    retry: Option<u64>,
    /// Any field seen since the last dispatch.
    pending: bool,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feeds the next piece of the stream; calls `on_frame` for every frame it completes.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on_frame: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), LineTooLong> {
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while let Some(end) = memchr2(b'\n', b'\r', input) {
            if self.partial.is_empty() {
                self.line(&input[..end], on_frame);
            } else {
                self.partial.extend_from_slice(&input[..end]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, on_frame);
                self.partial = line;
                self.partial.clear();
            }
            let cr = input[end] == b'\r';
            input = &input[end + 1..];
            if cr {
                match input.first() {
                    Some(b'\n') => input = &input[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        if self.partial.len() + input.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        self.partial.extend_from_slice(input);
        Ok(())
    }

    fn line(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        if line.is_empty() {
            self.dispatch(on_frame);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" => {
                self.id.clear();
                self.id.extend_from_slice(value);
                self.has_id = true;
            }
            b"retry" => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            b"event" => {}
            _ => return,
        }
        self.pending = true;
    }

    fn dispatch(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) {
        if self.pending {
            on_frame(Frame {
                id: self.has_id.then_some(&self.id[..]),
                data: &self.data,
                has_data: self.has_data,
                retry: self.retry,
            });
        }
        self.data.clear();
        self.has_data = false;
        self.has_id = false;
        self.retry = None;
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Owned {
        id: Option<String>,
        data: String,
        retry: Option<u64>,
    }

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<Owned> {
        let mut parser = SseParser::new();
        let mut frames = Vec::new();
        for part in stream.chunks(piece) {
            parser
                .feed(part, &mut |f| {
                    frames.push(Owned {
                        id: f.id.map(|i| String::from_utf8_lossy(i).into_owned()),
                        data: String::from_utf8_lossy(f.data).into_owned(),
                        retry: f.retry,
                    })
                })
                .expect("no long lines");
        }
        frames
    }

    #[test]
    fn frames_parse_the_same_however_the_stream_is_split() {
        let stream = b"data: {\"type\":\"connection_established\"}\n\nretry: 3000\n\n\
            : a comment\r\nid: 7\r\ndata: line one\r\ndata:line two\r\n\r\n\
            id: 8\rdata: {}\r\rdata: no id\n\n";
        let expected = vec![
            Owned {
                id: None,
                data: "{\"type\":\"connection_established\"}".into(),
                retry: None,
            },
            Owned {
                id: None,
                data: String::new(),
                retry: Some(3000),
            },
            Owned {
                id: Some("7".into()),
                data: "line one\nline two".into(),
                retry: None,
            },
            Owned {
                id: Some("8".into()),
                data: "{}".into(),
                retry: None,
            },
            Owned {
                id: None,
                data: "no id".into(),
                retry: None,
            },
        ];
        for piece in 1..=stream.len() {
            assert_eq!(
                parse_in_pieces(stream, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn an_unfinished_frame_is_not_dispatched() {
        assert!(parse_in_pieces(b"id: 1\ndata: x\n", 3).is_empty());
    }

    #[test]
    fn a_line_without_end_past_the_limit_is_refused() {
        let mut parser = SseParser::new();
        let big = vec![b'a'; MAX_LINE + 1];
        assert_eq!(parser.feed(&big, &mut |_| {}), Err(LineTooLong));
    }
}
