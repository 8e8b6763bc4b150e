//! Log lines of a test binary, captured in memory, for tests that check what was (or was not)
//! logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// The captured lines. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// The capture of this test binary, every log line passing `filter` (an `EnvFilter`
    /// directive) from the first call on. The filter of the first call holds for the binary.
    pub fn global(filter: &str) -> LogCapture {
        static LOGS: OnceLock<LogCapture> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = LogCapture::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            logs
        })
        .clone()
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
