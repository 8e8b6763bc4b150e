//! The `[logging]` section: where log lines go (read by [`crate::logging::init`]).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::check::Check;
use super::ConfigError;

/// Where log lines go.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// Directory of the daily log files; `None` (written `dir = ""` in TOML) writes no file.
    /// Default `logs`.
    #[serde(deserialize_with = "deserialize_log_dir")]
    pub dir: Option<PathBuf>,
    /// File name prefix: files are named `PREFIX.YYYY-MM-DD` (UTC date). Must not be empty or
    /// contain a path separator. Default `mprpc.log`.
    pub file_prefix: String,
    /// Level filter in `RUST_LOG` syntax (`info`, `mprpc=debug,warn`). `RUST_LOG` overrides
    /// it when set. Default `info`.
    pub level: String,
    /// Also write to standard error. Default false.
    pub stderr: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            dir: Some(PathBuf::from("logs")),
            file_prefix: "mprpc.log".to_owned(),
            level: "info".to_owned(),
            stderr: false,
        }
    }
}

/// TOML has no null, so an empty `dir` is how a file says "no log file".
fn deserialize_log_dir<'de, D: Deserializer<'de>>(de: D) -> Result<Option<PathBuf>, D::Error> {
    let dir = PathBuf::deserialize(de)?;
    Ok((!dir.as_os_str().is_empty()).then_some(dir))
}

impl LoggingConfig {
    /// Checks the file prefix and the level filter.
    pub(super) fn validate(&self, check: &Check<'_>) -> Result<(), ConfigError> {
        check.that(
            !self.file_prefix.is_empty()
                && !self.file_prefix.contains(['/', '\\'])
                && self.file_prefix != "."
                && self.file_prefix != "..",
            "logging.file_prefix",
            "must be a file name: not empty, no `/` or `\\`",
        )?;
        check.that(
            !self.level.trim().is_empty(),
            "logging.level",
            "empty; write a level such as `info`",
        )?;
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.level)
            .map_err(|e| check.invalid("logging.level", format!("`{}`: {e}", self.level)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn empty_log_dir_means_no_file() {
        let c = Config::from_toml_str("[logging]\ndir = \"\"\n", "t.toml").unwrap();
        assert_eq!(c.logging.dir, None);
    }
}
