//! What can be wrong with a message a peer sent, each kind tied to the NOTIFICATION (error code and subcode)
//! RFC 4271 section 6 prescribes, so the session answers a malformed message exactly as the RFC says.

use crate::notification::{ErrorCode, Notification};

/// A kind of error in a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The marker is not 16 bytes of ones.
    ConnectionNotSynchronized,
    /// The length field is out of range for the message type.
    BadMessageLength,
    /// An unknown message type.
    BadMessageType,
    /// OPEN: a BGP version other than 4.
    UnsupportedVersion,
    /// OPEN: the peer's AS is not the one configured.
    BadPeerAs,
    /// OPEN: an invalid BGP identifier.
    BadBgpIdentifier,
    /// OPEN: an optional parameter other than capabilities.
    UnsupportedOptionalParameter,
    /// OPEN: a hold time of 1 or 2 seconds.
    UnacceptableHoldTime,
    /// OPEN: the optional parameters or capabilities do not add up.
    MalformedOpen,
    /// UPDATE: the lengths of the withdrawn routes and attributes do not add up.
    MalformedAttributeList,
    /// UPDATE: a well-known attribute this speaker does not know.
    UnrecognizedWellKnownAttribute,
    /// UPDATE: a route without ORIGIN, AS_PATH or NEXT_HOP.
    MissingWellKnownAttribute,
    /// UPDATE: an attribute with flags its type does not allow.
    AttributeFlagsError,
    /// UPDATE: an attribute whose length its type does not allow.
    AttributeLengthError,
    /// UPDATE: an ORIGIN other than IGP, EGP or INCOMPLETE.
    InvalidOrigin,
    /// UPDATE: an unusable NEXT_HOP.
    InvalidNextHop,
    /// UPDATE: a malformed optional attribute.
    OptionalAttributeError,
    /// UPDATE: a prefix whose length or bytes are invalid.
    InvalidNetworkField,
    /// UPDATE: a malformed AS_PATH.
    MalformedAsPath,
    /// NOTIFICATION: shorter than its fixed fields.
    MalformedNotification,
    /// ROUTE-REFRESH: a length other than 23.
    InvalidRouteRefreshLength,
}

impl ErrorKind {
    /// The NOTIFICATION error code and subcode RFC 4271 (and RFC 7313 for ROUTE-REFRESH) give this error.
    pub fn codes(self) -> (ErrorCode, u8) {
        use ErrorCode::{MessageHeader, Open, RouteRefresh, Update};
        match self {
            ErrorKind::ConnectionNotSynchronized => (MessageHeader, 1),
            ErrorKind::BadMessageLength => (MessageHeader, 2),
            ErrorKind::BadMessageType => (MessageHeader, 3),
            ErrorKind::UnsupportedVersion => (Open, 1),
            ErrorKind::BadPeerAs => (Open, 2),
            ErrorKind::BadBgpIdentifier => (Open, 3),
            ErrorKind::UnsupportedOptionalParameter => (Open, 4),
            ErrorKind::UnacceptableHoldTime => (Open, 6),
            // RFC 4271 has no subcode for a malformed OPEN; 0 is "unspecific" (RFC 4493's practice).
            ErrorKind::MalformedOpen => (Open, 0),
            ErrorKind::MalformedAttributeList => (Update, 1),
            ErrorKind::UnrecognizedWellKnownAttribute => (Update, 2),
            ErrorKind::MissingWellKnownAttribute => (Update, 3),
            ErrorKind::AttributeFlagsError => (Update, 4),
            ErrorKind::AttributeLengthError => (Update, 5),
            ErrorKind::InvalidOrigin => (Update, 6),
            ErrorKind::InvalidNextHop => (Update, 8),
            ErrorKind::OptionalAttributeError => (Update, 9),
            ErrorKind::InvalidNetworkField => (Update, 10),
            ErrorKind::MalformedAsPath => (Update, 11),
            // A NOTIFICATION is never answered with one; the code only labels the log and metric.
            ErrorKind::MalformedNotification => (MessageHeader, 2),
            ErrorKind::InvalidRouteRefreshLength => (RouteRefresh, 1),
        }
    }

    /// A static label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::ConnectionNotSynchronized => "connection_not_synchronized",
            ErrorKind::BadMessageLength => "bad_message_length",
            ErrorKind::BadMessageType => "bad_message_type",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::BadPeerAs => "bad_peer_as",
            ErrorKind::BadBgpIdentifier => "bad_bgp_identifier",
            ErrorKind::UnsupportedOptionalParameter => "unsupported_optional_parameter",
            ErrorKind::UnacceptableHoldTime => "unacceptable_hold_time",
            ErrorKind::MalformedOpen => "malformed_open",
            ErrorKind::MalformedAttributeList => "malformed_attribute_list",
            ErrorKind::UnrecognizedWellKnownAttribute => "unrecognized_well_known_attribute",
            ErrorKind::MissingWellKnownAttribute => "missing_well_known_attribute",
            ErrorKind::AttributeFlagsError => "attribute_flags_error",
            ErrorKind::AttributeLengthError => "attribute_length_error",
            ErrorKind::InvalidOrigin => "invalid_origin",
            ErrorKind::InvalidNextHop => "invalid_next_hop",
            ErrorKind::OptionalAttributeError => "optional_attribute_error",
            ErrorKind::InvalidNetworkField => "invalid_network_field",
            ErrorKind::MalformedAsPath => "malformed_as_path",
            ErrorKind::MalformedNotification => "malformed_notification",
            ErrorKind::InvalidRouteRefreshLength => "invalid_route_refresh_length",
        }
    }
}

/// A received message that is not valid, with the data its NOTIFICATION carries (RFC 4271 says which: the
/// bad length field, the bad type, the offending attribute, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({} bytes of data)", .kind.label(), .data.len())]
pub struct DecodeError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// The NOTIFICATION's data field.
    pub data: Vec<u8>,
}

impl DecodeError {
    /// An error with no data.
    pub fn new(kind: ErrorKind) -> DecodeError {
        DecodeError { kind, data: Vec::new() }
    }

    /// An error whose NOTIFICATION carries `data`.
    pub fn with_data(kind: ErrorKind, data: &[u8]) -> DecodeError {
        DecodeError { kind, data: data.to_vec() }
    }

    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        self.kind.label()
    }

    /// The NOTIFICATION that answers this error.
    pub fn notification(&self) -> Notification {
        let (code, subcode) = self.kind.codes();
        Notification { code: code.value(), subcode, data: self.data.clone() }
    }
}
