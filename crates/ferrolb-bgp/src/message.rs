//! The message layer (RFC 4271 section 4.1): the 19-byte header, the five message types (OPEN, UPDATE,
//! NOTIFICATION, KEEPALIVE, ROUTE-REFRESH), and [`frame`], which finds where the next message ends in a
//! byte stream. Lengths are checked per type before a body is read, so a bad length field gets the Message
//! Header Error RFC 4271 prescribes.

use crate::error::{DecodeError, ErrorKind};
use crate::notification::Notification;
use crate::open::{Family, Open};
use crate::update::{Context, Update};
use crate::wire::{Put, Reader, len16};

/// The header's length: 16 octets of marker, 2 of length, 1 of type.
pub const HEADER_LEN: usize = 19;
/// The longest message without the extended message capability (RFC 8654), which this speaker never sends.
pub const MAX_LEN: usize = 4096;

/// A ROUTE-REFRESH (RFC 2918): the peer asks for every route of `family` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family asked for.
    pub family: Family,
}

/// A BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 1.
    Open(Open),
    /// Type 2.
    Update(Update),
    /// Type 3.
    Notification(Notification),
    /// Type 4.
    Keepalive,
    /// Type 5.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The type code.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Open(_) => 1,
            Message::Update(_) => 2,
            Message::Notification(_) => 3,
            Message::Keepalive => 4,
            Message::RouteRefresh(_) => 5,
        }
    }

    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Message::Open(_) => "open",
            Message::Update(_) => "update",
            Message::Notification(_) => "notification",
            Message::Keepalive => "keepalive",
            Message::RouteRefresh(_) => "route_refresh",
        }
    }

    /// The message on the wire. The caller keeps an UPDATE within [`MAX_LEN`] (the route builder does).
    pub fn encode(&self, ctx: &Context) -> Vec<u8> {
        let mut out = vec![0xff; 16];
        out.put_u16(0);
        out.put_u8(self.kind());
        match self {
            Message::Open(open) => open.encode_body(&mut out),
            Message::Update(update) => update.encode_body(ctx, &mut out),
            Message::Notification(n) => n.encode_body(&mut out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => {
                out.put_u16(r.family.afi);
                out.put_u8(0);
                out.put_u8(r.family.safi);
            }
        }
        // A NOTIFICATION's data may be long (an echoed attribute): cut it so the message stays legal.
        out.truncate(MAX_LEN);
        let len = len16(out.len()).to_be_bytes();
        out[16..18].copy_from_slice(&len);
        out
    }

    /// Decodes one whole message (as [`frame`] delimits it).
    pub fn decode(bytes: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
        let (len, kind) = header(bytes)?;
        let body = bytes.get(HEADER_LEN..len).ok_or_else(|| DecodeError::new(ErrorKind::BadMessageLength))?;
        if bytes.len() != len {
            return Err(DecodeError::with_data(ErrorKind::BadMessageLength, &len16(bytes.len()).to_be_bytes()));
        }
        Ok(match kind {
            1 => Message::Open(Open::decode(body)?),
            2 => Message::Update(Update::decode(body, ctx)?),
            3 => Message::Notification(
                Notification::decode(body).ok_or_else(|| DecodeError::new(ErrorKind::MalformedNotification))?,
            ),
            4 => Message::Keepalive,
            _ => {
                let mut r = Reader::new(body);
                let short = |_| DecodeError::new(ErrorKind::InvalidRouteRefreshLength);
                let afi = r.u16().map_err(short)?;
                r.u8().map_err(short)?;
                let safi = r.u8().map_err(short)?;
                Message::RouteRefresh(RouteRefresh { family: Family { afi, safi } })
            }
        })
    }
}

/// Checks the header at the start of `bytes` and returns the message's length and type. Needs the 19 header
/// bytes.
fn header(bytes: &[u8]) -> Result<(usize, u8), DecodeError> {
    let mut r = Reader::new(bytes);
    let short = |_| DecodeError::new(ErrorKind::BadMessageLength);
    let marker = r.take(16).map_err(short)?;
    if marker.iter().any(|b| *b != 0xff) {
        return Err(DecodeError::new(ErrorKind::ConnectionNotSynchronized));
    }
    let len_field = r.take(2).map_err(short)?;
    let len = usize::from(u16::from_be_bytes([len_field[0], len_field[1]]));
    let kind = r.u8().map_err(short)?;
    let (min, max) = match kind {
        1 => (29, MAX_LEN),
        2 => (23, MAX_LEN),
        3 => (21, MAX_LEN),
        4 => (HEADER_LEN, HEADER_LEN),
        5 => (23, 23),
        _ => return Err(DecodeError::with_data(ErrorKind::BadMessageType, &[kind])),
    };
    if len < min || len > max {
        // RFC 4271: the data is the erroneous length field; RFC 7313 has its own error for ROUTE-REFRESH.
        let kind = if kind == 5 { ErrorKind::InvalidRouteRefreshLength } else { ErrorKind::BadMessageLength };
        return Err(DecodeError::with_data(kind, len_field));
    }
    Ok((len, kind))
}

/// The length of the message at the start of `buffer` if all of it has arrived, `Ok(None)` if more bytes
/// are needed, or the error its header already shows.
pub fn frame(buffer: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buffer.len() < HEADER_LEN {
        return Ok(None);
    }
    let (len, _) = header(buffer)?;
    Ok((buffer.len() >= len).then_some(len))
}
