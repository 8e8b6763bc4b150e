//! The outcome of a call: a [`Code`] whose values are the wire values, and a message.
//!
//! Every failure a caller can see, whether it happened in the network, in the framework or in
//! the application's handler, is a [`Status`]. The codes follow gRPC's numbering so that people
//! who know one know the other, and so that the values can be bridged to other systems.

use std::fmt;

/// A status code. The discriminants are the values carried on the wire.
///
/// Unknown wire values decode to [`Code::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(i32)]
pub enum Code {
    /// Not an error: the call succeeded.
    Ok = 0,
    /// The call was cancelled, usually by the caller.
    Cancelled = 1,
    /// An error with no better code, or a code this build does not know.
    Unknown = 2,
    /// The request was malformed: it could not be decoded, or the handler rejected it.
    InvalidArgument = 3,
    /// The call's time budget ran out before a reply arrived.
    DeadlineExceeded = 4,
    /// A requested entity was not found (application-defined).
    NotFound = 5,
    /// An entity to be created already exists (application-defined).
    AlreadyExists = 6,
    /// The caller is not allowed to do this (application-defined).
    PermissionDenied = 7,
    /// A limit was hit: too many calls in flight, a frame over the size limit, and so on.
    ResourceExhausted = 8,
    /// The system is not in a state that allows the operation (application-defined).
    FailedPrecondition = 9,
    /// The operation was aborted, e.g. by a concurrency conflict (application-defined).
    Aborted = 10,
    /// A value was out of its valid range (application-defined).
    OutOfRange = 11,
    /// The service or method does not exist on the provider.
    Unimplemented = 12,
    /// A bug or broken invariant in the framework or the handler.
    Internal = 13,
    /// No provider could be reached, or the connection failed before a reply arrived.
    /// The call may be retried.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption (application-defined).
    DataLoss = 15,
    /// The caller is not authenticated (application-defined).
    Unauthenticated = 16,
}

impl Code {
    /// The code for a wire value; values this build does not know become [`Code::Unknown`].
    pub fn from_i32(value: i32) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    /// The value carried on the wire.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code's name, as printed in logs and by tools (`"Unavailable"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "Ok",
            Code::Cancelled => "Cancelled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failure of a call: a code and a human-readable message.
#[derive(Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
}

impl Status {
    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message, meant for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// [`Code::Cancelled`] with a message.
    pub fn cancelled(message: impl Into<String>) -> Status {
        Status::new(Code::Cancelled, message)
    }
    /// [`Code::InvalidArgument`] with a message.
    pub fn invalid_argument(message: impl Into<String>) -> Status {
        Status::new(Code::InvalidArgument, message)
    }
    /// [`Code::DeadlineExceeded`] with a message.
    pub fn deadline_exceeded(message: impl Into<String>) -> Status {
        Status::new(Code::DeadlineExceeded, message)
    }
    /// [`Code::NotFound`] with a message.
    pub fn not_found(message: impl Into<String>) -> Status {
        Status::new(Code::NotFound, message)
    }
    /// [`Code::ResourceExhausted`] with a message.
    pub fn resource_exhausted(message: impl Into<String>) -> Status {
        Status::new(Code::ResourceExhausted, message)
    }
    /// [`Code::Unimplemented`] with a message.
    pub fn unimplemented(message: impl Into<String>) -> Status {
        Status::new(Code::Unimplemented, message)
    }
    /// [`Code::Internal`] with a message.
    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(Code::Internal, message)
    }
    /// [`Code::Unavailable`] with a message.
    pub fn unavailable(message: impl Into<String>) -> Status {
        Status::new(Code::Unavailable, message)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({}: {:?})", self.code, self.message)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for v in 0..=16 {
            let code = Code::from_i32(v);
            assert_eq!(code.as_i32(), v, "{code}");
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn display_names_code_and_message() {
        let s = Status::unimplemented("no service `a.B`");
        assert_eq!(s.to_string(), "Unimplemented: no service `a.B`");
    }
}
