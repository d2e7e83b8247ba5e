//! How a message body is delimited on the wire (RFC 9112 §6): one answer for both
//! directions and both sides: a request read from a client, a request written to a member,
//! a response read from a member, a response written to a client.

/// The framing of one message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body and no framing field (GET, HEAD responses, 1xx, 204, 304).
    None,
    /// `Content-Length: n` (`n` may be 0: a POST without a body still says so).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only; the connection cannot be reused).
    UntilClose,
}

impl BodyFraming {
    /// True when a body of this framing is delimited by a `Content-Length`.
    pub fn is_length(self) -> bool {
        matches!(self, BodyFraming::Length(_))
    }
}
