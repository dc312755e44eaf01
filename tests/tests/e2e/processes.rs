//! The init inside reaps orphans.

use nsjail_tests::for_each_caller;

#[test]
fn an_orphaned_grandchild_is_reaped_inside() {
    for_each_caller(|c| {
        // The inner shell starts a sleep in the background and exits: the sleep is orphaned and
        // reparented to PID 1 inside. Once it exits, only PID 1 can reap it. Poll (bounded) for
        // its /proc entry to vanish; a zombie keeps it.
        // The orphan's parent is read at once: its shell has exited by then (the command
        // substitution waited for it), and the orphan lives on for a second.
        let script = "p=$(/bin/sh -c '/bin/sleep 1 >/dev/null 2>&1 </dev/null & echo $!'); \
            echo ORPHAN $p; echo PPID $(cut -d' ' -f4 /proc/$p/stat); \
            i=0; while [ -e /proc/$p ] && [ $i -lt 400 ]; do \
              i=$((i+1)); /bin/sleep 0.05; done; \
            if [ -e /proc/$p ]; then echo LEFT $(cat /proc/$p/stat); else echo REAPED; fi; \
            for f in /proc/[0-9]*/stat; do cut -d' ' -f1-3 $f 2>/dev/null; done";
        let out = c.sh(&[], script);
        out.expect_success();
        assert!(
            out.stdout.contains("ORPHAN ") && out.stdout.contains("REAPED"),
            "[{}] the orphan was not reaped:\n{}",
            c.name(),
            out.describe()
        );
        let ppid = out
            .lines()
            .iter()
            .find_map(|l| l.strip_prefix("PPID ").map(str::to_string));
        assert_eq!(
            ppid.as_deref(),
            Some("1"),
            "[{}] the orphan was not reparented to PID 1:\n{}",
            c.name(),
            out.describe()
        );
        for l in out.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() == 3 && w[0].parse::<u32>().is_ok() {
                assert_ne!(
                    w[2],
                    "Z",
                    "[{}] a zombie inside:\n{}",
                    c.name(),
                    out.describe()
                );
            }
        }
    });
}
