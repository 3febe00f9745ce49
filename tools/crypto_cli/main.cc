// crypto_cli: Tether's crypto primitives on the command line (see crypto_cli.h).
#include <iostream>
#include <string>
#include <vector>

#include "tools/crypto_cli/crypto_cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return tether::tools::RunCryptoCli(args, std::cout, std::cerr);
}
