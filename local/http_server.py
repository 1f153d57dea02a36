"""The HTTP server class of the local stack's servers (API, JSM emulator, mailbox).

http.server listens with a backlog of 5: when more clients connect at once than the server
accepts, the kernel's accept queue overflows and some of them get `Connection reset by peer`
(30 concurrent POSTs did). One thread per connection and a deep backlog serve 100+ clients
connecting at the same moment; Linux caps the backlog at `net.core.somaxconn` (4096 by default).
"""

from __future__ import annotations

from http.server import ThreadingHTTPServer

LISTEN_BACKLOG = 1024


class LocalHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a client holding a kept-alive connection never blocks the exit
    request_queue_size = LISTEN_BACKLOG
