//! Where `ringcast serve` settings come from: flags, `RINGCAST_*` environment
//! variables, a TOML file (`--config PATH`), and defaults — in that order of precedence.
//!
//! Every flag of `serve` is also a key of the file, spelled as the flag without its
//! dashes prefix, inside the section of the layer it configures ([`SECTIONS`]), and an
//! environment variable `RINGCAST_` + the flag in upper snake case
//! (`--max-queue-bytes` → `[queue] max-queue-bytes`, `RINGCAST_MAX_QUEUE_BYTES`).
//!
//! One parser reads all three: clap reads flags and (through its `env` support) the
//! variables, and a file value is handed to clap as if it were a flag, but only for a
//! setting that neither a flag nor a variable gave. So a value means the same, and is
//! checked by the same code, wherever it is written. The file is read with serde and the
//! `toml` crate; an unknown section or key, a key in the wrong section, a value of the
//! wrong shape or one the flag's parser refuses is an error naming the file and the key.
//!
//! Checks made on the settings together after parsing ([`Parsed::check`]) name the
//! file and key, or the variable, too.
//!
//! `serve --print-config` prints the effective settings in the file's format (secrets
//! and the broker URL's password are not printed), so `ringcast serve --print-config > ringcast.toml` starts a file.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use super::{Cli, Command, ServeArgs};

/// The sections of the config file and the `serve` flags each holds (a flag's long
/// name is its key). Every flag of `serve` but `--config` and `--print-config` is in
/// exactly one section (a unit test checks it).
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "addr",
            "threads",
            "no-pin",
            "backend",
            "backlog",
            "max-connections",
            "shutdown-timeout",
        ],
    ),
    (
        "conn",
        &[
            "max-message-size",
            "max-head-bytes",
            "handshake-timeout",
            "close-timeout",
            "ping-interval",
            "pong-timeout",
            "sse-retry",
        ],
    ),
    (
        "queue",
        &["max-queue-bytes", "slow-policy", "socket-send-buffer"],
    ),
    (
        "driver",
        &["uring-entries", "recv-buffers", "recv-buffer-size"],
    ),
    ("history", &["history", "history-bytes", "history-ttl"]),
    ("deflate", &["deflate", "deflate-min-size"]),
    (
        "sessions",
        &[
            "session-grace",
            "session-buffer-bytes",
            "session-max-detached",
        ],
    ),
    (
        "access",
        &[
            "allowed-origin",
            "require-origin",
            "publish-token",
            "publish-token-file",
            "subscribe-token",
            "subscribe-token-file",
        ],
    ),
    ("tls", &["tls-cert", "tls-key"]),
    ("rooms", &["exclude-sender"]),
    (
        "broker",
        &[
            "broker",
            "broker-prefix",
            "node-id",
            "broker-linger",
            "broker-queue",
        ],
    ),
    (
        "metrics",
        &["metrics-addr", "metrics-prefix", "metrics-label"],
    ),
    (
        "log",
        &["log-level", "log-format", "log-peer-addr", "otlp-endpoint"],
    ),
];

/// Flags whose values are secrets: never printed by `--print-config`. (A `--broker`
/// URL is printed with its password, if any, replaced by `***`.)
const SECRETS: &[&str] = &["publish-token", "subscribe-token"];

/// Flags that are about reading the configuration, not part of it.
const META: &[&str] = &["config", "print-config"];

/// The environment variable that sets `flag` (`max-queue-bytes` →
/// `RINGCAST_MAX_QUEUE_BYTES`).
pub fn env_name(flag: &str) -> String {
    format!("RINGCAST_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// The section a flag's key lives in.
fn section_of(flag: &str) -> Option<&'static str> {
    SECTIONS
        .iter()
        .find(|(_, keys)| keys.contains(&flag))
        .map(|(s, _)| *s)
}

/// The clap command of the binary, with every `serve` flag also readable from its
/// environment variable.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", |serve| {
        serve.mut_args(|arg| match arg.get_long().and_then(static_env_name) {
            Some(var) => arg.env(var),
            None => arg,
        })
    })
}

