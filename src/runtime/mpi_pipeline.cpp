#include "runtime/mpi_pipeline.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
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
  PipelineModel(std::shared_ptr<MpiComm> comm, std::unique_ptr<Model> stage, PipelinePlan plan, HiddenType hidden)
      : comm_(std::move(comm)), stage_(std::move(stage)), plan_(std::move(plan)), hidden_(hidden) {}
  ~PipelineModel() override {
    if (comm_->ending()) return;  // the other ranks are gone or going: nobody to tell
    try {
      abandon();
      report_traffic();
      const std::vector<uint8_t> stop = encode_stage_stop();
      comm_->send(1, stop.data(), stop.size());  // each stage passes it on, then exits
      comm_->mark_clean();
    } catch (const Error& e) {
      std::fprintf(stderr, "volga: %s\n", e.what());
    }
  }

  const ModelSpec& spec() const override { return stage_->spec(); }
  Logits forward(const Batch& batch, KvCache& cache) override {
    submit(batch, cache);
    return collect();
  }
  std::vector<float> token_states(const Batch&) override {
    throw Error("embeddings are not available when the model is split across MPI ranks");
  }
  // One pass per stage keeps every stage busy.
  int pipeline_depth() const override { return comm_->size(); }
  void submit(const Batch& batch, KvCache& cache) override;
  Logits collect() override;
  void abandon() override;

 private:
  struct Pass {
    Batch batch;
    std::vector<float> x;        // the hidden states after rank 0's layers
    std::vector<uint8_t> sent;   // the message to rank 1 (in flight until its send completes)
  };
  void report_traffic() const;

  std::shared_ptr<MpiComm> comm_;
  std::unique_ptr<Model> stage_;
  PipelinePlan plan_;
  HiddenType hidden_;
  std::deque<Pass> passes_;  // submitted, oldest first
  std::vector<uint8_t> reply_;
  int64_t tokens_ = 0, hidden_sent_ = 0, message_bytes_ = 0;  // traffic, for the report
};

void PipelineModel::submit(const Batch& batch, KvCache& cache) {
  const ModelSpec& s = spec();
  prepare_batch(s, batch, cache);
  cache.log_block_copies(true);
  Pass p;
  p.batch = batch;
  stage_->embed(batch, p.x);
  stage_->run_layers(batch, cache, p.x.data());
  p.sent = encode_stage_forward(batch, cache, p.x, s.n_embd, hidden_);
  cache.commit(batch);  // rank 0's rows are written; the other stages write theirs in submission order
  passes_.push_back(std::move(p));
  const Pass& q = passes_.back();
  comm_->start_send(1, q.sent.data(), q.sent.size());
  tokens_ += static_cast<int64_t>(batch.size());
  hidden_sent_ += static_cast<int64_t>(q.x.size() * hidden_bytes(hidden_));
  message_bytes_ += static_cast<int64_t>(q.sent.size());
}

Logits PipelineModel::collect() {
  if (passes_.empty()) throw Error("internal: collect() without a submitted forward pass");
  comm_->recv(comm_->size() - 1, reply_);  // the last stage answers in submission order
  Pass p = std::move(passes_.front());
  passes_.pop_front();
  comm_->wait_sends(passes_.size());  // this pass's message has arrived: its buffer may go
  size_t rows = 0;
  for (const BatchToken& t : p.batch.tokens) rows += t.want_logits;
  const size_t E = static_cast<size_t>(spec().n_embd);
  const size_t row_bytes = E * hidden_bytes(hidden_);
  if (reply_.size() != rows * row_bytes) throw Error("pipeline: the last stage sent a reply of the wrong size");
  size_t r = 0;
  for (size_t t = 0; t < p.batch.size(); ++t)
    if (p.batch.tokens[t].want_logits) read_hidden(reply_.data() + (r++) * row_bytes, &p.x[t * E], E, hidden_);
  message_bytes_ += static_cast<int64_t>(reply_.size());
  return stage_->output(p.batch, p.x.data());
}

void PipelineModel::abandon() {
  while (!passes_.empty()) (void)collect();  // the stages' replies, dropped
}

// What travelled: printed when the model is unloaded (docs/MULTINODE.md).
void PipelineModel::report_traffic() const {
  if (tokens_ == 0) return;
  std::fprintf(stderr,
               "volga: pipeline traffic: %lld tokens, %.1f hidden-state bytes per token per hop (%s), "
               "%lld bytes from rank 0 to rank 1 and back\n",
               static_cast<long long>(tokens_), static_cast<double>(hidden_sent_) / static_cast<double>(tokens_),
               hidden_type_name(hidden_), static_cast<long long>(message_bytes_));
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
  // Sends `msg` on at once (non-blocking) once the previous send has left;
  // the next message is received and computed while this one travels.
  void pass_on(int dest, std::vector<uint8_t>& msg);
  struct CacheEntry {
    StageHeader key;
    std::unique_ptr<KvCache> cache;
  };

  MpiComm& comm_;
  std::unique_ptr<Model> stage_;
  StageRange range_;
  std::vector<uint8_t> buf_, sending_;
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

void StageWorker::pass_on(int dest, std::vector<uint8_t>& msg) {
  comm_.wait_sends();
  std::swap(sending_, msg);
  comm_.start_send(dest, sending_.data(), sending_.size());
}

bool StageWorker::step() {
  const int prev = comm_.rank() - 1, next = comm_.rank() + 1;
  const bool last = next == comm_.size();
  comm_.recv(prev, buf_);
  StageMessage m = decode_stage_message(buf_);
  if (m.header.op == static_cast<int64_t>(StageOp::Stop)) {
    comm_.wait_sends();
    if (!last) comm_.send(next, buf_.data(), buf_.size());
    return false;
  }
  const size_t E = static_cast<size_t>(stage_->spec().n_embd);
  if (m.header.n_embd != stage_->spec().n_embd) throw Error("pipeline: rank 0 runs a model of another width");
  const HiddenType hidden = static_cast<HiddenType>(m.header.hidden_type);
  KvCache& cache = cache_for(m.header);
  mirror_into(m, cache);
  stage_->run_layers(m.batch, cache, m.x.data());
  if (!last) {
    write_hidden(buf_.data() + m.x_offset, m.x.data(), m.x.size(), hidden);
    pass_on(next, buf_);
    return true;
  }
  std::vector<uint8_t> rows;
  for (size_t t = 0; t < m.batch.size(); ++t)
    if (m.batch.tokens[t].want_logits) put_hidden(rows, &m.x[t * E], E, hidden);
  pass_on(0, rows);
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
  return std::make_unique<PipelineModel>(comm_, std::move(stage), std::move(plan), parse_hidden_type(flags_.hidden));
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
