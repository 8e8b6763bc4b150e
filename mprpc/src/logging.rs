//! Placeholder until the logging module lands.
