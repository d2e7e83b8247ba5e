//! The error of one attempt to forward a request, as a value that carries its decision.
//!
//! Every failure between choosing a member and receiving its response head becomes a
//! [`ProxyError`]: what went wrong ([`ErrorKind`]), who caused it ([`Origin`]), in which
//! [`Phase`], whether any byte reached the member, whether the member connection was a
//! reused one, and whether the member had started to answer. [`ProxyError::decide`] turns
//! those facts into what follows ([`Decision`]); failover, the status sent, member marking
//! and the access log (`%{BALANCERD_ERROR}e`) all read the value, nothing parses strings.
//!
//! The decisions, with httpd's behaviour where balancerd follows it:
//!
//! ```text
//! kind                      origin    decision
//! Dns                       balancer  answer 500, mark the member (httpd: "DNS lookup failure")
//! ConnectFailed             member    fail over: mark, next member while maxattempts allows
//! NoFreeConnection          member    fail over (the member's `max` is reached)
//! MemberClosed / MemberIo   member    reused connection, nothing answered, body replayable:
//!                                       retry once on a fresh connection to the same member;
//!                                     else answer 502, member not marked
//! MemberInvalidHead         member    answer 502, member not marked
//! MemberTimeout             member    answer 504, mark only with failontimeout=On
//! ClientBodyInvalid         client    answer 400 and close; member connection closed, not marked
//! ClientBodyTimeout         client    answer 408 and close; member not marked
//! ClientGone                client    answer 400 (nobody reads it) and close; member not marked
//! Internal                  internal  answer 500
//! ```
//!
//! May import: `util`, `telemetry`, `net`, `config`, `h1`, `route` (this module uses none).

use http::StatusCode;
use std::fmt;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client: a malformed or stalled request body, or a client that left.
    Client,
    /// The member: refused, reset, closed, timed out or answered garbage.
    Member,
    /// The balancer's config (a member host that does not resolve).
    Balancer,
    /// balancerd itself.
    Internal,
}

impl Origin {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Member => "member",
            Origin::Balancer => "balancer",
            Origin::Internal => "internal",
        }
    }
}

/// Where in the exchange a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Getting a connection: DNS, TCP, TLS, the member's connection cap.
    Connect,
    /// Sending the request head or body.
    Send,
    /// Waiting for (or reading) the response head.
    ResponseHead,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The member's host name does not resolve.
    Dns,
    /// TCP connect or TLS handshake refused, unreachable or timed out.
    ConnectFailed,
    /// No free connection within `acquire` (the member's `max`).
    NoFreeConnection,
    /// The member closed the connection before a complete response head.
    MemberClosed,
    /// Reading from or writing to the member failed (reset, broken pipe).
    MemberIo,
    /// The member's response head is not valid HTTP/1.1.
    MemberInvalidHead,
    /// No response head within the member's `timeout`.
    MemberTimeout,
    /// The client's request body is malformed (chunked coding).
    ClientBodyInvalid,
    /// The client stopped sending its request body for longer than `Timeout`.
    ClientBodyTimeout,
    /// The client closed or reset its connection before its request body ended.
    ClientGone,
    /// The client's request body is larger than `LimitRequestBody`.
    ClientBodyTooLarge,
    /// Anything else (a bug, or the system refusing a resource).
    Internal,
}

impl ErrorKind {
    /// Who causes failures of this kind.
    pub fn origin(self) -> Origin {
        match self {
            ErrorKind::Dns => Origin::Balancer,
            ErrorKind::ConnectFailed
            | ErrorKind::NoFreeConnection
            | ErrorKind::MemberClosed
            | ErrorKind::MemberIo
            | ErrorKind::MemberInvalidHead
            | ErrorKind::MemberTimeout => Origin::Member,
            ErrorKind::ClientBodyInvalid
            | ErrorKind::ClientBodyTimeout
            | ErrorKind::ClientGone
            | ErrorKind::ClientBodyTooLarge => Origin::Client,
            ErrorKind::Internal => Origin::Internal,
        }
    }

