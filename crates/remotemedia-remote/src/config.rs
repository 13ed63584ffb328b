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
//! name = "gpu-2"
//! address = "https://gpu-2.example.com:50051"   # TLS
//! ca = "secrets/executors-ca.pem"      # trusted CA (else --executor-ca, else the system's)
//!
//! [[executors]]
//! name = "pods"                          # every address found is an executor `pods@IP:PORT`
//! discover = "dns+srv://_grpc._tcp.remotemedia-executor.ml.svc.cluster.local"
//! token_file = "secrets/pods.token"      # applies to each of them
//! tls = true                             # each over TLS, checked against its SRV target name
//! ```
//!
//! `--executor` and `REMOTEMEDIA_EXECUTORS` also take `dns+srv://NAME` and
//! `dns://NAME:PORT`, bare or as `POOL=URL` (see [`crate::discovery`]). An address
//! written `https://HOST:PORT` is reached over TLS (see [`crate::tls`]); `HOST:PORT` and
//! `http://HOST:PORT` are plaintext.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::client::{host_of, Endpoint};
use crate::discovery::{self, DiscoveryUrl};
use crate::error::RemoteError;
use crate::tls::{CaFile, ClientTls};

/// Environment variable listing executors, `NAME=HOST:PORT,…`.
pub const EXECUTORS_ENV: &str = "REMOTEMEDIA_EXECUTORS";
/// Environment variable naming the CA file trusted for TLS executors that have no `ca`
/// of their own (`--executor-ca` wins over it).
pub const EXECUTOR_CA_ENV: &str = "REMOTEMEDIA_EXECUTOR_CA";
/// The configuration file looked for in the working directory.
pub const CONFIG_FILE: &str = "remotemedia.toml";

/// One executor as configured.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Name in messages and `host` fields.
    pub name: String,
    /// `HOST:PORT` (empty when the executor is discovered). Written `https://HOST:PORT`
    /// (or `http://HOST:PORT`) in a file or flag; once parsed the scheme is in `tls`.
    #[serde(default)]
    pub address: String,
    /// `dns+srv://NAME` or `dns://NAME:PORT`: the executors are the addresses found.
    #[serde(default)]
    pub discover: Option<String>,
    /// Whether to connect with TLS: an `https://` address, or `tls = true` (the way to
    /// say it for a `discover` pool).
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA certificates its certificate must chain to (TLS only);
    /// without one, `--executor-ca` / `REMOTEMEDIA_EXECUTOR_CA`, else the system's
    /// trust store.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// File holding its bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Price per hour, for the `cost` policy.
    #[serde(default)]
    pub cost_per_hour: Option<f64>,
    /// The name its certificate must be valid for when that is not the host of
    /// `address` (an executor found through DNS: the name it was found under).
    #[serde(skip)]
    pub server_name: Option<String>,
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

/// `address` without its scheme, and whether the scheme asks for TLS:
/// `https://HOST:PORT` → `Some(true)`, `http://HOST:PORT` → `Some(false)`, `HOST:PORT`
/// → `None`. Any other scheme, or no `HOST:PORT` after it, is an error.
pub fn split_scheme(address: &str) -> Result<(&str, Option<bool>), String> {
    let (rest, tls) = match address.split_once("://") {
        None => (address, None),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, Some(true)),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, Some(false)),
        Some((scheme, _)) => {
            return Err(format!(
                "`{address}`: unknown scheme `{scheme}://`; expected https://HOST:PORT (TLS), \
                 http://HOST:PORT or HOST:PORT"
            ))
        }
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    check_address(rest)?;
    Ok((rest, tls))
}

