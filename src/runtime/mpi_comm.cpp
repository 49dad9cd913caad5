#include "runtime/mpi_comm.h"

#include <unistd.h>

#include <sched.h>

#include <chrono>
#include <deque>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "util/error.h"

#ifdef VOLGA_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only: no deprecated C++ bindings to link
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace volga {

bool MpiComm::launched() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

#ifdef VOLGA_HAVE_MPI

namespace {

constexpr int kTag = 24;

void check(int rc, const std::string& what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error("MPI: " + what + " failed: " + std::string(text, static_cast<size_t>(len)) +
              " (a rank of the job has stopped or its host is unreachable)");
}

}  // namespace

// Waits for `req` by polling, so end_job() can interrupt the wait: yields
// the core for the first millisecond, then sleeps 50 us between polls (a
// stage's compute takes far longer than that).
void MpiComm::wait_for(void* request, const std::string& what) {
  MPI_Request& req = *static_cast<MPI_Request*>(request);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    int done = 0;
    check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    if (ending_.load()) {
      MPI_Cancel(&req);
      req = MPI_REQUEST_NULL;
      throw UnavailableError("the MPI job is ending: a rank has stopped (" + what + ")");
    }
    if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1)) sched_yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

struct MpiComm::Pending {
  std::deque<MPI_Request> requests;
  std::deque<int> dest;
};

MpiComm::MpiComm() : pending_(std::make_unique<Pending>()) {}

bool MpiComm::available() { return true; }

std::shared_ptr<MpiComm> MpiComm::start(bool forced) {
  if (!forced && !launched()) return nullptr;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw Error("MPI: this MPI library does not allow calls from the engine thread (MPI_THREAD_SERIALIZED)");
  }
  // Failures come back as error codes: rank 0 reports them before the job ends.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::shared_ptr<MpiComm> c(new MpiComm());
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) c->host_ = host;
  return c;
}

MpiComm::~MpiComm() {
  if (clean_ || size_ == 1) MPI_Finalize();
}

void MpiComm::start_send(int dest, const void* data, size_t bytes) {
  if (bytes > static_cast<size_t>(INT_MAX)) throw Error("MPI: a message of " + std::to_string(bytes) + " bytes is too large");
  if (ending_.load()) throw UnavailableError("the MPI job is ending: a rank has stopped");
  MPI_Request req = MPI_REQUEST_NULL;
  check(MPI_Isend(data, static_cast<int>(bytes), MPI_BYTE, dest, kTag, MPI_COMM_WORLD, &req),
        "sending to rank " + std::to_string(dest));
  pending_->requests.push_back(req);
  pending_->dest.push_back(dest);
}

void MpiComm::wait_sends(size_t keep) {
  Pending& p = *pending_;
  while (p.requests.size() > keep) {
    try {
      wait_for(&p.requests.front(), "sending to rank " + std::to_string(p.dest.front()));
    } catch (...) {
      p.requests.clear();
      p.dest.clear();
      throw;
    }
    p.requests.pop_front();
    p.dest.pop_front();
  }
}

void MpiComm::send(int dest, const void* data, size_t bytes) {
  start_send(dest, data, bytes);
  wait_sends();
}

void MpiComm::recv(int source, std::vector<uint8_t>& into) {
  const std::string what = "waiting for rank " + std::to_string(source);
  const auto start = std::chrono::steady_clock::now();
  MPI_Status st;
  for (;;) {  // MPI_Iprobe polls, so end_job() can interrupt the wait
    int found = 0;
    check(MPI_Iprobe(source, kTag, MPI_COMM_WORLD, &found, &st), what);
    if (found) break;
    if (ending_.load()) throw UnavailableError("the MPI job is ending: a rank has stopped (" + what + ")");
    if (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1)) sched_yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  int count = 0;
  check(MPI_Get_count(&st, MPI_BYTE, &count), "sizing a message from rank " + std::to_string(source));
  into.resize(static_cast<size_t>(count));
  check(MPI_Recv(into.data(), count, MPI_BYTE, source, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
        "receiving from rank " + std::to_string(source));
}

std::vector<double> MpiComm::all_gather(double mine) {
  std::vector<double> all(static_cast<size_t>(size_));
  check(MPI_Allgather(&mine, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
  return all;
}

void MpiComm::abort(const std::string& why) {
  std::fprintf(stderr, "volga: rank %d (%s): %s; ending the MPI job\n", rank_, host_.c_str(), why.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

#else  // built without MPI

bool MpiComm::available() { return false; }

std::shared_ptr<MpiComm> MpiComm::start(bool forced) {
  if (forced) throw Error("--mpi: this volga was built without MPI support (install libopenmpi-dev and rebuild)");
  if (launched())
    std::fprintf(stderr, "volga: started by mpirun, but this build has no MPI support: running as one process\n");
  return nullptr;
}
struct MpiComm::Pending {};
MpiComm::MpiComm() = default;
MpiComm::~MpiComm() = default;
void MpiComm::wait_for(void*, const std::string&) {}
void MpiComm::start_send(int, const void*, size_t) { throw Error("internal: MPI is not available"); }
void MpiComm::wait_sends(size_t) {}
void MpiComm::send(int, const void*, size_t) { throw Error("internal: MPI is not available"); }
void MpiComm::recv(int, std::vector<uint8_t>&) { throw Error("internal: MPI is not available"); }
std::vector<double> MpiComm::all_gather(double mine) { return {mine}; }
void MpiComm::abort(const std::string& why) {
  std::fprintf(stderr, "volga: %s\n", why.c_str());
  std::_Exit(1);
}

#endif

}  // namespace volga
