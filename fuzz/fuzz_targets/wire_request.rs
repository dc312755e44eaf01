//! The helper's first contact with untrusted bytes: a frame (header, length, bincode body)
//! decoded with the hard size limit, the fd-count rule, then request validation.
//!
//! Properties checked besides "no panic, no overflow, no runaway allocation": whatever decodes
//! re-encodes to a frame that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsjail_core::{ClientMessage, validate, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok((msg, used)) = wire::decode_frame::<ClientMessage>(data) {
        assert!(used <= data.len());
        for fds in 0..10 {
            let _ = wire::check_fds(&msg, fds);
        }
        if let ClientMessage::Spawn(req) = &msg {
            let _ = validate::check(req);
        }
        let again = wire::encode(&msg).expect("a decoded message encodes again");
        let (back, _) = wire::decode_frame::<ClientMessage>(&again).expect("and decodes");
        assert_eq!(back, msg);
    }
    // The streaming reader the helper uses for later messages.
    let _ = wire::read_frame::<_, ClientMessage>(&mut &data[..]);
});
