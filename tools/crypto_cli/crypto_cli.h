// The crypto_cli command set: Tether's crypto primitives for test vectors and operators.
// Hex in, hex out, one line each. Exit codes: 0 success, 1 sas-verify refused the token,
// 2 bad input, including a ciphertext that does not open (a one-line error on stderr).
#ifndef TETHER_TOOLS_CRYPTO_CLI_CRYPTO_CLI_H_
#define TETHER_TOOLS_CRYPTO_CLI_CRYPTO_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace tether::tools {

// Runs one command; `args` excludes the program name.
int RunCryptoCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace tether::tools

#endif  // TETHER_TOOLS_CRYPTO_CLI_CRYPTO_CLI_H_
