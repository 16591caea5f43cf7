// towns-e2ee: the command-line entry point of the library.
//   towns-e2ee version     versions of this library and its dependencies
//   towns-e2ee selfcheck   versions, then a short end-to-end check in memory
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

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
               "  selfcheck   print versions, then run a short end-to-end check in memory\n");
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
