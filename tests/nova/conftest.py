from tests.support.fixtures import http_servers

__all__ = ["http_servers"]
