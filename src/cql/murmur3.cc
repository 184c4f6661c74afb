#include "cql/murmur3.h"

#include <limits>

namespace prosody::cql {
namespace {

constexpr std::uint64_t c1 = 0x87c37b91114253d5ULL;
constexpr std::uint64_t c2 = 0x4cf5ad432745937fULL;

std::uint64_t rotl(std::uint64_t v, int n) { return (v << n) | (v >> (64 - n)); }

std::uint64_t fmix(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

// Blocks are read little-endian as unsigned bytes.
std::uint64_t block(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// Tail bytes as Java reads them: a signed byte widened to long.
std::uint64_t tail(const std::uint8_t* p, int i, int shift) {
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int8_t>(p[i]))) << shift;
}

}  // namespace

std::int64_t murmur3_token(std::span<const std::uint8_t> key) noexcept {
  const auto* data = key.data();
  const auto len = key.size();
  const auto nblocks = len / 16;
  std::uint64_t h1 = 0, h2 = 0;
  for (std::size_t i = 0; i < nblocks; ++i) {
    auto k1 = block(data + i * 16);
    auto k2 = block(data + i * 16 + 8);
    k1 *= c1;
    k1 = rotl(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 = rotl(h1, 27);
    h1 += h2;
    h1 = h1 * 5 + 0x52dce729;
    k2 *= c2;
    k2 = rotl(k2, 33);
    k2 *= c1;
    h2 ^= k2;
    h2 = rotl(h2, 31);
    h2 += h1;
    h2 = h2 * 5 + 0x38495ab5;
  }
  const auto* t = data + nblocks * 16;
  std::uint64_t k1 = 0, k2 = 0;
  switch (len & 15) {
    case 15: k2 ^= tail(t, 14, 48); [[fallthrough]];
    case 14: k2 ^= tail(t, 13, 40); [[fallthrough]];
    case 13: k2 ^= tail(t, 12, 32); [[fallthrough]];
    case 12: k2 ^= tail(t, 11, 24); [[fallthrough]];
    case 11: k2 ^= tail(t, 10, 16); [[fallthrough]];
    case 10: k2 ^= tail(t, 9, 8); [[fallthrough]];
    case 9:
      k2 ^= tail(t, 8, 0);
      k2 *= c2;
      k2 = rotl(k2, 33);
      k2 *= c1;
      h2 ^= k2;
      [[fallthrough]];
    case 8: k1 ^= tail(t, 7, 56); [[fallthrough]];
    case 7: k1 ^= tail(t, 6, 48); [[fallthrough]];
    case 6: k1 ^= tail(t, 5, 40); [[fallthrough]];
    case 5: k1 ^= tail(t, 4, 32); [[fallthrough]];
    case 4: k1 ^= tail(t, 3, 24); [[fallthrough]];
    case 3: k1 ^= tail(t, 2, 16); [[fallthrough]];
    case 2: k1 ^= tail(t, 1, 8); [[fallthrough]];
    case 1:
      k1 ^= tail(t, 0, 0);
      k1 *= c1;
      k1 = rotl(k1, 31);
      k1 *= c2;
      h1 ^= k1;
      break;
    default: break;
  }
  h1 ^= len;
  h2 ^= len;
  h1 += h2;
  h2 += h1;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h1 += h2;
  auto token = static_cast<std::int64_t>(h1);
  return token == std::numeric_limits<std::int64_t>::min() ? std::numeric_limits<std::int64_t>::max() : token;
}

}  // namespace prosody::cql
