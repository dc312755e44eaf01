//! The edges of what the helper trusts: every limit of request validation, the policy and the
//! wire framing tested on both sides of its boundary, and the small decisions (overlaps,
//! comments, overflow checks) that a one-character slip would turn. Written against the mutants
//! `cargo xtask mutants` found surviving (docs/testing.md): each test names the rule it holds.
//! Literal numbers here are the documented values, not the constants, so a wrong constant fails.

use nsjail_core::limits::{RLIM_INFINITY, RlimitResource, RlimitSetting};
use nsjail_core::mounts::{MountOp, OverlayKind};
use nsjail_core::policy::{Accounts, Limit, Policy, PolicyError, Principal, Refusal, Who};
use nsjail_core::validate::{ValidationError, check};
use nsjail_core::{IdRange, Pasta, PortForward, SpawnRequest};

fn req() -> SpawnRequest {
    SpawnRequest::new(vec!["/bin/true".into()])
}

fn with(f: impl FnOnce(&mut SpawnRequest)) -> Result<(), ValidationError> {
    let mut r = req();
    f(&mut r);
    check(&r)
}

fn refused(r: Result<(), ValidationError>) -> bool {
    r.is_err()
}

// ---------------------------------------------------------------------------------------------
// Request validation: each limit holds at its value and refuses one more

#[test]
fn lists_hold_16384_entries() {
    let n = 16 * 1024;
    assert_eq!(with(|r| r.argv = vec!["x".into(); n]), Ok(()));
    assert_eq!(
        with(|r| r.argv = vec!["x".into(); n + 1]),
        Err(ValidationError::TooMany {
            field: "argv",
            count: n + 1,
            max: n
        })
    );
    assert_eq!(with(|r| r.env = vec![("A".into(), "1".into()); n]), Ok(()));
}

#[test]
fn time_limits_reach_a_million_seconds_and_kill_grace_an_hour() {
    let s = 1_000_000u64;
    assert_eq!(with(|r| r.limits.cpu_time_us = Some(1_000_000 * s)), Ok(()));
    assert!(refused(with(
        |r| r.limits.cpu_time_us = Some(1_000_000 * s + 1)
    )));
    assert_eq!(with(|r| r.limits.wall_time_us = Some(2 * s)), Ok(()));
    assert_eq!(with(|r| r.limits.kill_grace_us = 3600 * s), Ok(()));
    assert!(refused(with(|r| r.limits.kill_grace_us = 3600 * s + 1)));
    assert_eq!(with(|r| r.limits.kill_grace_us = 2 * s), Ok(()));
}

#[test]
fn pids_reach_the_kernels_pid_max() {
    assert_eq!(with(|r| r.limits.pids = Some(4 * 1024 * 1024)), Ok(()));
    assert!(refused(with(|r| r.limits.pids = Some(4 * 1024 * 1024 + 1))));
}

#[test]
fn the_hostname_may_have_64_bytes() {
    assert_eq!(with(|r| r.hostname = "h".repeat(64)), Ok(()));
    assert!(refused(with(|r| r.hostname = "h".repeat(65))));
}

#[test]
fn passed_fds_reach_their_maxima() {
    assert_eq!(with(|r| r.extra_fds = 56), Ok(()));
    assert!(refused(with(|r| r.extra_fds = 57)));
}

#[test]
fn raw_seccomp_programs_reach_their_maximum_and_need_whole_instructions() {
    let program = vec![0u8; 8];
    assert_eq!(
        with(|r| r.seccomp_programs = vec![program.clone(); 5]),
        Ok(())
    );
    assert_eq!(
        with(|r| r.seccomp_programs = vec![program.clone(); 6]),
        Err(ValidationError::TooManySeccompPrograms(6))
    );
    assert!(refused(with(|r| r.seccomp_programs = vec![vec![0u8; 12]])));
    assert!(refused(with(|r| r.seccomp_programs = vec![Vec::new()])));
}

#[test]
fn port_forwards_reach_64() {
    let forwards = |n: u16| {
        with(|r| {
            r.pasta = Some(Pasta {
                forward_tcp: (1..=n)
                    .map(|p| PortForward {
                        host: 1000 + p,
                        sandbox: p,
                    })
                    .collect(),
            })
        })
    };
    assert_eq!(forwards(64), Ok(()));
    assert!(refused(forwards(65)));
}

