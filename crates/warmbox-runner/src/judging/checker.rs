//! Checkers. The built-in comparisons of a program's stdout against the expected output,
//! byte for byte, by lines, by tokens, or by tokens with numbers compared within a tolerance;
//! and the protocol of a checker program (and of an interactor), testlib's: the files it
//! finds, its arguments, what its exit code means.
//!
//! Outputs can be tens of MiB and need not be UTF-8: every mode works on bytes in one pass
//! over both sides with slice iterators, and only a rejection's message allocates.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::verdict::Verdict;
use crate::request::{wire_name, StepStatus, ValidatedRequest};
use crate::runner::env_list;
use warmbox_sandbox::{BoxFile, OutputMode, StepOutcome, StepSpec};

/// How a test's output is compared with the expected output.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Comparison {
    /// Byte for byte.
    Exact,
    /// Line by line, ignoring trailing whitespace (spaces, tabs, \r) on each line and trailing
    /// blank lines at the end. (Default.)
    #[default]
    Lines,
    /// Whitespace-separated tokens must be equal (any amount/kind of ASCII whitespace between,
    /// before, after).
    Tokens,
    /// Tokens; where both tokens parse as finite f64 numbers they are equal if |a-e| <= abs or
    /// |a-e| <= rel*|e|; otherwise the tokens must be equal as strings. NaN/inf tokens compare
    /// as strings. Both bounds allow for the rounding of decimal to binary (a few units in the
    /// last place), so `1.6` passes against `1.5` with `abs` 0.1 as it does on paper.
    Float {
        /// The absolute tolerance.
        abs: f64,
        /// The relative tolerance, a fraction of the expected number.
        rel: f64,
    },
}

/// The outcome of comparing.
#[derive(Debug, Clone, PartialEq)]
pub enum Compared {
    /// The output is accepted.
    Accepted,
    /// The output differs; the message says where and how, e.g. "line 3: expected `5`, got
    /// `6`". Positions (lines, tokens, bytes) count from 1.
    WrongAnswer(String),
}

/// At most this many characters of each side are shown in a message (escapes included).
const SHOWN_CHARS: usize = 64;
/// When the first difference lies further in than this many shown characters, the shown part
/// starts a little before it instead of at the start.
const SHOWN_BEFORE_DIFFERENCE: usize = SHOWN_CHARS - 16;
/// How far before the first difference a shown part starts. An escaped byte (`\xNN`) takes
/// 4 characters, so 12 bytes take at most 48 and leave room for the difference itself.
const CONTEXT_BYTES: usize = 12;

/// Compares `actual` (the program's stdout, arbitrary bytes, maybe not UTF-8) with `expected`.
///
/// Linear in the sizes of both sides. `how`'s tolerances should have passed [`validate`]; a
/// negative or NaN bound is never met.
pub fn compare(how: Comparison, expected: &[u8], actual: &[u8]) -> Compared {
    if expected == actual {
        return Compared::Accepted;
    }
    match how {
        Comparison::Exact => exact(expected, actual),
        Comparison::Lines => lines(expected, actual),
        Comparison::Tokens => tokens(expected, actual, |e, a| {
            if e == a {
                Ok(())
            } else {
                Err(String::new())
            }
        }),
        Comparison::Float { abs, rel } => {
            tokens(expected, actual, |e, a| same_number(e, a, abs, rel))
        }
    }
}

/// A tolerance of a float comparison that is not a finite number >= 0.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("checker.{field}: must be a finite number >= 0, got {}", number_text(*.value))]
pub struct BadTolerance {
    /// `abs` or `rel`.
    pub field: &'static str,
    /// The value given.
    pub value: f64,
}

/// Checks a comparison's parameters: `abs` and `rel` finite and >= 0 (the error names the
/// field, e.g. "checker.abs: must be a finite number >= 0, got -1").
pub fn validate(how: &Comparison) -> Result<(), BadTolerance> {
    if let Comparison::Float { abs, rel } = *how {
        for (field, value) in [("abs", abs), ("rel", rel)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(BadTolerance { field, value });
            }
        }
    }
    Ok(())
}

fn exact(expected: &[u8], actual: &[u8]) -> Compared {
    if let Some(i) = expected.iter().zip(actual).position(|(e, a)| e != a) {
        let line = 1 + expected[..i].iter().filter(|&&b| b == b'\n').count();
        return wrong(format!(
            "byte {} (line {line}): expected 0x{:02x}, got 0x{:02x}",
            i + 1,
            expected[i],
            actual[i]
        ));
    }
    match actual.len().cmp(&expected.len()) {
        Ordering::Greater => {
            let more = actual.len() - expected.len();
            wrong(format!(
                "output has {more} more {}: `{}`",
                if more == 1 { "byte" } else { "bytes" },
                show(&actual[expected.len()..])
            ))
        }
        Ordering::Less => wrong(format!(
            "output ends after {}, expected {}: missing `{}`",
            plural(actual.len(), "byte"),
            expected.len(),
            show(&expected[actual.len()..])
        )),
        Ordering::Equal => Compared::Accepted,
    }
}

