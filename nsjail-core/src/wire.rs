//! Framing between the CLI and the helper, and the only module that knows about bincode.
//!
//! A frame is a 12-byte header — magic `NSJL`, protocol version (u16 LE), reserved zero (u16),
//! body length (u32 LE) — followed by a bincode body. The length is checked against
//! [`MAX_BODY`] before anything is allocated, and the body is decoded with the same hard limit,
//! so a hostile peer can neither make the helper allocate much nor feed it a partial value.

use std::io::{self, Read};

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::message::ClientMessage;

pub const MAGIC: [u8; 4] = *b"NSJL";
/// Bumped on every incompatible change of any type that travels.
pub const PROTOCOL_VERSION: u16 = 4;
pub const HEADER_LEN: usize = 12;
/// The largest body either side accepts.
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum WireError {
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated { expected: usize, got: usize },
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not an nsjail frame (magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error(
        "protocol version mismatch: this side speaks {ours}, the peer {theirs} (CLI and helper must come from the same build)"
    )]
    VersionMismatch { ours: u16, theirs: u16 },
    #[error("malformed frame header (reserved field {0:#x})")]
    BadHeader(u16),
    #[error("malformed message body: {0}")]
    BadBody(String),
    #[error("malformed message body: {0} bytes left over")]
    TrailingBytes(usize),
    #[error("expected {expected} file descriptors with the message, got {got}")]
    FdCount { expected: usize, got: usize },
    #[error("cannot encode message: {0}")]
    Encode(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_BODY>()
}

/// Encode `msg` as one complete frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let body = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    if body.len() > MAX_BODY {
        return Err(WireError::TooLarge {
            len: body.len(),
            max: MAX_BODY,
        });
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    frame.extend_from_slice(&0u16.to_le_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Check a frame header and return the body length it announces.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Result<usize, WireError> {
    let magic = [h[0], h[1], h[2], h[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != PROTOCOL_VERSION {
        return Err(WireError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
        });
    }
    let reserved = u16::from_le_bytes([h[6], h[7]]);
    if reserved != 0 {
        return Err(WireError::BadHeader(reserved));
    }
    let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    if len > MAX_BODY {
        return Err(WireError::TooLarge { len, max: MAX_BODY });
    }
    Ok(len)
}

/// Decode a body; every byte must belong to the value.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    if body.len() > MAX_BODY {
        return Err(WireError::TooLarge {
            len: body.len(),
            max: MAX_BODY,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| WireError::BadBody(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::TrailingBytes(body.len() - used));
    }
    Ok(value)
}

/// Decode one whole frame from the start of `bytes`; returns the value and the bytes used.
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), WireError> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(WireError::Truncated {
            expected: HEADER_LEN,
            got: bytes.len(),
        })?;
    let len = parse_header(header)?;
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN + len)
        .ok_or(WireError::Truncated {
            expected: HEADER_LEN + len,
            got: bytes.len(),
        })?;
    Ok((decode_body(body)?, HEADER_LEN + len))
}

/// Read the rest of a frame whose header is already in hand.
pub fn read_body<R: Read, T: DeserializeOwned>(
    r: &mut R,
    header: &[u8; HEADER_LEN],
) -> Result<T, WireError> {
    let len = parse_header(header)?;
    let mut body = vec![0u8; len];
    read_full(r, &mut body)?;
    decode_body(&body)
}

/// Read one frame. `Ok(None)` when the peer closed the stream cleanly between frames.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<Option<T>, WireError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_up_to(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(WireError::Truncated {
            expected: HEADER_LEN,
            got,
        });
    }
    read_body(r, &header).map(Some)
}

