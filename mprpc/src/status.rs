//! The outcome of a call: a [`Code`] whose values are the wire values, and a message.
//!
//! Every failure a caller can see, whether it happened in the network, in the framework or in
//! the application's handler, is a [`Status`]. The codes follow gRPC's numbering so that people
//! who know one know the other, and so that the values can be bridged to other systems.
//!
//! A status that arrives from a peer is built with [`Status::from_wire`], which never yields
//! [`Code::Ok`] and makes the peer's message safe to print.

use std::fmt;

use crate::request::Metadata;

/// A status code. The discriminants are the values carried on the wire.
///
/// Unknown wire values decode to [`Code::Unknown`]; a failure read from the wire never carries
/// [`Code::Ok`] (see [`Status::from_wire`]).
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

/// The failure of a call: a code, a human-readable message, optional machine-readable
/// details (opaque bytes, for example an encoded `google.rpc.Status` of gRPC's rich error
/// model) and response metadata, all of which travel to the caller with it.
#[derive(Clone)]
pub struct Status {
    code: Code,
    message: String,
    /// Details and metadata, boxed: most failures have neither, and a small `Status` keeps
    /// every call's `Result` small.
    extra: Option<Box<Extra>>,
}

#[derive(Clone, Default)]
struct Extra {
    details: bytes::Bytes,
    metadata: Metadata,
}

/// What [`Status::details`] and [`Status::metadata`] show when there are none.
static NO_EXTRA: Extra = Extra {
    details: bytes::Bytes::new(),
    metadata: Metadata::new(),
};

impl PartialEq for Status {
    fn eq(&self, other: &Status) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.details() == other.details()
            && self.metadata() == other.metadata()
    }
}

impl Eq for Status {}

/// The most bytes of a peer's message that [`Status::from_wire`] keeps (after escaping).
pub const MAX_PEER_MESSAGE: usize = 1024;

/// The response-metadata key that says where a failure came from, for consumers deciding
/// whether to retry it and whom to blame (`docs/RESILIENCE.md`).
pub const FAILURE_KEY: &str = "mprpc-failure";
/// [`FAILURE_KEY`]'s value for a call the provider shed unrun because it is overloaded.
pub const SHED: &str = "shed";
/// [`FAILURE_KEY`]'s value for a failure of a call the handler made: every failure a channel
/// returns carries it, so that a handler passing it up with `?` does not make its own
/// callers retry or eject a healthy provider for a dependency's trouble.
pub const DOWNSTREAM: &str = "downstream";

impl Status {
    /// A failure as a peer reported it: the code and message of a `Response` or `GoAway`
    /// header whose code is not 0.
    ///
    /// A failure never carries [`Code::Ok`]: a peer that reports one with code 0, a negative
    /// code or a code this build does not know gets [`Code::Unknown`], and the message says
    /// which value arrived. The message came from another program, so it is made safe to print
    /// (see [`printable`]): control characters escaped, cut to [`MAX_PEER_MESSAGE`] bytes.
    pub fn from_wire(code: i32, message: &str) -> Status {
        let message = printable(message, MAX_PEER_MESSAGE);
        match Code::from_i32(code) {
            Code::Ok | Code::Unknown if code != Code::Unknown.as_i32() => {
                let note = format!("the peer sent status code {code}, which is not an error code");
                let message = if message.is_empty() {
                    note
                } else {
                    format!("{message} ({note})")
                };
                Status::new(Code::Unknown, message)
            }
            known => Status::new(known, message),
        }
    }

