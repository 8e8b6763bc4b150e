//! Logging: `tracing` events written to a daily log file by a background thread.
//!
//! The original mprpc had its own logger: callers pushed strings onto a mutex-guarded queue and
//! a thread popped them, stamped each with the time *it* ran (so a line could carry the time of
//! the message before it), looked the level up when writing rather than when logging, reopened
//! the file for every line, and never let the process exit cleanly. Here:
//!
//! - the call site formats the event at once (the timestamp, in UTC, is taken when the event
//!   happens) and hands the line to [`tracing_appender::non_blocking()`]; a writer thread
//!   appends it to `DIR/PREFIX.YYYY-MM-DD` (UTC date, a new file each day), opened once per
//!   day;
//! - the queue is bounded and *lossy*: if the disk cannot keep up and
//!   [`QUEUE_LINES`] lines are waiting, further lines are dropped and counted
//!   ([`LogGuard::dropped_lines`]) rather than making an RPC handler wait on the disk;
//! - the level filter is decided once, at [`init`]: `RUST_LOG` when it is set and valid, else
//!   [`LoggingConfig::level`];
//! - [`init`] returns a [`LogGuard`]; dropping it at the end of `main` flushes every line
//!   logged so far and stops the writer thread.
//!
//! Each line holds the time, the level, the target (module path), the span context and the
//! event's fields, e.g.
//! `2025-01-01T08:00:00.123456Z  INFO mprpc::server: listening address=127.0.0.1:8000`.
//!
//! ```ignore
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = mprpc::config::Config::load("provider.toml")?;
//!     let _log = mprpc::logging::init(&config.logging)?; // keep until main returns
//!     tracing::info!("provider starting");
//!     // ...
//!     Ok(())
//! }
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{InitError, RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LoggingConfig;

/// Lines each writer thread queues before further lines are dropped (and counted).
pub const QUEUE_LINES: usize = 128_000;

/// The environment variable that overrides [`LoggingConfig::level`].
const LEVEL_VARIABLE: &str = "RUST_LOG";

/// Why logging could not be started. Each message says everything, the operating system's
/// reason included, so no error here has a `source`: printed with its causes, each fact shows
/// once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// A global `tracing` subscriber is already installed (by an earlier [`init`] or by other
    /// code); the process keeps that one.
    #[error("logging is already initialised in this process")]
    AlreadyInitialised,
    /// The log directory does not exist and could not be created.
    #[error("cannot create log directory {}: {error}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("cannot open log file in {}: {error}", dir.display())]
    OpenFile {
        /// The directory of the file.
        dir: PathBuf,
        /// What went wrong.
        error: InitError,
    },
    /// [`LoggingConfig::level`] is not a valid filter (and `RUST_LOG` did not replace it).
    #[error("invalid log level `{level}`: {message}")]
    Level {
        /// The filter as configured.
        level: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Keeps the log writers running. Drop it (at the end of `main`) to flush every line logged
/// so far to its file and stop the writer threads; lines logged after that are lost.
///
/// Dropping waits for the writer at most about a second, so a stuck disk cannot hang the exit.
#[must_use = "dropping the guard stops the log writers: keep it alive until the program exits"]
#[derive(Debug)]
pub struct LogGuard {
    // Dropped in order: each `WorkerGuard` flushes its writer's queue.
    workers: Vec<WorkerGuard>,
    counters: Vec<ErrorCounter>,
}

impl LogGuard {
    /// Lines dropped so far because a writer's queue was full (the file and standard error
    /// writers together). Stays 0 unless the disk or terminal cannot keep up.
    pub fn dropped_lines(&self) -> u64 {
        sum_dropped(&self.counters)
    }
}

/// The drop counters of the writers [`init`] installed, for [`dropped_lines`].
static GLOBAL_COUNTERS: std::sync::OnceLock<Vec<ErrorCounter>> = std::sync::OnceLock::new();

/// Lines the process's log writers (installed by [`init`]) dropped so far; 0 without [`init`].
pub fn dropped_lines() -> u64 {
    GLOBAL_COUNTERS
        .get()
        .map_or(0, |counters| sum_dropped(counters))
}

fn sum_dropped(counters: &[ErrorCounter]) -> u64 {
    counters
        .iter()
        .map(|counter| u64::try_from(counter.dropped_lines()).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add)
}

/// Installs the process's global `tracing` subscriber as configured: a daily file in
/// `config.dir` (created if missing; none when `dir` is `None`), also standard error when
/// `config.stderr`, filtered by `RUST_LOG` when set and valid, else by `config.level`. An
/// invalid `RUST_LOG` is reported as a warning in the log and otherwise ignored.
///
/// Keep the returned guard alive until the program exits. A second call returns
/// [`LoggingError::AlreadyInitialised`] and changes nothing.
///
/// Records of the `log` crate are not captured: none of mprpc's dependencies use it.
pub fn init(config: &LoggingConfig) -> Result<LogGuard, LoggingError> {
    if tracing::dispatcher::has_been_set() {
        return Err(LoggingError::AlreadyInitialised);
    }
    let rust_log = std::env::var(LEVEL_VARIABLE).ok();
    let built = build_layers(config, rust_log.as_deref())?;
    tracing::subscriber::set_global_default(Registry::default().with(built.layer))
        .map_err(|_| LoggingError::AlreadyInitialised)?;
    let _ = GLOBAL_COUNTERS.set(built.guard.counters.clone());
    if let Some(warning) = built.warning {
        tracing::warn!(target: "mprpc::logging", "{warning}");
    }
    Ok(built.guard)
}

/// The layers [`init`] installs, the guard of their writers, and a warning to log once they
/// are installed.
struct Built {
    layer: Box<dyn Layer<Registry> + Send + Sync>,
    guard: LogGuard,
    warning: Option<String>,
}

/// Builds the subscriber's layers without installing them, so that tests can run them with
/// `tracing::subscriber::with_default`. `rust_log` is the value of `RUST_LOG`, if set.
fn build_layers(config: &LoggingConfig, rust_log: Option<&str>) -> Result<Built, LoggingError> {
    let (filter, warning) = choose_filter(&config.level, rust_log)?;
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let mut guard = LogGuard {
        workers: Vec::new(),
        counters: Vec::new(),
    };

    if let Some(dir) = &config.dir {
        std::fs::create_dir_all(dir).map_err(|error| LoggingError::CreateDir {
            dir: dir.clone(),
            error,
        })?;
        let file = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(config.file_prefix.as_str())
            .build(dir)
            .map_err(|error| LoggingError::OpenFile {
                dir: dir.clone(),
                error,
            })?;
        let (writer, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(QUEUE_LINES)
            .thread_name("mprpc-log-file")
            .finish(file);
        guard.counters.push(writer.error_counter());
        guard.workers.push(worker);
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .boxed(),
        );
    }

    if config.stderr {
        let ansi = std::io::stderr().is_terminal();
        let (writer, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(QUEUE_LINES)
            .thread_name("mprpc-log-stderr")
            .finish(std::io::stderr());
        guard.counters.push(writer.error_counter());
        guard.workers.push(worker);
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi)
                .boxed(),
        );
    }

    Ok(Built {
        layer: layers.with_filter(filter).boxed(),
        guard,
        warning,
    })
}

/// The filter from `RUST_LOG` when it is set, non-empty and valid, else from `level`; with a
/// warning when `RUST_LOG` was set but unusable.
fn choose_filter(
    level: &str,
    rust_log: Option<&str>,
) -> Result<(EnvFilter, Option<String>), LoggingError> {
    let mut warning = None;
    if let Some(directives) = rust_log.filter(|d| !d.trim().is_empty()) {
        match EnvFilter::builder().parse(directives) {
            Ok(filter) => return Ok((filter, None)),
            Err(e) => {
                warning = Some(format!(
                    "ignoring {LEVEL_VARIABLE}=`{directives}` ({e}); using level `{level}`"
                ));
            }
        }
    }
    let filter = EnvFilter::builder()
        .parse(level)
        .map_err(|e| LoggingError::Level {
            level: level.to_owned(),
            message: e.to_string(),
        })?;
    Ok((filter, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Today's UTC date as `YYYY-MM-DD` (the appender names files by UTC date).
    fn utc_date() -> String {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        // Howard Hinnant's days-to-civil algorithm.
        let z = (secs / 86_400) as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!("{year:04}-{month:02}-{day:02}")
    }

    fn config(dir: &std::path::Path, level: &str) -> LoggingConfig {
        LoggingConfig {
            dir: Some(dir.join("nested").join("logs")),
            file_prefix: "provider.log".to_owned(),
            level: level.to_owned(),
            stderr: false,
        }
    }

    /// Runs `body` with the configured layers as the thread's subscriber, drops the guard,
    /// and returns the one log file's name and contents.
    fn log_with(
        config: &LoggingConfig,
        rust_log: Option<&str>,
        body: impl FnOnce(),
    ) -> (String, String) {
        let before = utc_date();
        let built = build_layers(config, rust_log).unwrap();
        let subscriber = Registry::default().with(built.layer);
        tracing::subscriber::with_default(subscriber, || {
            if let Some(warning) = &built.warning {
                tracing::warn!("{warning}");
            }
            body();
        });
        assert_eq!(built.guard.dropped_lines(), 0);
        drop(built.guard);
        let after = utc_date();

        let dir = config.dir.as_ref().unwrap();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files.remove(0);
        assert!(name.starts_with("provider.log."), "{name}");
        assert!(name.contains(&before) || name.contains(&after), "{name}");
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        (name, text)
    }

    #[test]
    fn writes_filtered_lines_to_a_dated_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, text) = log_with(&config(tmp.path(), "info"), None, || {
            tracing::info!(user = "zhang san", "login succeeded");
            tracing::debug!("a debug line");
        });
        let line = text
            .lines()
            .find(|l| l.contains("login succeeded"))
            .unwrap_or_else(|| panic!("no info line in {text:?}"));
        assert!(line.contains("INFO"), "{line}");
        assert!(line.contains("user=\"zhang san\""), "{line}");
        assert!(line.contains(module_path!()), "{line}");
        // a timestamp like 2025-01-01T08:00:00.123456Z leads the line
        assert!(
            line.as_bytes().get(4) == Some(&b'-') && line.contains('T'),
            "{line}"
        );
        assert!(!text.contains("a debug line"), "{text}");
        assert!(!text.contains('\u{1b}'), "ANSI escape in file: {text:?}");
    }

    #[test]
    fn rust_log_overrides_the_configured_level() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, text) = log_with(&config(tmp.path(), "warn"), Some("debug"), || {
            tracing::debug!("shown by RUST_LOG");
        });
        assert!(text.contains("shown by RUST_LOG"), "{text}");

        let tmp = tempfile::tempdir().unwrap();
        let (_, text) = log_with(&config(tmp.path(), "info"), Some("foo=[[["), || {
            tracing::info!("level from config");
            tracing::debug!("not shown");
        });
        assert!(text.contains("level from config"), "{text}");
        assert!(text.contains("ignoring RUST_LOG"), "{text}");
        assert!(!text.contains("not shown"), "{text}");
    }

    #[test]
    fn bad_level_and_bad_directory_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = build_layers(&config(tmp.path(), "mprpc=loud"), None)
            .err()
            .unwrap();
        assert!(matches!(err, LoggingError::Level { .. }), "{err}");

        let file = tmp.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let mut cfg = config(tmp.path(), "info");
        cfg.dir = Some(file.join("logs"));
        let err = build_layers(&cfg, None).err().unwrap();
        assert!(matches!(err, LoggingError::CreateDir { .. }), "{err}");
        assert!(err.to_string().contains("a-file"), "{err}");
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        // Installs a global subscriber that writes nothing: no file, no stderr.
        let quiet = LoggingConfig {
            dir: None,
            file_prefix: "unused".to_owned(),
            level: "off".to_owned(),
            stderr: false,
        };
        // The first call fails too if another test of this binary installed one already.
        let _first = init(&quiet);
        assert!(matches!(
            init(&quiet),
            Err(LoggingError::AlreadyInitialised)
        ));
    }
}
