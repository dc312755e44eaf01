//! The system log: one RFC 3164 datagram per event, sent to `/dev/log`, where journald (or a
//! syslog daemon) listens. Written by hand: it is a format string and one `sendto`.
//!
//! Logging never fails the request: with no log socket (a container without a syslog daemon)
//! the message is dropped.

use std::os::unix::net::UnixDatagram;
use std::time::{SystemTime, UNIX_EPOCH};

/// The socket of the local syslog daemon or journald.
const DEV_LOG: &str = "/dev/log";
/// `LOG_AUTHPRIV`: who ran what with privilege, like sudo and su.
const FACILITY: u8 = 10;
/// A datagram longer than this is cut (journald takes far more; classic syslogd 1024 or 2048).
const MAX_LEN: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning = 4,
    Info = 6,
}

/// Send `msg` to the system log with our tag and pid.
pub fn log(severity: Severity, msg: &str) {
    send(severity, msg, false);
}

/// [`log`] for the daemon's listening process, which must never wait on anything a client can
/// cause: when the log's queue is full (a user flooding it), the line is dropped rather than
/// stalling the accept loop for everyone.
pub fn log_nowait(severity: Severity, msg: &str) {
    send(severity, msg, true);
}

fn send(severity: Severity, msg: &str, nowait: bool) {
    let line = format_line(severity, SystemTime::now(), std::process::id(), msg);
    if let Ok(sock) = UnixDatagram::unbound()
        && (!nowait || sock.set_nonblocking(true).is_ok())
    {
        let _ = sock.send_to(line.as_bytes(), DEV_LOG);
    }
}

/// `<PRI>Mmm dd hh:mm:ss nsjail-helper[PID]: MSG`, the timestamp in UTC (the receiver stamps
/// its own time anyway; journald skips ours).
pub fn format_line(severity: Severity, now: SystemTime, pid: u32, msg: &str) -> String {
    let pri = u32::from(FACILITY) * 8 + severity as u32;
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (month, day) = month_day(secs / 86_400);
    let tod = secs % 86_400;
    let mut line = format!(
        "<{pri}>{} {day:>2} {:02}:{:02}:{:02} nsjail-helper[{pid}]: {}",
        MONTHS[month as usize - 1],
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        clean(msg)
    );
    if line.len() > MAX_LEN {
        let mut cut = MAX_LEN;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    line
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Month (1–12) and day of month of the day `days` after 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
fn month_day(days: u64) -> (u64, u64) {
    let z = days + 719_468;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (month, day)
}

/// One line, whatever the caller put in it: control characters (a newline would forge a second
/// log entry) become `\xNN`.
fn clean(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// A value for a `key=value` log field: quoted, with quotes and backslashes escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_line_has_priority_time_tag_and_pid() {
        // 2024-02-29 13:05:09 UTC
        let t = UNIX_EPOCH + Duration::from_secs(1_709_211_909);
        let l = format_line(Severity::Info, t, 42, "spawn uid=1000");
        assert_eq!(l, "<86>Feb 29 13:05:09 nsjail-helper[42]: spawn uid=1000");
        let t = UNIX_EPOCH + Duration::from_secs(0);
        let l = format_line(Severity::Warning, t, 1, "x");
        assert_eq!(l, "<84>Jan  1 00:00:00 nsjail-helper[1]: x");
        let t = UNIX_EPOCH + Duration::from_secs(1_767_225_599); // 2025-12-31 23:59:59
        assert!(format_line(Severity::Info, t, 1, "x").starts_with("<86>Dec 31 23:59:59 "));
    }

    #[test]
    fn control_characters_cannot_forge_a_second_entry() {
        let l = format_line(Severity::Info, UNIX_EPOCH, 1, "a\nb\r\0c");
        assert!(l.ends_with(": a\\x0ab\\x0d\\x00c"), "{l}");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let l = format_line(Severity::Info, UNIX_EPOCH, 1, &"é".repeat(3000));
        assert!(l.len() <= MAX_LEN && l.len() > MAX_LEN - 4);
    }
}
