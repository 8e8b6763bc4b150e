//! How the example programs end on an error: `error: <one line>` on stderr and a failure
//! exit code, rather than anyhow's several lines of "Caused by:" (and a backtrace when
//! `RUST_BACKTRACE` is set).

use std::process::ExitCode;

/// Success, or `error: ...` on stderr (see [`one_line`]) and a failure exit code.
pub fn exit(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line ([`mprpc::report::one_line`]).
pub fn one_line(err: &anyhow::Error) -> String {
    mprpc::report::one_line(err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source and also returns it.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read x.toml: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_printed_by_its_error_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = anyhow::Error::new(Repeats(io)).context("cannot start");
        assert_eq!(
            one_line(&err),
            "cannot start: cannot read x.toml: entity not found"
        );
    }

    #[test]
    fn separate_causes_are_joined_on_one_line() {
        let err = anyhow::anyhow!("the disk\nis full").context("cannot write the log");
        assert_eq!(one_line(&err), "cannot write the log: the disk is full");
    }
}