/// [`env_name`] with the `'static` lifetime clap wants: each name is built once per
/// process (a few dozen short strings).
fn static_env_name(flag: &str) -> Option<&'static str> {
    static NAMES: std::sync::OnceLock<Vec<(&'static str, &'static str)>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        SECTIONS
            .iter()
            .flat_map(|(_, keys)| keys.iter())
            .chain(META)
            .map(|flag| (*flag, &*Box::leak(env_name(flag).into_boxed_str())))
            .collect()
    });
    names.iter().find(|(f, _)| *f == flag).map(|(_, v)| *v)
}

/// Parse the command line (`argv[0]` included) with the environment and, when
/// `--config` (or `RINGCAST_CONFIG`) names one, the config file.
///
/// Errors: clap's own (usage, `--help`, `--version`: print them with
/// [`clap::Error::exit`]), and a [`clap::Error`] of kind `ValueValidation` or
/// `UnknownArgument` whose message names the file and the key for problems in the file.
pub fn parse<I, T>(argv: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let matches = command()
        .try_get_matches_from(&argv)
        .map_err(|e| blame(e, &argv, None))?;
    let Some(("serve", serve)) = matches.subcommand() else {
        return Parsed::new(matches, argv, None);
    };
    let Some(path) = serve.get_one::<std::path::PathBuf>("config").cloned() else {
        return Parsed::new(matches, argv, None);
    };
    let file = FileSettings::load(&path).map_err(|e| invalid(&e))?;
    let (extra, origin) = file.as_flags(serve).map_err(|e| invalid(&e))?;
    let from_file = FromFile { path, origin };
    let mut all = argv.clone();
    all.extend(extra);
    let matches = command()
        .try_get_matches_from(&all)
        .map_err(|e| blame(e, &argv, Some(&from_file)))?;
    Parsed::new(matches, argv, Some(from_file))
}

/// The settings a config file gave: its path, and (flag, `[section] key`) for each
/// flag it added (only settings no flag or variable gave).
#[derive(Debug)]
struct FromFile {
    path: std::path::PathBuf,
    origin: Vec<(String, String)>,
}

/// Where the value of `flag` came from, as a user should be told: the file and key
/// (`PATH: [section] key`), the variable (`RINGCAST_X`), or `None` for the command line.
fn source_name(flag: &str, argv: &[OsString], file: Option<&FromFile>) -> Option<String> {
    let on_command_line = argv.iter().any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{flag}") || a.starts_with(&format!("--{flag}="))
    });
    if on_command_line {
        return None;
    }
    if let Some((_, at)) = file.and_then(|f| f.origin.iter().find(|(k, _)| k == flag)) {
        let path = &file.expect("found in it").path;
        return Some(format!("{}: {at}", path.display()));
    }
    let var = env_name(flag);
    std::env::var_os(&var).map(|_| var)
}

/// The first `--flag` a message names that is a `serve` key (matched whole, so
/// `--history-bytes` is not `--history`).
fn flag_in(message: &str) -> Option<&'static str> {
    message.match_indices("--").find_map(|(i, _)| {
        let name: String = message[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        SECTIONS
            .iter()
            .flat_map(|(_, keys)| keys.iter())
            .find(|k| **k == name)
            .copied()
    })
}

/// Rewrite `message`, which names `--flag`, to name where the value came from: the
/// file and key or the variable. Unchanged when the flag was on the command line.
fn attribute(message: &str, argv: &[OsString], file: Option<&FromFile>) -> String {
    let Some(flag) = flag_in(message) else {
        return message.to_string();
    };
    match source_name(flag, argv, file) {
        Some(var) if var.starts_with("RINGCAST_") => replace_flag(message, flag, &var),
        Some(source) => format!("{source}: {}", replace_flag(message, flag, flag)),
        None => message.to_string(),
    }
}

