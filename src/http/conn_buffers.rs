//! A client connection's buffers and the per-core pool they come from: only the read buffer
//! lives as long as the connection (small while it is idle); the reply, write and decoded-body
//! buffers are taken for a request and handed back when nothing is pending, so steady traffic
//! allocates nothing and thousands of idle connections cost little memory.
//!
//! Owns: the pool's sizes and depth, and reading into a buffer that grows by a bounded step.
//! Must never: keep an oversized buffer in the pool, or share the pool between cores.

use std::cell::RefCell;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

use super::response::Response;

/// Growth step of a read buffer that ran out of room.
pub(super) const READ_CHUNK: usize = 8 * 1024;
/// Below this much free room a read buffer grows before reading.
const MIN_SPARE: usize = 512;
/// The read buffer an idle connection keeps: room for a typical MCP request in one read.
const IDLE_READ: usize = 2 * 1024;
/// Capacity of pooled buffers.
const POOL_BUF: usize = 16 * 1024;
/// Buffers larger than this are not kept in the pool.
const POOLED_MAX: usize = 64 * 1024;
/// Buffers kept per core.
const POOL_DEPTH: usize = 1024;

thread_local! {
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

pub(super) fn take_buffer() -> Vec<u8> {
    BUFFERS
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(POOL_BUF))
}

pub(super) fn give_buffer(mut buf: Vec<u8>) {
    if buf.capacity() <= POOLED_MAX {
        buf.clear();
        BUFFERS.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_DEPTH {
                p.push(buf);
            }
        });
    }
}

/// A connection's buffers. Only `read` lives as long as the connection; the others are
/// taken from the pool for a request and handed back once the connection is idle.
pub(super) struct ConnBuffers {
    pub(super) read: Vec<u8>,
    pub(super) write: Vec<u8>,
    /// Decoded chunked request bodies.
    pub(super) body: Vec<u8>,
}

/// Makes sure `buf` has pooled capacity before use.
pub(super) fn ensure_pooled(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        *buf = take_buffer();
    }
}

/// Hands a buffer back to the pool, leaving an unallocated one.
pub(super) fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > 0 {
        give_buffer(std::mem::take(buf));
    }
}

impl ConnBuffers {
    pub(super) fn new() -> Self {
        ConnBuffers {
            read: Vec::with_capacity(IDLE_READ),
            write: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Nothing is pending: keep only a small read buffer while the peer is quiet.
    pub(super) fn idle(&mut self, resp: &mut Response) {
        release(&mut self.write);
        release(&mut self.body);
        release(&mut resp.body);
        if self.read.is_empty() && self.read.capacity() > POOL_BUF {
            give_buffer(std::mem::replace(
                &mut self.read,
                Vec::with_capacity(IDLE_READ),
            ));
        }
    }
}

impl Drop for ConnBuffers {
    fn drop(&mut self) {
        release(&mut self.write);
        release(&mut self.body);
    }
}

/// Reads at least one more byte into `buf`; false on EOF or error.
pub(super) async fn read_more<S: AsyncReadRent>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    if buf.capacity() - buf.len() < MIN_SPARE {
        buf.reserve(READ_CHUNK);
    }
    let len = buf.len();
    let cap = buf.capacity();
    let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    matches!(res, Ok(n) if n > 0)
}
