//! NOTIFICATION messages (RFC 4271 section 4.5): the error codes, the Cease subcodes (RFC 4486), and the
//! shutdown communication an administrative shutdown or reset may carry (RFC 9003, which updated RFC 8203).

use std::fmt;

use crate::wire::{Put, len8};

/// The error codes of RFC 4271 and its updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader,
    /// 2: OPEN Message Error.
    Open,
    /// 3: UPDATE Message Error.
    Update,
    /// 4: Hold Timer Expired.
    HoldTimerExpired,
    /// 5: Finite State Machine Error (RFC 6608 subcodes).
    FiniteStateMachine,
    /// 6: Cease (RFC 4486 subcodes).
    Cease,
    /// 7: ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefresh,
}

impl ErrorCode {
    /// The code on the wire.
    pub fn value(self) -> u8 {
        match self {
            ErrorCode::MessageHeader => 1,
            ErrorCode::Open => 2,
            ErrorCode::Update => 3,
            ErrorCode::HoldTimerExpired => 4,
            ErrorCode::FiniteStateMachine => 5,
            ErrorCode::Cease => 6,
            ErrorCode::RouteRefresh => 7,
        }
    }

    /// The code for a wire value, if it is one RFC 4271 or its updates define.
    pub fn from_value(value: u8) -> Option<ErrorCode> {
        Some(match value {
            1 => ErrorCode::MessageHeader,
            2 => ErrorCode::Open,
            3 => ErrorCode::Update,
            4 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::FiniteStateMachine,
            6 => ErrorCode::Cease,
            7 => ErrorCode::RouteRefresh,
            _ => return None,
        })
    }

    /// A static label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorCode::MessageHeader => "message_header",
            ErrorCode::Open => "open",
            ErrorCode::Update => "update",
            ErrorCode::HoldTimerExpired => "hold_timer_expired",
            ErrorCode::FiniteStateMachine => "fsm",
            ErrorCode::Cease => "cease",
            ErrorCode::RouteRefresh => "route_refresh",
        }
    }
}

/// Cease subcode 2 (RFC 4486): the speaker is shutting the session down on purpose.
pub const CEASE_ADMINISTRATIVE_SHUTDOWN: u8 = 2;
/// Cease subcode 3: the peer was removed from the configuration.
pub const CEASE_PEER_DECONFIGURED: u8 = 3;
/// Cease subcode 4: the session is reset on purpose.
pub const CEASE_ADMINISTRATIVE_RESET: u8 = 4;
/// Cease subcode 6: a configuration change requires a new session.
pub const CEASE_OTHER_CONFIGURATION_CHANGE: u8 = 6;
/// Cease subcode 10 (RFC 9384): the BFD session guarding the BGP session went down.
pub const CEASE_BFD_DOWN: u8 = 10;

/// The longest shutdown communication (RFC 9003), in bytes of UTF-8.
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

/// A NOTIFICATION: the error, and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The error code (see [`ErrorCode`]).
    pub code: u8,
    /// The subcode, whose meaning depends on the code.
    pub subcode: u8,
    /// The data.
    pub data: Vec<u8>,
}

impl Notification {
    /// A Cease with `subcode`; for an administrative shutdown or reset, `message` is sent as the shutdown
    /// communication, cut to [`MAX_SHUTDOWN_MESSAGE`] bytes at a character boundary.
    pub fn cease(subcode: u8, message: &str) -> Notification {
        let carries_message = matches!(subcode, CEASE_ADMINISTRATIVE_SHUTDOWN | CEASE_ADMINISTRATIVE_RESET);
        let data = if carries_message && !message.is_empty() {
            let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            let mut data = vec![len8(end)];
            data.extend_from_slice(&message.as_bytes()[..end]);
            data
        } else {
            Vec::new()
        };
        Notification { code: ErrorCode::Cease.value(), subcode, data }
    }

    /// A Hold Timer Expired.
    pub fn hold_timer_expired() -> Notification {
        Notification { code: ErrorCode::HoldTimerExpired.value(), subcode: 0, data: Vec::new() }
    }

