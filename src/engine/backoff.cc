#include "engine/backoff.h"

#include <algorithm>

namespace prosody::engine {

std::chrono::milliseconds BackoffPolicy::cap(int attempt) const {
  if (attempt < 0) attempt = 0;
  // Doubling past 62 bits overflows; by then we are far beyond any max.
  const long long b = std::max<long long>(base.count(), 0);
  if (attempt >= 40 || b == 0) return b == 0 ? std::chrono::milliseconds{0} : max;
  const long long grown = b << attempt;
  return std::chrono::milliseconds{std::min<long long>(grown, max.count())};
}

}  // namespace prosody::engine
