// `prosody config`: shows the configuration this environment produces (with
// secrets redacted) and whether it is valid; `--markdown` prints the option
// table that the README embeds.
#include <iostream>

#include "commands.h"
#include "prosody/config.h"

namespace prosody::cli {

std::function<int()> add_config(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "print the effective configuration from PROSODY_* and validate it");
  auto markdown = std::make_shared<bool>(false);
  cmd->add_flag("--markdown", *markdown, "print the table of every option instead");
  return [markdown] {
    if (*markdown) {
      std::cout << option_table_markdown();
      return 0;
    }
    const auto config = Config::from_env();
    std::cout << config.describe() << "\n";
    if (auto s = config.validate(); !s) {
      std::cerr << s.error().message() << "\n";
      return 1;
    }
    for (const auto& name : config.inactive_options_in_use()) {
      std::cerr << "note: option '" << name << "' is set but not active yet\n";
    }
    return 0;
  };
}

}  // namespace prosody::cli
