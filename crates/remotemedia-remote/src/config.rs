//! Which executors a client knows: `--executor NAME=HOST:PORT` (repeatable),
//! `REMOTEMEDIA_EXECUTORS` (comma-separated, same form) and `[[executors]]` tables in
//! a `remotemedia.toml`:
//!
//! ```toml
//! [[executors]]
//! name = "gpu-1"
//! address = "10.0.0.5:50051"
//! token_file = "secrets/gpu-1.token"   # relative to the toml file
//! cost_per_hour = 1.20
//!
//! [[executors]]
//! name = "pods"                          # every address found is an executor `pods@IP:PORT`
//! discover = "dns+srv://_grpc._tcp.remotemedia-executor.ml.svc.cluster.local"
//! token_file = "secrets/pods.token"      # applies to each of them
//! ```
//!
//! `--executor` and `REMOTEMEDIA_EXECUTORS` also take `dns+srv://NAME` and
//! `dns://NAME:PORT`, bare or as `POOL=URL` (see [`crate::discovery`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::client::Endpoint;
use crate::discovery::{self, DiscoveryUrl};
use crate::error::RemoteError;

/// Environment variable listing executors, `NAME=HOST:PORT,…`.
pub const EXECUTORS_ENV: &str = "REMOTEMEDIA_EXECUTORS";
/// The configuration file looked for in the working directory.
pub const CONFIG_FILE: &str = "remotemedia.toml";

/// One executor as configured.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Name in messages and `host` fields.
    pub name: String,
    /// `host:port` (empty when the executor is discovered).
    #[serde(default)]
    pub address: String,
    /// `dns+srv://NAME` or `dns://NAME:PORT`: the executors are the addresses found.
    #[serde(default)]
    pub discover: Option<String>,
    /// File holding its bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Price per hour, for the `cost` policy.
    #[serde(default)]
    pub cost_per_hour: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct FileConfig {
    #[serde(default)]
    executors: Vec<ExecutorConfig>,
}

fn check_address(address: &str) -> Result<(), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err(format!("`{address}` is not HOST:PORT")),
    }
}

/// Parses `NAME=HOST:PORT`, or a bare `HOST:PORT` named after itself; or a discovery
/// URL (`dns+srv://…`, `dns://…`), bare (the pool named after the DNS name) or as
/// `POOL=URL`.
pub fn parse_executor(spec: &str) -> Result<ExecutorConfig, RemoteError> {
    let spec = spec.trim();
    // A pool: `URL` (named after its DNS name) or `POOL=URL`.
    let pool = if discovery::is_discovery(spec) {
        Some((None, spec))
    } else {
        spec.split_once('=')
            .map(|(n, u)| (Some(n.trim()), u.trim()))
            .filter(|(_, u)| discovery::is_discovery(u))
    };
    if let Some((name, url)) = pool {
        let parsed =
            DiscoveryUrl::parse(url).map_err(|e| RemoteError::Config(format!("executor {e}")))?;
        if name == Some("") {
            return Err(RemoteError::Config(format!(
                "executor `{spec}`: the pool name is empty; expected POOL=dns+srv://NAME"
            )));
        }
        return Ok(ExecutorConfig {
            name: name.map_or_else(|| parsed.pool_name(), str::to_string),
            address: String::new(),
            discover: Some(url.to_string()),
            token_file: None,
            cost_per_hour: None,
        });
    }
    let (name, address) = match spec.split_once('=') {
        Some((n, a)) => (n.trim(), a.trim()),
        None => (spec, spec),
    };
    if name.is_empty() {
        return Err(RemoteError::Config(format!(
            "executor `{spec}`: the name is empty; expected NAME=HOST:PORT"
        )));
    }
    check_address(address).map_err(|e| RemoteError::Config(format!("executor `{spec}`: {e}")))?;
    Ok(ExecutorConfig {
        name: name.to_string(),
        address: address.to_string(),
        discover: None,
        token_file: None,
        cost_per_hour: None,
    })
}

