//! What the end-to-end tests share: a real `remotemedia serve` on a free loopback port,
//! paths into the repository, files written for a test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_remotemedia");

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts `command` (the binary, or a wrapper that execs it) as `serve --capabilities
/// CAPS ARGS…` in `dir`, stderr to `stderr`, and waits for its `listening on ADDR`
/// line: the child, that address and the rest of its stdout.
pub fn spawn_serve(
    mut command: Command,
    dir: &Path,
    caps: &Path,
    args: &[&str],
    stderr: &Path,
) -> (Child, String, BufReader<ChildStdout>) {
    let mut child = command
        .current_dir(dir)
        .args(["serve", "--capabilities"])
        .arg(caps)
        .args(args)
        .env_remove("REMOTEMEDIA_CAPABILITIES")
        .env_remove("REMOTEMEDIA_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "serve did not start: {line:?}; stderr: {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            )
        })
        .to_string();
    (child, addr, stdout)
}

/// A `remotemedia serve` process on a free loopback port; killed when dropped.
pub struct Executor {
    pub name: String,
    pub addr: String,
    pub child: Child,
    pub stderr: PathBuf,
    _stdout: BufReader<ChildStdout>,
}

impl Executor {
    pub fn start(dir: &Path, name: &str, caps: &Path, extra: &[&str]) -> Executor {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, addr, stdout) = spawn_serve(Command::new(BIN), dir, caps, &args, &stderr);
        Executor {
            name: name.to_string(),
            addr,
            child,
            stderr,
            _stdout: stdout,
        }
    }

    /// `--executor NAME=ADDR`.
    pub fn flag(&self) -> String {
        format!("{}={}", self.name, self.addr)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot send SIG{sig} to {}", self.name);
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The command lines of README.md between `<!-- NAME …` and `<!-- /NAME -->` that start
/// with one of `programs` (comments and blank lines left out), in order.
pub fn readme_commands(name: &str, programs: &[&str]) -> Vec<String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {name}"))
        .unwrap_or_else(|| panic!("README.md has no `{name}` block"));
    let end = readme[start..]
        .find(&format!("<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("README.md's `{name}` block does not end"))
        + start;
    readme[start..end]
        .lines()
        .filter(|l| programs.iter().any(|p| l.starts_with(&format!("{p} "))))
        .map(str::to_string)
        .collect()
}

/// Runs each of `commands` as written by bash (with `pipefail`), in order, in `dir`
/// holding a link to the repository's `examples/`, with the binary under test first on
/// the `PATH`; panics with its stderr when one fails. Returns their stdouts.
pub fn run_as_written(dir: &Path, commands: &[String]) -> Vec<String> {
    std::os::unix::fs::symlink(repo("examples"), dir.join("examples")).unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    commands
        .iter()
        .map(|cmd| {
            let out = Command::new("bash")
                .args(["-o", "pipefail", "-c", cmd])
                .current_dir(dir)
                .env("PATH", &path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "`{cmd}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

/// Rate, channels and frames of a WAV file.
pub fn wav_spec(path: &Path) -> (u32, u16, u64) {
    let r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = r.spec();
    (s.sample_rate, s.channels, u64::from(r.duration()))
}
