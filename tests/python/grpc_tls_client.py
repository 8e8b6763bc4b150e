"""A gRPC client in Python's grpcio calling an mprpc provider over TLS, with a client
certificate (mutual TLS): prints `name value` lines for tests/tests/tls_protocols.rs to read.
Usage: grpc_tls_client.py HOST:PORT CA_PEM CERT_PEM KEY_PEM"""

import sys

import grpc

from protowire import field_bytes


def main():
    target, ca, cert, key = sys.argv[1:5]
    read = lambda path: open(path, "rb").read()
    credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
    # The provider's certificate names `localhost`; the connection goes to 127.0.0.1.
    options = [("grpc.ssl_target_name_override", "localhost")]
    channel = grpc.secure_channel(target, credentials, options=options)
    identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    echo = channel.unary_unary("/mprpc.test.Echo/Echo", **identity)
    # metadata_key = 6 "@peer-identity": the handler answers with the client's identity.
    reply = echo(field_bytes(1, b"over tls") + field_bytes(6, b"@peer-identity"), timeout=10)
    print("reply", reply.hex())
    check = channel.unary_unary("/grpc.health.v1.Health/Check", **identity)
    print("health", check(b"", timeout=10).hex())


if __name__ == "__main__":
    main()
