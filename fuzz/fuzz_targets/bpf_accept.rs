//! The helper's acceptance of BPF programs: the `--seccomp` profile and the `--add-seccomp-fd`
//! programs arrive as bytes in a spawn request, and the helper checks only their framing and
//! the profile's flags (nsjail-core's `validate::check`), then reads them as instructions
//! (`seccomp::insns`) to install them. Nothing else is done with the bytes.
//!
//! Properties checked besides "no panic": a request the check accepts travels the wire
//! unchanged, every program in it reads as whole instructions that give back the same bytes,
//! and one it refuses is refused in one line, for a program the framing rule rejects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsjail_core::seccomp::{self as wire, BpfProgram, SeccompMode};
use nsjail_core::{ClientMessage, SpawnRequest, validate};

/// Lengths are taken from the input: two bytes each, then that many bytes (or what is left).
fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    if data.len() < 2 {
        return None;
    }
    let len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    let (p, tail) = rest.split_at(len.min(rest.len()));
    *data = tail;
    Some(p)
}

fn back_to_bytes(p: &[wire::Insn]) -> Vec<u8> {
    p.iter()
        .flat_map(|i| {
            let mut b = i.code.to_ne_bytes().to_vec();
            b.extend([i.jt, i.jf]);
            b.extend(i.k.to_ne_bytes());
            b
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    data = rest;
    let mut req = SpawnRequest::new(vec!["true".into()]);
    if how & 1 != 0 {
        let flags = match data.get(..4) {
            Some(f) => u32::from_le_bytes([f[0], f[1], f[2], f[3]]),
            None => 0,
        };
        data = data.get(4..).unwrap_or_default();
        let bpf = take(&mut data).unwrap_or_default().to_vec();
        req.seccomp = SeccompMode::Profile(BpfProgram { bpf, flags });
    }
    // Up to one program more than a request may carry.
    for _ in 0..(how >> 1) % 7 {
        match take(&mut data) {
            Some(p) => req.seccomp_programs.push(p.to_vec()),
            None => break,
        }
    }
    let programs: Vec<&[u8]> = match &req.seccomp {
        SeccompMode::Profile(p) => vec![&p.bpf[..]],
        _ => Vec::new(),
    }
    .into_iter()
    .chain(req.seccomp_programs.iter().map(Vec::as_slice))
    .collect();
    match validate::check(&req) {
        Ok(()) => {
            for p in &programs {
                let insns = wire::insns(p).expect("an accepted program reads as instructions");
                assert_eq!(&back_to_bytes(&insns), p);
            }
            if let SeccompMode::Profile(p) = &req.seccomp {
                assert_eq!(p.flags & !wire::ALLOWED_FLAGS, 0);
            }
            let msg = ClientMessage::Spawn(Box::new(req));
            let frame = nsjail_core::wire::encode(&msg).expect("an accepted request is framed");
            let (back, _) =
                nsjail_core::wire::decode_frame::<ClientMessage>(&frame).expect("and decodes");
            assert_eq!(back, msg);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "not one line: {msg:?}");
            // Refused only for something the rules name.
            let bad_frame = programs.iter().any(|p| !wire::is_bpf_framing(p));
            let bad_flags = matches!(&req.seccomp,
                SeccompMode::Profile(p) if p.flags & !wire::ALLOWED_FLAGS != 0);
            let too_many = req.seccomp_programs.len() > nsjail_core::message::MAX_SECCOMP_PROGRAMS;
            assert!(bad_frame || bad_flags || too_many, "refused: {msg}");
            for p in &programs {
                assert_eq!(wire::insns(p).is_some(), wire::is_bpf_framing(p));
            }
        }
    }
});
