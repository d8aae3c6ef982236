"""Serve Glance >= 31 (no standalone ``glance-api`` any more) with the standard library.

``python tests/glance/wsgi_serve.py HOST PORT``: ``glance.wsgi.api:application``, the
entry point operators give uWSGI or mod_wsgi, behind ``wsgiref`` with one thread per
request. Glance reads ``glance-api.conf`` (and ``glance-api-paste.ini``) from
``$OS_GLANCE_CONFIG_DIR`` and snippets from the first ``glance-api.conf.d/`` of
oslo.config's search path (``~/.glance/`` first, then ``/etc/glance/``).
"""

from __future__ import annotations

import socketserver
import sys
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class AccessLog(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("access: " + (format % args) + "\n")


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    from glance.wsgi.api import application  # reads the configuration

    server = make_server(
        host, port, application, server_class=ThreadingWSGIServer, handler_class=AccessLog
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