    /// The name in logs and in `%{BALANCERD_ERROR}e`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::ConnectFailed => "connect-failed",
            ErrorKind::NoFreeConnection => "no-free-connection",
            ErrorKind::MemberClosed => "member-closed",
            ErrorKind::MemberIo => "member-io",
            ErrorKind::MemberInvalidHead => "member-invalid-head",
            ErrorKind::MemberTimeout => "member-timeout",
            ErrorKind::ClientBodyInvalid => "client-body-invalid",
            ErrorKind::ClientBodyTimeout => "client-body-timeout",
            ErrorKind::ClientGone => "client-gone",
            ErrorKind::ClientBodyTooLarge => "client-body-too-large",
            ErrorKind::Internal => "internal",
        }
    }
}

/// What follows a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the request again, once, on a fresh connection to the same member; the member
    /// is not marked (a reused connection the member had closed meanwhile).
    RetryFresh,
    /// Put the member in error and choose another while `maxattempts` allows (else 503).
    FailOver,
    /// Answer the client.
    Answer {
        /// The status sent.
        status: StatusCode,
        /// Put the member in error.
        mark_member: bool,
        /// Close the client connection after the answer (its request was not read whole).
        close: bool,
    },
}

/// One failed attempt to forward a request.
#[derive(Debug)]
pub struct ProxyError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where.
    pub phase: Phase,
    /// Some byte of the request reached the member's socket.
    pub sent: bool,
    /// The member connection came from the pool.
    pub reused: bool,
    /// Some byte of the member's answer arrived.
    pub answer_started: bool,
    /// What happened, for the log.
    pub detail: String,
}

impl ProxyError {
    /// An error of `kind` in `phase`; the other facts default to "nothing happened yet".
    pub fn new(kind: ErrorKind, phase: Phase, detail: impl Into<String>) -> Self {
        ProxyError {
            kind,
            phase,
            sent: false,
            reused: false,
            answer_started: false,
            detail: detail.into(),
        }
    }

    /// Sets whether a byte reached the member.
    pub fn sent(mut self, sent: bool) -> Self {
        self.sent = sent;
        self
    }

    /// Sets whether a byte of the answer arrived.
    pub fn answer_started(mut self, started: bool) -> Self {
        self.answer_started = started;
        self
    }

    /// Who caused it.
    pub fn origin(&self) -> Origin {
        self.kind.origin()
    }

    /// What follows. `replayable`: the request body was not read yet (or there is none),
    /// so the request can be sent again whole. `fail_on_timeout`: the balancer's
    /// `failontimeout`.
    pub fn decide(&self, replayable: bool, fail_on_timeout: bool) -> Decision {
        let answer = |status, mark_member, close| Decision::Answer {
            status,
            mark_member,
            close,
        };
        match self.kind {
            ErrorKind::Dns => answer(StatusCode::INTERNAL_SERVER_ERROR, true, false),
            ErrorKind::ConnectFailed | ErrorKind::NoFreeConnection => Decision::FailOver,
            ErrorKind::MemberClosed | ErrorKind::MemberIo
                if self.reused && !self.answer_started && replayable =>
            {
                Decision::RetryFresh
            }
            ErrorKind::MemberClosed | ErrorKind::MemberIo | ErrorKind::MemberInvalidHead => {
                answer(StatusCode::BAD_GATEWAY, false, false)
            }
            ErrorKind::MemberTimeout => answer(StatusCode::GATEWAY_TIMEOUT, fail_on_timeout, false),
            ErrorKind::ClientBodyInvalid | ErrorKind::ClientGone => {
                answer(StatusCode::BAD_REQUEST, false, true)
            }
            ErrorKind::ClientBodyTimeout => answer(StatusCode::REQUEST_TIMEOUT, false, true),
            ErrorKind::ClientBodyTooLarge => answer(StatusCode::PAYLOAD_TOO_LARGE, false, true),
            ErrorKind::Internal => answer(StatusCode::INTERNAL_SERVER_ERROR, false, false),
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} fault): {}",
            self.kind.as_str(),
            self.origin().as_str(),
            self.detail
        )
    }
}

/// A request body passed `LimitRequestBody` (the client's fault: 413).
#[derive(Debug)]
pub struct BodyTooLarge(pub u64);

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body is larger than LimitRequestBody ({} bytes)",
            self.0
        )
    }
}

impl std::error::Error for BodyTooLarge {}

