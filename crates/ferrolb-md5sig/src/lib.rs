//! TCP MD5 signatures (RFC 2385) on Linux sockets, for BGP sessions whose router asks for a password.
//!
//! Two things: [`Md5Key`], a key the kernel accepts (1 to [`MAX_KEY_LEN`] bytes) whose `Debug` never shows
//! it, and [`set_key`], which tells the kernel to sign (and to require signatures on) every segment a socket
//! exchanges with one peer address: `setsockopt(IPPROTO_TCP, TCP_MD5SIG)` with Linux's `struct tcp_md5sig`.
//! Set it before `connect` (or before `listen`): the SYN is signed too.
//!
//! No well-kept crate wraps this option (nix 0.32, socket2 0.6 and rustix 1.1 have no `TCP_MD5SIG`; libc
//! has the constant but not the struct), so this crate is the one place in the workspace allowed `unsafe`:
//! the single `setsockopt` call in [`set_key`], with its safety argument beside it. Everything else here is
//! safe code; the lints deny `unsafe` outside that one function.
//!
//! A key that differs from the peer's is not an error anyone reports: the kernel silently drops segments
//! whose signature does not verify, so the connection simply never opens. Callers should say so.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use socket2::{SockAddr, SockAddrStorage};

/// The longest key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_KEY_LEN: usize = 80;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key is empty (the kernel would take that as "remove the key").
    #[error("a TCP MD5 key cannot be empty")]
    EmptyKey,
    /// The key is longer than the kernel accepts.
    #[error("a TCP MD5 key is at most {MAX_KEY_LEN} bytes; this one is {0}")]
    KeyTooLong(usize),
    /// The kernel was built without TCP MD5 support.
    #[error("this kernel has no TCP MD5 signature support (CONFIG_TCP_MD5SIG)")]
    Unsupported(#[source] io::Error),
    /// The kernel refused the option (for instance a peer address of the other family than the socket's).
    #[error("setsockopt(TCP_MD5SIG) failed")]
    Setsockopt(#[source] io::Error),
}

impl Error {
    /// A static label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::EmptyKey => "empty_key",
            Error::KeyTooLong(_) => "key_too_long",
            Error::Unsupported(_) => "unsupported",
            Error::Setsockopt(_) => "setsockopt",
        }
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A TCP MD5 key: 1 to [`MAX_KEY_LEN`] bytes. Its `Debug` prints `<redacted>`, so it can sit in settings
/// that are logged; there is no way to read the bytes back out of it.
#[derive(Clone)]
pub struct Md5Key {
    bytes: [u8; MAX_KEY_LEN],
    len: u8,
}

impl Md5Key {
    /// The key `bytes`, if the kernel would accept it.
    pub fn new(bytes: &[u8]) -> Result<Md5Key> {
        if bytes.is_empty() {
            return Err(Error::EmptyKey);
        }
        let len = u8::try_from(bytes.len()).ok().filter(|&n| usize::from(n) <= MAX_KEY_LEN);
        let len = len.ok_or(Error::KeyTooLong(bytes.len()))?;
        let mut key = Md5Key { bytes: [0; MAX_KEY_LEN], len };
        key.bytes[..bytes.len()].copy_from_slice(bytes);
        Ok(key)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for Md5Key {
    fn eq(&self, other: &Md5Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Md5Key {}

impl std::fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5Key(<redacted>)")
    }
}

/// Signs every segment `socket` exchanges with `peer` (any port) with `key`, and makes the kernel drop
/// unsigned or wrongly signed segments from it. `peer` must be of the socket's family.
pub fn set_key(socket: &impl AsFd, peer: IpAddr, key: &Md5Key) -> Result<()> {
    let request = TcpMd5Sig::new(peer, key);
    setsockopt_md5sig(socket.as_fd(), &request).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOPROTOOPT) => Error::Unsupported(e),
        _ => Error::Setsockopt(e),
    })
}

/// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h), field for field.
#[repr(C)]
struct TcpMd5Sig {
    /// `struct __kernel_sockaddr_storage tcpm_addr`: the peer, as a `sockaddr_in` or `sockaddr_in6`.
    addr: SockAddrStorage,
    /// `tcpm_flags`: only read with `TCP_MD5SIG_EXT`; zero.
    flags: u8,
    /// `tcpm_prefixlen`: only read with `TCP_MD5SIG_EXT`; zero.
    prefix_len: u8,
    /// `tcpm_keylen`.
    key_len: u16,
    /// `tcpm_ifindex`: only read with `TCP_MD5SIG_EXT`; zero.
    ifindex: i32,
    /// `tcpm_key`.
    key: [u8; MAX_KEY_LEN],
}

// The layout the kernel expects, checked when compiling: 128 bytes of address storage, then the small
// fields, then the key, with no padding anywhere (so every byte handed to the kernel is initialised).
const _: () = {
    assert!(size_of::<SockAddrStorage>() == 128);
    assert!(std::mem::offset_of!(TcpMd5Sig, flags) == 128);
    assert!(std::mem::offset_of!(TcpMd5Sig, prefix_len) == 129);
    assert!(std::mem::offset_of!(TcpMd5Sig, key_len) == 130);
    assert!(std::mem::offset_of!(TcpMd5Sig, ifindex) == 132);
    assert!(std::mem::offset_of!(TcpMd5Sig, key) == 136);
    assert!(size_of::<TcpMd5Sig>() == 136 + MAX_KEY_LEN);
};

impl TcpMd5Sig {
    fn new(peer: IpAddr, key: &Md5Key) -> TcpMd5Sig {
        TcpMd5Sig {
            // socket2 writes the family and address into zeroed storage; the kernel ignores the port.
            addr: SockAddr::from(SocketAddr::new(peer, 0)).as_storage(),
            flags: 0,
            prefix_len: 0,
            key_len: u16::from(key.len),
            ifindex: 0,
            key: key.bytes,
        }
    }
}

/// The one `unsafe` call of the workspace: `setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, request, size)`.
#[allow(unsafe_code)]
fn setsockopt_md5sig(fd: BorrowedFd<'_>, request: &TcpMd5Sig) -> io::Result<()> {
    const LEN: libc::socklen_t = size_of::<TcpMd5Sig>() as libc::socklen_t;
    // SAFETY: setsockopt reads `LEN` bytes from the pointer and writes nothing through it. The pointer comes
    // from a live reference to a `TcpMd5Sig`, which is exactly `LEN` bytes long (checked at compile time
    // above) and fully initialised: every field is set in `TcpMd5Sig::new` (the address storage by socket2,
    // zeroed beyond the address) and the struct has no padding. The borrow lasts for the whole call and the
    // kernel copies the value before returning (it keeps no pointer to it). The descriptor is valid for the
    // call because `BorrowedFd` guarantees it stays open while borrowed; on a descriptor that is not a TCP
    // socket the kernel returns an error rather than touching memory. Nothing else aliases `request`
    // mutably: it is a shared reference.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            std::ptr::from_ref(request).cast::<libc::c_void>(),
            LEN,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests;
