// Retrieval-augmented chat completions (volga serve --index DIR); see
// retrieval_api.cpp and docs/API.md ("volga_retrieval").
#pragma once

#include <memory>
#include <string>

#include "server/handlers.h"

namespace volga::server {

// Opens the index read-only and finds, among the loaded models, the
// embedding model it was built with. Throws volga::Error when the index
// cannot be opened or no loaded model is the index's (naming both).
std::shared_ptr<RetrievalState> open_retrieval(ServerState& s, const std::string& dir);

// The embedding model file the index at `dir` remembers (volga index add
// --model), "" when it names none or the file is gone. Throws volga::Error
// when the index cannot be opened.
std::string remembered_embed_model(const std::string& dir);

// When `body` asks for retrieval ("volga_retrieval"), removes the field,
// searches (and reranks), adds the excerpts to body["messages"] and returns
// the sources ([{index, source, chunk, score, text}]); else returns null.
// Throws ApiError (400, param volga_retrieval) for a bad field, a request
// without an index loaded, or rerank without a reranker.
Json apply_retrieval(ServerState& s, Json& body, bool chat);

}  // namespace volga::server
