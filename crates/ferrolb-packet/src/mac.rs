//! Ethernet MAC addresses.

use std::fmt;

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: Mac = Mac([0; 6]);

    pub(crate) fn to_pnet(self) -> pnet_base::MacAddr {
        let [a, b, c, d, e, f] = self.0;
        pnet_base::MacAddr::new(a, b, c, d, e, f)
    }

    pub(crate) fn from_pnet(mac: pnet_base::MacAddr) -> Mac {
        Mac([mac.0, mac.1, mac.2, mac.3, mac.4, mac.5])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
