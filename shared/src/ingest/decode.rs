//! Request body decoding by `Content-Encoding` (ingest-protocol.md §4).
//!
//! Owns decompression and its size bound. Decoders are driven through `Read::take(limit + 1)`,
//! so output grows in chunks and a decompression bomb stops one byte past the limit instead of
//! being inflated in full.
//!
//! Like Relay's decoder, values that are not a known coding (empty, `UTF-8`, …) are treated as
//! identity; several codings (`gzip, br`) are undone in reverse order.

use std::borrow::Cow;
use std::io::{self, Read};

/// A content coding we can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No transformation.
    Identity,
    /// `gzip` / `x-gzip` (multi-member tolerated).
    Gzip,
    /// `deflate`: zlib wrapper; a raw deflate stream is tolerated as actix/Relay do.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl ContentEncoding {
    /// Parses one coding token; unknown and bogus tokens are identity (Relay behaviour).
    pub fn from_token(token: &str) -> Self {
        let token = token.trim();
        if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Self::Gzip
        } else if token.eq_ignore_ascii_case("deflate") {
            Self::Deflate
        } else if token.eq_ignore_ascii_case("br") {
            Self::Brotli
        } else if token.eq_ignore_ascii_case("zstd") {
            Self::Zstd
        } else {
            Self::Identity
        }
    }

    /// All codings of a header value, in the order they were applied.
    pub fn parse_header(value: Option<&str>) -> Vec<Self> {
        value
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(Self::from_token)
            .filter(|c| *c != Self::Identity)
            .collect()
    }

    fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }
}

/// Content codings a request may stack (SDKs send one; `gzip, br` style stacking is legal HTTP).
pub const MAX_CODINGS: usize = 2;

/// Decoding failures.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decoded body exceeds the limit (413).
    #[error("payload reached its size limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// More content codings than [`MAX_CODINGS`] (400): each layer costs a full decode before the
    /// request can be refused (1,500 gzip layers took 1.2 s of CPU).
    #[error("too many content encodings: {count} (at most {MAX_CODINGS})")]
    TooManyCodings {
        /// The codings the request named.
        count: usize,
    },
    /// The body is not valid for its coding (400).
    #[error("failed to decode {encoding} request body")]
    Invalid {
        /// The coding that failed.
        encoding: &'static str,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
}

impl DecodeError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::PayloadTooLarge { .. } => 413,
            Self::Invalid { .. } | Self::TooManyCodings { .. } => 400,
        }
    }
}

/// Decodes `body` according to the `Content-Encoding` header value, bounded by `limit` bytes of
/// output (and of input for identity bodies). Borrows the input when nothing has to be undone.
/// Stacked codings are undone as one stream (an error is told by the innermost coding).
pub fn decode_body<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    Decoding::start(body, content_encoding, limit)?.finish(limit)
}

/// A body being decoded as far as it has been needed: what authentication reads first (the envelope
/// header, [`Decoding::prefix`]) is decoded once and the same decoder goes on from there for the rest
/// ([`Decoding::finish`]), so a request that passes authentication is not inflated twice.
pub enum Decoding<'a> {
    /// No content coding: the body itself.
    Identity(&'a [u8]),
    /// Decoded so far, and the decoders (innermost coding `last`) to go on with; `None` once the end
    /// was reached.
    Coded {
        out: Vec<u8>,
        rest: Option<Box<dyn Read + Send + 'a>>,
        last: ContentEncoding,
        /// What an inner layer of stacked codings may decode to (as the body).
        layer_limit: usize,
    },
}

impl std::fmt::Debug for Decoding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Identity(body) => write!(f, "Identity({} bytes)", body.len()),
            Self::Coded { out, rest, last, .. } => {
                write!(
                    f,
                    "Coded({} bytes decoded, {}, {})",
                    out.len(),
                    last.name(),
                    if rest.is_some() { "more" } else { "all" }
                )
            }
        }
    }
}

impl<'a> Decoding<'a> {
    /// Starts decoding `body` according to the `Content-Encoding` header value (at most
    /// [`MAX_CODINGS`] stacked codings, the inner one's output bounded by `limit` bytes as the body's
    /// is); nothing is decoded yet.
    pub fn start(body: &'a [u8], content_encoding: Option<&str>, limit: usize) -> Result<Self, DecodeError> {
        Self::of_codings(body, ContentEncoding::parse_header(content_encoding), limit)
    }

