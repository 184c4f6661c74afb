// UTF-8 validation for record keys (Prosody requires UTF-8 keys).
#pragma once

#include <string_view>

namespace prosody::util {

bool is_valid_utf8(std::string_view s) noexcept;

}  // namespace prosody::util
