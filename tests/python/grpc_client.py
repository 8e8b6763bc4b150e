"""A gRPC client in Python's grpcio, calling an mprpc provider's test service (mprpc.test.Echo)
with hand-encoded protobuf messages (no generated code needed): prints one line per check,
`name value`, for tests/tests/grpc.rs to read. Usage: grpc_client.py HOST:PORT"""

import sys

import grpc

from protowire import field_bytes, field_varint


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    echo = channel.unary_unary("/mprpc.test.Echo/Echo", **identity)

    # A call with a payload and metadata (metadata_key = 6 asks the provider to echo the
    # metadata value back in metadata_value = 4).
    request = field_bytes(1, b"hello") + field_bytes(6, b"tenant")
    reply, call = echo.with_call(request, metadata=[("tenant", "acme")], timeout=10)
    print("reply", reply.hex())
    print("code", call.code().name)

    # A failure: fail_code = 3 (5 NotFound), fail_message = 4.
    try:
        echo(field_varint(3, 5) + field_bytes(4, "no such thing é".encode()), timeout=10)
        print("failure none")
    except grpc.RpcError as e:
        print("failure", e.code().name, e.details())

    # A deadline: delay_ms = 2 of 5 s, a timeout of 200 ms.
    try:
        echo(field_varint(2, 5000), timeout=0.2)
        print("deadline none")
    except grpc.RpcError as e:
        print("deadline", e.code().name)

    # Unknown method and service.
    for path in ["/mprpc.test.Echo/Nope", "/no.Such/Echo"]:
        try:
            channel.unary_unary(path, **identity)(b"", timeout=10)
            print("unknown none")
        except grpc.RpcError as e:
            print("unknown", e.code().name)

    # The standard health service.
    check = channel.unary_unary("/grpc.health.v1.Health/Check", **identity)
    print("health", check(b"", timeout=10).hex())
    print("health_service", check(field_bytes(1, b"mprpc.test.Echo"), timeout=10).hex())
    try:
        check(field_bytes(1, b"no.Such"), timeout=10)
        print("health_unknown none")
    except grpc.RpcError as e:
        print("health_unknown", e.code().name)

    # Many calls at once on the one HTTP/2 connection.
    futures = [echo.future(field_bytes(1, bytes([i])), timeout=10) for i in range(200)]
    ok = sum(1 for i, f in enumerate(futures) if f.result().startswith(field_bytes(1, bytes([i]))))
    print("concurrent", ok)

    # A large message each way (the provider encodes its reply in pieces): the reply must
    # be the request's payload, byte for byte.
    payload = bytes((i * 7 + i // 251) % 256 for i in range(300_000))
    reply = echo(field_bytes(1, payload), timeout=10)
    print("large", len(reply) > 300_000, reply.startswith(field_bytes(1, payload)))

    # Server reflection, as grpcurl uses it (v1) and as grpcio-reflection does (v1alpha).
    reflect = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", **identity)
    answers = list(reflect(iter([field_bytes(7, b"")]), timeout=10))
    print("reflection_v1", len(answers), b"mprpc.test.Echo" in answers[0])
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    database = ProtoReflectionDescriptorDatabase(channel)
    print("services", " ".join(sorted(database.get_services())))
    pool = DescriptorPool(database)
    print("methods", " ".join(m.name for m in pool.FindServiceByName("mprpc.test.Echo").methods))
    print("fields", " ".join(f.name for f in pool.FindMessageTypeByName("mprpc.test.EchoRequest").fields))


if __name__ == "__main__":
    main()