/// `message` with every whole `--flag` (and clap's ` <VALUE>` after it) replaced by `to`.
fn replace_flag(message: &str, flag: &str, to: &str) -> String {
    let needle = format!("--{flag}");
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find(&needle) {
        let after = &rest[i + needle.len()..];
        let whole = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-');
        out += &rest[..i];
        if whole {
            out += to;
            rest = match after.strip_prefix(" <") {
                Some(tail) => tail.split_once('>').map_or(after, |(_, t)| t),
                None => after,
            };
        } else {
            out += &needle;
            rest = after;
        }
    }
    out + rest
}

/// Flags that need one another (clap's `requires`): a file or variable giving one
/// without the other is blamed on the one it gave.
const PAIRS: &[(&str, &str)] = &[("tls-cert", "tls-key"), ("tls-key", "tls-cert")];

/// A clap error about a value from a file or variable, reworded to name the file and
/// key or the variable (clap names the flag only).
fn blame(e: clap::Error, argv: &[OsString], file: Option<&FromFile>) -> clap::Error {
    use clap::error::{ContextKind, ErrorKind};
    let Some(arg) = e.get(ContextKind::InvalidArg).map(|a| a.to_string()) else {
        return e;
    };
    let message = first_line(&e.to_string());
    if e.kind() == ErrorKind::MissingRequiredArgument {
        let culprit = PAIRS.iter().find(|(given, missing)| {
            flag_in(&arg) == Some(*missing) && source_name(given, argv, file).is_some()
        });
        return match culprit {
            Some((given, missing)) => {
                let source = source_name(given, argv, file).expect("checked");
                let at = match source.starts_with("RINGCAST_") {
                    true => source,
                    false => format!("{source}: {given}"),
                };
                invalid(&format!("{at} needs {missing} too (give both or neither)"))
            }
            None => e,
        };
    }
    match flag_in(&arg).and_then(|flag| source_name(flag, argv, file)) {
        Some(_) => invalid(&attribute(&message, argv, file)),
        None => e,
    }
}

/// A parsed command line: the command, and what it was parsed from (for
/// [`Parsed::print_config`]).
#[derive(Debug)]
pub struct Parsed {
    pub cli: Cli,
    matches: ArgMatches,
    /// The command line as given (to tell a flag from a variable or the file).
    argv: Vec<OsString>,
    file: Option<FromFile>,
}

impl Parsed {
    fn new(
        matches: ArgMatches,
        argv: Vec<OsString>,
        file: Option<FromFile>,
    ) -> Result<Self, clap::Error> {
        Ok(Parsed {
            cli: Cli::from_arg_matches(&matches)?,
            matches,
            argv,
            file,
        })
    }

    /// The checks made on the settings together before the server starts
    /// ([`crate::config::Config::validate`], [`ServeArgs::check`]), with the message
    /// naming the file and key, or the variable, the faulty value came from (the flag
    /// when it was given as one). `serve --print-config` runs them too.
    pub fn check(&self) -> Result<(), String> {
        let Command::Serve(args) = &self.cli.command;
        let problem = args
            .to_config()
            .validate()
            .map_err(|e| e.0)
            .and_then(|()| args.check());
        problem.map_err(|m| {
            format!(
                "invalid configuration: {}",
                attribute(&m, &self.argv, self.file.as_ref())
            )
        })
    }

    /// True for `serve --print-config`.
    pub fn wants_print_config(&self) -> bool {
        let Command::Serve(args) = &self.cli.command;
        args.print_config
    }

