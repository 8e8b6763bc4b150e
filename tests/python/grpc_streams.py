"""gRPC streaming calls from Python's grpcio to an mprpc provider's test service
(mprpc.test.Echo's Subscribe, Upload and Chat), with hand-encoded messages: prints one line
per check, `name value`, for tests/tests/grpc_streaming.rs. Usage: grpc_streams.py HOST:PORT"""

import sys
import threading

import grpc

from protowire import field_bytes, field_varint, fields


def stream_request(count=0, size=0, interval_ms=0, fail_code=0, fail_message=b"", payload=b""):
    m = b""
    if count:
        m += field_varint(1, count)
    if size:
        m += field_varint(2, size)
    if interval_ms:
        m += field_varint(3, interval_ms)
    if fail_code:
        m += field_varint(4, fail_code)
    if fail_message:
        m += field_bytes(5, fail_message)
    if payload:
        m += field_bytes(6, payload)
    return m


def main():
    raw = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    channel = grpc.insecure_channel(sys.argv[1])
    subscribe = channel.unary_stream("/mprpc.test.Echo/Subscribe", **raw)
    upload = channel.stream_unary("/mprpc.test.Echo/Upload", **raw)
    chat = channel.stream_stream("/mprpc.test.Echo/Chat", **raw)

    # Server streaming: five replies in order.
    replies = list(subscribe(stream_request(count=5, size=3), timeout=10))
    print("subscribe", ",".join(str(fields(r).get(2, 0)) for r in replies))
    print("subscribe_payload", fields(replies[0]).get(1, b"").decode())

    # A stream that ends with a failure after its replies.
    got = 0
    try:
        for _ in subscribe(stream_request(count=3, fail_code=5, fail_message=b"gone"), timeout=10):
            got += 1
        print("failure none")
    except grpc.RpcError as e:
        print("failure", got, e.code().name, e.details())

    # grpc-timeout covers the whole stream.
    got = 0
    try:
        for _ in subscribe(stream_request(count=1000, interval_ms=20), timeout=0.5):
            got += 1
        print("deadline none")
    except grpc.RpcError as e:
        print("deadline", e.code().name, "after_some", 0 < got < 1000)

    # Client streaming: 100 requests of 10 bytes.
    requests = (stream_request(payload=b"0123456789") for _ in range(100))
    reply = fields(upload(requests, timeout=10))
    print("upload", reply.get(3, 0), reply.get(4, 0))

    # The same, compressed with gzip.
    gzipped = grpc.insecure_channel(sys.argv[1], compression=grpc.Compression.Gzip)
    zupload = gzipped.stream_unary("/mprpc.test.Echo/Upload", **raw)
    requests = (stream_request(payload=b"a" * 5000) for _ in range(20))
    reply = fields(zupload(requests, timeout=10))
    print("upload_gzip", reply.get(3, 0), reply.get(4, 0))

    # Both ways: each request answered as it comes.
    answers = []
    for reply in chat(iter([stream_request(payload=p) for p in (b"a", b"b", b"c")]), timeout=10):
        answers.append(fields(reply).get(1, b"").decode())
    print("chat", "".join(answers))

    # Interleaved: the next request goes only after the previous answer came back.
    lock = threading.Condition()
    state = {"answers": 0}

    def paced():
        for i in range(5):
            with lock:
                lock.wait_for(lambda: state["answers"] >= i, timeout=10)
            yield stream_request(payload=bytes([65 + i]))

    order = []
    for reply in chat(paced(), timeout=10):
        order.append(fields(reply).get(1, b"").decode())
        with lock:
            state["answers"] += 1
            lock.notify_all()
    print("chat_paced", "".join(order))

    # Cancelled by the caller after three replies of an endless stream.
    call = subscribe(stream_request(count=1000000, interval_ms=5), timeout=30)
    for i, _ in enumerate(call):
        if i == 2:
            call.cancel()
            break
    print("cancelled", call.code().name)


if __name__ == "__main__":
    main()