fn map(lines: &[(u32, u32, u32)]) -> Vec<IdRange> {
    lines
        .iter()
        .map(|&(inside, outside, count)| IdRange {
            inside,
            outside,
            count,
        })
        .collect()
}

#[test]
fn an_id_map_holds_340_lines() {
    let lines = |n: u32| map(&(0..n).map(|i| (i, 100_000 + 2 * i, 1)).collect::<Vec<_>>());
    assert_eq!(with(|r| r.uid_map = lines(340)), Ok(()));
    assert!(refused(with(|r| r.uid_map = lines(341))));
}

#[test]
fn id_map_lines_may_touch_but_not_overlap() {
    let ok = |m: &[(u32, u32, u32)]| with(|r| r.uid_map = map(m));
    // Touching inside, either order: 2..5 then 5..6; 2..5 then 0..2.
    assert_eq!(ok(&[(2, 100, 3), (5, 200, 1), (0, 300, 2)]), Ok(()));
    assert_eq!(ok(&[(2, 100, 3), (0, 200, 2)]), Ok(()));
    // Overlapping inside: 1..4 after 3..4; and 0..3 after 2..5.
    assert!(refused(ok(&[(3, 100, 1), (1, 200, 3), (0, 300, 1)])));
    assert!(refused(ok(&[(2, 100, 3), (0, 200, 3)])));
    // Overlapping outside.
    assert!(refused(ok(&[(0, 100, 3), (5, 102, 1)])));
}

fn one_mount(op: MountOp) -> Result<(), ValidationError> {
    with(|r| r.mounts = vec![op])
}

#[test]
fn modes_reach_7777_for_every_operation_that_takes_one() {
    for mode in [0o7777, 0o10000] {
        let ops = [
            MountOp::Chmod {
                mode,
                path: "/x".into(),
            },
            MountOp::Tmpfs {
                dst: "/x".into(),
                size: None,
                perms: Some(mode),
            },
        ];
        for op in ops {
            let r = one_mount(op.clone());
            assert_eq!(r.is_ok(), mode == 0o7777, "{op:?}: {r:?}");
        }
    }
}

#[test]
fn a_symlinks_target_may_be_anything_but_hold_no_nul() {
    let link = |target: &str| {
        one_mount(MountOp::Symlink {
            target: target.into(),
            link: "/l".into(),
        })
    };
    assert_eq!(link("../anything/at all"), Ok(()));
    assert!(matches!(
        link("a\0b"),
        Err(ValidationError::MountNul { .. })
    ));
}

#[test]
fn a_read_only_overlay_needs_two_layers_and_a_tmp_overlay_one() {
    let overlay = |n: usize, kind: OverlayKind| {
        one_mount(MountOp::Overlay {
            srcs: (0..n).map(|i| format!("/l{i}")).collect(),
            dst: "/o".into(),
            kind,
        })
    };
    assert_eq!(overlay(2, OverlayKind::ReadOnly), Ok(()));
    assert!(refused(overlay(1, OverlayKind::ReadOnly)));
    assert_eq!(overlay(1, OverlayKind::Tmp), Ok(()));
    assert!(refused(overlay(0, OverlayKind::Tmp)));
}

// ---------------------------------------------------------------------------------------------
// The policy

#[test]
fn a_policy_file_may_have_256_kib() {
    let max = 256 * 1024;
    let pad = |n: usize| format!("{}\n[limits]\npids = 9\n", "#".repeat(n));
    let at = pad(max - pad(0).len());
    assert_eq!(at.len(), max);
    assert_eq!(Policy::parse(&at).unwrap().limits.pids, Some(9));
    let over = pad(max + 1 - pad(0).len());
    assert!(matches!(Policy::parse(&over), Err(PolicyError::Parse(m)) if m.contains("larger")));
    // Well above the old 1 KiB there is room for a real policy.
    assert!(Policy::parse(&pad(4000)).is_ok());
}