/// Frames cut out of a byte stream however its bytes were split: the bytes go in as they
/// arrive ([`FrameDecoder::push`]), whole frames come out ([`FrameDecoder::next_frame`]). It
/// never waits and never reads, so a reader driven by `poll` cannot be held up by a peer that
/// sends half a frame, or a byte at a time. A bad header is reported as soon as its 12 bytes
/// are in, before any of its body is waited for; what is buffered is at most one unfinished
/// frame (the length is checked against [`MAX_BODY`] first) plus the last bytes pushed.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` that belong to frames already returned.
    used: usize,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Append bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.used > 0 && self.used == self.buf.len() {
            self.buf.clear();
            self.used = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet returned as part of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.used
    }

    /// How many more bytes the frame under way needs before it is complete (its header first):
    /// a reader need not read more than this to make progress. An error when the header in hand
    /// is bad.
    pub fn wanted(&self) -> Result<usize, WireError> {
        let have = &self.buf[self.used..];
        match have
            .get(..HEADER_LEN)
            .and_then(|h| <&[u8; HEADER_LEN]>::try_from(h).ok())
        {
            None => Ok(HEADER_LEN - have.len()),
            Some(h) => Ok((HEADER_LEN + parse_header(h)?).saturating_sub(have.len())),
        }
    }

    /// The next whole frame, decoded, if all of it is in; `None` if more bytes are needed.
    /// After an error the stream is unusable (its framing is lost).
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        if self.wanted()? > 0 {
            return Ok(None);
        }
        let have = &self.buf[self.used..];
        let (value, used) = decode_frame(have)?;
        self.used += used;
        if self.used == self.buf.len() {
            self.buf.clear();
            self.used = 0;
        } else if self.used > MAX_BODY {
            self.buf.drain(..self.used);
            self.used = 0;
        }
        Ok(Some(value))
    }

    /// The peer closed the stream: fine between frames, [`WireError::Truncated`] in the middle
    /// of one.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.buffered() {
            0 => Ok(()),
            got => Err(WireError::Truncated {
                expected: got + self.wanted().unwrap_or(1),
                got,
            }),
        }
    }
}

