// tetherctl: the Tether cloud from the command line (docs/TETHERCTL.md).
//
//   tetherctl login --cloud cloud.example.com:8443 --ca ca.pem
//   tetherctl connections create desk-alice --machine desk --username alice
//   tetherctl run Backup --connection desk-alice --input Src=/home/alice --wait
#include <iostream>
#include <string>
#include <vector>

#include "tools/tetherctl/tetherctl.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return tether::tetherctl::RunTetherctl(args, std::cin, std::cout, std::cerr);
}
