// volga — LLM inference engine. Entry point: parses the subcommand and runs it,
// turning volga::Error into a one-line message and exit code 1.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "util/error.h"

namespace volga::cli {
int resolve_threads(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string resolve_model(const std::string& given) {
  namespace fs = std::filesystem;
  if (!given.empty()) return given;
  const char* name = "volga-demo-q8_0.gguf";
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("VOLGA_DEMO_MODEL")) candidates.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    // build/bin/volga in a checkout; PREFIX/bin/volga when installed.
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      candidates.push_back(dir / "models" / name);
      candidates.push_back(dir / "share" / "volga" / "models" / name);
    }
  }
  candidates.push_back(fs::path("models") / name);
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) {
      std::fprintf(stderr, "volga: no model given; using the demo model %s\n", c.string().c_str());
      return c.string();
    }
  throw Error(std::string("no model given and the demo model ") + name +
              " was not found (looked beside the executable and in ./models); give a GGUF file");
}

}  // namespace volga::cli

int main(int argc, char** argv) {
  CLI::App app{"Volga: run open-weight LLMs (GGUF) fast on ordinary CPUs.\n"
               "Run 'volga COMMAND --help' for the options of a command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "volga 0.1.0");
  std::map<CLI::App*, volga::cli::Command> commands;
  auto reg = [&](volga::cli::Command (*add)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    volga::cli::Command c = add(app);
    commands[app.get_subcommands({})[before]] = std::move(c);
  };
  reg(volga::cli::add_run);
  reg(volga::cli::add_info);
  reg(volga::cli::add_tokenize);
  reg(volga::cli::add_detokenize);
  reg(volga::cli::add_logits);
  reg(volga::cli::add_embed);
  reg(volga::cli::add_template);
  reg(volga::cli::add_chat);
  reg(volga::cli::add_bench);
  reg(volga::cli::add_serve);
  reg(volga::cli::add_perplexity);
  reg(volga::cli::add_convert);
  reg(volga::cli::add_quantize);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const volga::Error& e) {
    std::fprintf(stderr, "volga: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "volga: error: out of memory (try a smaller --ctx-size or model)\n");
    return 1;
  }
  return 0;
}
