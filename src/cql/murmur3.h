// Cassandra's Murmur3Partitioner token: the first 64 bits of MurmurHash3
// x64/128 (seed 0) of the serialized partition key, exactly as Cassandra
// computes it — including its quirk of sign-extending the tail bytes, which
// makes tokens differ from textbook Murmur3 for keys whose trailing
// (length % 16) bytes have the high bit set. Long.MIN_VALUE maps to MAX.
//
// Thread safety: pure function.
#pragma once

#include <cstdint>
#include <span>

namespace prosody::cql {

std::int64_t murmur3_token(std::span<const std::uint8_t> key) noexcept;

}  // namespace prosody::cql