fn lines(expected: &[u8], actual: &[u8]) -> Compared {
    // Trailing blank lines and the last line's trailing blanks go in one cut.
    let at_end = |b: u8| is_line_blank(b) || b == b'\n';
    let (expected, actual) = (trim_end(expected, at_end), trim_end(actual, at_end));
    let (mut e_lines, mut a_lines) = (split_lines(expected), split_lines(actual));
    let mut n = 0;
    loop {
        n += 1;
        match (e_lines.next(), a_lines.next()) {
            (Some(e), Some(a)) => {
                let (e, a) = (trim_end(e, is_line_blank), trim_end(a, is_line_blank));
                if e != a {
                    return wrong(differ(&format!("line {n}"), e, a, ""));
                }
            }
            (None, None) => return Compared::Accepted,
            _ => {
                return wrong(format!(
                    "output has {}, expected {}",
                    plural(count_lines(actual), "line"),
                    count_lines(expected)
                ))
            }
        }
    }
}

/// Compares token by token; `same` says why two tokens differ (a note for the message).
fn tokens(
    expected: &[u8],
    actual: &[u8],
    same: impl Fn(&[u8], &[u8]) -> Result<(), String>,
) -> Compared {
    let (mut e_tokens, mut a_tokens) = (split_tokens(expected), split_tokens(actual));
    let mut n = 0;
    loop {
        n += 1;
        match (e_tokens.next(), a_tokens.next()) {
            (Some(e), Some(a)) => {
                if let Err(note) = same(e, a) {
                    return wrong(differ(&format!("token {n}"), e, a, &note));
                }
            }
            (None, None) => return Compared::Accepted,
            (Some(_), None) => {
                return wrong(format!(
                    "output ends after {}, expected {}",
                    plural(n - 1, "token"),
                    n + e_tokens.count()
                ))
            }
            (None, Some(_)) => {
                return wrong(format!(
                    "output has {}, expected {}",
                    plural(n + a_tokens.count(), "token"),
                    n - 1
                ))
            }
        }
    }
}

/// Two tokens are the same, or both numbers within `abs` or `rel`; otherwise a note for the
/// message (empty when they are not both numbers).
fn same_number(e: &[u8], a: &[u8], abs: f64, rel: f64) -> Result<(), String> {
    if e == a {
        return Ok(());
    }
    let (Some(x), Some(y)) = (number(e), number(a)) else {
        return Err(String::new());
    };
    // As testlib's doubleCompare: NaN matches NaN only, an infinity the same infinity only.
    if !x.is_finite() || !y.is_finite() {
        return if (x.is_nan() && y.is_nan()) || x == y {
            Ok(())
        } else {
            Err(String::new())
        };
    }
    let difference = (y - x).abs();
    // Each decimal is rounded to binary by half a unit in its last place, so the f64
    // difference of two numbers is off by up to one unit of the larger (`1.6` and `1.5`
    // are 0.10000000000000009 apart in f64; 123.456 and 123.456000001 are 1.000004e-9):
    // that much, plus testlib's 2e-15, lets a bound met exactly in decimals pass, and no
    // more (1e9 against 1e9 + 1.4e-6 under abs 1e-6 is a wrong answer). A difference
    // that overflowed to infinity is still rejected.
    let slack = f64::EPSILON * x.abs().max(y.abs()) + FLOAT_SLACK;
    let rel_bound = rel * x.abs();
    if difference <= abs + slack || difference <= rel_bound + slack {
        return Ok(());
    }
    Err(format!(
        " (difference {} > abs {} and rel {})",
        difference_text(difference, abs),
        number_text(abs),
        number_text(rel)
    ))
}

/// What a float comparison allows beyond its bounds, as testlib (twice 1e-15).
const FLOAT_SLACK: f64 = 2e-15;

/// A token as a number (`nan`, `inf` and `infinity` in any case too), when it is one.
fn number(token: &[u8]) -> Option<f64> {
    std::str::from_utf8(token).ok()?.parse::<f64>().ok()
}

/// The difference with 6 significant digits, or as many more as it takes to show that it
/// exceeds `abs` (0.1000000001, not 0.1, for a difference just over 0.1).
fn difference_text(difference: f64, abs: f64) -> String {
    for digits in 6..17 {
        let rounded = format!("{difference:.*e}", digits - 1)
            .parse::<f64>()
            .unwrap_or(difference);
        if rounded > abs {
            return number_text(rounded);
        }
    }
    number_text(difference)
}

