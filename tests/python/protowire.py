"""Protobuf's wire format, by hand, for the test clients: messages encoded and read without
generated code."""


def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field_varint(tag, value):
    return bytes([tag << 3]) + varint(value)


def field_bytes(tag, value):
    return bytes([tag << 3 | 2]) + varint(len(value)) + value


def fields(message):
    """The fields of a protobuf message: {tag: value} (the last of each)."""
    out, i = {}, 0
    while i < len(message):
        key, i = read_varint(message, i)
        tag, wire = key >> 3, key & 7
        if wire == 0:
            out[tag], i = read_varint(message, i)
        elif wire == 2:
            n, i = read_varint(message, i)
            out[tag], i = message[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wire)
    return out


def read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i
