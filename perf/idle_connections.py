#!/usr/bin/env python3
"""Opens N client connections to the gateway, sends one request on each (so each has been
served once), then holds them idle. Prints 'holding N' when all are open, waits for stdin
to close, and exits. Used by perf/idle-connections.sh."""
import resource, socket, sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
req = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
conns = []
for i in range(n):
    s = socket.create_connection((host, port))
    s.sendall(req)
    conns.append(s)
for s in conns:
    got = b""
    while b"\r\n\r\nok\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f"connection closed by the gateway after {len(conns)} opened")
        got += chunk
print(f"holding {len(conns)}", flush=True)
sys.stdin.read()
