#include "runtime/mpi_pipeline.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "format/gguf.h"
#include "runtime/pipeline_message.h"
#include "runtime/pipeline_plan.h"
#include "util/error.h"

namespace volga {

namespace {

// This host's available memory (the split's default weights).
double available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024.0;
    in.ignore(256, '\n');
  }
  return 1.0;  // unknown: equal weights
}

// The plan every rank computes from the same inputs (a collective call).
PipelinePlan agree_plan(MpiComm& comm, const MpiFlags& flags, const GgufFile& file, const ModelSpec& spec) {
  const std::vector<double> capacity = comm.all_gather(available_memory());
  const ModelBytes bytes = model_bytes(file, spec);
  if (!flags.layer_split.empty())
    return plan_from_counts(bytes, spec, parse_layer_split(flags.layer_split), static_cast<size_t>(comm.size()));
  return plan_by_capacity(bytes, spec, capacity);
}

// ---- rank 0 ----

class PipelineModel final : public Model {
 public:
  PipelineModel(std::shared_ptr<MpiComm> comm, std::unique_ptr<Model> stage, PipelinePlan plan)
      : comm_(std::move(comm)), stage_(std::move(stage)), plan_(std::move(plan)) {}
  ~PipelineModel() override {
    try {
      const std::vector<uint8_t> stop = encode_stage_stop();
      comm_->send(1, stop.data(), stop.size());  // each stage passes it on, then exits
      comm_->mark_clean();
    } catch (const Error& e) {
      std::fprintf(stderr, "volga: %s\n", e.what());
    }
  }

  const ModelSpec& spec() const override { return stage_->spec(); }
  Logits forward(const Batch& batch, KvCache& cache) override;
  std::vector<float> token_states(const Batch&) override {
    throw Error("embeddings are not available when the model is split across MPI ranks");
  }

 private:
  std::shared_ptr<MpiComm> comm_;
  std::unique_ptr<Model> stage_;
  PipelinePlan plan_;
  std::vector<uint8_t> reply_;
};

Logits PipelineModel::forward(const Batch& batch, KvCache& cache) {
  const ModelSpec& s = spec();
  prepare_batch(s, batch, cache);
  cache.log_block_copies(true);
  std::vector<float> x;
  stage_->embed(batch, x);
  stage_->run_layers(batch, cache, x.data());
  const std::vector<uint8_t> msg = encode_stage_forward(batch, cache, x, s.n_embd);
  comm_->send(1, msg.data(), msg.size());
  comm_->recv(comm_->size() - 1, reply_);
  size_t rows = 0;
  for (const BatchToken& t : batch.tokens) rows += t.want_logits;
  const size_t E = static_cast<size_t>(s.n_embd);
  if (reply_.size() != rows * E * sizeof(float)) throw Error("pipeline: the last stage sent a reply of the wrong size");
  size_t r = 0;
  for (size_t t = 0; t < batch.size(); ++t)
    if (batch.tokens[t].want_logits) std::memcpy(&x[t * E], reply_.data() + (r++) * E * sizeof(float), E * sizeof(float));
  cache.commit(batch);
  return stage_->output(batch, x.data());
}

// ---- ranks > 0 ----

class StageWorker {
 public:
  StageWorker(MpiComm& comm, std::unique_ptr<Model> stage, StageRange range)
      : comm_(comm), stage_(std::move(stage)), range_(range) {}
  // One message; false on Stop.
  bool step();

 private:
  KvCache& cache_for(const StageHeader& h);
  struct CacheEntry {
    StageHeader key;
    std::unique_ptr<KvCache> cache;
  };

  MpiComm& comm_;
  std::unique_ptr<Model> stage_;
  StageRange range_;
  std::vector<uint8_t> buf_;
  std::vector<CacheEntry> caches_;  // most recently used last
};

