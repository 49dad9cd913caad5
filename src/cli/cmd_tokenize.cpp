// volga tokenize / detokenize: inspect how a model's tokenizer cuts text.
// The tokenizer comes from a GGUF model or a Hugging Face tokenizer.json.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/utf8.h"

namespace volga::cli {

namespace {

struct LoadedTokenizer {
  std::unique_ptr<GgufFile> file;  // keeps GGUF-backed data alive
  std::unique_ptr<Tokenizer> tok;
};

LoadedTokenizer load_tokenizer(const std::string& path) {
  LoadedTokenizer t;
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    t.tok = Tokenizer::from_tokenizer_json(path);
  } else {
    t.file = GgufFile::open(path);
    t.tok = Tokenizer::from_gguf(*t.file);
  }
  return t;
}

std::string read_all(FILE* f) {
  std::string s;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  return s;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  struct Opt {
    std::string source, text, file, batch;
    bool json = false, pieces = false, no_bos = false, special = false, timing = false;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (tokenizer of a GGUF model or a tokenizer.json)");
  cmd->add_option("tokenizer", o->source, "GGUF model or Hugging Face tokenizer.json")->required()->check(CLI::ExistingFile);
  auto* text = cmd->add_option("text", o->text, "Text to tokenize");
  auto* file = cmd->add_option("-f,--file", o->file, "Read the text from this file ('-' for standard input)")->excludes(text);
  cmd->add_option("--batch", o->batch, "Tokenize every string of a JSON array in this file; print a JSON array of id arrays")
      ->excludes(text)->excludes(file);
  cmd->add_flag("--json", o->json, "Print a JSON array of ids (with --pieces: objects with id and piece)");
  cmd->add_flag("--pieces", o->pieces, "Show each token's text next to its id");
  cmd->add_flag("--no-bos", o->no_bos, "Do not add BOS even if the vocabulary asks for it");
  cmd->add_flag("--special", o->special, "Recognise control-token texts such as <|im_start|> in the input");
  cmd->add_flag("--timing", o->timing, "Report tokens, bytes and time taken on standard error");
  return [o]() -> int {
    LoadedTokenizer t = load_tokenizer(o->source);
    if (!o->batch.empty()) {
      FILE* f = std::fopen(o->batch.c_str(), "rb");
      if (!f) throw Error("cannot open '" + o->batch + "'");
      std::string raw = read_all(f);
      std::fclose(f);
      nlohmann::json texts = nlohmann::json::parse(raw, nullptr, false);
      if (!texts.is_array()) throw Error("--batch: '" + o->batch + "' is not a JSON array of strings");
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : texts) {
        if (!item.is_string()) throw Error("--batch: every element must be a string");
        out.push_back(t.tok->encode(item.get<std::string>(), !o->no_bos, o->special));
      }
      std::printf("%s\n", out.dump().c_str());
      return 0;
    }
    std::string text = o->text;
    if (!o->file.empty()) {
      FILE* f = o->file == "-" ? stdin : std::fopen(o->file.c_str(), "rb");
      if (!f) throw Error("cannot open '" + o->file + "'");
      text = read_all(f);
      if (f != stdin) std::fclose(f);
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> ids = t.tok->encode(text, !o->no_bos, o->special);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (o->json) {
      nlohmann::json j = nlohmann::json::array();
      for (int32_t id : ids) {
        if (o->pieces) j.push_back({{"id", id}, {"piece", sanitize_utf8(t.tok->token_bytes(id, true))}});
        else j.push_back(id);
      }
      std::printf("%s\n", j.dump().c_str());
    } else if (o->pieces) {
      for (int32_t id : ids) {
        nlohmann::json piece = sanitize_utf8(t.tok->token_bytes(id, true));
        std::printf("%8d  %s\n", id, piece.dump().c_str());
      }
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
      std::printf("%s\n", line.c_str());
    }
    if (o->timing)
      std::fprintf(stderr, "%zu tokens from %zu bytes in %.3f s (%.2f MB/s)\n", ids.size(), text.size(), secs,
                   static_cast<double>(text.size()) / 1e6 / std::max(secs, 1e-9));
    return 0;
  };
}

Command add_detokenize(CLI::App& app) {
  struct Opt {
    std::string source;
    std::vector<std::string> ids;
    bool special = false;
  };
  auto o = std::make_shared<Opt>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Print the text of token ids (tokenizer of a GGUF model or a tokenizer.json)");
  cmd->add_option("tokenizer", o->source, "GGUF model or Hugging Face tokenizer.json")->required()->check(CLI::ExistingFile);
  cmd->add_option("ids", o->ids, "Token ids, separated by spaces or commas")->required();
  cmd->add_flag("--special", o->special, "Also print the text of control tokens");
  return [o]() -> int {
    LoadedTokenizer t = load_tokenizer(o->source);
    std::vector<int32_t> ids;
    for (std::string arg : o->ids) {
      for (char& c : arg)
        if (c == ',') c = ' ';
      std::istringstream ss(arg);
      std::string item;
      while (ss >> item) {
        size_t used = 0;
        long v = 0;
        try {
          v = std::stol(item, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != item.size() || v < 0 || v >= t.tok->n_vocab())
          throw Error("'" + item + "' is not a token id of this vocabulary (0.." + std::to_string(t.tok->n_vocab() - 1) + ")");
        ids.push_back(static_cast<int32_t>(v));
      }
    }
    std::string text = sanitize_utf8(t.tok->decode(ids, o->special));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  };
}

}  // namespace volga::cli