    /// A Finite State Machine Error for a message of `message_type` received in a state that does not expect
    /// it (RFC 6608: subcode 1 in OpenSent, 2 in OpenConfirm, 3 in Established).
    pub fn unexpected_message(subcode: u8) -> Notification {
        Notification { code: ErrorCode::FiniteStateMachine.value(), subcode, data: Vec::new() }
    }

    /// The code, if RFC 4271 or its updates define it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_value(self.code)
    }

    /// The shutdown communication of an administrative shutdown or reset, if it carries a valid one.
    pub fn shutdown_message(&self) -> Option<&str> {
        let cease = self.code == ErrorCode::Cease.value();
        if !cease || !matches!(self.subcode, CEASE_ADMINISTRATIVE_SHUTDOWN | CEASE_ADMINISTRATIVE_RESET) {
            return None;
        }
        let (&len, text) = self.data.split_first()?;
        let text = text.get(..usize::from(len))?;
        std::str::from_utf8(text).ok().filter(|t| !t.is_empty())
    }

    pub(crate) fn decode(body: &[u8]) -> Option<Notification> {
        let [code, subcode, data @ ..] = body else { return None };
        Some(Notification { code: *code, subcode: *subcode, data: data.to_vec() })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.extend_from_slice(&self.data);
    }
}

fn subcode_name(code: u8, subcode: u8) -> Option<&'static str> {
    Some(match (code, subcode) {
        (1, 1) => "connection not synchronized",
        (1, 2) => "bad message length",
        (1, 3) => "bad message type",
        (2, 1) => "unsupported version number",
        (2, 2) => "bad peer AS",
        (2, 3) => "bad BGP identifier",
        (2, 4) => "unsupported optional parameter",
        (2, 6) => "unacceptable hold time",
        (2, 7) => "unsupported capability",
        (3, 1) => "malformed attribute list",
        (3, 2) => "unrecognized well-known attribute",
        (3, 3) => "missing well-known attribute",
        (3, 4) => "attribute flags error",
        (3, 5) => "attribute length error",
        (3, 6) => "invalid ORIGIN attribute",
        (3, 8) => "invalid NEXT_HOP attribute",
        (3, 9) => "optional attribute error",
        (3, 10) => "invalid network field",
        (3, 11) => "malformed AS_PATH",
        (5, 1) => "unexpected message in OpenSent",
        (5, 2) => "unexpected message in OpenConfirm",
        (5, 3) => "unexpected message in Established",
        (6, 1) => "maximum number of prefixes reached",
        (6, 2) => "administrative shutdown",
        (6, 3) => "peer de-configured",
        (6, 4) => "administrative reset",
        (6, 5) => "connection rejected",
        (6, 6) => "other configuration change",
        (6, 7) => "connection collision resolution",
        (6, 8) => "out of resources",
        (6, 9) => "hard reset",
        (6, 10) => "BFD down",
        (7, 1) => "invalid message length",
        _ => return None,
    })
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self.error_code() {
            Some(ErrorCode::MessageHeader) => "message header error",
            Some(ErrorCode::Open) => "OPEN message error",
            Some(ErrorCode::Update) => "UPDATE message error",
            Some(ErrorCode::HoldTimerExpired) => "hold timer expired",
            Some(ErrorCode::FiniteStateMachine) => "finite state machine error",
            Some(ErrorCode::Cease) => "cease",
            Some(ErrorCode::RouteRefresh) => "ROUTE-REFRESH message error",
            None => return write!(f, "error code {} subcode {}", self.code, self.subcode),
        };
        f.write_str(code)?;
        match subcode_name(self.code, self.subcode) {
            Some(name) => write!(f, ": {name}")?,
            None if self.subcode != 0 => write!(f, " (subcode {})", self.subcode)?,
            None => {}
        }
        if let Some(message) = self.shutdown_message() {
            write!(f, " ({message:?})")?;
        }
        Ok(())
    }
}
