// What `watch` and `top` share: the signal that stops them, and the words
// events are shown with.
//
// Thread safety: StopSignal's handler is async-signal-safe; Wait() and
// Wake() may be called from any thread, stopped() from the waiters.

#ifndef MEMNODE_CLIENT_CPP_COMMANDS_EVENTS_H_
#define MEMNODE_CLIENT_CPP_COMMANDS_EVENTS_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "memnode/v1/common.pb.h"
#include "memnode/v1/events.pb.h"

namespace memnode {
namespace cli {

// Ctrl-C (SIGINT), SIGTERM and SIGHUP end `watch` and `top` cleanly. The
// handler only writes a byte to a pipe (async-signal-safe); a thread or a
// poll() on the pipe's read end turns that into a cancelled RPC or a loop
// exit. Installed once, by the command that needs it.
class StopSignal {
 public:
  // Installs the handlers; false (with a message) when the pipe fails.
  static bool Install();
  // Wakes a waiter as a signal would (the byte tells it not to stop).
  static void Wake();
  // Waits up to `timeout_ms` (-1: forever). Returns true when a signal
  // arrived (then and ever after), false on timeout or Wake().
  static bool Wait(int timeout_ms);
  static bool stopped() { return stopped_; }

 private:
  static void Handler(int);
  static inline int fds_[2] = {-1, -1};
  static inline bool stopped_ = false;  // read and written by waiters only
};

// "ok" for ERRNO_OK, else the errno name ("EBUSY").
std::string ResultWord(v1::Errno errnum);

// One human line per event: sequence, emulated time, kind, fields.
std::string EventLine(const v1::MachineEvent& e);

// Whether a stream that ended with `status` was ended by the server in the
// ordinary way (its machine deleted, the server shutting down); prints why.
bool EndedByServer(const grpc::Status& status, const std::string& machine);

}  // namespace cli
}  // namespace memnode

#endif  // MEMNODE_CLIENT_CPP_COMMANDS_EVENTS_H_
