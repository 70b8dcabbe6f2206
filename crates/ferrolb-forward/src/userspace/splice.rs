//! Moves bytes between two TCP sockets in both directions without copying them through userspace:
//! `splice(2)` from the source socket into a pipe, then from the pipe into the destination socket, driven by
//! tokio's readiness. Where splicing is refused (no pipes left, an old kernel) each direction falls back to
//! a small buffered copy.
//!
//! Memory is bounded per direction: one pipe (the kernel's default 64 KiB, pages shared with the socket
//! buffers) or one [`COPY_BUFFER`]. A direction that reaches end-of-file shuts down the destination's
//! write side and leaves the other direction running (half-close); an error closes both sockets.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags, splice};
use nix::unistd::pipe2;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes moved per `splice` call: the default pipe capacity on 4 KiB-page systems.
const CHUNK: usize = 64 * 1024;
/// The buffer of the fallback copy.
const COPY_BUFFER: usize = 16 * 1024;

/// Relays until both directions reached end-of-file or one failed. Returns the bytes moved each way
/// (`a` to `b`, `b` to `a`), or the first error.
pub async fn relay(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    let (a_to_b, b_to_a) = tokio::join!(direction(a, b), direction(b, a));
    Ok((a_to_b?, b_to_a?))
}

/// One direction, closing what it must at the end.
async fn direction(src: &TcpStream, dst: &TcpStream) -> io::Result<u64> {
    let moved = match pump(src, dst).await {
        Ok(moved) => moved,
        Err(e) => {
            // The other direction is stuck on these sockets too: end it. Errors here change nothing.
            let _ = SockRef::from(src).shutdown(Shutdown::Both);
            let _ = SockRef::from(dst).shutdown(Shutdown::Both);
            return Err(e);
        }
    };
    match SockRef::from(dst).shutdown(Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(moved),
    }
}

/// Moves everything from `src` to `dst` until end-of-file.
async fn pump(src: &TcpStream, dst: &TcpStream) -> io::Result<u64> {
    let Ok((pipe_out, pipe_in)) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC) else {
        return copy(src, dst).await;
    };
    let mut moved = 0u64;
    loop {
        let filled = match fill(src, &pipe_in).await {
            Ok(0) => return Ok(moved),
            Ok(n) => n,
            // Nothing has entered the pipe yet: the buffered copy can take over without losing bytes.
            Err(e) if moved == 0 && unsupported(&e) => return copy(src, dst).await,
            Err(e) => return Err(e),
        };
        drain(&pipe_out, dst, filled).await?;
        moved += filled as u64;
    }
}

/// Splices what `src` has (up to [`CHUNK`]) into the empty pipe; 0 means end-of-file.
async fn fill(src: &TcpStream, pipe_in: &OwnedFd) -> io::Result<usize> {
    loop {
        src.readable().await?;
        let spliced = src.try_io(Interest::READABLE, || {
            splice(src, None, pipe_in, None, CHUNK, SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK)
                .map_err(io::Error::from)
        });
        match spliced {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// Splices exactly `len` bytes from the pipe into `dst`.
async fn drain(pipe_out: &OwnedFd, dst: &TcpStream, mut len: usize) -> io::Result<()> {
    while len > 0 {
        dst.writable().await?;
        let spliced = dst.try_io(Interest::WRITABLE, || {
            splice(pipe_out, None, dst, None, len, SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK)
                .map_err(io::Error::from)
        });
        match spliced {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => len -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The fallback: a buffered copy until end-of-file.
async fn copy(src: &TcpStream, dst: &TcpStream) -> io::Result<u64> {
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut moved = 0u64;
    loop {
        src.readable().await?;
        let n = match src.try_read(&mut buffer) {
            Ok(0) => return Ok(moved),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut written = 0;
        while written < n {
            dst.writable().await?;
            match dst.try_write(&buffer[written..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => written += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        moved += n as u64;
    }
}

/// Whether `splice` is refused for these descriptors (as opposed to a failing connection).
fn unsupported(error: &io::Error) -> bool {
    matches!(error.raw_os_error().map(Errno::from_raw), Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP))
}
