from tests.support.fixtures import http_servers, s3_server, swift_cluster

__all__ = ["http_servers", "s3_server", "swift_cluster"]