#[test]
fn a_policy_nested_too_deep_is_refused_not_a_stack_overflow() {
    // Deep enough to exhaust the stack of a parser without a limit, and well inside 256 KiB.
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let n = 60_000;
        let text = format!("[access]\nusers = {}1{}\n", open.repeat(n), close.repeat(n));
        let e = Policy::parse(&text).unwrap_err().to_string();
        assert!(e.contains("nested deeper than 16"), "{e}");
    }
    // Sixteen levels is the most; the type error shows the parser was reached.
    let at = |n: usize| format!("[access]\nusers = {}1{}\n", "[".repeat(n), "]".repeat(n));
    let e = Policy::parse(&at(16)).unwrap_err().to_string();
    assert!(e.contains("untagged enum Principal"), "{e}");
    assert!(
        Policy::parse(&at(17))
            .unwrap_err()
            .to_string()
            .contains("deeper")
    );
    // Brackets in strings and comments are not nesting.
    let b = "[".repeat(40);
    for (text, users) in [
        (format!("# {b}\n[access]\nusers = [\"{b}\"]\n"), 1),
        (format!("[access]\nusers = ['{b}', \"\\\"{b}\"]\n"), 2),
        (
            format!("[access]\nusers = [\"\"\"\n{b}\"\"\", '''{b}''', \"\"] # {b}\n"),
            3,
        ),
    ] {
        let p = Policy::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(p.access.users.map(|u| u.len()), Some(users), "{text}");
    }
}

#[test]
fn a_policy_error_names_its_line() {
    // A bad value: its own line.
    let e = Policy::parse("[limits]\npids = 1\nmemory_bytes = -1\n").unwrap_err();
    assert!(
        e.to_string().contains("`limits.memory_bytes` at line 3"),
        "{e}"
    );
    // A key not known: named, with the line of the table it is in.
    let e = Policy::parse("\n[limits]\npids = 1\nbogus = 3\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `bogus`"), "{e}");
    assert!(e.to_string().contains("`limits` at line 2"), "{e}");
    let e = Policy::parse("[nonsense]\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `nonsense`"), "{e}");
    assert!(e.to_string().contains("at line 1"), "{e}");
}

#[test]
fn a_grant_may_end_at_the_last_id() {
    let grant = |start: u64, count: u32| {
        Policy::parse(&format!(
            "[[id_ranges.uid]]\nuser = 1000\nstart = {start}\ncount = {count}\n"
        ))
    };
    assert!(grant(u32::MAX as u64 - 9, 10).is_ok());
    assert!(grant(u32::MAX as u64 - 9, 11).is_err());
    assert!(grant(5, 0).is_err());
}

#[test]
fn sub_id_lines_may_end_at_the_last_id_and_comments_grant_nothing() {
    let text = format!(
        "#alice:100000:65536\n  # bob:1:2\nalice:{}:10\nbob:{}:11\n",
        u32::MAX - 9,
        u32::MAX - 9
    );
    let e = nsjail_core::policy::parse_subid(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].owner, Principal::Name("alice".into()));
    assert_eq!((e[0].start, e[0].count), (u32::MAX - 9, 10));
}

#[test]
fn account_files_skip_comments_and_nameless_lines() {
    let a = Accounts::from_files(
        "root:x:0:0::/root:/bin/sh\n#old:x:5:5::/:/bin/sh\n:x:7:7::/:/bin/sh\nann:x:1000:1000::/:/bin/sh\n",
        "wheel:x:10:\n#gone:x:11:\n:x:12:\n",
    );
    assert_eq!(a.users, [("root".into(), 0), ("ann".into(), 1000)]);
    assert_eq!(a.groups, [("wheel".to_string(), 10)]);
}

fn who(uid: u32, gid: u32, groups: &[u32]) -> Who {
    Who {
        uid,
        gid,
        groups: groups.to_vec(),
    }
}

#[test]
fn access_by_group_only_admits_members_and_no_one_else() {
    let db = Accounts::from_files("", "staff:x:50:\n");
    for groups in ["[50]", "[\"50\"]", "[\"staff\"]"] {
        let p = Policy::parse(&format!("[access]\ngroups = {groups}\n")).unwrap();
        assert_eq!(p.check_access(&who(1000, 50, &[]), &db), Ok(()), "{groups}");
        assert_eq!(
            p.check_access(&who(1000, 7, &[50]), &db),
            Ok(()),
            "{groups}"
        );
        assert_eq!(
            p.check_access(&who(1000, 7, &[8]), &db),
            Err(Refusal::NotAllowed(1000)),
            "{groups}"
        );
    }
}

