// tetherctl's names for the shared cloud client (//common/client), so its commands read as before.
#ifndef TETHER_TOOLS_TETHERCTL_CLIENT_H_
#define TETHER_TOOLS_TETHERCTL_CLIENT_H_

#include "common/client/cloud_client.h"
#include "common/client/secret_input.h"

namespace tether::tetherctl {

using client::CloudClient;
using client::CloudEndpoint;
using client::ExitCodeFor;
using client::FromGrpc;
using client::kExitDenied;
using client::kExitInternal;
using client::kExitNotFound;
using client::kExitOk;
using client::kExitRunCancelled;
using client::kExitRunFailed;
using client::kExitUnreachable;
using client::kExitUsage;
using client::ReadSecretLine;
using client::SecretPrompt;
using client::SplitHostPort;
using client::TerminalPrompt;

}  // namespace tether::tetherctl

#endif  // TETHER_TOOLS_TETHERCTL_CLIENT_H_
