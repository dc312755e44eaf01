//! The helper's incremental framing (`FrameDecoder`) against a slow and a partial client: the
//! same bytes pushed whole, a byte at a time, and in pieces the input chooses must give the same
//! messages and the same error, equal to decoding the frames one after another from the whole
//! stream; a stream that stops mid-frame is a truncation, one that stops between frames is not;
//! and the decoder never holds more than one frame plus the last piece pushed.
//!
//! Input: a byte `k`, then `k % 8 + 1` piece sizes (a byte each: 1–64, or 4096 for 250 and
//! above), then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsjail_core::ClientMessage;
use nsjail_core::wire::{self, FrameDecoder, HEADER_LEN, MAX_BODY};

/// What a decoder makes of `data` pushed in pieces of `sizes` (cycled): the messages, then the
/// first error (a bad frame, or a truncation at the end of the stream).
fn pushed(data: &[u8], sizes: &[usize]) -> (Vec<ClientMessage>, Option<String>) {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let n = sizes[i % sizes.len()].clamp(1, data.len() - at);
        i += 1;
        d.push(&data[at..at + n]);
        at += n;
        assert!(
            d.buffered() <= HEADER_LEN + MAX_BODY + n,
            "the decoder holds {} bytes",
            d.buffered()
        );
        loop {
            let wanted = d.wanted();
            match d.next_frame::<ClientMessage>() {
                Ok(Some(m)) => {
                    assert_eq!(
                        wanted.ok(),
                        Some(0),
                        "a frame came out while bytes were wanted"
                    );
                    out.push(m);
                }
                Ok(None) => {
                    assert!(wanted.is_ok_and(|w| w > 0), "no frame, yet nothing wanted");
                    break;
                }
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    let end = d.finish().err();
    assert_eq!(end.is_some(), d.buffered() > 0);
    (out, end.map(|e| e.to_string()))
}

/// The frames one after another from the whole stream, with the one-shot decoder.
fn reference(mut data: &[u8]) -> (Vec<ClientMessage>, Option<String>) {
    let mut out = Vec::new();
    while !data.is_empty() {
        match wire::decode_frame::<ClientMessage>(data) {
            Ok((m, used)) => {
                out.push(m);
                data = &data[used..];
            }
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&k, rest)) = input.split_first() else {
        return;
    };
    let k = k as usize % 8 + 1;
    if rest.len() < k {
        return;
    }
    let (sizes, data) = rest.split_at(k);
    let sizes: Vec<usize> = sizes
        .iter()
        .map(|&s| if s >= 250 { 4096 } else { s as usize % 64 + 1 })
        .collect();
    let want = reference(data);
    assert_eq!(pushed(data, &[data.len().max(1)]), want, "pushed whole");
    assert_eq!(pushed(data, &[1]), want, "a byte at a time");
    assert_eq!(pushed(data, &sizes), want, "in pieces of {sizes:?}");
});
