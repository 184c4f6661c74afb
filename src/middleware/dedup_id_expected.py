# Independent computation of Prosody's dedup id (see src/middleware/dedup_id_test.cc).
import struct, sys, uuid, xxhash

def lp(s: bytes) -> bytes:
    return struct.pack('<I', len(s)) + s

def dedup_id(version, group, topic, partition, key, event_id=None, offset=None):
    data = lp(version.encode()) + lp(group.encode()) + lp(topic.encode()) + struct.pack('<i', partition) + lp(key.encode())
    if event_id is not None:
        data += b'\x01' + lp(event_id.encode())
    else:
        data += b'\x00' + struct.pack('<q', offset)
    h = xxhash.xxh3_128_intdigest(data)          # high64 << 64 | low64
    b = bytearray(h.to_bytes(16, 'little'))      # u128::to_le_bytes
    b[6] = (b[6] & 0x0F) | 0x80                  # version 8
    b[8] = (b[8] & 0x3F) | 0x80                  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(b))), h

print(dedup_id("1", "orders-group", "orders", 7, "customer-42", event_id="evt-123"))
print(dedup_id("1", "orders-group", "orders", 7, "customer-42", offset=12345))
print(dedup_id("2", "orders-group", "orders", 7, "customer-42", offset=12345))
print(dedup_id("1", "g", "t", -1, "", offset=-1))
print(dedup_id("1", "g", "t", 0, "k", event_id=""))