    /// `serve --print-config`: the effective settings in the config file's format
    /// (TOML). `threads` is printed resolved; unset optional settings are printed as
    /// comments; secrets are not printed. `None` for another command.
    pub fn print_config(&self) -> Option<String> {
        let Command::Serve(args) = &self.cli.command;
        let serve = self.matches.subcommand_matches("serve")?;
        Some(render(args, serve))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

fn invalid(message: &str) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
}

/// A config file as read: section → key → value.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
struct FileSettings {
    sections: BTreeMap<String, toml::Value>,
    #[serde(skip)]
    path: String,
}

impl FileSettings {
    fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        let mut file: FileSettings =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        file.path = path.display().to_string();
        Ok(file)
    }

    /// The file's settings as extra flags, for the settings no flag or variable gave,
    /// plus (flag, `[section] key`) for each flag added, to name the culprit later.
    #[allow(clippy::type_complexity)]
    fn as_flags(
        &self,
        given: &ArgMatches,
    ) -> Result<(Vec<OsString>, Vec<(String, String)>), String> {
        let serve = command()
            .find_subcommand("serve")
            .cloned()
            .expect("serve exists");
        let mut flags = Vec::new();
        let mut origin = Vec::new();
        let file = &self.path;
        for (section, table) in &self.sections {
            let Some((_, keys)) = SECTIONS.iter().find(|(s, _)| s == section) else {
                let hint = match section_of(section) {
                    Some(right) => format!(" (`{section}` is a key of [{right}])"),
                    None => format!(
                        " (sections: {})",
                        SECTIONS
                            .iter()
                            .map(|(s, _)| *s)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(format!("{file}: unknown section [{section}]{hint}"));
            };
            let toml::Value::Table(table) = table else {
                return Err(format!(
                    "{file}: `{section}` must be a section ([{section}]), not a value"
                ));
            };
            for (key, value) in table {
                let at = format!("[{section}] {key}");
                if !keys.contains(&key.as_str()) {
                    let hint = match section_of(key) {
                        Some(right) => format!("; it belongs in [{right}]"),
                        None => format!("; keys of [{section}]: {}", keys.join(", ")),
                    };
                    return Err(format!("{file}: unknown key {at}{hint}"));
                }
                let arg = serve
                    .get_arguments()
                    .find(|a| a.get_long() == Some(key))
                    .expect("every key in SECTIONS is a flag of serve");
                let id = arg.get_id().as_str();
                if matches!(
                    given.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                ) {
                    continue; // a flag or a variable wins over the file
                }
                let flag_like = matches!(arg.get_action(), ArgAction::SetTrue);
                let many = matches!(arg.get_action(), ArgAction::Append);
                let values = match value {
                    toml::Value::Array(items) if many => items.iter().collect(),
                    toml::Value::Array(_) => {
                        return Err(format!("{file}: {at} takes one value, not a list"))
                    }
                    single => vec![single],
                };
                for value in values {
                    let text = match value {
                        toml::Value::String(s) => s.clone(),
                        toml::Value::Integer(i) => i.to_string(),
                        toml::Value::Float(f) => f.to_string(),
                        toml::Value::Boolean(b) if flag_like => {
                            if *b {
                                flags.push(format!("--{key}").into());
                                origin.push((key.clone(), at.clone()));
                            }
                            continue;
                        }
                        toml::Value::Boolean(b) => b.to_string(),
                        other => {
                            return Err(format!(
                                "{file}: {at} must be a string, number or boolean, not {}",
                                other.type_str()
                            ))
                        }
                    };
                    if flag_like {
                        return Err(format!("{file}: {at} must be true or false"));
                    }
                    flags.push(format!("--{key}={text}").into());
                    origin.push((key.clone(), at.clone()));
                }
            }
        }
        Ok((flags, origin))
    }
}

fn render(args: &ServeArgs, matches: &ArgMatches) -> String {
    let serve = command()
        .find_subcommand("serve")
        .cloned()
        .expect("serve exists");
    let mut out = String::from(
        "# ringcast serve: effective configuration (flags > RINGCAST_* > file > defaults)\n",
    );
    for (section, keys) in SECTIONS {
        out += &format!("\n[{section}]\n");
        for key in *keys {
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(key))
                .expect("every key in SECTIONS is a flag of serve");
            let id = arg.get_id().as_str();
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                let on = matches.get_flag(id);
                out += &format!("{key} = {on}\n");
                continue;
            }
            let raw: Vec<String> = matches
                .get_raw(id)
                .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            if *key == "threads" && raw.is_empty() {
                out += &format!("threads = {}\n", args.to_config().threads);
            } else if raw.is_empty() {
                out += &format!("# {key} = (unset)\n");
            } else if SECRETS.contains(key) {
                out += &format!("# {key} = (set; not printed)\n");
            } else if *key == "broker" {
                let (url, redacted) = super::redact_broker_url(&raw[0]);
                if redacted {
                    out += "# the password is not printed: put it in place of *** \
                            (or give --broker / RINGCAST_BROKER)\n";
                }
                out += &format!("{key} = {}\n", toml_scalar(&url));
            } else if matches!(arg.get_action(), ArgAction::Append) {
                let items: Vec<String> = raw.iter().map(|v| toml_scalar(v)).collect();
                out += &format!("{key} = [{}]\n", items.join(", "));
            } else {
                out += &format!("{key} = {}\n", toml_scalar(&raw[0]));
            }
        }
    }
    out
}

