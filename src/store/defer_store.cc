#include "store/defer_store.h"

#include <fmt/format.h>

namespace prosody::store {

DeferSegment::DeferSegment(std::string group, Topic topic, Partition partition)
    : group_(std::move(group)),
      topic_(std::move(topic)),
      partition_(partition),
      name_(fmt::format("{}/{}:{}", topic_, partition_.value(), group_)) {}

}  // namespace prosody::store
