// libFuzzer target: any bytes as GBNF (grammars arrive from clients). Parsing
// must succeed or throw GrammarError; over a parsed grammar, random matcher
// steps (driven by the input's own bytes) must keep next_bytes() and
// accept_bytes() consistent. Never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "sampling/grammar.h"

#include "fuzz_check.h"

static void walk(const std::shared_ptr<const volga::Grammar>& grammar, const uint8_t* data, size_t size) {
  volga::GrammarMatcher m(grammar);
  uint64_t rng = 0x9E3779B97F4A7C15ull ^ size;
  for (size_t i = 0; i < size; ++i) rng = (rng ^ data[i]) * 0x100000001B3ull;
  for (int step = 0; step < 48; ++step) {
    auto next = m.next_bytes();
    if (next.none()) break;
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    size_t count = next.count(), pick = static_cast<size_t>(rng >> 33) % count, b = 0;
    for (;; ++b)
      if (next[b] && pick-- == 0) break;
    std::string byte(1, static_cast<char>(b));
    FUZZ_CHECK(m.can_accept_bytes(byte));
    FUZZ_CHECK(m.accept_bytes(byte));
    // A byte next_bytes() excludes is refused and leaves the state alone.
    for (size_t other = 0; other < 256; other += 37)
      if (!m.next_bytes()[other]) FUZZ_CHECK(!m.accept_bytes(std::string(1, static_cast<char>(other))));
  }
  (void)m.is_complete();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const volga::Grammar> grammar;
  try {
    grammar = volga::Grammar::parse(text);
  } catch (const volga::GrammarError&) {
    return 0;
  }
  // A parsed grammar may still exceed the matcher's limits (nesting depth,
  // ambiguity, state size) when built or stepped: that is a GrammarError
  // too, never a crash.
  try {
    walk(grammar, data, size);
  } catch (const volga::GrammarError&) {
  }
  return 0;
}
