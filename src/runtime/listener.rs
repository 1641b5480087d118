//! Binding one listener per worker on the same address (SO_REUSEPORT), so the kernel spreads
//! connections across cores with no accept lock.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

const BACKLOG: i32 = 4096;

fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Binds `count` listeners on `addr`. A port held by anyone else is refused up front:
/// with SO_REUSEPORT the kernel would otherwise let two processes share it quietly.
/// Port 0 picks a free port once; every worker then binds that one.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> io::Result<Vec<TcpListener>> {
    if addr.port() != 0 {
        // A plain bind (no SO_REUSEPORT) fails if any socket holds the port.
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        if let Err(e) = probe.bind(&addr.into()) {
            let why = if e.kind() == io::ErrorKind::AddrInUse {
                format!("{addr} is already in use by another process; stop it or choose another --listen address")
            } else {
                format!("cannot bind {addr}: {e}")
            };
            return Err(io::Error::new(e.kind(), why));
        }
    }
    let first = reuseport_listener(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(reuseport_listener(bound)?);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_one_port_for_all_and_refuses_a_taken_one() {
        let ls = bind_listeners("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let port = ls[0].local_addr().unwrap().port();
        assert!(ls.iter().all(|l| l.local_addr().unwrap().port() == port));
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind_listeners(taken.local_addr().unwrap(), 1).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
    }
}
