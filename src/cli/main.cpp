// volga — LLM inference engine. Entry point: parses the subcommand and runs it,
// turning volga::Error into a one-line message and exit code 1.
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "util/error.h"

namespace volga::cli {
namespace {
int hardware_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }
}  // namespace

int resolve_threads(int requested) { return requested > 0 ? requested : hardware_threads(); }

namespace {
// A validator for a whole number in [lo, hi]; `too_low` and `too_high` say
// what is wrong in the user's terms.
CLI::Validator whole_number(const char* unit, long lo, long hi, std::string too_low, std::string too_high,
                            const char* name) {
  return CLI::Validator(
      [=](std::string& v) -> std::string {
        long n = 0;
        try {
          size_t used = 0;
          n = std::stol(v, &used);
          if (used != v.size()) throw std::invalid_argument(v);
        } catch (const std::exception&) {
          return std::string("needs a whole number") + unit + ", not '" + v + "'";
        }
        if (n < lo) return too_low + ", not " + v;
        if (n > hi) return v + too_high;
        return std::string();
      },
      "N", name);
}
}  // namespace

CLI::Option* add_threads_option(CLI::App* cmd, int& threads) {
  const int most = 4 * hardware_threads();
  return cmd
      ->add_option("-t,--threads", threads,
                   "Worker threads (default: all " + std::to_string(hardware_threads()) + " hardware threads)")
      ->check(whole_number("", 1, most, "must be at least 1 (leave it out to use every hardware thread)",
                           " is far above the " + std::to_string(most / 4) + " hardware threads (at most " +
                               std::to_string(most) + ")",
                           "threads"));
}

CLI::Option* add_ctx_size_option(CLI::App* cmd, int& ctx_size, const std::string& help) {
  return cmd->add_option("-c,--ctx-size", ctx_size, help)
      ->check(whole_number(" of tokens", 1, 1L << 24, "must be at least 1 token",
                           " is above the limit of 16777216 tokens", "ctx-size"));
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
  reg(volga::cli::add_index);
  reg(volga::cli::add_template);
  reg(volga::cli::add_chat);
  reg(volga::cli::add_bench);
  reg(volga::cli::add_serve);
  reg(volga::cli::add_perplexity);
  reg(volga::cli::add_convert);
  reg(volga::cli::add_quantize);
  reg(volga::cli::add_imatrix);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One form for every error: "volga: error: ..." and exit code 1.
    std::string what = e.what();
    std::fprintf(stderr, "volga: error: %s\n", what.c_str());
    std::string usage = "volga";
    for (CLI::App* sub : app.get_subcommands())
      if (sub->parsed()) usage += " " + sub->get_name();
    std::fprintf(stderr, "Run '%s --help' for the options.\n", usage.c_str());
    return 1;
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) {
        const int rc = run();
        // Output that could not be written (a full disk, a closed pipe) is an error.
        const int flush_error = std::fflush(stdout) != 0 ? errno : 0;
        if (flush_error != 0 || std::ferror(stdout)) {
          std::fprintf(stderr, "volga: error: could not write the output%s%s\n", flush_error ? ": " : " (disk full or pipe closed?)",
                       flush_error ? std::strerror(flush_error) : "");
          return 1;
        }
        return rc;
      }
  } catch (const volga::Error& e) {
    std::fprintf(stderr, "volga: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "volga: error: out of memory (try a smaller --ctx-size or model)\n");
    return 1;
  }
  return 0;
}
