#include "middleware/dedup_layer.h"

#include <spdlog/spdlog.h>

#include "engine/record.h"
#include "middleware/dedup_id.h"
#include "prosody/logging.h"

namespace prosody::middleware {

DedupLayer::DedupLayer(Options options, std::shared_ptr<store::DedupStore> store, Sinks sinks)
    : options_(std::move(options)), store_(std::move(store)), sinks_(std::move(sinks)),
      cache_(options_.cache_size), log_(prosody::logger()) {}

store::DedupId DedupLayer::id_of(const Invocation& inv) const {
  // Read from the encoded payload, never from a DOM: the layer runs before
  // the handler, and the id must not depend on whether anything decoded it.
  std::string scratch;
  std::optional<std::string_view> event_id;
  if (options_.codec == PayloadCodec::json) event_id = find_json_event_id(inv.record->raw_payload(), scratch);
  return dedup_id(DedupFields{options_.version, options_.group_id, inv.tpk.topic, inv.tpk.partition.value(),
                              inv.tpk.key, event_id, inv.record->offset.value()});
}

Status DedupLayer::skip(const Invocation& inv, std::string_view tier) const {
  if (sinks_.on_deduplicated) sinks_.on_deduplicated();
  log_->debug("{}: already handled (deduplicated by the {}), skipping the handler", inv.describe(), tier);
  return ok_status();
}

void DedupLayer::remember(const Invocation& inv, const store::DedupId& id) const {
  cache_.insert(id);
  if (auto s = store_->record(id); !s) {
    if (sinks_.on_store_error) sinks_.on_store_error();
    log_->warn("{}: handled, but the deduplication store {} did not record it ({}); a redelivery to another "
               "consumer would run it again",
               inv.describe(), store_->describe(), s.error().message());
  }
}

Status DedupLayer::handle(Invocation& inv, const Next& next) const {
  if (inv.kind == EventKind::timer) return next(inv);
  const store::DedupId id = id_of(inv);
  if (cache_.contains(id)) return skip(inv, "cache");
  auto seen = store_->contains(id);
  if (!seen) {
    if (sinks_.on_store_error) sinks_.on_store_error();
    if (seen.error().is_transient()) {
      return Error::transient("deduplication store " + store_->describe() + " could not be asked about " +
                                  inv.describe() + ": " + seen.error().message(),
                              ErrorCode::store);
    }
    log_->error("{}: the deduplication store {} failed ({}); handling the message without deduplication",
                inv.describe(), store_->describe(), seen.error().message());
  } else if (*seen) {
    cache_.insert(id);
    return skip(inv, "store");
  }
  Status result = next(inv);
  if (result.ok() || result.error().is_permanent()) remember(inv, id);
  return result;
}

}  // namespace prosody::middleware
