//! A private PostgreSQL server for the tests of the shared job store: its own data
//! directory under the temporary directory, on a free loopback port, with trust
//! authentication (user `postgres`, no password) and no fsync. Found in the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout); without it the tests that need
//! it [`skip`](crate::skip).
//!
//! PostgreSQL refuses to run as root: under root (the tests' usual case) the server runs
//! as the OS user `postgres`, which owns its directory.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The prefix of every instance's directory under the temporary directory, followed by
/// the pid of the test process that made it.
const DIR_PREFIX: &str = "warmbox-pg-";

/// A PostgreSQL server of the tests'.
#[derive(Debug)]
pub struct Instance {
    /// `bin` of the PostgreSQL installation.
    bin: PathBuf,
    /// The instance's directory: `data/`, the socket, `log`.
    dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    port: u16,
    /// uid and gid it runs as (None: as this process).
    owner: Option<(u32, u32)>,
}

impl Instance {
    /// A new server, started; None (after [`skip`](crate::skip)) when PostgreSQL is not
    /// installed or does not start.
    pub fn start() -> Option<Instance> {
        match Instance::try_start() {
            Ok(instance) => Some(instance),
            Err(why) => {
                crate::skip(&why);
                None
            }
        }
    }

    /// [`Instance::start`], saying why when it cannot.
    fn try_start() -> Result<Instance, String> {
        let bin = binaries().ok_or_else(|| {
            "the PostgreSQL tests need PostgreSQL's server binaries in \
             /usr/lib/postgresql/<version>/bin (apt-get install postgresql)"
                .to_string()
        })?;
        reap_stale();
        let owner = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .map_err(|e| format!("look up the OS user postgres: {e}"))?
                .ok_or("PostgreSQL refuses to run as root, and there is no OS user postgres")?;
            Some((user.uid.as_raw(), user.gid.as_raw()))
        } else {
            None
        };
        let dir = new_dir(owner)?;
        let mut instance = Instance {
            bin,
            dir,
            port: 0,
            owner,
        };
        // Dropped on an error below: its directory goes.
        let data = instance.data();
        instance.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        )?;
        // Another process may take the free port between the probe and the server's bind:
        // a few tries.
        let mut last = String::new();
        for _ in 0..5 {
            instance.port = free_port()?;
            instance.configure()?;
            match instance.pg_ctl_start() {
                Ok(()) => return Ok(instance),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the server's main process (its backends are its children), from its
    /// `postmaster.pid`; None when it is not running.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Creates database `db` empty, dropping it first if it exists (closing its
    /// connections). Panics when the server refuses.
    pub fn create_db(&self, db: &str) {
        assert!(
            !db.is_empty() && !db.contains('"') && !db.contains('\0'),
            "database name {db:?}"
        );
        self.psql(&[
            &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
            &format!("CREATE DATABASE \"{db}\""),
        ]);
    }

    /// Runs each of `commands` in `psql` as the superuser, in database `postgres`; panics
    /// when one fails.
    pub fn psql(&self, commands: &[&str]) {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-p", &self.port.to_string(), "-v", "ON_ERROR_STOP=1"])
        .env("PGCONNECT_TIMEOUT", "10");
        for c in commands {
            cmd.args(["-c", c]);
        }
        let out = output(&mut cmd).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "psql {commands:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (`pg_ctl stop -m fast`: its connections are cut); its data stays
    /// for [`Instance::start_again`]. Panics when it does not stop.
    pub fn stop(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the server again after [`Instance::stop`], on the same port, with the same
    /// data. Panics when it does not start.
    pub fn start_again(&self) {
        self.pg_ctl_start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// The data directory.
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes the server's settings for its port into its configuration.
    fn configure(&self) -> Result<(), String> {
        let path = self.data().join("postgresql.auto.conf");
        let settings = format!(
            "# warmbox-testkit\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = '{}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n",
            self.port,
            self.dir.display()
        );
        std::fs::write(&path, settings).map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// `pg_ctl start`, waiting until the server accepts connections on its port.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let data = self.data();
        let log = self.dir.join("log");
        let started = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        );
        if let Err(why) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{why}\nserver log:\n{log}"));
        }
        let addr = (Ipv4Addr::LOCALHOST, self.port).into();
        for _ in 0..200 {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "PostgreSQL started but does not accept connections on 127.0.0.1:{}",
            self.port
        ))
    }

    /// Runs the installation's program `name` with `args` as the server's owner; its
    /// failure with its output.
    fn run(&self, name: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let mut cmd = Command::new(self.bin.join(name));
        cmd.args(args).current_dir(&self.dir);
        if let Some((uid, gid)) = self.owner {
            // std drops the supplementary groups too when it changes the uid from root.
            cmd.uid(uid).gid(gid);
        }
        let out = output(&mut cmd)?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{name} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Stops the server (fast: its connections are cut) and removes its directory.
impl Drop for Instance {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl Instance {
    /// Stops the server at once (`immediate`) if it runs, and removes its directory.
    fn shut_down(&self) {
        if self.data().join("postmaster.pid").exists() {
            let data = self.data();
            let _ = self.run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "stop".as_ref(),
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server shared by the tests of this process, started at its first use and stopped
/// when the process exits; None (after [`skip`](crate::skip)) without PostgreSQL.
pub fn shared() -> Option<&'static Instance> {
    match SHARED.get_or_init(|| {
        let instance = Instance::try_start()?;
        // SAFETY: registers a function without arguments to run at exit; it only reads
        // the instance through its OnceLock, initialized by then.
        unsafe { libc::atexit(stop_the_shared_instance) };
        Ok(instance)
    }) {
        Ok(instance) => Some(instance),
        Err(why) => {
            crate::skip(why);
            None
        }
    }
}

static SHARED: OnceLock<Result<Instance, String>> = OnceLock::new();

/// At the test process's exit: the shared server stops and its directory goes (a static
/// is never dropped).
extern "C" fn stop_the_shared_instance() {
    if let Some(Ok(instance)) = SHARED.get() {
        instance.shut_down();
    }
}

/// A database name made of `name`: lower case, every other character than a letter or a
/// digit `_`, at most 63 bytes (PostgreSQL's limit).
pub fn db_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// Creates database `db` of the shared server unless this process did already; its URL.
/// None (after [`skip`](crate::skip)) without PostgreSQL.
pub fn ensure_db(db: &str) -> Option<String> {
    let instance = shared()?;
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    if created.insert(db.to_string()) {
        instance.create_db(db);
    }
    Some(instance.url(db))
}

/// Creates database `db` of the shared server afresh (dropped first); its URL. None (after
/// [`skip`](crate::skip)) without PostgreSQL.
pub fn fresh_db(db: &str) -> Option<String> {
    let instance = shared()?;
    let mut created = CREATED.lock().unwrap_or_else(|e| e.into_inner());
    instance.create_db(db);
    created.insert(db.to_string());
    Some(instance.url(db))
}

/// The databases of the shared server this process created.
static CREATED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The newest installation's `bin` that has the server, `initdb`, `pg_ctl` and `psql`.
fn binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| {
            ["initdb", "pg_ctl", "postgres", "psql"]
                .iter()
                .all(|p| bin.join(p).is_file())
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A new directory for an instance, owned by `owner` (mode 0700, as PostgreSQL wants).
fn new_dir(owner: Option<(u32, u32)>) -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(
            &dir,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| format!("chown {} to {uid}:{gid}: {e}", dir.display()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Stops the servers and removes the directories that test processes which are gone left
/// behind (killed before their exit handler ran).
fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let postmaster = entry.path().join("data").join("postmaster.pid");
        let server = std::fs::read_to_string(&postmaster).ok().and_then(|text| {
            text.lines()
                .next()
                .and_then(|l| l.trim().parse::<i32>().ok())
        });
        // Only if that pid is still a PostgreSQL server (it may have been reused since).
        if let Some(server) = server.filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        }) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(server),
                nix::sys::signal::Signal::SIGQUIT,
            );
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// A TCP port on 127.0.0.1 that nobody listens on now.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("the port of 127.0.0.1:0: {e}"))
}

/// `cmd`'s output (stdin closed); its failure to start as a message.
fn output(cmd: &mut Command) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names_are_lower_case_identifiers() {
        assert_eq!(db_name("warmbox-Test.jobs_1"), "warmbox_test_jobs_1");
        assert_eq!(db_name(&"x".repeat(100)).len(), 63);
    }
}
