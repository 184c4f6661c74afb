// File: prosody/logging.h
//
// The library logs through one process-wide spdlog logger. Applications may
// inject their own (a logger with their sinks and level); passing nullptr
// restores the default (stdout, INFO). Set it before creating clients: each
// component reads the logger when it starts.
//
// Thread safety: set_logger/logger are safe from any thread.
#pragma once

#include <memory>

#include <spdlog/logger.h>

namespace prosody {

void set_logger(std::shared_ptr<spdlog::logger> logger);
std::shared_ptr<spdlog::logger> logger();

}  // namespace prosody
