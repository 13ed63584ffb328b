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

/// A one-node manifest in `dir` running the class `Node` of `source` in the Python host
/// `runtime` (`cpython`, `process`, `rustpython`, `auto`).
pub fn python_node_manifest(dir: &Path, runtime: &str, source: &str) -> PathBuf {
    let params = serde_json::json!({"class": "Node", "runtime": runtime, "source": source});
    let m = serde_json::json!({
        "version": "v1",
        "metadata": {"name": "py"},
        "nodes": [{"id": "py", "node_type": "PythonNode", "params": params}],
        "connections": [],
    });
    write(dir, &format!("{runtime}.json"), &m.to_string())
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
    readme_section(name)
        .lines()
        .filter(|l| programs.iter().any(|p| l.starts_with(&format!("{p} "))))
        .map(str::to_string)
        .collect()
}

/// README.md between `<!-- NAME …` and `<!-- /NAME -->`.
fn readme_section(name: &str) -> String {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {name}"))
        .unwrap_or_else(|| panic!("README.md has no `{name}` block"));
    let end = readme[start..]
        .find(&format!("<!-- /{name} -->"))
        .unwrap_or_else(|| panic!("README.md's `{name}` block does not end"))
        + start;
    readme[start..end].to_string()
}

/// Runs each of `commands` as written by bash (with `pipefail`), in order, in `dir`
/// holding a link to the repository's `examples/`, with [`readme_bin`] first on the
/// `PATH`; panics with its stderr when one fails. Returns their stdouts.
pub fn run_as_written(dir: &Path, commands: &[String]) -> Vec<String> {
    std::os::unix::fs::symlink(repo("examples"), dir.join("examples")).unwrap();
    let path = readme_path();
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

/// The `remotemedia` the README's commands run: `REMOTEMEDIA_README_BIN` when set (CI
/// sets it to a binary put in place by `cargo install`, as the README says to), else the
/// binary under test.
pub fn readme_bin() -> PathBuf {
    match std::env::var_os("REMOTEMEDIA_README_BIN") {
        Some(bin) => {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file() && bin.file_name() == Some("remotemedia".as_ref()),
                "REMOTEMEDIA_README_BIN={} is not a `remotemedia` binary",
                bin.display()
            );
            bin
        }
        None => PathBuf::from(BIN),
    }
}

/// `PATH` with the directory of [`readme_bin`] first.
pub fn readme_path() -> String {
    format!(
        "{}:{}",
        readme_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The text of the fenced code block of README.md between `<!-- NAME …` and
/// `<!-- /NAME -->`.
pub fn readme_block(name: &str) -> String {
    let section = readme_section(name);
    let open = section.find("```").expect("a fenced block");
    let body = &section[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.rfind("```").expect("the block's closing fence")].to_string()
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a README block as one `bash -euo pipefail` script in `dir` (which gets a link
/// to `examples/`), with [`readme_bin`] first on the `PATH`. The block's ports 50051
/// and 50052 are moved to free ones, so that tests running side by side do not meet;
/// nothing else is changed. Whatever the script leaves running is killed with it; a
/// script still running after `limit` is killed and fails the test. Panics unless it
/// exits 0; returns its stdout and stderr.
pub fn run_script(dir: &Path, block: &str, limit: std::time::Duration) -> (String, String) {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let script = block
        .replace("50051", &free_port().to_string())
        .replace("50052", &free_port().to_string());
    std::os::unix::fs::symlink(repo("examples"), dir.join("examples")).unwrap();
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir)
        .env("PATH", readme_path())
        .env_remove("REMOTEMEDIA_EXECUTORS")
        .env_remove("REMOTEMEDIA_CAPABILITIES")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: what the script starts in the background goes with it.
        .process_group(0)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let status = status.unwrap_or_else(|| panic!("the script hung; stderr:\n{stderr}"));
    assert!(status.success(), "the script failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Rate, channels and frames of a WAV file.
pub fn wav_spec(path: &Path) -> (u32, u16, u64) {
    let r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = r.spec();
    (s.sample_rate, s.channels, u64::from(r.duration()))
}
