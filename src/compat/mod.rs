//! Drop-in APIs of other code runners on warmbox's engine (`../shared/COMPAT.md`): a client
//! of Piston v2 switches to warmbox by changing its base URL. Language tables come from the
//! profiles (`piston_language`, `judge0_id`), not from code.

pub mod judge0;
pub mod piston;

use crate::queue::store::JobRecord;
use warmbox_runner::profile::ProfileSet;

/// The method and body of a job's callback where a compat API submitted it (Judge0: a
/// PUT of the submission); `None`: warmbox's own (a POST of the job).
pub fn callback(
    record: &JobRecord,
    profiles: &ProfileSet,
) -> Option<(reqwest::Method, serde_json::Value)> {
    judge0::callback(record, profiles).map(|v| (reqwest::Method::PUT, v))
}

/// The whole part of `f`, a number the API's units and limits keep within `0..2^53`
/// (seconds or kilobytes of a checked limit, a rounded time or memory figure): exact there.
/// Outside, it saturates as `as` does on floats (negative and NaN: 0), and nothing wraps.
pub(crate) fn whole(f: f64) -> u64 {
    // A float-to-integer `as` saturates (Rust reference, "numeric cast"): the only
    // conversion std has, and here the documented one.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = f as u64;
    n
}

/// The version number in a runtime's version line: the first run of digits and dots with
/// at least one dot (`Python 3.11.2` → `3.11.2`, `gcc (Debian 12.2.0-14) 12.2.0` →
/// `12.2.0`, `v20.20.2` → `20.20.2`).
pub fn version_number(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let run = line[start..i].trim_end_matches('.');
            if run.contains('.') {
                return Some(run.to_string());
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_numbers_come_out_of_version_lines() {
        let cases = [
            ("Python 3.11.2", Some("3.11.2")),
            ("gcc (Debian 12.2.0-14+deb12u1) 12.2.0", Some("12.2.0")),
            ("openjdk 17.0.15 2025-04-15", Some("17.0.15")),
            ("v20.20.2", Some("20.20.2")),
            (
                "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)",
                Some("5.2.15"),
            ),
            ("version 7", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(version_number(line).as_deref(), want, "{line}");
        }
    }
}
