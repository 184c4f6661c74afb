// prosody: command-line tool for prosody-cpp (demo, produce, tail).
#include <iostream>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"prosody-cpp: per-key ordered Kafka event processing"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands;
  auto remember = [&](std::function<int()> run) { commands.emplace_back(app.get_subcommands({}).back(), std::move(run)); };
  remember(prosody::cli::add_demo(app));
  remember(prosody::cli::add_produce(app));
  remember(prosody::cli::add_tail(app));
  remember(prosody::cli::add_config(app));
  remember(prosody::cli::add_migrate(app));
  CLI11_PARSE(app, argc, argv);
  for (auto& [sub, run] : commands) {
    if (sub->parsed()) return run();
  }
  return 1;
}
