// Child processes (server_process.h): fork + execv with stdout (and for
// RunCapture stderr) on a pipe, SIGTERM with a deadline, /proc readers.
#include "tests/testing/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace memnode::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Forks `path args...` with its stdout (and stderr when `with_stderr`) on
// the write end of a new pipe; returns the child's pid and the read end in
// *read_fd, or -1 with *error. Everything the child needs is prepared before
// the fork (the parent may have threads: the child only calls
// async-signal-safe functions until execv).
pid_t Spawn(const std::string& path, const std::vector<std::string>& args, bool with_stderr,
            int* read_fd, std::string* error) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string exec_failed = absl::StrCat("exec ", path, " failed\n");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *error = "pipe failed";
    return -1;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    *error = "fork failed";
    return -1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(fds[1], 1);  // dup2 clears O_CLOEXEC on the copies
    if (with_stderr) dup2(fds[1], 2);
    execv(path.c_str(), argv.data());
    ssize_t ignored = write(2, exec_failed.data(), exec_failed.size());
    (void)ignored;
    _exit(127);
  }
  close(fds[1]);
  *read_fd = fds[0];
  return pid;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

ServerProcess::~ServerProcess() {
  if (running()) Stop();
}

bool ServerProcess::Start(const std::string& path, const std::vector<std::string>& args,
                          std::string* error) {
  if (running()) {
    *error = "already started";
    return false;
  }
  int fd = -1;
  const pid_t pid = Spawn(path, args, /*with_stderr=*/false, &fd, error);
  if (pid < 0) return false;
  FILE* out = fdopen(fd, "r");
  char line[512];
  std::string metrics;
  while (fgets(line, sizeof line, out)) {
    std::string l(line);
    while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
    if (l.rfind("METRICS ", 0) == 0) metrics = l.substr(8);
    if (l.rfind("LISTENING ", 0) == 0) {
      pid_ = pid;
      address_ = l.substr(10);
      metrics_address_ = metrics;
      drain_ = std::thread([out] {
        char buf[512];
        while (fgets(buf, sizeof buf, out)) {
        }
        fclose(out);
      });
      return true;
    }
  }
  fclose(out);
  int st = 0;
  waitpid(pid, &st, 0);
  *error = absl::StrCat(path, " exited before listening (status ", st, ")");
  return false;
}

std::string ServerProcess::Stop(double* seconds) {
  if (seconds) *seconds = 0;
  if (pid_ == 0) return "not started";
  const auto t0 = Clock::now();
  kill(pid_, SIGTERM);
  int st = 0;
  std::string result;
  for (;;) {
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      if (WIFEXITED(st))
        result = absl::StrCat("exit ", WEXITSTATUS(st));
      else if (WIFSIGNALED(st))
        result = absl::StrCat("killed by signal ", WTERMSIG(st));
      break;
    }
    if (Seconds(Clock::now() - t0) > 15) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &st, 0);
      result = "did not exit within 15 s of SIGTERM (SIGKILLed)";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (seconds) *seconds = Seconds(Clock::now() - t0);
  if (drain_.joinable()) drain_.join();
  pid_ = 0;
  address_.clear();
  metrics_address_.clear();
  return result;
}

int RunCapture(const std::string& path, const std::vector<std::string>& args, std::string* out) {
  int fd = -1;
  std::string error;
  const pid_t pid = Spawn(path, args, /*with_stderr=*/true, &fd, &error);
  if (pid < 0) {
    absl::StrAppend(out, error, "\n");
    return -1;
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  close(fd);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

std::string ExecutableDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  const std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

long ReadRssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

}  // namespace memnode::testing
