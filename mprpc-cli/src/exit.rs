//! Exit codes, and how an error is reported on stderr.
//!
//! A call that ends with a [`Status`] exits with `10 +` the status code's wire value, so that
//! scripts can tell a `NotFound` (15) from an `Unavailable` (24) without parsing stderr; any
//! other failure (bad options, a bad config file, bad JSON, an unreachable registry) exits 2,
//! like clap's own usage errors, after `error: ` and one line.

use std::process::ExitCode;

use mprpc::{Code, Status};

/// Bad usage, bad JSON, a bad config file, or a registry that cannot be reached.
pub(crate) const USAGE: u8 = 2;

/// Added to a status code's wire value to make the exit code.
pub(crate) const STATUS_BASE: u8 = 10;

/// The exit-code table, shown at the end of `mprpc --help` (and in `docs/CLI.md`).
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success
   2  bad usage, bad config file, bad JSON, registry unreachable or misconfigured
  10 + the status code, when a call (or a reflection call) fails with a status:
  11  Cancelled             19  FailedPrecondition
  12  Unknown               20  Aborted
  13  InvalidArgument       21  OutOfRange
  14  DeadlineExceeded      22  Unimplemented (also: unknown service or method)
  15  NotFound              23  Internal
  16  AlreadyExists         24  Unavailable (also: no provider of the service)
  17  PermissionDenied      25  DataLoss
  18  ResourceExhausted     26  Unauthenticated
A failed call prints `ERROR: <Code>: <message>` on stderr.";

/// The code a failure is reported with: its own, except that a failure never reads `Ok`
/// (the library does not build one from the wire; should one come anyway, it is `Unknown`).
fn failure_code(code: Code) -> Code {
    if code == Code::Ok {
        Code::Unknown
    } else {
        code
    }
}

/// The exit code for a call that failed with `code`: never 10, which would say `Ok`.
pub(crate) fn for_code(code: Code) -> u8 {
    u8::try_from(failure_code(code).as_i32())
        .ok()
        .and_then(|v| STATUS_BASE.checked_add(v))
        .unwrap_or(STATUS_BASE + 2)
}

/// Prints `err` on stderr and returns the exit code it maps to: a [`Status`] anywhere in the
/// error's chain gives `ERROR: <Code>: <message>` and `10 + code`, anything else
/// `error: ...` and [`USAGE`].
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    match err.downcast_ref::<Status>() {
        Some(status) => {
            eprintln!(
                "ERROR: {}: {}",
                failure_code(status.code()),
                status.message()
            );
            ExitCode::from(for_code(status.code()))
        }
        None => {
            eprintln!("error: {}", one_line(err));
            ExitCode::from(USAGE)
        }
    }
}

/// The error and its causes on one line ([`mprpc::report::one_line`]).
fn one_line(err: &anyhow::Error) -> String {
    mprpc::report::one_line(err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_and_its_causes_make_one_line_saying_each_fact_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        // anyhow's own context says the cause; a library error that printed its source and
        // returned it would do the same.
        let err = anyhow::Error::new(io).context("x.toml: cannot read: entity not found");
        assert_eq!(one_line(&err), "x.toml: cannot read: entity not found");
        let err = anyhow::anyhow!("no route\nto host").context("cannot connect");
        assert_eq!(one_line(&err), "cannot connect: no route to host");
    }

    #[test]
    fn exit_codes_are_ten_plus_the_wire_value() {
        assert_eq!(for_code(Code::Cancelled), 11);
        assert_eq!(for_code(Code::NotFound), 15);
        assert_eq!(for_code(Code::Unimplemented), 22);
        assert_eq!(for_code(Code::Unauthenticated), 26);
        assert_eq!(for_code(Code::Ok), 12, "a failure never exits 10");
        for v in 1..=16 {
            let code = Code::from_i32(v);
            let line = format!("  {}  {code}", for_code(code));
            assert!(
                EXIT_CODES_HELP.contains(&line),
                "the help table lacks `{line}`"
            );
        }
    }
}
