// What every service's main.cc shares (DESIGN §7): --config=FILE, --port_file, and the check that
// plaintext is served on loopback only.
#ifndef TETHER_COMMON_BASE_SERVICE_MAIN_H_
#define TETHER_COMMON_BASE_SERVICE_MAIN_H_

#include <signal.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tether {

// Rewrites --config=FILE (the documented spelling) into absl's --flagfile=FILE, and dashes in
// flag names into underscores (--token-file is --token_file; values are left alone). `storage`
// keeps the strings the returned pointers point into.
std::vector<char*> ExpandConfigFlag(int argc, char** argv, std::vector<std::string>* storage);

// SIGINT and SIGTERM, the signals that stop a service.
sigset_t TerminationSignals();

// Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it starts afterwards:
// call it first in main, then take them synchronously with sigwait(TerminationSignals()). Also
// ignores SIGPIPE (a write to a closed socket is an error to handle, not a reason to die).
void BlockTerminationSignals();

// Writes "<port>\n" to `path` atomically (temporary file, then rename), so a reader never sees a
// partial number.
absl::Status WritePortFile(const std::string& path, uint16_t port);

// Whether `host` (a name or an address, IPv6 with or without brackets) is a loopback host:
// localhost, 127.0.0.0/8 or ::1.
bool IsLoopbackHost(absl::string_view host);

}  // namespace tether

#endif  // TETHER_COMMON_BASE_SERVICE_MAIN_H_
