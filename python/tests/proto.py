"""Just enough protobuf encoding for the tests to build messages the vectors
describe (fields in number order, proto3 defaults omitted)."""


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number: int, value: bytes) -> bytes:
    if not value:
        return b""
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_varint(number: int, value: int) -> bytes:
    if not value:
        return b""
    return varint(number << 3) + varint(value)


def hybrid_group_session_key(session_id: bytes, stream_id: bytes, key: bytes, miniblock_num: int,
                             miniblock_hash: bytes) -> bytes:
    """river.HybridGroupSessionKey."""
    return (field_bytes(1, session_id) + field_bytes(2, stream_id) + field_bytes(3, key)
            + field_varint(4, miniblock_num) + field_bytes(5, miniblock_hash))


def exported_device(pickle_key: str, pickled_account: str) -> bytes:
    """river.ExportedDevice with an account and no sessions."""
    return field_bytes(1, pickle_key.encode()) + field_bytes(2, pickled_account.encode())


def hybrid_encrypted_data(sender_key: str, session_id: bytes, iv: bytes, ciphertext: bytes, version: int) -> bytes:
    """river.EncryptedData of a grpaes event."""
    return (field_bytes(2, b"grpaes") + field_bytes(3, sender_key.encode()) + field_bytes(8, ciphertext)
            + field_bytes(9, iv) + field_bytes(10, session_id) + field_varint(11, version))
