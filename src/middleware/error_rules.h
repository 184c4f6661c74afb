// Internals behind prosody/error_rules.h (ErrorRules, the declarative
// exception classification), shared with the engine's handler boundary so
// that every layer words an escaped exception the same way.
//
// Thread safety: pure functions.
#pragma once

#include <exception>
#include <string>

#include "prosody/error_rules.h"

namespace prosody::middleware {

// "<what()>" for a std::exception, "non-standard exception" for anything
// else, "no exception" for an empty pointer.
std::string describe_exception(const std::exception_ptr& exception);

}  // namespace prosody::middleware