/// Check that a client message arrived with the fds it must carry.
pub fn check_fds(msg: &ClientMessage, got: usize) -> Result<(), WireError> {
    let expected = msg.expected_fds();
    if expected != got {
        return Err(WireError::FdCount { expected, got });
    }
    Ok(())
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    let got = read_up_to(r, buf)?;
    if got < buf.len() {
        return Err(WireError::Truncated {
            expected: buf.len(),
            got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ExitInfo, HelperEvent, Termination};
    use crate::request::SpawnRequest;

    fn spawn() -> ClientMessage {
        let mut r = SpawnRequest::new(vec!["/bin/true".into(), "x".into()]);
        r.env.push(("PATH".into(), "/usr/bin:/bin".into()));
        ClientMessage::Spawn(Box::new(r))
    }

    #[test]
    fn round_trip() {
        let frame = encode(&spawn()).unwrap();
        let (back, used): (ClientMessage, usize) = decode_frame(&frame).unwrap();
        assert_eq!(back, spawn());
        assert_eq!(used, frame.len());
        let ev = HelperEvent::Exited(ExitInfo {
            termination: Termination::Signaled(9),
            wall_time_us: 1,
            user_time_us: 2,
            system_time_us: 3,
            max_rss_kib: 4,
            cpu_time_us: 5,
            voluntary_switches: 6,
            involuntary_switches: 7,
            cgroup: Some(crate::message::CgroupUsage {
                version: 1,
                memory_peak_bytes: Some(8),
                oom_kills: 9,
            }),
            limit_hit: Some(crate::message::LimitHit::WallTime),
        });
        let frame = encode(&ev).unwrap();
        let back: HelperEvent = read_frame(&mut &frame[..]).unwrap().unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn clean_eof_is_none() {
        let r: Option<ClientMessage> = read_frame(&mut &[][..]).unwrap();
        assert!(r.is_none());
    }

    #[test]
    fn truncated_header_and_body() {
        let frame = encode(&spawn()).unwrap();
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, frame.len() - 1] {
            let err = read_frame::<_, ClientMessage>(&mut &frame[..cut]).unwrap_err();
            assert!(
                matches!(err, WireError::Truncated { .. }),
                "cut {cut}: {err}"
            );
            let err = decode_frame::<ClientMessage>(&frame[..cut]).unwrap_err();
            assert!(
                matches!(err, WireError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn oversized_length_refused_before_reading() {
        let mut frame = encode(&spawn()).unwrap();
        frame[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_frame::<_, ClientMessage>(&mut &frame[..]).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
        let big = vec![0u8; MAX_BODY + 1];
        assert!(matches!(
            decode_body::<ClientMessage>(&big),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversized_message_refused_on_encode() {
        let r = SpawnRequest::new(vec!["x".repeat(MAX_BODY + 1)]);
        let err = encode(&ClientMessage::Spawn(Box::new(r))).unwrap_err();
        assert!(matches!(
            err,
            WireError::Encode(_) | WireError::TooLarge { .. }
        ));
    }

    #[test]
    fn wrong_magic() {
        let mut frame = encode(&spawn()).unwrap();
        frame[0] = b'X';
        assert!(matches!(
            decode_frame::<ClientMessage>(&frame),
            Err(WireError::BadMagic(_))
        ));
    }

    #[test]
    fn wrong_version_says_so() {
        let mut frame = encode(&spawn()).unwrap();
        frame[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
        let err = decode_frame::<ClientMessage>(&frame).unwrap_err();
        assert!(matches!(err, WireError::VersionMismatch { .. }));
        assert!(err.to_string().contains("version mismatch"));
    }

    #[test]
    fn reserved_bits_refused() {
        let mut frame = encode(&spawn()).unwrap();
        frame[6] = 1;
        assert!(matches!(
            decode_frame::<ClientMessage>(&frame),
            Err(WireError::BadHeader(_))
        ));
    }

    #[test]
    fn garbage_body() {
        let mut frame = encode(&spawn()).unwrap();
        for b in &mut frame[HEADER_LEN..] {
            *b = 0xff;
        }
        assert!(matches!(
            decode_frame::<ClientMessage>(&frame),
            Err(WireError::BadBody(_))
        ));
        // A string length far beyond the frame must not allocate it.
        let mut frame = encode(&ClientMessage::Signal(1)).unwrap();
        frame.truncate(HEADER_LEN);
        let body = [0u8, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        frame[8..12].copy_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&body);
        assert!(decode_frame::<ClientMessage>(&frame).is_err());
    }

    #[test]
    fn trailing_bytes() {
        let mut frame = encode(&ClientMessage::Signal(15)).unwrap();
        frame.push(0);
        let len = (frame.len() - HEADER_LEN) as u32;
        frame[8..12].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            decode_frame::<ClientMessage>(&frame),
            Err(WireError::TrailingBytes(1))
        ));
    }

    /// Feed `bytes` to a decoder in pieces of the given sizes (cycled); collect every frame and
    /// the first error.
    fn decode_in_pieces(bytes: &[u8], sizes: &[usize]) -> (Vec<ClientMessage>, Option<String>) {
        let mut d = FrameDecoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < bytes.len() {
            let n = sizes[i % sizes.len()].clamp(1, bytes.len() - at);
            i += 1;
            d.push(&bytes[at..at + n]);
            at += n;
            loop {
                match d.next_frame::<ClientMessage>() {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e.to_string())),
                }
            }
        }
        (out, d.finish().err().map(|e| e.to_string()))
    }

    #[test]
    fn the_decoder_gives_the_same_frames_whatever_the_split() {
        let msgs = [
            spawn(),
            ClientMessage::Signal(15),
            spawn(),
            ClientMessage::Signal(2),
        ];
        let mut bytes = Vec::new();
        for m in &msgs {
            bytes.extend(encode(m).unwrap());
        }
        for sizes in [&[1][..], &[2], &[5, 1, 7], &[HEADER_LEN], &[4096], &[13, 3]] {
            let (got, err) = decode_in_pieces(&bytes, sizes);
            assert_eq!(got, msgs, "{sizes:?}");
            assert!(err.is_none(), "{sizes:?}: {err:?}");
        }
    }

    #[test]
    fn the_decoder_reports_a_partial_frame_only_at_the_end() {
        let frame = encode(&spawn()).unwrap();
        for cut in [1, HEADER_LEN - 1, HEADER_LEN, frame.len() - 1] {
            let mut d = FrameDecoder::new();
            d.push(&frame[..cut]);
            assert!(
                d.next_frame::<ClientMessage>().unwrap().is_none(),
                "cut {cut}"
            );
            assert_eq!(d.buffered(), cut);
            let wanted = if cut < HEADER_LEN {
                HEADER_LEN - cut
            } else {
                frame.len() - cut
            };
            assert_eq!(d.wanted().unwrap(), wanted, "cut {cut}");
            assert!(matches!(d.finish(), Err(WireError::Truncated { got, .. }) if got == cut));
            d.push(&frame[cut..]);
            assert_eq!(d.next_frame::<ClientMessage>().unwrap(), Some(spawn()));
            assert!(d.finish().is_ok() && d.buffered() == 0);
        }
    }

    #[test]
    fn the_decoder_refuses_a_bad_header_before_its_body_arrives() {
        let mut frame = encode(&spawn()).unwrap();
        frame[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut d = FrameDecoder::new();
        d.push(&frame[..HEADER_LEN]);
        assert!(matches!(
            d.next_frame::<ClientMessage>(),
            Err(WireError::TooLarge { .. })
        ));
        let mut d = FrameDecoder::new();
        d.push(b"GARBAGE, NOT");
        assert!(matches!(
            d.next_frame::<ClientMessage>(),
            Err(WireError::BadMagic(_))
        ));
    }

    #[test]
    fn the_decoder_gives_two_frames_split_at_any_byte() {
        let (a, b) = (spawn(), ClientMessage::Signal(15));
        let mut bytes = encode(&a).unwrap();
        let first = bytes.len();
        bytes.extend(encode(&b).unwrap());
        for cut in 0..=bytes.len() {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            d.push(&bytes[..cut]);
            while let Some(m) = d.next_frame::<ClientMessage>().unwrap() {
                got.push(m);
            }
            // What is held is what came in less the frames returned.
            let returned = if cut == bytes.len() {
                bytes.len()
            } else if cut >= first {
                first
            } else {
                0
            };
            assert_eq!(d.buffered(), cut - returned, "cut {cut}");
            assert_eq!(d.finish().is_ok(), cut == returned, "cut {cut}");
            d.push(&bytes[cut..]);
            while let Some(m) = d.next_frame::<ClientMessage>().unwrap() {
                got.push(m);
            }
            assert_eq!(got, [a.clone(), b.clone()], "cut {cut}");
            assert_eq!(d.buffered(), 0, "cut {cut}");
            assert!(d.finish().is_ok(), "cut {cut}");
        }
    }

    #[test]
    fn the_decoder_counts_what_is_left_after_each_frame_of_one_push() {
        let one = encode(&spawn()).unwrap();
        let two = encode(&ClientMessage::Signal(2)).unwrap();
        let mut bytes = [&one[..], &two[..]].concat();
        bytes.extend_from_slice(&one[..5]);
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        assert_eq!(d.buffered(), bytes.len());
        assert_eq!(d.next_frame::<ClientMessage>().unwrap(), Some(spawn()));
        assert_eq!(d.buffered(), two.len() + 5);
        assert_eq!(
            d.next_frame::<ClientMessage>().unwrap(),
            Some(ClientMessage::Signal(2))
        );
        assert_eq!(d.buffered(), 5);
        assert!(d.next_frame::<ClientMessage>().unwrap().is_none());
        assert_eq!(d.buffered(), 5);
        assert_eq!(d.wanted().unwrap(), HEADER_LEN - 5);
        // The stream ends inside the third frame's header.
        assert!(matches!(
            d.finish(),
            Err(WireError::Truncated {
                expected: HEADER_LEN,
                got: 5
            })
        ));
    }

    #[test]
    fn a_stream_cut_inside_a_frame_says_how_long_the_frame_is() {
        let frame = encode(&spawn()).unwrap();
        for cut in 1..frame.len() {
            let mut d = FrameDecoder::new();
            d.push(&frame[..cut]);
            // Until the header is in, the length known is the header's.
            let expected = if cut < HEADER_LEN {
                HEADER_LEN
            } else {
                frame.len()
            };
            match d.finish() {
                Err(WireError::Truncated { expected: e, got }) => {
                    assert_eq!((e, got), (expected, cut), "cut {cut}");
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_decoder_waits_for_a_body_of_the_limit_and_refuses_one_byte_more() {
        let header = |len: usize| {
            let mut h = encode(&ClientMessage::Signal(1)).unwrap();
            h.truncate(HEADER_LEN);
            h[8..12].copy_from_slice(&(len as u32).to_le_bytes());
            h
        };
        let mut d = FrameDecoder::new();
        d.push(&header(MAX_BODY));
        assert!(d.next_frame::<ClientMessage>().unwrap().is_none());
        assert_eq!(d.wanted().unwrap(), MAX_BODY);
        let mut d = FrameDecoder::new();
        d.push(&header(MAX_BODY + 1));
        assert!(matches!(
            d.next_frame::<ClientMessage>(),
            Err(WireError::TooLarge { len, max: MAX_BODY }) if len == MAX_BODY + 1
        ));
    }

    /// A peer that always leaves part of a frame unsent (so the buffer is never emptied) must
    /// not make the decoder keep every byte it ever sent: bytes of frames already returned
    /// are dropped once more than [`MAX_BODY`] of them pile up.
    #[test]
    fn the_decoder_holds_bounded_memory_however_long_the_stream() {
        let msg = ClientMessage::Spawn(Box::new(SpawnRequest::new(vec!["y".repeat(4000)])));
        let frame = encode(&msg).unwrap();
        // One frame and a byte each time: a partial frame is pending after every push.
        let piece = frame.len() + 1;
        let stream = frame.repeat(4 * MAX_BODY / frame.len());
        let mut d = FrameDecoder::new();
        let mut frames = 0;
        for p in stream.chunks(piece) {
            d.push(p);
            // Bytes of returned frames still kept, one unfinished frame, and the last piece.
            let bound = MAX_BODY + HEADER_LEN + MAX_BODY + p.len();
            assert!(d.buf.len() <= bound, "{} bytes held", d.buf.len());
            while let Some(m) = d.next_frame::<ClientMessage>().unwrap() {
                assert_eq!(m, msg);
                frames += 1;
            }
        }
        assert_eq!(frames, stream.len() / frame.len());
        assert!(d.finish().is_ok());
    }

    #[test]
    fn fd_count_must_match_the_message() {
        assert!(check_fds(&spawn(), 3).is_ok());
        for n in [0, 1, 2, 4] {
            assert!(matches!(
                check_fds(&spawn(), n),
                Err(WireError::FdCount { expected: 3, .. })
            ));
        }
        assert!(check_fds(&ClientMessage::Signal(2), 0).is_ok());
        assert!(check_fds(&ClientMessage::Signal(2), 1).is_err());
        // The filesystem's extra fds travel after the stdio fds and count too.
        let mut r = SpawnRequest::new(vec!["/bin/true".into()]);
        r.extra_fds = 2;
        let msg = ClientMessage::Spawn(Box::new(r));
        assert!(check_fds(&msg, 5).is_ok());
        for n in [3, 4, 6] {
            assert!(matches!(
                check_fds(&msg, n),
                Err(WireError::FdCount { expected: 5, .. })
            ));
        }
        // The payload's passed fds travel after those, one each.
        let mut r = SpawnRequest::new(vec!["/bin/true".into()]);
        r.extra_fds = 2;
        r.pass_fds = vec![7, 9, 3];
        let msg = ClientMessage::Spawn(Box::new(r));
        assert!(check_fds(&msg, 8).is_ok());
        for n in [5, 7, 9] {
            assert!(matches!(
                check_fds(&msg, n),
                Err(WireError::FdCount { expected: 8, .. })
            ));
        }
    }
}
