// towns-e2ee: the command-line entry point of the library.
//   towns-e2ee version     versions of this library and its dependencies
//   towns-e2ee selfcheck   versions, then a short end-to-end check in memory
//   towns-e2ee demo        the key-exchange demo on a simulated network
//   towns-e2ee driver      the conformance driver (docs/driver.md) on stdin/stdout
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "demo.h"
#include "driver.h"

#include <iostream>
#include "selfcheck.h"
#include "towns/error.h"
#include "towns/version.h"

namespace {

void print_versions() {
  auto v = towns::versions();
  std::printf("towns-e2ee %s\n", v.towns_e2ee.c_str());
  std::printf("  libolm    %s\n", v.olm.c_str());
  std::printf("  protobuf  %s\n", v.protobuf.c_str());
  std::printf("  SQLite    %s\n", v.sqlite.c_str());
  std::printf("  OpenSSL   %s\n", v.openssl.c_str());
}

int usage(FILE* out) {
  std::fprintf(out,
               "usage: towns-e2ee <command>\n"
               "  version     print versions of towns-e2ee, libolm, protobuf, SQLite, OpenSSL\n"
               "  selfcheck   print versions, then run a short end-to-end check in memory\n"
               "  demo [--dir <folder>] [--users N] [--devices N] [--streams N] [--rounds N] [--seed TEXT]\n"
               "              many devices, each on its own SQLite store, exchange keys on a\n"
               "              simulated Towns node; exits 1 if any cannot read what it may\n"
               "  driver      the conformance driver: JSON requests on stdin, replies on stdout\n");
  return out == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string_view cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "version" || cmd == "--version") {
      print_versions();
      return 0;
    }
    if (cmd == "selfcheck") {
      print_versions();
      return towns::tools::run_selfcheck(stdout) ? 0 : 1;
    }
    if (cmd == "driver") {
      std::ios::sync_with_stdio(false);
      return towns::tools::run_driver(std::cin, std::cout);
    }
    if (cmd == "demo") {
      if (argc > 2 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) return usage(stdout);
      return towns::tools::run_demo(argc, argv);
    }
    if (cmd == "help" || cmd == "--help" || cmd == "-h") return usage(stdout);
    return usage(stderr);
  } catch (const towns::Error& e) {
    std::fprintf(stderr, "towns-e2ee: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "towns-e2ee: internal error: %s\n", e.what());
    return 1;
  }
}