    /// A status with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
            extra: None,
        }
    }

    /// The same status carrying `metadata` to the caller (like gRPC's trailers on a failure).
    pub fn with_metadata(mut self, metadata: Metadata) -> Status {
        self.extra_mut().metadata = metadata;
        self
    }

    /// The response metadata the failure carries (what the provider's handler and layers set).
    pub fn metadata(&self) -> &Metadata {
        &self.extra.as_deref().unwrap_or(&NO_EXTRA).metadata
    }

    /// The response metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.extra_mut().metadata
    }

    /// The same status carrying `details` to the caller.
    pub fn with_details(mut self, details: impl Into<bytes::Bytes>) -> Status {
        self.extra_mut().details = details.into();
        self
    }

    /// The machine-readable details; empty when there are none.
    pub fn details(&self) -> &bytes::Bytes {
        &self.extra.as_deref().unwrap_or(&NO_EXTRA).details
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
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
    /// [`Code::ResourceExhausted`] for a call the provider shed, unrun, because it is
    /// overloaded; marked ([`FAILURE_KEY`] = [`SHED`]) so that consumers know another
    /// provider may take it, unlike a refusal every provider would repeat (a request too
    /// large).
    pub fn overloaded(message: impl Into<String>) -> Status {
        let mut status = Status::resource_exhausted(message);
        status.metadata_mut().insert(FAILURE_KEY, SHED);
        status
    }
    /// Whether the provider shed the call unrun ([`Status::overloaded`]).
    pub fn is_shed(&self) -> bool {
        self.code == Code::ResourceExhausted && self.metadata().get(FAILURE_KEY) == Some(SHED)
    }
    /// Whether the failure came from a call made downstream (a channel's call, returned as it
    /// is by a handler), rather than from the provider that answered.
    pub fn is_downstream(&self) -> bool {
        self.metadata().get(FAILURE_KEY) == Some(DOWNSTREAM)
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
    /// [`Code::Unknown`] with a message.
    pub fn unknown(message: impl Into<String>) -> Status {
        Status::new(Code::Unknown, message)
    }
    /// [`Code::AlreadyExists`] with a message.
    pub fn already_exists(message: impl Into<String>) -> Status {
        Status::new(Code::AlreadyExists, message)
    }
    /// [`Code::PermissionDenied`] with a message.
    pub fn permission_denied(message: impl Into<String>) -> Status {
        Status::new(Code::PermissionDenied, message)
    }
    /// [`Code::FailedPrecondition`] with a message.
    pub fn failed_precondition(message: impl Into<String>) -> Status {
        Status::new(Code::FailedPrecondition, message)
    }
    /// [`Code::Aborted`] with a message.
    pub fn aborted(message: impl Into<String>) -> Status {
        Status::new(Code::Aborted, message)
    }
    /// [`Code::OutOfRange`] with a message.
    pub fn out_of_range(message: impl Into<String>) -> Status {
        Status::new(Code::OutOfRange, message)
    }
    /// [`Code::DataLoss`] with a message.
    pub fn data_loss(message: impl Into<String>) -> Status {
        Status::new(Code::DataLoss, message)
    }
    /// [`Code::Unauthenticated`] with a message.
    pub fn unauthenticated(message: impl Into<String>) -> Status {
        Status::new(Code::Unauthenticated, message)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({}: {:?}", self.code, self.message)?;
        if !self.details().is_empty() {
            write!(f, ", {} bytes of details", self.details().len())?;
        }
        if !self.metadata().is_empty() {
            write!(f, ", {} metadata entries", self.metadata().len())?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

/// `text` made safe to print on a terminal or in a log line: control characters (including
/// newlines and ANSI escape sequences) and bidirectional overrides are escaped as `\u{1b}`,
/// `\n` and so on, other characters are kept, and the result is cut at a character boundary
/// to at most `max` bytes, plus a note saying how many bytes of `text` were left out.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut utf8 = [0; 4];
    for (at, c) in text.char_indices() {
        let escaped;
        let piece: &str = if is_unsafe_to_print(c) {
            escaped = c.escape_default().to_string();
            &escaped
        } else {
            c.encode_utf8(&mut utf8)
        };
        if out.len() + piece.len() > max {
            return cut(out, text.len() - at);
        }
        out.push_str(piece);
    }
    out
}

fn cut(mut kept: String, left_out: usize) -> String {
    use fmt::Write;
    let _ = write!(kept, "... ({left_out} bytes cut)");
    kept
}

/// Characters that change what a terminal shows rather than being shown: C0 and C1 controls
/// (escape sequences start with one), and the bidirectional marks and overrides that reorder
/// the text around them.
fn is_unsafe_to_print(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

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
    fn a_failure_from_the_wire_is_never_ok() {
        for (wire, code) in [
            (0, Code::Unknown),
            (-1, Code::Unknown),
            (17, Code::Unknown),
            (i32::MAX, Code::Unknown),
            (2, Code::Unknown),
            (5, Code::NotFound),
            (14, Code::Unavailable),
        ] {
            let status = Status::from_wire(wire, "boom");
            assert_eq!(status.code(), code, "{wire}");
            assert!(status.message().starts_with("boom"), "{status}");
        }
        assert_eq!(Status::from_wire(5, "boom").message(), "boom");
        assert_eq!(Status::from_wire(2, "boom").message(), "boom");
        let odd = Status::from_wire(0, "boom");
        assert!(odd.message().contains("status code 0"), "{odd}");
        let odd = Status::from_wire(-7, "boom");
        assert!(odd.message().contains("status code -7"), "{odd}");
    }

    #[test]
    fn a_peer_message_is_escaped_and_cut() {
        let status = Status::from_wire(13, "\x1b[2Jgone\r\nok: \u{202e}txt\u{7f} 日本語 ✓");
        assert_eq!(
            status.message(),
            "\\u{1b}[2Jgone\\r\\nok: \\u{202e}txt\\u{7f} 日本語 ✓"
        );

        let huge = format!("\x1b[2J{}", "é".repeat(512 * 1024));
        let status = Status::from_wire(13, &huge);
        let message = status.message();
        assert!(!message.chars().any(char::is_control), "{message:.80}");
        let (kept, note) = message.split_once("... (").expect("a cut note");
        assert!(kept.len() <= MAX_PEER_MESSAGE, "{} bytes kept", kept.len());
        assert!(
            kept.len() > MAX_PEER_MESSAGE - 2,
            "{} bytes kept",
            kept.len()
        );
        // Every byte of the original is either shown (escaped) or counted as cut.
        let shown = kept.len() - "\\u{1b}".len() + 1;
        assert_eq!(note, format!("{} bytes cut)", huge.len() - shown));
    }

    #[test]
    fn printable_keeps_short_text_as_it_is() {
        assert_eq!(printable("", 10), "");
        assert_eq!(printable("héllo", 6), "héllo");
        // Never half a character, never half an escape.
        assert_eq!(printable("héllo", 2), "h... (5 bytes cut)");
        assert_eq!(printable("a\tb", 2), "a... (2 bytes cut)");
        assert_eq!(printable("a\tb", 3), "a\\t... (1 bytes cut)");
    }

    #[test]
    fn display_names_code_and_message() {
        let s = Status::unimplemented("no service `a.B`");
        assert_eq!(s.to_string(), "Unimplemented: no service `a.B`");
    }
}
