//! The host probe of a profile: whether its runtime is installed here (its `requires`
//! paths), and which version (its `version_cmd`, run on the host with a timeout).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{Availability, Profile};

/// How long `version_cmd` may run before it is killed.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of each output stream of `version_cmd` is kept.
const VERSION_OUTPUT_CAP: usize = 64 * 1024;

/// Whether `profile` can run here: every `requires` path exists (following symlinks); when
/// it does, `version_cmd` is run on the host and its first line kept. A failing version
/// command is logged and leaves `version` unset; it does not make the profile unavailable.
pub fn check_availability(profile: &Profile) -> Availability {
    for path in &profile.requires {
        if let Err(err) = std::fs::metadata(path) {
            return Availability {
                available: false,
                reason: Some(format!(
                    "required path {} is missing: {err}{}",
                    path.display(),
                    if profile.packages.is_empty() {
                        String::new()
                    } else {
                        format!(" (apt-get install {})", profile.packages.join(" "))
                    }
                )),
                version: None,
            };
        }
    }
    let version = if profile.version_cmd.is_empty() {
        None
    } else {
        match run_version_cmd(&profile.version_cmd, &profile.env, VERSION_TIMEOUT) {
            Ok(version) => Some(version),
            Err(err) => {
                tracing::warn!(profile = %profile.name, error = %err, "version command failed");
                None
            }
        }
    };
    Availability {
        available: true,
        reason: None,
        version,
    }
}

/// Runs `cmd` on the host with the profile's environment only, in its own process group,
/// and returns the first non-empty line of stdout, else of stderr. The group is killed when
/// `timeout` passes.
fn run_version_cmd(
    cmd: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<String, String> {
    let Some((program, args)) = cmd.split_first() else {
        return Err("version_cmd is empty".to_string());
    };
    let shown = cmd.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|err| format!("{shown}: {err}"))?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                kill_group(&mut child);
                return Err(format!("{shown}: still running after {timeout:?}; killed"));
            }
            Err(err) => {
                kill_group(&mut child);
                return Err(format!("{shown}: wait: {err}"));
            }
        }
    };
    if !status.success() {
        return Err(format!("{shown}: {status}"));
    }
    // A daemonized grandchild could hold the pipes open: wait for the output only briefly.
    let grace = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let stderr = stderr.recv_timeout(grace).unwrap_or_default();
    first_line(&stdout)
        .or_else(|| first_line(&stderr))
        .ok_or_else(|| format!("{shown}: printed nothing"))
}

/// Kills the child's process group (it is the group leader, not yet reaped, so the group id
/// cannot have been reused) and reaps the child.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a thread, keeping the first [`VERSION_OUTPUT_CAP`] bytes.
fn read_in_background<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = VERSION_OUTPUT_CAP.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(kept);
        });
    }
    rx
}

/// First line of `bytes` with something other than whitespace in it, trimmed.
fn first_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::toml_with;
    use crate::profile::LoadedProfile;

    #[test]
    fn version_is_first_non_empty_line_of_stdout_else_stderr() {
        let env = BTreeMap::new();
        let sh = |script: &str| {
            run_version_cmd(
                &["/bin/sh".to_string(), "-c".to_string(), script.to_string()],
                &env,
                Duration::from_secs(5),
            )
        };
        assert_eq!(sh("printf '\\n  \\nv1.2 \\nv9\\n'"), Ok("v1.2".to_string()));
        assert_eq!(sh("echo 'java 17' >&2"), Ok("java 17".to_string()));
        assert_eq!(sh("echo out; echo err >&2"), Ok("out".to_string()));
        assert!(sh("echo oops; exit 3").is_err_and(|e| e.contains("exit status: 3")));
        assert!(sh("true").is_err_and(|e| e.ends_with("printed nothing")));
    }

    #[test]
    fn version_cmd_only_sees_the_profile_env() {
        let env = BTreeMap::from([("WARMBOX_T".to_string(), "yes".to_string())]);
        let cmd = ["/bin/sh", "-c", "echo ${WARMBOX_T}-${HOME:-unset}"].map(String::from);
        assert_eq!(
            run_version_cmd(&cmd, &env, Duration::from_secs(5)),
            Ok("yes-unset".to_string())
        );
    }

    #[test]
    fn hanging_version_cmd_is_killed_at_the_timeout() {
        let cmd = ["/bin/sh", "-c", "sleep 30 & sleep 30"].map(String::from);
        let started = Instant::now();
        let result = run_version_cmd(&cmd, &BTreeMap::new(), Duration::from_millis(200));
        let took = started.elapsed();
        assert!(result.is_err_and(|e| e.contains("still running after 200ms")));
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    #[test]
    fn failing_version_cmd_leaves_the_profile_available() {
        let text = toml_with("t", "version_cmd = [\"/bin/sh\", \"-c\", \"exit 1\"]");
        let profile = Profile::from_toml(&text).expect("parses");
        let loaded = LoadedProfile::new(profile);
        assert!(loaded.availability.available);
        assert_eq!(loaded.availability.version, None);

        let text = toml_with("t", "version_cmd = [\"/nonexistent/warmbox-version\"]");
        let loaded = LoadedProfile::new(Profile::from_toml(&text).expect("parses"));
        assert!(loaded.availability.available);
        assert_eq!(loaded.availability.version, None);
    }
}