    /// [`Decoding::start`] with the codings in the order they were applied.
    fn of_codings(body: &'a [u8], codings: Vec<ContentEncoding>, limit: usize) -> Result<Self, DecodeError> {
        if codings.len() > MAX_CODINGS {
            return Err(DecodeError::TooManyCodings { count: codings.len() });
        }
        // The outermost coding was applied last, so it is undone first. Its decoder reads the body
        // in place (a slice is a `BufRead`): no buffer of its own to allocate, fill and copy from.
        let mut codings = codings.into_iter().rev();
        let Some(outermost) = codings.next() else { return Ok(Self::Identity(body)) };
        let mut reader =
            stream_decoder(Box::new(body), outermost).map_err(|e| read_error(e, outermost, limit))?;
        let mut last = outermost;
        for coding in codings {
            // What the outer coding decodes to feeds the inner decoder: bounded too, or a stream of
            // empty deflate blocks (input consumed, nothing out) would cost CPU without end.
            let inner = Box::new(io::BufReader::new(LayerLimit { inner: reader, left: limit }));
            reader = stream_decoder(inner, coding).map_err(|e| read_error(e, coding, limit))?;
            last = coding;
        }
        // Room for a typical compressed body's output without regrowing (bounded by what it decodes to).
        let room = body.len().saturating_mul(4).clamp(4 << 10, 64 << 10);
        Ok(Self::Coded { out: Vec::with_capacity(room), rest: Some(reader), last, layer_limit: limit })
    }

    /// The first `max` bytes of the decoded body, decoding no further than `max + 1` bytes, and
    /// whether that is all of it.
    pub fn prefix(&mut self, max: usize) -> Result<(&[u8], bool), DecodeError> {
        match self {
            Self::Identity(body) => Ok(if body.len() > max { (&body[..max], false) } else { (*body, true) }),
            Self::Coded { out, rest, last, layer_limit } => {
                if let Some(reader) = rest
                    && out.len() <= max
                {
                    let want = max + 1 - out.len();
                    let read = reader
                        .take(u64::try_from(want).unwrap_or(u64::MAX))
                        .read_to_end(out)
                        .map_err(|source| read_error(source, *last, *layer_limit))?;
                    if read < want {
                        *rest = None;
                    }
                }
                Ok((&out[..out.len().min(max)], rest.is_none() && out.len() <= max))
            }
        }
    }

    /// The whole decoded body, bounded by `limit` bytes of output (and of input for an identity body).
    pub fn finish(self, limit: usize) -> Result<Cow<'a, [u8]>, DecodeError> {
        let body = match self {
            Self::Identity(body) => Cow::Borrowed(body),
            Self::Coded { mut out, rest, last, layer_limit } => {
                if let Some(reader) = rest
                    && out.len() <= limit
                {
                    let cap = u64::try_from(limit + 1 - out.len()).unwrap_or(u64::MAX);
                    reader
                        .take(cap)
                        .read_to_end(&mut out)
                        .map_err(|source| read_error(source, last, layer_limit))?;
                }
                Cow::Owned(out)
            }
        };
        if body.len() > limit {
            return Err(DecodeError::PayloadTooLarge { limit });
        }
        Ok(body)
    }
}

/// The output of an outer coding, bounded: reading past `left` bytes is an error ([`LayerTooLarge`]).
struct LayerLimit<R> {
    inner: R,
    left: usize,
}

/// An inner layer of stacked codings decoded past the body's limit.
#[derive(Debug)]
struct LayerTooLarge;

impl std::fmt::Display for LayerTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an inner content coding decodes past the body's limit")
    }
}

impl std::error::Error for LayerTooLarge {}

impl<R: Read> Read for LayerLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n).ok_or_else(|| io::Error::other(LayerTooLarge))?;
        Ok(n)
    }
}

/// A read error of the decoders: an inner layer past the limit is the body's 413, anything else
/// the innermost coding's 400.
fn read_error(source: io::Error, last: ContentEncoding, layer_limit: usize) -> DecodeError {
    if source.get_ref().is_some_and(|e| e.is::<LayerTooLarge>()) {
        DecodeError::PayloadTooLarge { limit: layer_limit }
    } else {
        DecodeError::Invalid { encoding: last.name(), source }
    }
}

/// A streaming decoder of `coding` over `inner` (deflate: zlib or raw, told apart by the header,
/// which is read here: its read error is the caller's to classify, as a decoder's are). `inner` is a
/// trait object so that each decoder is compiled once, for the body and an inner layer alike.
fn stream_decoder<'a>(
    mut inner: Box<dyn io::BufRead + Send + 'a>,
    coding: ContentEncoding,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    use flate2::bufread;
    Ok(match coding {
        ContentEncoding::Identity => Box::new(inner),
        ContentEncoding::Gzip => Box::new(bufread::MultiGzDecoder::new(inner)),
        ContentEncoding::Deflate => {
            if looks_like_zlib(inner.fill_buf()?) {
                Box::new(bufread::ZlibDecoder::new(inner))
            } else {
                Box::new(bufread::DeflateDecoder::new(inner))
            }
        }
        ContentEncoding::Brotli => Box::new(brotli::Decompressor::new(inner, 4096)),
        ContentEncoding::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(inner)?),
    })
}

