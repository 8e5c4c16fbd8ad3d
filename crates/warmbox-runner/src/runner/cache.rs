//! The compile cache: identical compile inputs (profile, compile command, environment,
//! limits, files) reuse the first compile's result and artifacts instead of compiling
//! again. Bounded by the bytes it holds, least recently used first out.
//!
//! Only successful compiles are kept: a failure may come from load (a time limit) rather
//! than from the source, and a failing compile is cheap to repeat.

use std::sync::{Arc, Mutex};

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::profile::Limits;
use warmbox_sandbox::{BoxFile, StepOutcome};

/// What a compile's inputs hash to.
pub type Key = [u8; 32];

/// A successful compile: its step and the artifacts of `/box`.
#[derive(Debug)]
pub struct Compiled {
    /// The compile step as it ran (stdout and stderr raw).
    pub step: StepOutcome,
    /// The files the run starts with.
    pub files: Arc<Vec<BoxFile>>,
}

impl Compiled {
    fn bytes(&self) -> u64 {
        let files: usize = self
            .files
            .iter()
            .map(|f| f.content.len() + f.path.len())
            .sum();
        (files + self.step.stdout.len() + self.step.stderr.len()) as u64
    }
}

/// The cache.
#[derive(Debug)]
pub struct CompileCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

/// What the cache holds and how it served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Bytes held.
    pub bytes: u64,
    /// Lookups that found a compile.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

#[derive(Debug)]
struct Inner {
    entries: LruCache<Key, (Arc<Compiled>, u64)>,
    bytes: u64,
}

/// The inputs of one compile.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Profile name.
    pub profile: &'a str,
    /// Compile command.
    pub argv: &'a [String],
    /// Compile environment.
    pub env: &'a [String],
    /// Compile limits.
    pub limits: &'a Limits,
    /// Source files.
    pub files: &'a [BoxFile],
}

impl Inputs<'_> {
    /// The cache key: a SHA-256 over every input, each length-prefixed so that no two
    /// different inputs run together into the same bytes.
    pub fn key(&self) -> Key {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(self.profile.as_bytes());
        for list in [self.argv, self.env] {
            field(&(list.len() as u64).to_le_bytes());
            for s in list {
                field(s.as_bytes());
            }
        }
        let l = self.limits;
        for v in [
            l.cpu_ms,
            l.wall_ms,
            l.memory_mb,
            l.pids,
            l.output_bytes,
            l.file_size_bytes,
            l.disk_mb,
            l.stack_mb.unwrap_or(0),
        ] {
            field(&v.to_le_bytes());
        }
        let mut files: Vec<&BoxFile> = self.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        field(&(files.len() as u64).to_le_bytes());
        for f in files {
            field(f.path.as_bytes());
            field(&[u8::from(f.executable)]);
            field(&f.content);
        }
        h.finalize().into()
    }
}

impl CompileCache {
    /// A cache holding at most `max_bytes` of artifacts and output; 0 keeps nothing.
    pub fn new(max_bytes: u64) -> Self {
        CompileCache {
            max_bytes,
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The compile cached under `key`, now the most recently used.
    pub fn get(&self, key: &Key) -> Option<Arc<Compiled>> {
        use std::sync::atomic::Ordering;
        let found = self.lock().entries.get(key).map(|(c, _)| c.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Entries, bytes, hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        use std::sync::atomic::Ordering;
        let (entries, bytes) = self.len_bytes();
        CacheStats {
            entries,
            bytes,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Keeps `compiled` under `key`, dropping the least recently used entries to make room.
    /// An entry larger than the whole cache is not kept.
    pub fn put(&self, key: Key, compiled: Arc<Compiled>) {
        let size = compiled.bytes();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some((_, old)) = inner.entries.put(key, (compiled, size)) {
            inner.bytes -= old;
        }
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            match inner.entries.pop_lru() {
                Some((_, (_, s))) => inner.bytes -= s,
                None => break,
            }
        }
    }

    /// Entries and bytes held.
    pub fn len_bytes(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::StepStatus;

    const LIMITS: Limits = Limits {
        cpu_ms: 1,
        wall_ms: 2,
        memory_mb: 3,
        pids: 4,
        output_bytes: 5,
        file_size_bytes: 6,
        disk_mb: 7,
        stack_mb: None,
    };

    fn file(path: &str, content: &[u8]) -> BoxFile {
        BoxFile {
            path: path.into(),
            content: content.to_vec(),
            executable: false,
        }
    }

    fn compiled(bytes: usize) -> Arc<Compiled> {
        Arc::new(Compiled {
            step: StepOutcome {
                exit_code: Some(0),
                ..StepOutcome::blank(StepStatus::Ok)
            },
            files: Arc::new(vec![file("a", &vec![0; bytes - 1])]),
        })
    }

    fn key(files: &[BoxFile], argv: &[&str]) -> Key {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Inputs {
            profile: "c",
            argv: &argv,
            env: &[],
            limits: &LIMITS,
            files,
        }
        .key()
    }

    #[test]
    fn the_key_covers_every_input_and_not_the_file_order() {
        let ab = [file("a", b"1"), file("b", b"2")];
        let ba = [file("b", b"2"), file("a", b"1")];
        assert_eq!(key(&ab, &["cc"]), key(&ba, &["cc"]));
        assert_ne!(key(&ab, &["cc"]), key(&ab, &["cc", "-O2"]));
        assert_ne!(key(&ab, &["cc"]), key(&[file("a", b"1")], &["cc"]));
        assert_ne!(
            key(&ab, &["cc"]),
            key(&[file("a", b"1"), file("b", b"3")], &["cc"])
        );
        // Length prefixes: moving a byte between two fields changes the key.
        assert_ne!(key(&[], &["ab", "c"]), key(&[], &["a", "bc"]));
        let mut x = file("a", b"1");
        x.executable = true;
        assert_ne!(key(&[x], &[]), key(&[file("a", b"1")], &[]));
    }

    #[test]
    fn least_recently_used_goes_first_and_the_bound_holds() {
        let cache = CompileCache::new(300);
        cache.put([1; 32], compiled(100));
        cache.put([2; 32], compiled(100));
        cache.put([3; 32], compiled(100));
        assert_eq!(cache.len_bytes(), (3, 300));
        assert!(cache.get(&[1; 32]).is_some());
        cache.put([4; 32], compiled(100));
        assert_eq!(cache.len_bytes(), (3, 300));
        assert!(
            cache.get(&[2; 32]).is_none(),
            "2 was the least recently used"
        );
        assert!(cache.get(&[1; 32]).is_some());
        assert_eq!(
            cache.stats(),
            CacheStats {
                entries: 3,
                bytes: 300,
                hits: 2,
                misses: 1
            }
        );
        cache.put([5; 32], compiled(301));
        assert!(cache.get(&[5; 32]).is_none(), "larger than the whole cache");
        assert_eq!(cache.len_bytes(), (3, 300));
        let off = CompileCache::new(0);
        off.put([1; 32], compiled(1));
        assert_eq!(off.len_bytes(), (0, 0));
    }
}
