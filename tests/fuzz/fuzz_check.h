// FUZZ_CHECK: the fuzz targets' invariant assertion.
#pragma once

#include <cstdio>
#include <cstdlib>

// Invariant violations abort, which libFuzzer reports as a crash with its input.
#define FUZZ_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "invariant failed: %s\n", #cond);          \
      std::abort();                                                   \
    }                                                                 \
  } while (0)