/// The kind of a request-body failure, from the error the client's body gave: the plain
/// server's body reports `InvalidData` (malformed chunked coding), `TimedOut` (stalled) or
/// another I/O error (the client left); hyper's body reports its own errors.
pub fn client_body_kind(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    if e.downcast_ref::<BodyTooLarge>().is_some() {
        return ErrorKind::ClientBodyTooLarge;
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return match io.kind() {
            std::io::ErrorKind::InvalidData => ErrorKind::ClientBodyInvalid,
            std::io::ErrorKind::TimedOut => ErrorKind::ClientBodyTimeout,
            _ => ErrorKind::ClientGone,
        };
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_timeout() {
            return ErrorKind::ClientBodyTimeout;
        }
        if h.is_parse() {
            return ErrorKind::ClientBodyInvalid;
        }
    }
    ErrorKind::ClientGone
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, mark_member: bool, close: bool) -> Decision {
        Decision::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            mark_member,
            close,
        }
    }

    #[test]
    fn connect_refused_fails_over() {
        let e = ProxyError::new(ErrorKind::ConnectFailed, Phase::Connect, "refused");
        assert_eq!(e.origin(), Origin::Member);
        assert_eq!(e.decide(true, false), Decision::FailOver);
        assert_eq!(e.decide(false, true), Decision::FailOver);
    }

    #[test]
    fn a_reset_on_a_reused_connection_before_any_answer_is_retried_fresh() {
        let mut e = ProxyError::new(ErrorKind::MemberIo, Phase::ResponseHead, "reset").sent(true);
        e.reused = true;
        assert_eq!(e.decide(true, false), Decision::RetryFresh);
        // The body was read already: it cannot be sent again.
        assert_eq!(e.decide(false, false), answer(502, false, false));
        // The member had started answering: not a stale connection.
        let e2 = ProxyError {
            answer_started: true,
            ..ProxyError::new(ErrorKind::MemberClosed, Phase::ResponseHead, "closed")
        };
        assert_eq!(e2.decide(true, false), answer(502, false, false));
        // A fresh connection that fails is the member's answer: 502, not marked.
        let fresh = ProxyError::new(ErrorKind::MemberClosed, Phase::ResponseHead, "closed");
        assert_eq!(fresh.decide(true, false), answer(502, false, false));
    }

    #[test]
    fn a_member_timeout_is_504_and_marks_only_with_failontimeout() {
        let e = ProxyError::new(ErrorKind::MemberTimeout, Phase::ResponseHead, "60 s");
        assert_eq!(e.origin(), Origin::Member);
        assert_eq!(e.decide(true, false), answer(504, false, false));
        assert_eq!(e.decide(true, true), answer(504, true, false));
    }

    #[test]
    fn a_client_body_error_is_the_clients_fault() {
        let e =
            ProxyError::new(ErrorKind::ClientBodyInvalid, Phase::Send, "bad chunk size").sent(true);
        assert_eq!(e.origin(), Origin::Client);
        assert_eq!(e.decide(false, true), answer(400, false, true));
        let t = ProxyError::new(ErrorKind::ClientBodyTimeout, Phase::Send, "stalled").sent(true);
        assert_eq!(t.origin(), Origin::Client);
        assert_eq!(t.decide(false, true), answer(408, false, true));
    }

    #[test]
    fn a_client_that_leaves_never_marks_the_member() {
        let mut e = ProxyError::new(ErrorKind::ClientGone, Phase::Send, "closed").sent(true);
        e.reused = true;
        assert_eq!(e.origin(), Origin::Client);
        assert_eq!(e.decide(true, true), answer(400, false, true));
    }

    #[test]
    fn dns_failure_is_500_and_marks() {
        let e = ProxyError::new(ErrorKind::Dns, Phase::Connect, "no such host");
        assert_eq!(e.origin(), Origin::Balancer);
        assert_eq!(e.decide(true, false), answer(500, true, false));
    }

    #[test]
    fn client_body_errors_are_classified_from_their_io_kind() {
        let io = |k| std::io::Error::new(k, "x");
        assert_eq!(
            client_body_kind(&io(std::io::ErrorKind::InvalidData)),
            ErrorKind::ClientBodyInvalid
        );
        assert_eq!(
            client_body_kind(&io(std::io::ErrorKind::TimedOut)),
            ErrorKind::ClientBodyTimeout
        );
        assert_eq!(
            client_body_kind(&io(std::io::ErrorKind::UnexpectedEof)),
            ErrorKind::ClientGone
        );
        assert_eq!(
            client_body_kind(&io(std::io::ErrorKind::ConnectionReset)),
            ErrorKind::ClientGone
        );
    }
}