KvCache& StageWorker::cache_for(const StageHeader& h) {
  for (size_t i = 0; i < caches_.size(); ++i) {
    const StageHeader& k = caches_[i].key;
    if (k.cache_key == h.cache_key && k.n_seq == h.n_seq && k.n_ctx == h.n_ctx && k.n_blocks == h.n_blocks &&
        k.type_k == h.type_k && k.type_v == h.type_v) {
      std::rotate(caches_.begin() + static_cast<long>(i), caches_.begin() + static_cast<long>(i) + 1, caches_.end());
      return *caches_.back().cache;
    }
  }
  if (caches_.size() >= 4) caches_.erase(caches_.begin());  // rank 0 has moved on from it
  const KvCacheOptions o = stage_cache_options(h, range_.first, range_.end - range_.first);
  caches_.push_back({h, std::make_unique<KvCache>(stage_->spec(), o)});
  return *caches_.back().cache;
}

bool StageWorker::step() {
  const int prev = comm_.rank() - 1, next = comm_.rank() + 1;
  const bool last = next == comm_.size();
  comm_.recv(prev, buf_);
  StageMessage m = decode_stage_message(buf_);
  if (m.header.op == static_cast<int64_t>(StageOp::Stop)) {
    if (!last) comm_.send(next, buf_.data(), buf_.size());
    return false;
  }
  const size_t E = static_cast<size_t>(stage_->spec().n_embd);
  if (m.header.n_embd != stage_->spec().n_embd) throw Error("pipeline: rank 0 runs a model of another width");
  KvCache& cache = cache_for(m.header);
  mirror_into(m, cache);
  stage_->run_layers(m.batch, cache, m.x.data());
  if (!last) {
    std::memcpy(buf_.data() + m.x_offset, m.x.data(), m.x.size() * sizeof(float));
    comm_.send(next, buf_.data(), buf_.size());
    return true;
  }
  std::vector<float> rows;
  for (size_t t = 0; t < m.batch.size(); ++t)
    if (m.batch.tokens[t].want_logits) rows.insert(rows.end(), &m.x[t * E], &m.x[t * E] + E);
  comm_.send(0, rows.data(), rows.size() * sizeof(float));
  return true;
}

}  // namespace

MpiLaunch::MpiLaunch(const MpiFlags& flags) : flags_(flags), comm_(MpiComm::start(flags.forced)) {
  if (!flags.layer_split.empty() && !comm_)
    throw Error("--layer-split splits a model across the ranks of an MPI job: start volga with mpirun (or --mpi)");
}

std::unique_ptr<Model> MpiLaunch::load(const GgufFile& file, ThreadPool& pool) {
  if (!comm_ || comm_->size() == 1) {
    if (comm_ && !flags_.layer_split.empty()) (void)agree_plan(*comm_, flags_, file, read_model_spec(file));
    return load_model(file, pool);
  }
  const ModelSpec spec = read_model_spec(file);
  PipelinePlan plan = agree_plan(*comm_, flags_, file, spec);
  if (!architecture_splits(spec)) (void)load_model_stage(file, pool, plan.stages[0]);  // throws, naming it
  std::fprintf(stderr, "volga: pipeline over %d MPI ranks:\n%s", comm_->size(), describe_plan(plan).c_str());
  std::unique_ptr<Model> stage = load_model_stage(file, pool, plan.stages[0]);
  return std::make_unique<PipelineModel>(comm_, std::move(stage), std::move(plan));
}

int MpiLaunch::serve_stage(const GgufFile& file, ThreadPool& pool) {
  try {
    const ModelSpec spec = read_model_spec(file);
    const PipelinePlan plan = agree_plan(*comm_, flags_, file, spec);
    const StageRange range = plan.stages[static_cast<size_t>(comm_->rank())];
    StageWorker worker(*comm_, load_model_stage(file, pool, range), range);
    while (worker.step()) {
    }
    comm_->mark_clean();
  } catch (const std::exception& e) {
    comm_->abort(e.what());
  }
  return 0;
}

}  // namespace volga