/// `x` as people write it: `0.1`, `-1`, `1500`, and `1e-6` for the very small and large.
fn number_text(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-4..1e16).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// "what: expected `e`, got `a`" and the note. When the first difference would not be shown,
/// both sides are shown from a little before it, and the message says at which byte it is.
fn differ(what: &str, e: &[u8], a: &[u8], note: &str) -> String {
    let common = e.iter().zip(a).take_while(|(x, y)| x == y).count();
    if !escape(&e[..common], SHOWN_BEFORE_DIFFERENCE).1 {
        return format!("{what}: expected `{}`, got `{}`{note}", show(e), show(a));
    }
    // Both sides hold the same bytes before `common`, so one start suits both; it moves past
    // UTF-8 continuation bytes (at most 3) so as not to show half a character.
    let mut start = common.saturating_sub(CONTEXT_BYTES);
    for _ in 0..3 {
        if start < common && e[start] & 0xc0 == 0x80 {
            start += 1;
        }
    }
    format!(
        "{what}, first difference at byte {}: expected `…{}`, got `…{}`{note}",
        common + 1,
        show(&e[start..]),
        show(&a[start..])
    )
}

/// `b` for a message: escaped, and cut with "…" after [`SHOWN_CHARS`] characters.
fn show(b: &[u8]) -> String {
    let (mut shown, cut) = escape(b, SHOWN_CHARS);
    if cut {
        shown.push('…');
    }
    shown
}

/// `b` with non-printable characters and bytes that are not UTF-8 escaped (`\n`, `\x00`,
/// `\xff`, `\u{feff}`, and `\\` for a backslash), up to `max` characters; `true` when cut.
fn escape(b: &[u8], max: usize) -> (String, bool) {
    // A character takes at most 4 bytes and at most `max + 1` are looked at: the bytes past
    // that are never needed, and a long line is not scanned for UTF-8 to its end.
    let limit = b.len().min(4 * (max + 1));
    let mut shown = String::new();
    let mut width = 0;
    let mut piece = String::new();
    for chunk in b[..limit].utf8_chunks() {
        let chars = chunk.valid().chars().map(Ok);
        let invalid = chunk.invalid().iter().map(|&byte| Err(byte));
        for unit in chars.chain(invalid) {
            piece.clear();
            match unit {
                Ok('\n') => piece.push_str("\\n"),
                Ok('\t') => piece.push_str("\\t"),
                Ok('\r') => piece.push_str("\\r"),
                Ok('\\') => piece.push_str("\\\\"),
                Ok(c) if c.is_ascii_control() => piece.push_str(&format!("\\x{:02x}", c as u32)),
                Ok(c) if is_invisible(c) => piece.push_str(&format!("\\u{{{:x}}}", c as u32)),
                Ok(c) => piece.push(c),
                Err(byte) => piece.push_str(&format!("\\x{byte:02x}")),
            }
            let piece_width = piece.chars().count();
            if width + piece_width > max {
                return (shown, true);
            }
            width += piece_width;
            shown.push_str(&piece);
        }
    }
    (shown, limit < b.len())
}

/// Characters that print as nothing or as a plain space, and so would hide the difference:
/// C1 controls, no-break and zero-width spaces, direction marks, the byte-order mark.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{a0}'
                | '\u{ad}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{feff}'
        )
}

/// What separates tokens: C's `isspace`. (`u8::is_ascii_whitespace` leaves out `\x0b`.)
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What is ignored at the end of a line.
fn is_line_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn trim_end(b: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let len = b.iter().rposition(|&c| !strip(c)).map_or(0, |i| i + 1);
    &b[..len]
}

/// The lines of an output with its trailing blank lines trimmed: none when it is empty.
fn split_lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let lines = if b.is_empty() { 0 } else { usize::MAX };
    b.split(|&c| c == b'\n').take(lines)
}

fn count_lines(b: &[u8]) -> usize {
    if b.is_empty() {
        0
    } else {
        1 + b.iter().filter(|&&c| c == b'\n').count()
    }
}