#[test]
fn the_policy_uses_names_only_where_it_names_someone() {
    let uses = |text: &str| Policy::parse(text).unwrap().uses_names();
    assert!(!uses(""));
    assert!(!uses("[access]\nusers = [1000, \"1001\"]\ngroups = [5]\n"));
    assert!(!uses(
        "[[id_ranges.gid]]\nuser = 1000\nstart = 100000\ncount = 10\n"
    ));
    assert!(uses("[access]\nusers = [\"ann\"]\n"));
    assert!(uses("[access]\ngroups = [\"staff\"]\n"));
    assert!(uses(
        "[[id_ranges.uid]]\nuser = \"ann\"\nstart = 100000\ncount = 10\n"
    ));
    assert!(uses(
        "[[id_ranges.gid]]\nuser = \"ann\"\nstart = 100000\ncount = 10\n"
    ));
}

#[test]
fn device_binds_are_allowed_unless_the_policy_withholds_them() {
    let mut r = req();
    r.mounts.push(MountOp::Bind {
        src: "/dev".into(),
        dst: "/dev".into(),
        kind: nsjail_core::BindKind::Dev,
        optional: false,
    });
    const PATH: &str = "/etc/nsjail/policy.toml";
    let allowed = |p: &Policy| p.allow.resolve(true);
    assert_eq!(
        Policy::check_features(&allowed(&Policy::default()), &r, PATH),
        Ok(())
    );
    let p = Policy::parse("[allow]\ndevice_binds = false\n").unwrap();
    assert_eq!(
        Policy::check_features(&allowed(&p), &r, PATH),
        Err(Refusal::Feature {
            flag: "--dev-bind",
            key: "device_binds",
            path: PATH
        })
    );
}

