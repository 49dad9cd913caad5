// MpiComm — the thin layer over MPI (Open MPI) that pipeline stages talk
// through; mpi_comm.cpp is the only file that includes mpi.h. Without MPI at
// build time (-DVOLGA_MPI=OFF or no Open MPI found) start() returns null when
// not forced and throws when forced, so a single-process binary behaves as
// before.
//
// Errors come back as volga::Error (MPI_ERRORS_RETURN) naming the peer rank,
// so rank 0 can say why the job ends. Calls are made by one thread at a time
// (the engine thread, or the main thread before and after it); end_job() may
// be called from any thread.
//
// Sends and receives are non-blocking underneath: they poll for completion,
// so a wait for a rank that has died ends (UnavailableError) as soon as
// end_job() is called, instead of hanging in MPI.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace volga {

class MpiComm {
 public:
  // Whether this process was started by an MPI launcher (mpirun sets
  // OMPI_COMM_WORLD_SIZE; PMIx launchers set PMIX_RANK).
  static bool launched();
  // Whether this build has MPI support.
  static bool available();
  // Initialises MPI when launched() or `forced` (--mpi); null otherwise.
  // Throws volga::Error when forced in a build without MPI.
  static std::shared_ptr<MpiComm> start(bool forced);
  // MPI_Finalize once the job has ended cleanly (mark_clean() or a single
  // rank); otherwise the process leaves without it, and the launcher ends
  // the other ranks instead of letting them wait forever.
  ~MpiComm();
  void mark_clean() { clean_ = true; }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  std::string host() const { return host_; }

  // Point-to-point messages of any size below 2 GiB; they return when done.
  // Throw UnavailableError once end_job() was called.
  void send(int dest, const void* data, size_t bytes);
  void recv(int source, std::vector<uint8_t>& into);
  // A send that returns at once: `data` must stay unchanged until
  // wait_sends() has seen it complete. wait_sends(keep) waits, oldest first,
  // until at most the `keep` newest sends started this way are unfinished.
  void start_send(int dest, const void* data, size_t bytes);
  void wait_sends(size_t keep = 0);
  // The job is ending (the launcher's SIGTERM after a rank died): every wait,
  // now or later, throws UnavailableError. Any thread.
  void end_job() { ending_.store(true); }
  bool ending() const { return ending_.load(); }
  // Every rank's value, in rank order (a collective: all ranks call it).
  std::vector<double> all_gather(double mine);
  // Ends every rank of the job (after printing `why` on this one).
  [[noreturn]] void abort(const std::string& why);

 private:
  MpiComm();
  void wait_for(void* request, const std::string& what);  // an MPI_Request*, by polling
  int rank_ = 0, size_ = 1;
  bool clean_ = false;
  std::atomic<bool> ending_{false};
  std::string host_;
  struct Pending;                    // the MPI requests of start_send()
  std::unique_ptr<Pending> pending_;
};

}  // namespace volga