/// Parses `NAME=HOST:PORT`, or a bare `HOST:PORT` named after itself (written
/// `https://HOST:PORT` for TLS; `http://` may stand before a plaintext one); or a discovery
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
            tls: false,
            ca: None,
            token_file: None,
            cost_per_hour: None,
            server_name: None,
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
    let (address, tls) = split_scheme(address)
        .map_err(|e| RemoteError::Config(format!("executor `{spec}`: {e}")))?;
    Ok(ExecutorConfig {
        name: name.to_string(),
        address: address.to_string(),
        discover: None,
        tls: tls == Some(true),
        ca: None,
        token_file: None,
        cost_per_hour: None,
        server_name: None,
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

/// Executors of a `remotemedia.toml`; relative token and CA files resolve against its
/// folder.
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
            None => {
                let (address, scheme) = split_scheme(&e.address).map_err(at)?;
                if scheme == Some(false) && e.tls {
                    return Err(at(format!(
                        "`tls = true` but the address `{}` says http://",
                        e.address
                    )));
                }
                e.tls |= scheme == Some(true);
                e.address = address.to_string();
            }
        }
        if e.ca.is_some() && !e.tls {
            return Err(at(
                "`ca` is for TLS: write the address as https://HOST:PORT \
                 (or set `tls = true` on a `discover` pool)"
                    .into(),
            ));
        }
        for file in [&mut e.token_file, &mut e.ca].into_iter().flatten() {
            if file.is_relative() {
                *file = base.join(&*file);
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

/// The CA file trusted for TLS executors without a `ca` of their own: `flag`
/// (`--executor-ca`), else `REMOTEMEDIA_EXECUTOR_CA`, else none (the system's trust
/// store). Errors name where the file was given, the file and what is wrong with it.
pub fn default_ca(flag: Option<&Path>) -> Result<Option<CaFile>, RemoteError> {
    if let Some(f) = flag {
        return CaFile::load(f, "--executor-ca").map(Some);
    }
    match std::env::var_os(EXECUTOR_CA_ENV) {
        Some(v) if !v.is_empty() => CaFile::load(Path::new(&v), EXECUTOR_CA_ENV).map(Some),
        _ => Ok(None),
    }
}

impl ExecutorConfig {
    /// The endpoint, with the token from its own token file or else `default_token`,
    /// and for TLS the CA of its own `ca` or else `default_ca`.
    pub fn endpoint(
        &self,
        default_token: Option<&str>,
        default_ca: Option<&CaFile>,
    ) -> Result<Endpoint, RemoteError> {
        let token = match &self.token_file {
            Some(f) => Some(read_token(f)?),
            None => default_token.map(String::from),
        };
        let tls = if self.tls {
            let ca = match &self.ca {
                Some(f) => Some(CaFile::load(f, &format!("executor `{}`: ca", self.name))?),
                None => default_ca.cloned(),
            };
            Some(ClientTls {
                server_name: self
                    .server_name
                    .clone()
                    .unwrap_or_else(|| host_of(&self.address).to_string()),
                ca,
            })
        } else {
            None
        };
        Ok(Endpoint {
            name: self.name.clone(),
            address: self.address.clone(),
            token,
            tls,
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
            all[1].endpoint(None, None).unwrap().token.as_deref(),
            Some("secret")
        );

        std::fs::write(&path, "[[executors]]\nname = \"a\"\naddres = \"x:1\"\n").unwrap();
        assert!(load_file(&path).unwrap_err().to_string().contains("addres"));
    }

    #[test]
    fn https_addresses_ask_for_tls() {
        let e = parse_executor("gpu=https://10.0.0.5:50051/").unwrap();
        assert_eq!((e.address.as_str(), e.tls), ("10.0.0.5:50051", true));
        let e = parse_executor("HTTPS://[::1]:7").unwrap();
        assert_eq!(
            (e.name.as_str(), e.address.as_str(), e.tls),
            ("HTTPS://[::1]:7", "[::1]:7", true)
        );
        let e = parse_executor("gpu=http://gpu-box:1").unwrap();
        assert_eq!((e.address.as_str(), e.tls), ("gpu-box:1", false));
        assert!(!parse_executor("gpu-box:1").unwrap().tls);
        let e = parse_executor("gpu=grpc://gpu-box:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown scheme `grpc://`"), "{e}");
        let e = parse_executor("gpu=https://gpu-box")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`gpu-box` is not HOST:PORT"), "{e}");

        // The certificate is checked against the host, without brackets.
        let tls = parse_executor("g=https://[::1]:7")
            .unwrap()
            .endpoint(None, None)
            .unwrap()
            .tls
            .unwrap();
        assert_eq!((tls.server_name.as_str(), tls.ca), ("::1", None));
        assert_eq!(
            parse_executor("g=127.0.0.1:7")
                .unwrap()
                .endpoint(None, None)
                .unwrap()
                .tls,
            None
        );
    }

    #[test]
    fn toml_entries_say_tls_and_their_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remotemedia.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            load_file(&path)
        };
        let all = load(
            "[[executors]]\nname = \"a\"\naddress = \"https://a.example:1\"\nca = \"ca.pem\"\n\
             [[executors]]\nname = \"b\"\naddress = \"b.example:2\"\ntls = true\n\
             [[executors]]\nname = \"pods\"\ndiscover = \"dns://pods:3\"\ntls = true\n\
             [[executors]]\nname = \"c\"\naddress = \"http://c.example:4\"\n",
        )
        .unwrap();
        let tls: Vec<(&str, &str, bool)> = all
            .iter()
            .map(|e| (e.name.as_str(), e.address.as_str(), e.tls))
            .collect();
        assert_eq!(
            tls,
            [
                ("a", "a.example:1", true),
                ("b", "b.example:2", true),
                ("pods", "", true),
                ("c", "c.example:4", false)
            ]
        );
        assert_eq!(
            all[0].ca.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
        // The CA file is read when the endpoint is made, and named when it is bad.
        let e = all[0].endpoint(None, None).unwrap_err().to_string();
        assert!(
            e.starts_with("executor `a`: ca: ") && e.contains("ca.pem: cannot read it"),
            "{e}"
        );

        let e = load("[[executors]]\nname = \"a\"\naddress = \"a:1\"\nca = \"ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("executor `a`: `ca` is for TLS: write the address as https://"),
            "{e}"
        );
        let e = load("[[executors]]\nname = \"a\"\naddress = \"http://a:1\"\ntls = true\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`tls = true` but the address `http://a:1` says http://"),
            "{e}"
        );
    }

    #[test]
    fn the_default_ca_comes_from_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = default_ca(Some(&missing)).unwrap_err().to_string();
        assert!(
            e.starts_with("--executor-ca: ") && e.contains("missing.pem"),
            "{e}"
        );
    }
}