#[test]
fn limits_within_the_ceilings_are_kept_and_named_when_refused() {
    let p = Policy::parse(
        "[limits]\ncpu_time_secs = 10\nwall_time_secs = 20\nmemory_bytes = 100\nopen_files = 64\n",
    )
    .unwrap();
    let mut asked = nsjail_core::Limits {
        cpu_time_us: Some(2_000_000),
        wall_time_us: Some(3_000_000),
        ..Default::default()
    };
    let l = p.limits_within(&asked).unwrap();
    assert_eq!(
        (l.cpu_time_us, l.wall_time_us),
        (Some(2_000_000), Some(3_000_000))
    );
    // An rlimit at the ceiling is kept; above it, or unlimited, refused by name.
    let nofile = |hard: u64| RlimitSetting {
        resource: RlimitResource::Nofile,
        soft: hard.min(64),
        hard,
    };
    asked.rlimits = vec![nofile(64)];
    assert_eq!(p.limits_within(&asked).unwrap().rlimits, [nofile(64)]);
    for hard in [65, RLIM_INFINITY] {
        asked.rlimits = vec![nofile(hard)];
        assert_eq!(
            p.limits_within(&asked),
            Err(Refusal::OverCeiling {
                limit: "open_files",
                requested: hard,
                max: 64
            })
        );
    }
    asked.rlimits.clear();
    asked.memory_bytes = Some(101);
    let e = p.limits_within(&asked).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--memory-limit 101 bytes is above the policy's ceiling of 100 bytes (limits.memory_bytes)"
    );
    let names: Vec<&str> = [
        Limit::MemoryBytes,
        Limit::Pids,
        Limit::CpuTimeSecs,
        Limit::WallTimeSecs,
        Limit::FileSizeBytes,
        Limit::OpenFiles,
    ]
    .map(Limit::name)
    .to_vec();
    assert_eq!(
        names,
        [
            "memory_bytes",
            "pids",
            "cpu_time_secs",
            "wall_time_secs",
            "file_size_bytes",
            "open_files"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The wire

mod wire_edges {
    use std::io::{self, Read};

    use nsjail_core::wire::{
        HEADER_LEN, MAGIC, PROTOCOL_VERSION, WireError, decode_body, decode_frame, encode,
        parse_header, read_frame,
    };

    /// The largest body, 256 KiB.
    const MAX: usize = 256 * 1024;
    /// 32 KiB that bincode writes as they are (fixed arrays carry no length) and reads without
    /// counting an allocation against the limit; eight of them are exactly [`MAX`].
    type Block = [[[u8; 32]; 32]; 32];
    type Largest = (Block, Block, Block, Block, Block, Block, Block, Block);

    fn header(len: u32) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        h[8..].copy_from_slice(&len.to_le_bytes());
        h
    }

    #[test]
    fn a_body_may_have_256_kib() {
        // The 256 KiB values are built and decoded on the stack: give them room.
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(body_of_256_kib)
            .unwrap()
            .join()
            .unwrap();
    }

    fn body_of_256_kib() {
        let b: Block = [[[7u8; 32]; 32]; 32];
        let v: Box<Largest> = Box::new((b, b, b, b, b, b, b, b));
        let frame = encode(&*v).expect("a body of exactly the limit");
        assert_eq!(frame.len(), HEADER_LEN + MAX);
        let (back, used): (Box<Largest>, usize) = decode_frame(&frame).unwrap();
        assert_eq!((back.7[31][31][31], used), (7, HEADER_LEN + MAX));
        decode_body::<Box<Largest>>(&frame[HEADER_LEN..]).expect("the body alone");
        // One byte more (a vector: a 5-byte length, then its bytes) is too large.
        assert!(matches!(
            encode(&vec![7u8; MAX - 4]),
            Err(WireError::TooLarge { .. } | WireError::Encode(_))
        ));
        assert_eq!(parse_header(&header(MAX as u32)).unwrap(), MAX);
        assert!(matches!(
            parse_header(&header(MAX as u32 + 1)),
            Err(WireError::TooLarge { len, max: MAX }) if len == MAX + 1
        ));
        // A middling frame, well above 1 KiB, goes through.
        let (v, _): (Vec<u8>, usize) = decode_frame(&encode(&vec![1u8; 5000]).unwrap()).unwrap();
        assert_eq!(v.len(), 5000);
    }

    #[test]
    fn a_frame_is_used_up_to_its_end_and_no_further() {
        let mut two = encode(&42u32).unwrap();
        let first = two.len();
        two.extend(encode(&7u32).unwrap());
        let (v, used): (u32, usize) = decode_frame(&two).unwrap();
        assert_eq!((v, used), (42, first));
        let (v, _): (u32, usize) = decode_frame(&two[used..]).unwrap();
        assert_eq!(v, 7);
        // A frame cut short says how long it should have been.
        let cut = &two[..first - 1];
        assert!(matches!(
            decode_frame::<u32>(cut),
            Err(WireError::Truncated { expected, got }) if expected == first && got == first - 1
        ));
        // Bytes left over in a body are refused and counted.
        let mut body = encode(&42u32).unwrap()[HEADER_LEN..].to_vec();
        body.extend([0, 0, 0]);
        assert!(matches!(
            decode_body::<u32>(&body),
            Err(WireError::TrailingBytes(3))
        ));
    }

    /// A reader that hands out its bytes in small pieces, first failing with each error of
    /// `errors` once, and that fails the test if asked to fill an empty buffer (a frame is
    /// read up to its end and no further).
    struct Flaky {
        data: Vec<u8>,
        at: usize,
        errors: Vec<io::ErrorKind>,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(!buf.is_empty(), "asked to read into an empty buffer");
            if let Some(kind) = self.errors.pop() {
                return Err(io::Error::from(kind));
            }
            let n = buf.len().min(3).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn reading_retries_interruptions_and_nothing_else() {
        let frame = encode(&0x1234_5678u32).unwrap();
        let mut r = Flaky {
            data: frame.clone(),
            at: 0,
            errors: vec![io::ErrorKind::Interrupted],
        };
        assert_eq!(read_frame::<_, u32>(&mut r).unwrap(), Some(0x1234_5678));
        assert_eq!(read_frame::<_, u32>(&mut r).unwrap(), None);
        let mut r = Flaky {
            data: frame,
            at: 0,
            errors: vec![io::ErrorKind::ConnectionReset],
        };
        assert!(matches!(
            read_frame::<_, u32>(&mut r),
            Err(WireError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset
        ));
    }
}

#[test]
fn passed_fd_numbers_and_count_reach_their_maxima() {
    assert_eq!(with(|r| r.pass_fds = vec![3, 1023]), Ok(()));
    assert!(refused(with(|r| r.pass_fds = vec![2])));
    assert!(refused(with(|r| r.pass_fds = vec![1024])));
    assert_eq!(with(|r| r.pass_fds = (3..67).collect()), Ok(()));
    assert!(refused(with(|r| r.pass_fds = (3..68).collect())));
    assert_eq!(nsjail_core::message::MAX_FDS, 123);
}