/// Executors listed in `REMOTEMEDIA_EXECUTORS`.
pub fn from_env() -> Result<Vec<ExecutorConfig>, RemoteError> {
    match std::env::var(EXECUTORS_ENV) {
        Ok(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(parse_executor)
            .collect(),
        Err(_) => Ok(Vec::new()),
    }
}

/// Executors of a `remotemedia.toml`; relative token files resolve against its folder.
pub fn load_file(path: &Path) -> Result<Vec<ExecutorConfig>, RemoteError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RemoteError::Config(format!("cannot read {}: {e}", path.display())))?;
    let file: FileConfig = toml::from_str(&text)
        .map_err(|e| RemoteError::Config(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::with_capacity(file.executors.len());
    for mut e in file.executors {
        let at = |m: String| {
            RemoteError::Config(format!("{}: executor `{}`: {m}", path.display(), e.name))
        };
        match &e.discover {
            Some(url) if e.address.is_empty() => {
                DiscoveryUrl::parse(url).map_err(|m| at(m.to_string()))?;
            }
            Some(_) => return Err(at("give `address` or `discover`, not both".into())),
            None if e.address.is_empty() => {
                return Err(at(
                    "missing `address` (HOST:PORT) or `discover` (dns+srv://NAME, dns://NAME:PORT)"
                        .into(),
                ))
            }
            None => check_address(&e.address).map_err(at)?,
        }
        if let Some(t) = &e.token_file {
            if t.is_relative() {
                e.token_file = Some(base.join(t));
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Every configured executor: `cli` first, then the environment, then `file` (or
/// `remotemedia.toml` in the working directory when it exists). A name seen twice
/// keeps its first definition.
pub fn collect(cli: &[String], file: Option<&Path>) -> Result<Vec<ExecutorConfig>, RemoteError> {
    let mut all: Vec<ExecutorConfig> = cli
        .iter()
        .map(|s| parse_executor(s))
        .collect::<Result<_, _>>()?;
    all.extend(from_env()?);
    match file {
        Some(f) => all.extend(load_file(f)?),
        None => {
            let default = Path::new(CONFIG_FILE);
            if default.is_file() {
                all.extend(load_file(default)?);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    all.retain(|e| seen.insert(e.name.clone()));
    Ok(all)
}

/// Reads a token file (surrounding whitespace removed).
pub fn read_token(path: &Path) -> Result<String, RemoteError> {
    let t = std::fs::read_to_string(path).map_err(|e| {
        RemoteError::Config(format!("cannot read token file {}: {e}", path.display()))
    })?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(RemoteError::Config(format!(
            "token file {} is empty",
            path.display()
        )));
    }
    Ok(t)
}

impl ExecutorConfig {
    /// The endpoint, with the token from its own token file or else `default_token`.
    pub fn endpoint(&self, default_token: Option<&str>) -> Result<Endpoint, RemoteError> {
        let token = match &self.token_file {
            Some(f) => Some(read_token(f)?),
            None => default_token.map(String::from),
        };
        Ok(Endpoint {
            name: self.name.clone(),
            address: self.address.clone(),
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_sources() {
        let e = parse_executor("gpu-1=127.0.0.1:5000").unwrap();
        assert_eq!(
            (e.name.as_str(), e.address.as_str()),
            ("gpu-1", "127.0.0.1:5000")
        );
        assert_eq!(parse_executor("localhost:9").unwrap().name, "localhost:9");
        assert!(parse_executor("gpu=nowhere").is_err());
        assert!(parse_executor("=a:1").is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remotemedia.toml");
        std::fs::write(
            &path,
            "[[executors]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\ntoken_file = \"t\"\ncost_per_hour = 2.5\n\
             [[executors]]\nname = \"gpu-1\"\naddress = \"127.0.0.1:2\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("t"), "secret\n").unwrap();
        let all = collect(&["gpu-1=127.0.0.1:3".into()], Some(&path)).unwrap();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["gpu-1", "a"]);
        assert_eq!(all[0].address, "127.0.0.1:3", "the command line wins");
        assert_eq!(all[1].cost_per_hour, Some(2.5));
        assert_eq!(
            all[1].endpoint(None).unwrap().token.as_deref(),
            Some("secret")
        );

        std::fs::write(&path, "[[executors]]\nname = \"a\"\naddres = \"x:1\"\n").unwrap();
        assert!(load_file(&path).unwrap_err().to_string().contains("addres"));
    }
}
