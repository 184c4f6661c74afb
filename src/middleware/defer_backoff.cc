#include "middleware/defer_backoff.h"

#include <algorithm>

namespace prosody::middleware {

DeferBackoff DeferBackoff::from_config(const Config& config) {
  return DeferBackoff{config.defer_base(), config.defer_max_delay()};
}

DeferBackoff::Range DeferBackoff::range(std::uint32_t retry_count) const noexcept {
  using std::chrono::milliseconds;
  if (retry_count == 0) return {milliseconds{0}, milliseconds{0}};
  constexpr milliseconds floor{1000};
  const milliseconds b = std::max(base, floor);
  const milliseconds m = std::max(max, b);
  // base * 2^(n-1), saturating at max without overflowing: double while the
  // next doubling still fits under the cap.
  milliseconds grown = b;
  for (std::uint32_t i = 1; i < retry_count && grown < m; ++i) {
    grown = grown > m / 2 ? m : grown * 2;
  }
  return {floor, std::max(std::min(grown, m), floor)};
}

}  // namespace prosody::middleware
