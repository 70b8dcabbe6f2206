//! Bounds-checked reading and big-endian writing of wire fields. Every read that would run past the end is
//! an `Err(Short)`, which the caller turns into the NOTIFICATION its place calls for; nothing here panics.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A read ran past the end of its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short;

/// Reads fields from a byte slice, front to back.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if n > self.bytes.len() {
            return Err(Short);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Short> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Short> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn ipv4(&mut self) -> Result<Ipv4Addr, Short> {
        Ok(Ipv4Addr::from(self.u32()?))
    }

    pub(crate) fn ipv6(&mut self) -> Result<Ipv6Addr, Short> {
        let b = self.take(16)?;
        let mut octets = [0u8; 16];
        octets.copy_from_slice(b);
        Ok(Ipv6Addr::from(octets))
    }
}

/// Appends big-endian fields.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }

    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }

    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
}

/// `len` as a u16 length field; the callers keep messages within 4096 bytes, so it always fits.
pub(crate) fn len16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// `len` as a u8 length field, where the callers bound what is written.
pub(crate) fn len8(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}