fn split_tokens(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    b.split(|&c| is_space(c)).filter(|t| !t.is_empty())
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn wrong(message: String) -> Compared {
    Compared::WrongAnswer(message)
}

/// The files a checker finds in its `/box`, and the arguments it is given, testlib's order.
pub const CHECKER_FILES: [&str; 3] = ["input.txt", "output.txt", "answer.txt"];

/// Most of a checker's or interactor's stderr quoted in a test's message, bytes.
const MESSAGE_BYTES: usize = 1024;

/// The files a checker or interactor finds in its `/box`: the test's input, the
/// submission's output, the expected output ([`CHECKER_FILES`]).
pub(super) fn judge_files(contents: [&[u8]; 3]) -> Vec<BoxFile> {
    CHECKER_FILES
        .iter()
        .zip(contents)
        .map(|(name, content)| BoxFile {
            path: name.to_string(),
            content: content.to_vec(),
            executable: false,
        })
        .collect()
}

/// A checker's or interactor's step: its run command with the three file names, its own
/// env and limits, its output kept apart.
pub(super) fn judge_spec(jreq: &ValidatedRequest) -> StepSpec {
    let mut argv = jreq.run_cmd.clone();
    argv.extend(CHECKER_FILES.iter().map(|s| s.to_string()));
    StepSpec {
        argv,
        env: env_list(&jreq.env),
        limits: jreq.limits,
        cpu_cores: jreq.profile.profile.cpu_cores,
        stdin: Vec::new(),
        output: OutputMode::Separate,
    }
}

/// A checker's or interactor's verdict from its exit code, testlib's convention: 0
/// accepted, 1 wrong answer, 2 presentation error; anything else (another code, a signal,
/// a limit) is its own failure, not the submission's.
pub(super) fn judged_by_exit(role: &str, step: &StepOutcome) -> (Verdict, Option<String>) {
    let said = clip(&step.stderr);
    let said = (!said.is_empty()).then_some(said);
    let r = step;
    match (r.status, r.exit_code) {
        (StepStatus::Ok, _) => (Verdict::Accepted, said),
        (StepStatus::RuntimeError, Some(1)) => (Verdict::WrongAnswer, said),
        (StepStatus::RuntimeError, Some(2)) => (Verdict::PresentationError, said),
        (status, code) => {
            let how = match code {
                Some(c) => format!("exited with {c}"),
                None => wire_name(&status),
            };
            let detail = match (&r.message, said) {
                (Some(m), _) => format!(": {m}"),
                (None, Some(s)) => format!(": {s}"),
                (None, None) => String::new(),
            };
            (
                Verdict::Step(StepStatus::InternalError),
                Some(format!("the {role} failed ({how}){detail}")),
            )
        }
    }
}

/// At most [`MESSAGE_BYTES`] of `bytes`, as text, trimmed.
pub(super) fn clip(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MESSAGE_BYTES)];
    let mut s = String::from_utf8_lossy(cut).trim().to_string();
    if bytes.len() > MESSAGE_BYTES {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wa(message: &str) -> Compared {
        Compared::WrongAnswer(message.to_string())
    }

    fn float(abs: f64, rel: f64) -> Comparison {
        Comparison::Float { abs, rel }
    }

    use Compared::Accepted;
    use Comparison::{Exact, Lines, Tokens};

    // Exact

    #[test]
    fn exact_accepts_the_same_bytes() {
        assert_eq!(compare(Exact, b"1 2\n", b"1 2\n"), Accepted);
        assert_eq!(compare(Exact, b"", b""), Accepted);
        assert_eq!(compare(Exact, b"\xff\x00\xfe", b"\xff\x00\xfe"), Accepted);
    }

    #[test]
    fn exact_names_the_first_differing_byte_and_its_line() {
        assert_eq!(
            compare(Exact, b"ab\ncd\n", b"ab\ncx\n"),
            wa("byte 5 (line 2): expected 0x64, got 0x78")
        );
        assert_eq!(
            compare(Exact, b"a\n", b"a\r\n"),
            wa("byte 2 (line 1): expected 0x0a, got 0x0d")
        );
        assert_eq!(
            compare(Exact, b"\xff\xfe", b"\xff\xfd"),
            wa("byte 2 (line 1): expected 0xfe, got 0xfd")
        );
    }

    #[test]
    fn exact_counts_trailing_whitespace() {
        assert_eq!(
            compare(Exact, b"a\n", b"a"),
            wa("output ends after 1 byte, expected 2: missing `\\n`")
        );
        assert_eq!(
            compare(Exact, b"a", b"a\n\n"),
            wa("output has 2 more bytes: `\\n\\n`")
        );
        assert_eq!(
            compare(Exact, b"a", b"a "),
            wa("output has 1 more byte: ` `")
        );
    }

    #[test]
    fn exact_with_an_empty_side() {
        assert_eq!(
            compare(Exact, b"x", b""),
            wa("output ends after 0 bytes, expected 1: missing `x`")
        );
        assert_eq!(compare(Exact, b"", b"x"), wa("output has 1 more byte: `x`"));
    }

    #[test]
    fn exact_cuts_long_extra_output() {
        let actual = [b"ok\n".as_slice(), &[b'z'; 100]].concat();
        assert_eq!(
            compare(Exact, b"ok\n", &actual),
            wa(&format!("output has 100 more bytes: `{}…`", "z".repeat(64)))
        );
    }

    // Lines

    #[test]
    fn lines_is_the_default() {
        assert_eq!(Comparison::default(), Lines);
    }

    #[test]
    fn lines_accepts_the_same_lines() {
        assert_eq!(compare(Lines, b"1\n2\n", b"1\n2\n"), Accepted);
        assert_eq!(compare(Lines, b"1\n2", b"1\n2\n"), Accepted);
    }

    #[test]
    fn lines_ignores_trailing_whitespace_and_blank_lines() {
        assert_eq!(compare(Lines, b"a\n", b"a"), Accepted);
        assert_eq!(compare(Lines, b"a", b"a\n"), Accepted);
        assert_eq!(compare(Lines, b"a", b"a \n\n\n"), Accepted);
        assert_eq!(compare(Lines, b"a \n\n\n", b"a"), Accepted);
        assert_eq!(
            compare(Lines, b"x y\nz\n", b"x y \t\r\nz\t\n \n\t\n"),
            Accepted
        );
        assert_eq!(compare(Lines, b"x y \t\nz", b"x y\nz"), Accepted);
    }

    #[test]
    fn lines_accepts_crlf() {
        assert_eq!(compare(Lines, b"1\n2\n", b"1\r\n2\r\n"), Accepted);
        assert_eq!(compare(Lines, b"1\r\n2\r\n\r\n", b"1\n2"), Accepted);
    }

    #[test]
    fn lines_names_the_first_differing_line() {
        assert_eq!(
            compare(Lines, b"1\n2\n5\n", b"1\n2\n6\n"),
            wa("line 3: expected `5`, got `6`")
        );
        assert_eq!(
            compare(Lines, b"a", b" a"),
            wa("line 1: expected `a`, got ` a`")
        );
        assert_eq!(
            compare(Lines, b"1 2\n", b"1  2\n"),
            wa("line 1: expected `1 2`, got `1  2`")
        );
    }

    #[test]
    fn lines_keeps_blank_lines_in_the_middle() {
        assert_eq!(
            compare(Lines, b"a\n\nb\n", b"a\nb\n"),
            wa("line 2: expected ``, got `b`")
        );
    }

    #[test]
    fn lines_strips_only_spaces_tabs_and_carriage_returns() {
        assert_eq!(
            compare(Lines, b"5\n", b"5\x0b\n"),
            wa("line 1: expected `5`, got `5\\x0b`")
        );
        assert_eq!(
            compare(Lines, b"5\n", b"5\x0c\n"),
            wa("line 1: expected `5`, got `5\\x0c`")
        );
        assert_eq!(
            compare(Lines, b"5\n", b"5\r\r\n"),
            Accepted,
            "a run of \\r is trailing whitespace"
        );
        assert_eq!(
            compare(Lines, b"a\rb\n", b"a b\n"),
            wa("line 1: expected `a\\rb`, got `a b`")
        );
    }

    #[test]
    fn lines_counts_missing_and_extra_lines() {
        assert_eq!(
            compare(Lines, b"1\n2\n3\n", b"1\n2\n"),
            wa("output has 2 lines, expected 3")
        );
        assert_eq!(
            compare(Lines, b"1\n", b"1\n2\n"),
            wa("output has 2 lines, expected 1")
        );
        assert_eq!(
            compare(Lines, b"1\n2\n3\n", b"1\n"),
            wa("output has 1 line, expected 3")
        );
    }

    #[test]
    fn lines_with_empty_outputs() {
        assert_eq!(compare(Lines, b"", b""), Accepted);
        assert_eq!(compare(Lines, b"", b"\n\n \t\r\n"), Accepted);
        assert_eq!(compare(Lines, b"\n", b""), Accepted);
        assert_eq!(
            compare(Lines, b"x", b""),
            wa("output has 0 lines, expected 1")
        );
        assert_eq!(
            compare(Lines, b"", b"x"),
            wa("output has 1 line, expected 0")
        );
        assert_eq!(
            compare(Lines, b"\n\n", b"\n\nx"),
            wa("output has 3 lines, expected 0")
        );
    }

    #[test]
    fn lines_compares_bytes_that_are_not_utf8() {
        assert_eq!(compare(Lines, b"\xff\xfe\n", b"\xff\xfe \r\n"), Accepted);
        assert_eq!(
            compare(Lines, b"caf\xe9\n", b"cafe\n"),
            wa("line 1: expected `caf\\xe9`, got `cafe`")
        );
        assert_eq!(
            compare(Lines, b"ok\n", b"ok\x00\n"),
            wa("line 1: expected `ok`, got `ok\\x00`")
        );
    }

    #[test]
    fn messages_escape_invisible_characters_and_backslashes() {
        assert_eq!(
            compare(Lines, b"a\tb\n", b"a b\n"),
            wa("line 1: expected `a\\tb`, got `a b`")
        );
        assert_eq!(
            compare(Lines, "5\n".as_bytes(), "\u{feff}5\n".as_bytes()),
            wa("line 1: expected `5`, got `\\u{feff}5`")
        );
        assert_eq!(
            compare(Lines, "1 2\n".as_bytes(), "1\u{a0}2\n".as_bytes()),
            wa("line 1: expected `1 2`, got `1\\u{a0}2`")
        );
        assert_eq!(
            compare(Lines, b"a\\n\n", b"a\n"),
            wa("line 1: expected `a\\\\n`, got `a`")
        );
        assert_eq!(
            compare(Lines, b"a\\x00\n", b"a\x00\n"),
            wa("line 1: expected `a\\\\x00`, got `a\\x00`")
        );
        assert_eq!(
            compare(Lines, "é\n".as_bytes(), "è\n".as_bytes()),
            wa("line 1: expected `é`, got `è`")
        );
    }

    #[test]
    fn long_lines_are_cut_after_64_characters() {
        let expected = format!("x{}\n", "a".repeat(200));
        let actual = format!("y{}\n", "a".repeat(200));
        assert_eq!(
            compare(Lines, expected.as_bytes(), actual.as_bytes()),
            wa(&format!(
                "line 1: expected `x{a}…`, got `y{a}…`",
                a = "a".repeat(63)
            ))
        );
        // Escapes count in the 64: 21 `\x01` are 84 characters.
        let expected = [b"!".as_slice(), &[1; 21]].concat();
        assert_eq!(
            compare(Lines, &expected, b"?"),
            wa(&format!(
                "line 1: expected `!{}…`, got `?`",
                "\\x01".repeat(15)
            ))
        );
    }

    #[test]
    fn a_difference_far_into_a_line_is_shown_with_its_byte() {
        let expected = format!("{}b{}\n", "a".repeat(100), "c".repeat(100));
        let actual = format!("{}x{}\n", "a".repeat(100), "c".repeat(100));
        assert_eq!(
            compare(Lines, expected.as_bytes(), actual.as_bytes()),
            wa(&format!(
                "line 1, first difference at byte 101: expected `…{a}b{c}…`, got `…{a}x{c}…`",
                a = "a".repeat(12),
                c = "c".repeat(51)
            ))
        );
        // A shorter line shows whole, however far in the difference.
        let expected = format!("{}b", "a".repeat(48));
        let actual = format!("{}x", "a".repeat(48));
        assert_eq!(
            compare(Lines, expected.as_bytes(), actual.as_bytes()),
            wa(&format!(
                "line 1: expected `{a}b`, got `{a}x`",
                a = "a".repeat(48)
            ))
        );
    }

    #[test]
    fn a_cut_before_a_difference_does_not_split_a_character() {
        // 60 three-byte `€` (bytes 0..180), `é` (180..182), then the difference at 182. Twelve
        // bytes back is 170, inside the `€` at 168..171: the shown part starts at 171.
        let expected = format!("{}éx", "€".repeat(60));
        let actual = format!("{}éy", "€".repeat(60));
        assert_eq!(
            compare(Lines, expected.as_bytes(), actual.as_bytes()),
            wa("line 1, first difference at byte 183: expected `…€€€éx`, got `…€€€éy`")
        );
    }

    #[test]
    fn a_long_output_is_compared_to_its_last_line() {
        let n = 1 << 20;
        let expected = "1\n".repeat(n);
        let mut actual = "1\n".repeat(n - 1);
        assert_eq!(
            compare(Lines, expected.as_bytes(), actual.as_bytes()),
            wa("output has 1048575 lines, expected 1048576")
        );
        actual.push_str("2\n");
        assert_eq!(
            compare(Lines, expected.as_bytes(), actual.as_bytes()),
            wa("line 1048576: expected `1`, got `2`")
        );
        assert_eq!(
            compare(Tokens, expected.as_bytes(), actual.as_bytes()),
            wa("token 1048576: expected `1`, got `2`")
        );
        let spaced = "1 ".repeat(n);
        assert_eq!(
            compare(Tokens, expected.as_bytes(), spaced.as_bytes()),
            Accepted
        );
    }

    // Tokens

    #[test]
    fn tokens_accepts_any_whitespace_around_tokens() {
        assert_eq!(compare(Tokens, b"1 2 3", b"1 2 3"), Accepted);
        assert_eq!(compare(Tokens, b"1 2 3\n", b"  1\n2\t\t3\n\n"), Accepted);
        assert_eq!(compare(Tokens, b"1 2", b"\x0b1\x0b2\x0c"), Accepted);
        assert_eq!(compare(Tokens, b"1 2\n", b"1\r\n2\r\n"), Accepted);
        assert_eq!(compare(Tokens, b"\xff \xfe", b"\xff\n\xfe\n"), Accepted);
    }

    #[test]
    fn tokens_names_the_first_differing_token() {
        assert_eq!(
            compare(Tokens, b"1 2 3", b"1 2 4"),
            wa("token 3: expected `3`, got `4`")
        );
        assert_eq!(
            compare(Tokens, b"1.0", b"1"),
            wa("token 1: expected `1.0`, got `1`")
        );
        assert_eq!(
            compare(Tokens, b"\xff a", b"\xfe a"),
            wa("token 1: expected `\\xff`, got `\\xfe`")
        );
    }

    #[test]
    fn tokens_are_separated_by_ascii_whitespace_only() {
        assert_eq!(
            compare(Tokens, "1 2".as_bytes(), "1\u{a0}2".as_bytes()),
            wa("token 1: expected `1`, got `1\\u{a0}2`")
        );
    }

    #[test]
    fn tokens_counts_missing_and_extra_tokens() {
        assert_eq!(
            compare(Tokens, b"1 2 3 4 5", b"1 2 3"),
            wa("output ends after 3 tokens, expected 5")
        );
        assert_eq!(
            compare(Tokens, b"1 2", b"1\n2\n3\n"),
            wa("output has 3 tokens, expected 2")
        );
        assert_eq!(
            compare(Tokens, b"1 2", b"1"),
            wa("output ends after 1 token, expected 2")
        );
    }

    #[test]
    fn tokens_with_empty_outputs() {
        assert_eq!(compare(Tokens, b"", b""), Accepted);
        assert_eq!(compare(Tokens, b"", b" \n\t\r\n"), Accepted);
        assert_eq!(compare(Tokens, b"\n", b""), Accepted);
        assert_eq!(
            compare(Tokens, b"x", b"  \n"),
            wa("output ends after 0 tokens, expected 1")
        );
        assert_eq!(
            compare(Tokens, b"", b"x"),
            wa("output has 1 token, expected 0")
        );
    }

    #[test]
    fn a_long_token_is_cut() {
        let expected = "7".repeat(100);
        assert_eq!(
            compare(Tokens, expected.as_bytes(), b"8"),
            wa(&format!("token 1: expected `{}…`, got `8`", "7".repeat(64)))
        );
    }

    // Float

    #[test]
    fn float_accepts_numbers_within_abs() {
        let how = float(1e-6, 0.0);
        assert_eq!(compare(how, b"0.3333333", b"0.33333335"), Accepted);
        assert_eq!(compare(how, b"1 2.5\n", b"1.0000001 2.4999995"), Accepted);
        assert_eq!(
            compare(how, b"1e-3 -0.5 +3 0", b"0.001 -5e-1 3 -0"),
            Accepted
        );
        assert_eq!(compare(how, b".5 5.", b"0.5 5"), Accepted);
    }

    #[test]
    fn float_rejects_numbers_outside_both_bounds() {
        assert_eq!(
            compare(float(1e-6, 1e-6), b"1.5", b"1.6"),
            wa("token 1: expected `1.5`, got `1.6` (difference 0.1 > abs 1e-6 and rel 1e-6)")
        );
        assert_eq!(
            compare(float(1e-6, 0.0), b"1 2 3 4", b"1 2 3 4.00001"),
            wa("token 4: expected `4`, got `4.00001` (difference 1e-5 > abs 1e-6 and rel 0)")
        );
    }

    #[test]
    fn float_accepts_numbers_within_rel_of_the_expected() {
        let how = float(0.0, 1e-3);
        assert_eq!(compare(how, b"1000000", b"1000500"), Accepted);
        assert_eq!(compare(how, b"-1000000", b"-999000"), Accepted);
        assert_eq!(
            compare(how, b"1000000", b"1001500"),
            wa("token 1: expected `1000000`, got `1001500` (difference 1500 > abs 0 and rel 0.001)")
        );
        // Relative to the expected number, not the output's.
        assert_eq!(compare(float(0.0, 1.0), b"100", b"0"), Accepted);
        assert_eq!(
            compare(float(0.0, 1.0), b"0", b"100"),
            wa("token 1: expected `0`, got `100` (difference 100 > abs 0 and rel 1)")
        );
    }

    #[test]
    fn float_accepts_a_difference_equal_to_the_bound() {
        // Exact in binary.
        assert_eq!(compare(float(0.5, 0.0), b"1", b"1.5"), Accepted);
        assert_eq!(compare(float(0.5, 0.0), b"1", b"0.5"), Accepted);
        assert_eq!(compare(float(0.0, 0.25), b"4", b"5"), Accepted);
        // Exact in decimal only: 1.6 - 1.5 is 0.10000000000000009 in f64.
        assert_eq!(compare(float(0.1, 0.0), b"1.5", b"1.6"), Accepted);
        assert_eq!(compare(float(0.0, 0.1), b"1.5", b"1.65"), Accepted);
        assert_eq!(
            compare(float(1e-6, 0.0), b"0.000001", b"0.000002"),
            Accepted
        );
        assert_eq!(
            compare(float(1e-9, 0.0), b"123.456", b"123.456000001"),
            Accepted
        );
    }

    #[test]
    fn float_rejects_a_difference_just_over_the_bound() {
        assert_eq!(
            compare(float(0.5, 0.0), b"1", b"1.5000001"),
            wa("token 1: expected `1`, got `1.5000001` (difference 0.5000001 > abs 0.5 and rel 0)")
        );
        assert_eq!(
            compare(float(0.1, 0.0), b"1.5", b"1.6000000001"),
            wa("token 1: expected `1.5`, got `1.6000000001` (difference 0.1000000001 > abs 0.1 and rel 0)")
        );
        assert_eq!(
            compare(float(0.0, 0.0), b"1", b"1.00000000001"),
            wa("token 1: expected `1`, got `1.00000000001` (difference 1e-11 > abs 0 and rel 0)")
        );
    }

    #[test]
    fn float_compares_other_tokens_as_strings() {
        let how = float(1e-6, 1e-6);
        assert_eq!(compare(how, b"YES 1", b"YES 1.0000001"), Accepted);
        assert_eq!(
            compare(how, b"abc", b"1"),
            wa("token 1: expected `abc`, got `1`")
        );
        assert_eq!(
            compare(how, b"1", b"abc"),
            wa("token 1: expected `1`, got `abc`")
        );
        assert_eq!(
            compare(how, b"YES", b"yes"),
            wa("token 1: expected `YES`, got `yes`")
        );
        assert_eq!(
            compare(how, b"1", b"0x1"),
            wa("token 1: expected `1`, got `0x1`")
        );
        assert_eq!(
            compare(how, b"1", b"1,0"),
            wa("token 1: expected `1`, got `1,0`")
        );
    }

    #[test]
    fn float_compares_nan_and_infinity_as_testlib() {
        let how = float(1e-6, 1e-6);
        assert_eq!(compare(how, b"nan inf -inf", b"nan inf -inf"), Accepted);
        // Spelled another way, the same values.
        assert_eq!(
            compare(how, b"nan inf -inf", b"NaN Infinity -INF"),
            Accepted
        );
        assert_eq!(
            compare(how, b"nan", b"1"),
            wa("token 1: expected `nan`, got `1`")
        );
        assert_eq!(
            compare(how, b"inf", b"-inf"),
            wa("token 1: expected `inf`, got `-inf`")
        );
        assert_eq!(
            compare(how, b"1", b"inf"),
            wa("token 1: expected `1`, got `inf`")
        );
        // No slack grows with the numbers beyond their rounding: 1.4e-6 is over 1e-6.
        assert_eq!(
            compare(float(1e-6, 0.0), b"1000000000", b"1000000000.0000014"),
            wa("token 1: expected `1000000000`, got `1000000000.0000014` (difference 1.43051e-6 > abs 1e-6 and rel 0)")
        );
        assert_eq!(
            compare(float(1e-6, 0.0), b"1000000000", b"1000000000.000001"),
            Accepted
        );
        // 1e400 overflows f64 to infinity, as testlib's strtod reads it too.
        assert_eq!(compare(how, b"inf", b"1e400"), Accepted);
        assert_eq!(
            compare(float(1e300, 0.0), b"1", b"1e400"),
            wa("token 1: expected `1`, got `1e400`")
        );
    }

    #[test]
    fn float_rejects_a_difference_that_overflows() {
        assert_eq!(
            compare(float(1e-6, 1e-6), b"1e308", b"-1e308"),
            wa("token 1: expected `1e308`, got `-1e308` (difference inf > abs 1e-6 and rel 1e-6)")
        );
    }

    #[test]
    fn float_compares_bytes_that_are_not_utf8_as_strings() {
        let how = float(1.0, 0.0);
        assert_eq!(compare(how, b"\xff1", b"\xff1"), Accepted);
        assert_eq!(
            compare(how, b"1", b"\xff1"),
            wa("token 1: expected `1`, got `\\xff1`")
        );
    }

    #[test]
    fn float_counts_tokens_and_handles_empty_outputs() {
        let how = float(1e-6, 0.0);
        assert_eq!(compare(how, b"", b""), Accepted);
        assert_eq!(compare(how, b"1 2\r\n", b"1\n2"), Accepted);
        assert_eq!(
            compare(how, b"1 2", b""),
            wa("output ends after 0 tokens, expected 2")
        );
        assert_eq!(
            compare(how, b"", b"0"),
            wa("output has 1 token, expected 0")
        );
        assert_eq!(
            compare(how, b"1 2", b"1 2 3"),
            wa("output has 3 tokens, expected 2")
        );
    }

    // validate

    #[test]
    fn validate_accepts_finite_nonnegative_tolerances() {
        assert_eq!(validate(&Exact), Ok(()));
        assert_eq!(validate(&Lines), Ok(()));
        assert_eq!(validate(&Tokens), Ok(()));
        assert_eq!(validate(&float(1e-6, 1e-6)), Ok(()));
        assert_eq!(validate(&float(0.0, 0.0)), Ok(()));
        assert_eq!(validate(&float(1e9, 0.5)), Ok(()));
    }

    #[test]
    fn validate_names_the_bad_field() {
        assert_eq!(
            validate(&float(-1.0, 0.0)).map_err(|e| e.to_string()),
            Err("checker.abs: must be a finite number >= 0, got -1".to_string())
        );
        assert_eq!(
            validate(&float(0.0, f64::NAN)).map_err(|e| e.to_string()),
            Err("checker.rel: must be a finite number >= 0, got NaN".to_string())
        );
        assert_eq!(
            validate(&float(f64::INFINITY, 0.0)).map_err(|e| e.to_string()),
            Err("checker.abs: must be a finite number >= 0, got inf".to_string())
        );
        assert_eq!(
            validate(&float(0.0, -1e-9)).map_err(|e| e.to_string()),
            Err("checker.rel: must be a finite number >= 0, got -1e-9".to_string())
        );
        assert_eq!(
            validate(&float(-0.5, -2.0)).map_err(|e| e.to_string()),
            Err("checker.abs: must be a finite number >= 0, got -0.5".to_string()),
            "the first bad field"
        );
    }

    // serde

    #[test]
    fn comparisons_round_trip_through_json() {
        for (how, json) in [
            (Exact, r#""Exact""#),
            (Lines, r#""Lines""#),
            (Tokens, r#""Tokens""#),
            (float(1e-6, 0.0), r#"{"Float":{"abs":1e-6,"rel":0.0}}"#),
        ] {
            assert_eq!(serde_json::to_string(&how).ok().as_deref(), Some(json));
            assert_eq!(serde_json::from_str::<Comparison>(json).ok(), Some(how));
        }
    }
}
