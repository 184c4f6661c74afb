#include "engine/record.h"

#include "util/utf8.h"

namespace prosody::detail {

RecordPtr make_record(kafka::MessageHandle message, const Topic* topic) {
  auto r = std::make_unique<Record>();
  r->topic = topic;
  r->partition = Partition{message->partition};
  r->offset = Offset{message->offset};
  if (message->key) r->key.assign(static_cast<const char*>(message->key), message->key_len);
  r->key_is_valid_utf8 = util::is_valid_utf8(r->key);
  rd_kafka_timestamp_type_t tstype;
  const std::int64_t ts = rd_kafka_message_timestamp(message.get(), &tstype);
  r->timestamp = ts >= 0 ? std::chrono::system_clock::time_point{std::chrono::milliseconds{ts}}
                         : std::chrono::system_clock::now();
  r->raw = std::move(message);
  return r;
}

const nlohmann::json& Record::decoded_payload() const {
  if (payload_pending) {
    payload_pending = false;
    const auto text = raw_payload();
    payload = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    // Validated before the handler ran, so this holds; never hand out a
    // `discarded` value if it somehow does not.
    if (payload.is_discarded()) payload = nullptr;
  }
  return payload;
}

const Headers& Record::all_headers() const {
  if (headers) return *headers;
  headers.emplace();
  rd_kafka_headers_t* hdrs = nullptr;
  if (raw && rd_kafka_message_headers(raw.get(), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      headers->push_back(Header{name, value ? std::string(static_cast<const char*>(value), size) : std::string()});
    }
  }
  return *headers;
}

std::optional<std::string_view> Record::find_header(std::string_view name) const {
  return find_header(std::string(name).c_str());
}

std::optional<std::string_view> Record::find_header(const char* name) const {
  if (!raw) {
    if (!headers) return std::nullopt;
    for (auto it = headers->rbegin(); it != headers->rend(); ++it) {
      if (it->name == name) return std::string_view(it->value);
    }
    return std::nullopt;
  }
  rd_kafka_headers_t* hdrs = nullptr;
  if (!raw || rd_kafka_message_headers(raw.get(), &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hdrs) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return value ? std::string_view(static_cast<const char*>(value), size) : std::string_view();
}

}  // namespace prosody::detail

namespace prosody {

const Topic& Message::topic() const { return *record_->topic; }
Partition Message::partition() const { return record_->partition; }
Offset Message::offset() const { return record_->offset; }
const Key& Message::key() const { return record_->key; }
std::chrono::system_clock::time_point Message::timestamp() const { return record_->timestamp; }
std::string_view Message::raw_payload() const { return record_->raw_payload(); }
const nlohmann::json& Message::payload() const { return record_->decoded_payload(); }
const Headers& Message::headers() const { return record_->all_headers(); }
std::optional<std::string_view> Message::header(std::string_view name) const { return record_->find_header(name); }

}  // namespace prosody
