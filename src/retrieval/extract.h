// Text extraction for the document index: plain text and Markdown as they
// are (Markdown's link and emphasis markup dropped), HTML with its tags,
// scripts and styles removed and entities decoded, PDF through poppler-utils'
// `pdftotext` run as a subprocess (no shell). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace volga::retrieval {

enum class DocKind { Text, Markdown, Html, Pdf, Unknown };

// The kind of a file from its extension (case-insensitive): .txt .text .md
// .markdown .rst .html .htm .xhtml .pdf; Unknown for anything else.
DocKind kind_of_path(const std::string& path);

// HTML to text: <script>, <style>, <head> (except <title>), comments and tags
// removed, block elements (p, div, br, li, headings, table rows...) become
// line breaks, entities decoded (named ones of HTML's common set and numeric
// ones), runs of spaces collapsed. Never throws; bad markup is kept as text.
std::string html_to_text(std::string_view html);

// Markdown to text: link and image syntax [text](url) becomes text, heading
// marks, emphasis runs (* _ `) and HTML comments are dropped.
std::string markdown_to_text(std::string_view md);

// The text of a PDF file from `pdftotext -q -enc UTF-8 FILE -`; pages are
// separated by blank lines. Throws volga::Error (with pdftotext's message)
// when the file does not parse or pdftotext is not installed.
std::string pdf_to_text(const std::string& path);

// The text of a document: reads the file, checks that it is UTF-8 (throws
// volga::Error naming the file when it is not, or when it cannot be read)
// and converts it by kind.
std::string extract_text(const std::string& path, DocKind kind);

// The file's bytes; throws volga::Error naming the file when it cannot be read.
std::string read_file_bytes(const std::string& path);

// 64-bit FNV-1a of the bytes, as 16 lowercase hex digits (change detection
// and integrity of the index files, not a cryptographic hash).
std::string content_hash(std::string_view bytes);

}  // namespace volga::retrieval
