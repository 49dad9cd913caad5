// Subcommands of the `volga` executable. Each registers its options on the
// CLI11 app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace volga::cli {

using Command = std::function<int()>;

Command add_run(CLI::App& app);
Command add_info(CLI::App& app);
Command add_logits(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_detokenize(CLI::App& app);

// Thread count for --threads: 0 or less means all hardware threads.
int resolve_threads(int requested);

}  // namespace volga::cli
