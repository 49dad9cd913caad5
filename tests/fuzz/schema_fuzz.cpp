// libFuzzer target: any bytes as a JSON Schema (response_format and tool
// parameters arrive from clients). Conversion must succeed or throw
// SchemaError; a grammar it returns must parse, and a few steps of the matcher
// over it must work. Never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sampling/grammar.h"
#include "sampling/json_schema.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto schema = nlohmann::ordered_json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return 0;
  std::string gbnf;
  try {
    gbnf = volga::json_schema_to_gbnf(schema);
  } catch (const volga::SchemaError& e) {
    FUZZ_CHECK(std::string(e.what()).find(" at ") != std::string::npos);  // every refusal names its place
    return 0;
  }
  FUZZ_CHECK(gbnf.size() < (size_t(64) << 20));
  std::shared_ptr<const volga::Grammar> grammar;
  try {
    grammar = volga::Grammar::parse(gbnf);
  } catch (const volga::GrammarError& e) {
    std::fprintf(stderr, "converter output does not parse: %s\n%s\n", e.what(), gbnf.c_str());
    FUZZ_CHECK(false);
  }
  // Walk: always the smallest allowed byte; the grammar has no dead ends, so
  // a state with no byte must be complete.
  volga::GrammarMatcher m(grammar);
  for (int step = 0; step < 64; ++step) {
    auto next = m.next_bytes();
    if (next.none()) {
      FUZZ_CHECK(m.is_complete());
      break;
    }
    size_t b = 0;
    while (!next[b]) ++b;
    FUZZ_CHECK(m.accept_bytes(std::string(1, static_cast<char>(b))));
  }
  return 0;
}
