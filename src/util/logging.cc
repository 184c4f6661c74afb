#include "prosody/logging.h"

#include <atomic>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace prosody {
namespace {

std::shared_ptr<spdlog::logger> make_default() {
  auto l = std::make_shared<spdlog::logger>("prosody", std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  l->set_level(spdlog::level::info);
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  return l;
}

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_logger;  // guarded by g_mutex

}  // namespace

void set_logger(std::shared_ptr<spdlog::logger> logger) {
  std::lock_guard lock(g_mutex);
  g_logger = std::move(logger);
}

std::shared_ptr<spdlog::logger> logger() {
  std::lock_guard lock(g_mutex);
  if (!g_logger) g_logger = make_default();
  return g_logger;
}

}  // namespace prosody
