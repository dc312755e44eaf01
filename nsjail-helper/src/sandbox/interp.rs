//! Why a program that exists "does not exist": `execve` fails with `ENOENT` when the file is
//! there but the interpreter it names is not — the dynamic loader of an ELF program
//! (`/lib64/ld-linux-x86-64.so.2`, missing from a view that bound `/usr` but not `/lib64`) or
//! the `#!` line of a script. A shell says "required file not found"; we say which file.

use std::io::Read;

/// The most of a file read to find its interpreter: the `#!` line or the ELF program headers of
/// any ordinary program are well within it.
const HEAD: u64 = 64 * 1024;

/// The interpreter the program in `head` (its first bytes) asks for, if it names one.
pub fn interpreter(head: &[u8]) -> Option<String> {
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next()?;
        let line = String::from_utf8_lossy(line);
        return line.split_whitespace().next().map(str::to_string);
    }
    elf_interp(head)
}

/// `PT_INTERP` of a 64-bit little-endian ELF file (the only kind this helper runs on).
fn elf_interp(b: &[u8]) -> Option<String> {
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    // Every offset comes from the file: checked, so a corrupt one yields None, never a panic.
    let bytes = |at: usize, n: usize| b.get(at..at.checked_add(n)?);
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes(at, 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes(at, 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        let v = u64::from_le_bytes(bytes(at, 8)?.try_into().ok()?);
        usize::try_from(v).ok()
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)? as usize, u16_at(0x38)?);
    for i in 0..phnum as usize {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        const PT_INTERP: u32 = 3;
        if u32_at(ph)? == PT_INTERP {
            let (off, size) = (u64_at(ph.checked_add(8)?)?, u64_at(ph.checked_add(32)?)?);
            let name = bytes(off, size)?;
            let name = name.split(|c| *c == 0).next()?;
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

/// For an `execve(path)` that failed with `ENOENT` although `path` exists: what it needed.
pub fn missing_for(path: &std::ffi::CStr) -> Option<String> {
    let file = std::fs::File::open(path.to_str().ok()?).ok()?;
    let mut head = Vec::new();
    file.take(HEAD).read_to_end(&mut head).ok()?;
    interpreter(&head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_programs_name_their_interpreter() {
        assert_eq!(
            interpreter(b"#!/usr/bin/python3 -u\nprint(1)\n").as_deref(),
            Some("/usr/bin/python3")
        );
        assert_eq!(interpreter(b"#! /bin/sh\n").as_deref(), Some("/bin/sh"));
        assert_eq!(interpreter(b"echo hi\n"), None);
        assert_eq!(interpreter(b"\x7fELF\x02\x01"), None);
        // The host's own dynamically linked program: its loader is an absolute path.
        let sh = std::fs::read("/bin/sh").unwrap();
        let loader = interpreter(&sh).expect("/bin/sh names a loader");
        assert!(loader.starts_with('/') && loader.contains("ld"), "{loader}");
        // Truncated or corrupt headers: nothing, never a panic.
        for n in [0, 7, 0x40, 0x100] {
            let _ = interpreter(&sh[..n.min(sh.len())]);
        }
        for i in 0..0x200.min(sh.len()) {
            for v in [0x00, 0x7f, 0xff] {
                let mut m = sh[..sh.len().min(8192)].to_vec();
                m[i] = v;
                let _ = interpreter(&m);
            }
        }
        let mut bad = sh[..0x40].to_vec();
        bad[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interpreter(&bad), None);
    }
}
