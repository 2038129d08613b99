// Child processes for benchmarks and end-to-end tools: a server started with
// its stdout on a pipe until it prints "LISTENING host:port" (memnoded,
// bench/'s memnode_echo_server), stopped with SIGTERM; a program run to
// completion with its output captured (memnode_loadgen under
// memnode_metrics_cost_bench); the server's resident set size.
//
// Why here and not in bench/: it is POSIX and Abseil only (no gRPC, no core),
// like the rest of memnode_testing, and it is what a C++ end-to-end test
// would need to start memnoded too (the Python tests have
// tests/integration/memnoded_proc.py for the same job). bench/loadgen.cc and
// bench/metrics_cost_bench.cc each had their own copy of this code.
//
// Children get PR_SET_PDEATHSIG(SIGTERM): they do not outlive the process
// that started them.
//
// Thread safety: a ServerProcess is used by one thread at a time (its
// internal reader thread touches nothing but the pipe). The free functions
// are thread-compatible.
#ifndef MEMNODE_TESTS_TESTING_SERVER_PROCESS_H_
#define MEMNODE_TESTS_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

namespace memnode::testing {

class ServerProcess {
 public:
  ServerProcess() = default;
  // Stops the server when it is still running.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts `path args...` with stdout on a pipe and reads it until a line
  // "LISTENING host:port"; a "METRICS host:port" line before it (memnoded
  // with --metrics_address) is kept too. The rest of the output is read and
  // dropped by a thread, so the child never blocks on a full pipe. False
  // with *error when the child exits (or cannot start) before listening.
  bool Start(const std::string& path, const std::vector<std::string>& args, std::string* error);

  // SIGTERM, then up to 15 s for the exit (SIGKILL after that). Returns how
  // it ended: "exit N", "killed by signal N", "did not exit within 15 s of
  // SIGTERM (SIGKILLed)", or "not started"; *seconds (when given) is the
  // time the stop took.
  std::string Stop(double* seconds = nullptr);

  bool running() const { return pid_ != 0; }
  pid_t pid() const { return pid_; }
  // "host:port" of the LISTENING line.
  const std::string& address() const { return address_; }
  // "host:port" of the METRICS line; empty when there was none.
  const std::string& metrics_address() const { return metrics_address_; }

 private:
  pid_t pid_ = 0;
  std::string address_, metrics_address_;
  std::thread drain_;  // reads the child's stdout after LISTENING
};

// Runs `path args...` to completion with stdout and stderr captured into
// *out. Returns its exit status, 128 + the signal when killed, -1 when it
// could not be started.
int RunCapture(const std::string& path, const std::vector<std::string>& args, std::string* out);

// The directory of the running executable (from /proc/self/exe; "." when
// unknown): sibling binaries of the build tree are found from it.
std::string ExecutableDir();

// VmRSS of process `pid` in KiB (/proc/<pid>/status); -1 when unreadable.
long ReadRssKib(pid_t pid);

}  // namespace memnode::testing

#endif  // MEMNODE_TESTS_TESTING_SERVER_PROCESS_H_
