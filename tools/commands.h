// The `prosody` CLI's subcommands. Each registers itself on the CLI11 app
// and returns the exit code when run.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace prosody::cli {

// Returns a runner to call if the subcommand was selected.
std::function<int()> add_demo(CLI::App& app);
std::function<int()> add_produce(CLI::App& app);
std::function<int()> add_tail(CLI::App& app);
std::function<int()> add_config(CLI::App& app);
std::function<int()> add_migrate(CLI::App& app);

}  // namespace prosody::cli
