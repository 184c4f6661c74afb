#include "middleware/layer.h"

#include <fmt/format.h>

namespace prosody::middleware {

std::string Invocation::describe() const {
  if (kind == EventKind::message && record) {
    return fmt::format("{}[{}]@{} key '{}'", tpk.topic, tpk.partition.value(), record->offset.value(), tpk.key);
  }
  return fmt::format("{}[{}] timer {} s key '{}'", tpk.topic, tpk.partition.value(), timer ? timer->time : 0,
                     tpk.key);
}

std::vector<std::string_view> Stack::names() const {
  std::vector<std::string_view> out;
  out.reserve(layers_.size());
  for (const auto& l : layers_) out.push_back(l->name());
  return out;
}

}  // namespace prosody::middleware