/// Inflates a zlib stream (legacy store bodies), bounded by `limit`.
pub fn inflate_zlib(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    Ok(Decoding::of_codings(input, vec![ContentEncoding::Deflate], limit)?.finish(limit)?.into_owned())
}

/// RFC 1950 header check: CM = 8 and the FCHECK bits make the first two bytes a multiple of 31.
fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    const DATA: &[u8] = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\"}\n{}";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    #[test]
    fn header_parsing() {
        use ContentEncoding::*;
        assert_eq!(ContentEncoding::parse_header(None), vec![]);
        assert_eq!(ContentEncoding::parse_header(Some("")), vec![]);
        assert_eq!(ContentEncoding::parse_header(Some("UTF-8")), vec![]);
        assert_eq!(ContentEncoding::parse_header(Some("identity")), vec![]);
        assert_eq!(ContentEncoding::parse_header(Some(" GZIP ")), vec![Gzip]);
        assert_eq!(ContentEncoding::parse_header(Some("x-gzip")), vec![Gzip]);
        assert_eq!(ContentEncoding::parse_header(Some("deflate, br,zstd")), vec![Deflate, Brotli, Zstd]);
    }

    #[test]
    fn identity_borrows() {
        let out = decode_body(DATA, None, 1024).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)));
        let out = decode_body(DATA, Some("UTF-8"), 1024).unwrap();
        assert_eq!(&*out, DATA);
    }

    #[test]
    fn every_coding_round_trips() {
        let zstd = zstd::encode_all(DATA, 3).unwrap();
        for (encoding, body) in [
            ("gzip", gzip(DATA)),
            ("deflate", zlib(DATA)),
            ("deflate", raw_deflate(DATA)),
            ("br", brotli(DATA)),
            ("zstd", zstd),
        ] {
            let out = decode_body(&body, Some(encoding), 1024).unwrap();
            assert_eq!(&*out, DATA, "{encoding}");
        }
    }

    /// What the inflate backend (zlib-rs under flate2) must keep: gzip members one after another are
    /// one body; a wrong checksum, a cut stream or bytes that are not deflate data are invalid.
    #[test]
    fn concatenated_members_and_corrupt_streams() {
        let two = [gzip(b"first "), gzip(b"second")].concat();
        assert_eq!(&*decode_body(&two, Some("gzip"), 1024).unwrap(), b"first second");
        let invalid = |body: &[u8], encoding: &str| {
            matches!(decode_body(body, Some(encoding), 1024), Err(DecodeError::Invalid { .. }))
        };
        let mut bad_crc = gzip(DATA);
        let at = bad_crc.len() - 8; // CRC-32, then the length
        bad_crc[at] ^= 1;
        assert!(invalid(&bad_crc, "gzip"));
        let mut bad_adler = zlib(DATA);
        let last = bad_adler.len() - 1;
        bad_adler[last] ^= 1;
        assert!(invalid(&bad_adler, "deflate"));
        let full = gzip(DATA);
        assert!(invalid(&full[..full.len() / 2], "gzip"));
        assert!(invalid(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff], "gzip"));
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse() {
        let body = brotli(&gzip(DATA));
        let out = decode_body(&body, Some("gzip, br"), 1024).unwrap();
        assert_eq!(&*out, DATA);
    }

    #[test]
    fn at_most_two_codings() {
        let two = gzip(&gzip(DATA));
        assert_eq!(&*decode_body(&two, Some("gzip, gzip"), 1024).unwrap(), DATA);
        // Refused before any decoding: a body that is not even gzip gets the same answer.
        for header in ["gzip, gzip, gzip", &["gzip"; 1500].join(",")] {
            let err = decode_body(b"not decoded", Some(header), 1024).unwrap_err();
            assert_eq!(err.status(), 400, "{header:.40}");
            assert!(err.to_string().starts_with("too many content encodings"), "{err}");
        }
        assert_eq!(&*decode_body(DATA, Some("identity, identity, identity"), 1024).unwrap(), DATA);
    }

    #[test]
    fn bad_gzip_is_400() {
        let err = decode_body(b"definitely not gzip", Some("gzip"), 1024).unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_string(), "failed to decode gzip request body");
        let mut truncated = gzip(DATA);
        truncated.truncate(truncated.len() / 2);
        assert_eq!(decode_body(&truncated, Some("gzip"), 1024).unwrap_err().status(), 400);
        assert_eq!(decode_body(b"xx", Some("br"), 1024).unwrap_err().status(), 400);
        assert_eq!(decode_body(b"xxxxxxxx", Some("zstd"), 1024).unwrap_err().status(), 400);
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        // 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 200 * 1024);
        let err = decode_body(&bomb, Some("gzip"), 1 << 20).unwrap_err();
        assert!(matches!(err, DecodeError::PayloadTooLarge { limit } if limit == 1 << 20));
        assert_eq!(err.status(), 413);

        let zbomb = zstd::encode_all(&zeros[..], 19).unwrap();
        assert_eq!(decode_body(&zbomb, Some("zstd"), 1000).unwrap_err().status(), 413);
        assert_eq!(decode_body(&brotli(&zeros), Some("br"), 1000).unwrap_err().status(), 413);
    }

    /// The first `max` bytes, as authentication reads them.
    fn decode_prefix(
        body: &[u8],
        encoding: Option<&str>,
        max: usize,
    ) -> Result<(Vec<u8>, bool), DecodeError> {
        let mut decoding = Decoding::start(body, encoding, 20 << 20)?;
        let (prefix, complete) = decoding.prefix(max)?;
        Ok((prefix.to_vec(), complete))
    }

    /// An inner coding's input is bounded like the body: a gzip member of empty stored deflate blocks
    /// (input consumed, nothing out) inside a second gzip costs a bounded amount of work, in the
    /// header read too, and is the body's 413.
    #[test]
    fn an_inner_layer_is_bounded_too() {
        let mut inner = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        for _ in 0..(400 << 10) {
            inner.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        }
        inner.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
        inner.extend_from_slice(&[0; 8]);
        let outer = gzip(&inner);
        assert!(outer.len() < 20 << 10, "{}", outer.len());
        // The inner member alone is valid: empty.
        assert!(decode_body(&inner, Some("gzip"), 1 << 20).unwrap().is_empty());
        let err = decode_body(&outer, Some("gzip, gzip"), 1 << 20).unwrap_err();
        assert_eq!((err.status(), err.to_string().contains("1048576")), (413, true), "{err}");
        let mut decoding = Decoding::start(&outer, Some("gzip, gzip"), 1 << 20).unwrap();
        assert_eq!(decoding.prefix(4096).unwrap_err().status(), 413);
        // Under the limit it decodes (to nothing).
        assert!(decode_body(&outer, Some("gzip, gzip"), 4 << 20).unwrap().is_empty());
        // The bound holds while an inner deflate layer's header is read, too: the body's 413.
        let err = decode_body(&gzip(&[0; 20_000]), Some("deflate, gzip"), 4096).unwrap_err();
        assert_eq!(err.status(), 413, "{err}");
    }

    #[test]
    fn prefix_decodes_only_that_far() {
        let zstd = zstd::encode_all(DATA, 3).unwrap();
        for (encoding, body) in [
            ("", DATA.to_vec()),
            ("gzip", gzip(DATA)),
            ("deflate", zlib(DATA)),
            ("deflate", raw_deflate(DATA)),
            ("br", brotli(DATA)),
            ("zstd", zstd),
            ("gzip, br", brotli(&gzip(DATA))),
        ] {
            let (all, complete) = decode_prefix(&body, Some(encoding), 1024).unwrap();
            assert_eq!((&*all, complete), (DATA, true), "{encoding}");
            let (head, complete) = decode_prefix(&body, Some(encoding), 10).unwrap();
            assert_eq!((&*head, complete), (&DATA[..10], false), "{encoding}");
        }
        let gz = gzip(DATA);
        let (exact, complete) = decode_prefix(&gz, Some("gzip"), DATA.len()).unwrap();
        assert_eq!((&*exact, complete), (DATA, true));
        // Same coding limits and errors as the full decode.
        assert_eq!(decode_prefix(b"x", Some("gzip,gzip,gzip"), 1024).unwrap_err().status(), 400);
        assert_eq!(decode_prefix(b"definitely not gzip", Some("gzip"), 1024).unwrap_err().status(), 400);
    }

    #[test]
    fn prefix_of_a_bomb_stops_at_the_bound() {
        // 64 MiB compressed to ~64 KiB: 64 KiB decoded, no more.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b'0'; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let (head, complete) = decode_prefix(&bomb, Some("gzip"), 64 << 10).unwrap();
        assert_eq!((head.len(), complete), (64 << 10, false));
    }

    #[test]
    fn identity_body_over_limit() {
        assert_eq!(decode_body(DATA, None, 10).unwrap_err().status(), 413);
        // exactly at the limit is fine
        assert!(decode_body(DATA, None, DATA.len()).is_ok());
        assert!(decode_body(&gzip(DATA), Some("gzip"), DATA.len()).is_ok());
    }

    #[test]
    fn zlib_detection() {
        assert!(looks_like_zlib(&zlib(DATA)));
        assert!(!looks_like_zlib(&raw_deflate(DATA)));
        assert!(!looks_like_zlib(b"x"));
        assert_eq!(inflate_zlib(&zlib(DATA), 1024).unwrap(), DATA);
    }
}