/// A raw flag value as a TOML scalar: integers as numbers, everything else a string.
fn toml_scalar(raw: &str) -> String {
    match raw.parse::<i64>() {
        Ok(i) => i.to_string(),
        Err(_) => toml::Value::String(raw.to_string()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(argv: &[&str]) -> Result<ServeArgs, String> {
        let Command::Serve(args) = parse(argv).map_err(|e| e.to_string())?.cli.command;
        Ok(args)
    }

    fn printed(argv: &[&str]) -> String {
        parse(argv).unwrap().print_config().unwrap()
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "ringcast-config-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn every_serve_flag_is_in_exactly_one_section() {
        let serve = command().find_subcommand("serve").cloned().unwrap();
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if META.contains(&long) || long == "help" {
                continue;
            }
            let homes = SECTIONS.iter().filter(|(_, k)| k.contains(&long)).count();
            assert_eq!(homes, 1, "--{long} must be in exactly one section");
        }
        for (section, keys) in SECTIONS {
            for key in *keys {
                assert!(
                    serve.get_arguments().any(|a| a.get_long() == Some(key)),
                    "[{section}] {key} is not a flag"
                );
            }
        }
    }

    #[test]
    fn a_file_sets_what_no_flag_sets_and_a_flag_wins() {
        let path = write(
            "layers",
            "[queue]\nmax-queue-bytes = \"2MiB\"\nslow-policy = \"drop-oldest\"\n\
             [conn]\nping-interval = 7\n[server]\nno-pin = true\n\
             [access]\nallowed-origin = [\"https://a.example\", \"https://b.example\"]\n",
        );
        let p = path.to_str().unwrap();
        let args = parse_args(&["ringcast", "serve", "--config", p]).unwrap();
        let cfg = args.to_config();
        assert_eq!(cfg.shard.queue.max_bytes, 2 << 20);
        assert_eq!(cfg.shard.queue.policy, crate::conn::SlowPolicy::DropOldest);
        assert_eq!(
            cfg.shard.timeouts.ping_interval,
            std::time::Duration::from_secs(7)
        );
        assert!(!cfg.pin_threads);
        assert_eq!(cfg.shard.origins.allowed.len(), 2);
        let args = parse_args(&[
            "ringcast",
            "serve",
            "--config",
            p,
            "--max-queue-bytes",
            "3MiB",
            "--allowed-origin",
            "https://c.example",
        ])
        .unwrap();
        let cfg = args.to_config();
        assert_eq!(cfg.shard.queue.max_bytes, 3 << 20, "the flag wins");
        assert_eq!(
            cfg.shard.origins.allowed.len(),
            1,
            "the flag's list replaces the file's"
        );
        assert_eq!(cfg.shard.queue.policy, crate::conn::SlowPolicy::DropOldest);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn session_max_detached_is_a_sessions_key_a_flag_and_printed() {
        let path = write("sessions", "[sessions]\nsession-max-detached = 3\n");
        let p = path.to_str().unwrap();
        let args = parse_args(&["ringcast", "serve", "--config", p]).unwrap();
        assert_eq!(args.to_config().shard.sessions.max_detached, 3);
        let printed = printed(&["ringcast", "serve", "--config", p]);
        assert!(printed.contains("session-max-detached = 3\n"), "{printed}");
        let args = parse_args(&["ringcast", "serve", "--session-max-detached", "7"]).unwrap();
        assert_eq!(args.to_config().shard.sessions.max_detached, 7);
        let default = parse_args(&["ringcast", "serve"]).unwrap().to_config();
        assert_eq!(default.shard.sessions.max_detached, 10_000);
        assert_eq!(
            env_name("session-max-detached"),
            "RINGCAST_SESSION_MAX_DETACHED"
        );
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file_and_the_key() {
        let cases = [
            (
                "[queue]\nmax-queu-bytes = 1\n",
                "unknown key [queue] max-queu-bytes",
            ),
            ("[conn]\nmax-queue-bytes = 1\n", "it belongs in [queue]"),
            ("[nope]\nx = 1\n", "unknown section [nope]"),
            (
                "addr = \"x\"\n",
                "unknown section [addr] (`addr` is a key of [server])",
            ),
            (
                "[queue]\nmax-queue-bytes = \"lots\"\n",
                "[queue] max-queue-bytes",
            ),
            (
                "[server]\nno-pin = \"yes\"\n",
                "[server] no-pin must be true or false",
            ),
            (
                "[server]\naddr = [\"a\"]\n",
                "[server] addr takes one value",
            ),
            ("[server\n", "TOML parse error"),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let path = write(&format!("bad{i}"), text);
            let p = path.to_str().unwrap();
            let err = parse_args(&["ringcast", "serve", "--config", p]).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.contains(p), "{text:?} must name the file: {err}");
            std::fs::remove_file(path).ok();
        }
        let err = parse_args(&["ringcast", "serve", "--config", "/nonexistent.toml"]).unwrap_err();
        assert!(err.contains("/nonexistent.toml"), "{err}");
    }

    #[test]
    fn printed_config_reads_back_to_the_same_settings() {
        let path = write(
            "print",
            "[queue]\nmax-queue-bytes = \"2MiB\"\n[history]\nhistory = 64\n\
             [metrics]\nmetrics-label = [\"a=b\"]\n[access]\npublish-token = \"s3cret\"\n",
        );
        let p = path.to_str().unwrap();
        let printed = printed(&["ringcast", "serve", "--config", p, "--threads", "3"]);
        assert!(printed.contains("max-queue-bytes = \"2MiB\""), "{printed}");
        assert!(printed.contains("history = 64\n"), "{printed}");
        assert!(printed.contains("threads = 3\n"), "{printed}");
        assert!(printed.contains("metrics-label = [\"a=b\"]"), "{printed}");
        assert!(
            !printed.contains("s3cret"),
            "secrets are not printed: {printed}"
        );
        let again = write("print-again", &printed);
        let a = again.to_str().unwrap();
        let reprinted = super::tests::printed(&["ringcast", "serve", "--config", a]);
        // The secret is the one setting that does not travel through the printout.
        assert_eq!(
            reprinted,
            printed.replace(
                "# publish-token = (set; not printed)",
                "# publish-token = (unset)"
            )
        );
        std::fs::remove_file(path).ok();
        std::fs::remove_file(again).ok();
    }
}
