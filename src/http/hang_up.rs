//! Noticing that a client hung up while its request is still being answered, so the work done
//! for it (an upstream call) can stop instead of running to a reply nobody reads.
//!
//! Owns: the watch on a connection's read side. Must never: consume the client's bytes (it
//! only peeks), or cost a request that is answered quickly more than a timer.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;

/// A connection whose peer can be watched for hanging up.
pub trait HangUpWatch {
    /// Resolves once the peer has closed its side and sent nothing more; stays pending while it
    /// is connected, and for good once it has sent more bytes (a pipelined request: the close,
    /// if any, is noticed when that request is read).
    fn hung_up(&self) -> impl Future<Output = ()>;
}

impl HangUpWatch for monoio::net::TcpStream {
    async fn hung_up(&self) {
        loop {
            if self.readable(false).await.is_err() {
                return;
            }
            let mut byte = [0u8; 1];
            // SAFETY: recv writes at most 1 byte into `byte`, a buffer this frame owns; the
            // descriptor stays open while `self` is borrowed.
            let n = unsafe {
                libc::recv(
                    self.as_raw_fd(),
                    byte.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => return,
                n if n > 0 => return std::future::pending().await,
                _ => {
                    let e = io::Error::last_os_error();
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) {
                        // A reset connection is as gone as a closed one.
                        return;
                    }
                }
            }
        }
    }
}
