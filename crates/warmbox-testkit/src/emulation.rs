//! Time budgets on a slow host, in one place.
//!
//! The cgroup v2 stage of CI (`.ci/v2-guest.sh`) runs the tests in a guest kernel under
//! qemu's emulator (TCG), where starting a process costs 100-200x what it costs here.
//! There `WARMBOX_TEST_TIME_SCALE` (a number, default 1) multiplies the budgets that only
//! give a job *enough time*: the profiles' default and maximum `cpu_ms`/`wall_ms`
//! ([`profiles_dir`], which then holds the first seven profiles only) and the budgets a
//! test passes through [`budget_ms`]. A limit that is the subject of a test (a sleep past
//! `wall_ms`, a loop past `cpu_ms`) is never scaled, and no assertion of isolation is
//! weakened: only how long a test waits changes.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The factor: `WARMBOX_TEST_TIME_SCALE`, or 1. A value that is not a number >= 1 is a
/// mistake of whoever runs the tests, said plainly.
pub fn scale() -> u64 {
    static SCALE: OnceLock<u64> = OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var("WARMBOX_TEST_TIME_SCALE") {
        Err(_) => 1,
        Ok(v) => match v.parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("WARMBOX_TEST_TIME_SCALE={v:?}: expected a whole number >= 1"),
        },
    })
}

/// `ms`, scaled: a budget that only has to be long enough.
pub fn budget_ms(ms: u64) -> u64 {
    ms * scale()
}

/// [`budget_ms`] as a duration.
pub fn budget(d: std::time::Duration) -> std::time::Duration {
    d * u32::try_from(scale()).expect("a small scale")
}

/// The profiles an emulated run keeps: the first seven. The emulated stage tests the
/// cgroup v2 host (`.ci/v2-guest-tests.sh`), not the languages; each profile more is two
/// more warm containers at every server's and harness's start, 10x as slow there.
const EMULATED_PROFILES: [&str; 7] = ["bash", "c", "cpp", "java", "javascript", "multi", "python3"];

/// The profiles directory the tests use: the repository's, or (scale above 1) a copy
/// under `target/` of the first seven whose `cpu_ms`/`wall_ms` defaults and maximums are
/// scaled, with the repository's seccomp policies linked in.
pub fn profiles_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source = crate::repo().join("profiles");
        if scale() == 1 {
            return source;
        }
        let mut kept: Vec<(std::ffi::OsString, String)> = Vec::new();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for name in EMULATED_PROFILES {
            let file = format!("{name}.toml");
            let text = std::fs::read_to_string(source.join(&file)).expect("read a profile");
            std::hash::Hash::hash(&text, &mut hasher);
            kept.push((file.into(), text));
        }
        // Named after what it holds: a copy made from other profiles (a cached target/)
        // is never taken for this one.
        let dir = crate::repo().join("target").join(format!(
            "emulated-profiles-x{}-{:016x}",
            scale(),
            std::hash::Hasher::finish(&hasher)
        ));
        if dir.is_dir() {
            return dir;
        }
        // Made beside and renamed into place: test binaries may race to make it.
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("make the scaled profiles directory");
        for (name, text) in kept {
            std::fs::write(tmp.join(name), scale_profile(&text)).expect("write a profile");
        }
        for entry in std::fs::read_dir(&source).expect("read profiles/") {
            let path = entry.expect("read profiles/").path();
            let name = path.file_name().expect("a file name");
            if path.extension().is_none_or(|e| e != "toml") {
                std::os::unix::fs::symlink(&path, tmp.join(name)).expect("link into profiles");
            }
        }
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another binary made it first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .clone()
}

/// `text` (a profile) with every `cpu_ms` and `wall_ms` of its limit tables scaled.
fn scale_profile(text: &str) -> String {
    let mut doc: toml::Table = toml::from_str(text).expect("a profile is TOML");
    let mut tables: Vec<&mut toml::Table> = Vec::new();
    let (limits, rest): (Vec<_>, Vec<_>) =
        doc.iter_mut().partition(|(k, _)| k.as_str() == "limits");
    for (_, v) in limits {
        if let Some(t) = v.as_table_mut() {
            tables.extend(t.iter_mut().filter_map(|(_, v)| v.as_table_mut()));
        }
    }
    for (k, v) in rest {
        if k == "compile_limits" {
            tables.extend(v.as_table_mut());
        }
    }
    for table in tables {
        for key in ["cpu_ms", "wall_ms"] {
            if let Some(toml::Value::Integer(n)) = table.get_mut(key) {
                *n *= i64::try_from(scale()).expect("a small scale");
            }
        }
    }
    toml::to_string(&doc).expect("a profile serializes")
}
