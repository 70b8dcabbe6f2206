//! The BFD control packet (RFC 5880 section 4.1) and the checks of section 6.8.6 that need nothing but the
//! packet: a packet that fails them is dropped (BFD never answers a bad packet).

use std::time::Duration;

/// The length of a control packet without authentication.
pub const LEN: usize = 24;

/// A session state as the packet carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// 0: administratively down.
    AdminDown,
    /// 1: down.
    Down,
    /// 2: initialising.
    Init,
    /// 3: up.
    Up,
}

impl SessionState {
    /// The state's name as FRR and RFC 5880 spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::AdminDown => "AdminDown",
            SessionState::Down => "Down",
            SessionState::Init => "Init",
            SessionState::Up => "Up",
        }
    }

    fn value(self) -> u8 {
        match self {
            SessionState::AdminDown => 0,
            SessionState::Down => 1,
            SessionState::Init => 2,
            SessionState::Up => 3,
        }
    }

    fn from_value(value: u8) -> SessionState {
        match value & 3 {
            0 => SessionState::AdminDown,
            1 => SessionState::Down,
            2 => SessionState::Init,
            _ => SessionState::Up,
        }
    }
}

/// Why a session went down (the diagnostic code, RFC 5880 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0.
    None,
    /// 1: no packet from the peer within the detection time.
    DetectionTimeExpired,
    /// 2.
    EchoFailed,
    /// 3: the peer said its session went down.
    NeighborDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: administratively down.
    AdminDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// Anything else (9-31 are reserved).
    Other(u8),
}

impl Diagnostic {
    fn value(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::DetectionTimeExpired => 1,
            Diagnostic::EchoFailed => 2,
            Diagnostic::NeighborDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdminDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Other(v) => v & 0x1f,
        }
    }

    fn from_value(value: u8) -> Diagnostic {
        match value & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::DetectionTimeExpired,
            2 => Diagnostic::EchoFailed,
            3 => Diagnostic::NeighborDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdminDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            v => Diagnostic::Other(v),
        }
    }

    /// What it means, for a person.
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnostic::None => "no diagnostic",
            Diagnostic::DetectionTimeExpired => "no BFD packet from the peer within the detection time",
            Diagnostic::EchoFailed => "echo function failed",
            Diagnostic::NeighborDown => "the peer said its BFD session went down",
            Diagnostic::ForwardingPlaneReset => "forwarding plane reset",
            Diagnostic::PathDown => "path down",
            Diagnostic::ConcatenatedPathDown => "concatenated path down",
            Diagnostic::AdminDown => "administratively down",
            Diagnostic::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diagnostic::Other(_) => "reserved diagnostic",
        }
    }
}

/// A control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The sender's diagnostic.
    pub diagnostic: Diagnostic,
    /// The sender's state.
    pub state: SessionState,
    /// Poll: the sender changed its parameters and asks for a Final.
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub final_: bool,
    /// The sender's detection multiplier.
    pub detect_mult: u8,
    /// The sender's discriminator.
    pub my_discriminator: u32,
    /// The discriminator the sender has for the receiver (0 until it knows it).
    pub your_discriminator: u32,
    /// The sender's desired minimum transmit interval.
    pub desired_min_tx: Duration,
    /// The sender's required minimum receive interval (0: it wants no packets).
    pub required_min_rx: Duration,
    /// The sender's required minimum echo receive interval (0: no echo).
    pub required_min_echo_rx: Duration,
}

/// Why a received packet is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than a control packet, or than its own length field.
    #[error("too short")]
    Short,
    /// Not BFD version 1.
    #[error("version {0}, not 1")]
    Version(u8),
    /// The length field is below 24 or above what arrived.
    #[error("bad length field {0}")]
    Length(u8),
    /// A detection multiplier of zero.
    #[error("detection multiplier zero")]
    ZeroMultiplier,
    /// The multipoint bit is set.
    #[error("multipoint bit set")]
    Multipoint,
    /// The sender's discriminator is zero.
    #[error("zero discriminator")]
    ZeroDiscriminator,
    /// Your-discriminator zero in a state other than Down or AdminDown.
    #[error("no discriminator for us in state {0}")]
    NoYourDiscriminator(&'static str),
    /// Authentication is asked for, which this implementation does not do.
    #[error("authentication is not supported")]
    Authentication,
}

impl PacketError {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PacketError::Short => "short",
            PacketError::Version(_) => "version",
            PacketError::Length(_) => "length",
            PacketError::ZeroMultiplier => "zero_multiplier",
            PacketError::Multipoint => "multipoint",
            PacketError::ZeroDiscriminator => "zero_discriminator",
            PacketError::NoYourDiscriminator(_) => "no_your_discriminator",
            PacketError::Authentication => "authentication",
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Packet {
    /// The packet on the wire.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0] = (1 << 5) | self.diagnostic.value();
        out[1] = (self.state.value() << 6) | (u8::from(self.poll) << 5) | (u8::from(self.final_) << 4);
        out[2] = self.detect_mult;
        out[3] = LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&micros(self.desired_min_tx).to_be_bytes());
        out[16..20].copy_from_slice(&micros(self.required_min_rx).to_be_bytes());
        out[20..24].copy_from_slice(&micros(self.required_min_echo_rx).to_be_bytes());
        out
    }

    /// Decodes a received packet, with the checks RFC 5880 section 6.8.6 makes before any session is
    /// looked up.
    pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
        if bytes.len() < LEN {
            return Err(PacketError::Short);
        }
        let version = bytes[0] >> 5;
        if version != 1 {
            return Err(PacketError::Version(version));
        }
        let length = bytes[3];
        if usize::from(length) < LEN || usize::from(length) > bytes.len() {
            return Err(PacketError::Length(length));
        }
        let flags = bytes[1];
        if flags & 0x04 != 0 {
            return Err(PacketError::Authentication);
        }
        if flags & 0x01 != 0 {
            return Err(PacketError::Multipoint);
        }
        let detect_mult = bytes[2];
        if detect_mult == 0 {
            return Err(PacketError::ZeroMultiplier);
        }
        let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let state = SessionState::from_value(flags >> 6);
        let my_discriminator = word(4);
        let your_discriminator = word(8);
        if my_discriminator == 0 {
            return Err(PacketError::ZeroDiscriminator);
        }
        if your_discriminator == 0 && !matches!(state, SessionState::Down | SessionState::AdminDown) {
            return Err(PacketError::NoYourDiscriminator(state.as_str()));
        }
        Ok(Packet {
            diagnostic: Diagnostic::from_value(bytes[0]),
            state,
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx: Duration::from_micros(u64::from(word(12))),
            required_min_rx: Duration::from_micros(u64::from(word(16))),
            required_min_echo_rx: Duration::from_micros(u64::from(word(20))),
        })
    }
}
