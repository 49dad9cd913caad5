// MpiComm — the thin layer over MPI (Open MPI) that pipeline stages talk
// through; mpi_comm.cpp is the only file that includes mpi.h. Without MPI at
// build time (-DVOLGA_MPI=OFF or no Open MPI found) start() returns null when
// not forced and throws when forced, so a single-process binary behaves as
// before.
//
// Errors come back as volga::Error (MPI_ERRORS_RETURN) naming the peer rank,
// so rank 0 can say why the job ends. Calls are made by one thread at a time
// (the engine thread, or the main thread before and after it).
#pragma once

#include <cstddef>
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

  // Blocking point-to-point messages of any size below 2 GiB.
  void send(int dest, const void* data, size_t bytes);
  void recv(int source, std::vector<uint8_t>& into);
  // Every rank's value, in rank order (a collective: all ranks call it).
  std::vector<double> all_gather(double mine);
  // Ends every rank of the job (after printing `why` on this one).
  [[noreturn]] void abort(const std::string& why);

 private:
  MpiComm() = default;
  int rank_ = 0, size_ = 1;
  bool clean_ = false;
  std::string host_;
};

}  // namespace volga
