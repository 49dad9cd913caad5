// UTF-8 helpers shared by the tokenizer, the CLI and (later) the server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>
#include <string>
#include <string_view>

namespace volga {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes
// there are not one (bad lead byte, bad continuation, overlong form,
// surrogate, beyond U+10FFFF, or cut short by the end of `s`).
size_t utf8_valid_sequence(std::string_view s, size_t i);

// True when s[i..] is a proper prefix of some valid sequence (more bytes may complete it).
bool utf8_incomplete_prefix(std::string_view s, size_t i);

// Unicode Normalization Form C (utf8proc). Invalid UTF-8 is returned unchanged.
std::string nfc_normalize(std::string_view s);

// Appends the UTF-8 encoding of code point `cp` (at most U+10FFFF) to `out`.
void append_utf8(std::string& out, uint32_t cp);

// The code points of `s`, read leniently: a lead byte takes the continuation
// bytes its form announces (whatever they are); for text already known to be
// UTF-8 (grammar literals, schema strings, patterns).
std::vector<uint32_t> utf8_code_points(std::string_view s);

// Copies s, replacing each byte that does not start a valid sequence with U+FFFD.
std::string sanitize_utf8(std::string_view s);

}  // namespace volga
