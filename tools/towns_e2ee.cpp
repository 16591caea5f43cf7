// towns-e2ee: the command-line entry point of the library.
//   towns-e2ee version     versions of this library and its dependencies
//   towns-e2ee selfcheck   versions, then a short end-to-end check in memory
//   towns-e2ee demo        the key-exchange demo on a simulated network
//   towns-e2ee driver      the conformance driver (docs/driver.md) on stdin/stdout
//   towns-e2ee vectors     generate or verify the test-vector corpus (docs/vectors.md)
//   towns-e2ee derived-key the key and IV of the derived scheme for a key phrase
#include <sys/prctl.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "bench.h"
#include "demo.h"
#include "driver.h"
#include "exchange_diff.h"
#include "vectors.h"
#include "driver_verify.h"
#include "conformance/conformance.h"
#include "towns/crypto/encoding.h"

#include <iostream>
#include "selfcheck.h"
#include "towns/error.h"
#include "towns/protocol/derived.h"
#include "towns/version.h"
#include "vectors/protobuf_json.h"
#include <google/protobuf/stubs/common.h>

namespace {

void print_versions() {
  auto v = towns::versions();
  std::printf("towns-e2ee %s\n", v.towns_e2ee.c_str());
  std::printf("  libolm    %s\n", v.olm.c_str());
  std::printf("  protobuf  none in the library (its own codec); tools: %s\n", google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION).c_str());
  std::printf("  SQLite    %s\n", v.sqlite.c_str());
  std::printf("  OpenSSL   %s\n", v.openssl.c_str());
}

// towns-e2ee wire decode: the library's codec on given bytes, for differential
// tests against other protobuf implementations (the canonical client's).
int wire_decode_lines() {
  std::string line;
  while (std::getline(std::cin, line)) {
    auto space = line.find(' ');
    nlohmann::json out;
    if (space == std::string::npos) {
      out = {{"ok", false}, {"error", "INVALID_ARGUMENT"}, {"message", line}, {"hex", ""}};
    } else {
      std::string name = line.substr(0, space), hex = line.substr(space + 1);
      out = {{"message", name}, {"hex", hex}};
      try {
        auto decoded = towns::vectors::decode_message(name, towns::crypto::hex_decode(hex));
        out["ok"] = true;
        out["json"] = std::move(decoded.json);
      } catch (const towns::Error& e) {
        out["ok"] = false;
        out["error"] = std::string(e.code_name());
      }
    }
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return 0;
}

int usage(FILE* out) {
  std::fprintf(out,
               "usage: towns-e2ee <command>\n"
               "  version     print versions of towns-e2ee, libolm, protobuf, SQLite, OpenSSL\n"
               "  selfcheck   print versions, then run a short end-to-end check in memory\n"
               "  demo [--dir <folder>] [--users N] [--devices N] [--streams N] [--rounds N] [--seed TEXT]\n"
               "              many devices, each on its own SQLite store, exchange keys on a\n"
               "              simulated Towns node; exits 1 if any cannot read what it may\n"
               "  driver [--max-line-bytes N] [--max-list-items N] [--max-depth N]\n"
               "              the conformance driver: JSON requests on stdin, replies on stdout\n"
               "              (limits: docs/driver.md)\n"
               "  bench [--quick] [--only <words>] [--run <family:size,...>] [--store-dir <dir>]\n"
               "              the performance workloads (docs/performance.md) as JSON lines, each\n"
               "              family at its headline size, or at the sizes --run names\n"
               "  bench --make-store <file> <sessions>\n"
               "              write the store family's file of N inbound sessions (tools/bench)\n"
               "  exchange diff [--peer <command>] [--seeds N] [--only <case>] [--verbose]\n"
               "              the key exchange engine against a peer driver's (docs/exchange-diff.md)\n"
               "  exchange trace --out <file> | exchange replay <file> [--peer <command>] | exchange list\n"
               "              key exchange trace vectors: write them, check them\n"
               "  vectors generate --seed <hex> --out <dir>\n"
               "              write the test-vector corpus, deterministically from the seed\n"
               "  vectors verify <dir>\n"
               "  vectors verify <dir> --driver \"<command>\" [--report <dir>] [--only <text>] [--timeout-ms N]\n"
               "              check every vector in dir; prints N passed, N failed\n"
               "  conformance --peer \"<command>\" [--peer \"<command>\"] [--report <dir>] [--only <name>]\n"
               "              [--timeout-ms N] [--quiet] [--vectors <dir>]\n"
               "              the interop scenarios with this library's driver as the peer's counterpart;\n"
               "              with --vectors, the corpus through each peer too, in the same report\n"
               "              (docs/driver.md, \"The conformance suite\")\n"
               "  vectors coverage <dir>\n"
               "              print the corpus's coverage table (markdown, as in docs/vectors.md)\n"
               "  wire decode\n"
               "              read lines \"<message> <hex>\" on stdin (message: a full name such as\n"
               "              river.EncryptedData) and print, per line, the library codec's reading\n"
               "              as JSON: {message, hex, ok, json | error} (test/interop/wire_client.ts)\n"
               "  derived-key <key phrase>\n"
               "              print the key and IV that r.aes-256-gcm.derived derives from the\n"
               "              phrase (protocol.md 12.2), as hex on two lines\n");
  return out == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  // The commands handle keys (pickle keys, session keys, exported devices):
  // no core dump of the process, and no ptrace attach by other processes of
  // the same user (set for version and help too: it costs nothing). Programs
  // it starts (the peer driver of exchange diff) are dumpable again after exec.
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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
    if (cmd == "vectors") {
      std::string_view sub = argc > 2 ? argv[2] : "";
      if (sub == "generate" && argc == 7 && std::string_view(argv[3]) == "--seed" && std::string_view(argv[5]) == "--out") {
        towns::vectors::generate(towns::crypto::hex_decode(argv[4]), argv[6]);
        std::printf("wrote %zu files to %s\n", towns::vectors::file_names().size(), argv[6]);
        return 0;
      }
      if (sub == "verify" && argc > 4) {
        towns::vectors::DriverVerifyOptions o;
        o.dir = argv[3];
        for (int i = 4; i < argc; ++i) {
          std::string_view a = argv[i];
          if (i + 1 >= argc) return usage(stderr);
          if (a == "--driver") o.command = argv[++i];
          else if (a == "--report") o.report_dir = argv[++i];
          else if (a == "--only") o.only = argv[++i];
          else if (a == "--timeout-ms") o.timeout_ms = std::stoi(argv[++i]);
          else return usage(stderr);
        }
        if (o.command.empty() || o.timeout_ms <= 0) return usage(stderr);
        return towns::vectors::verify_with_driver(o);
      }
      if (sub == "verify" && argc == 4) {
        auto r = towns::vectors::verify(argv[3]);
        for (const auto& f : r.failures) std::printf("FAIL %s\n", f.c_str());
        std::printf("%zu passed, %zu failed\n", r.passed, r.failed);
        return r.failed == 0 ? 0 : 1;
      }
      if (sub == "coverage" && argc == 4) {
        std::fputs(towns::vectors::coverage_table(argv[3]).c_str(), stdout);
        return 0;
      }
      return usage(stderr);
    }
    if (cmd == "conformance") {
      towns::conformance::Options o;
      for (int i = 2; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--quiet") {
          o.quiet = true;
          continue;
        }
        if (i + 1 >= argc) return usage(stderr);
        if (a == "--peer") o.peers.push_back(argv[++i]);
        else if (a == "--report") o.report_dir = argv[++i];
        else if (a == "--only") o.only = argv[++i];
        else if (a == "--timeout-ms") o.timeout_ms = std::stoi(argv[++i]);
        else if (a == "--vectors") o.vectors_dir = argv[++i];
        else return usage(stderr);
      }
      if (o.peers.empty() || o.peers.size() > 2 || o.timeout_ms <= 0) return usage(stderr);
      return towns::conformance::run_conformance(o);
    }
    if (cmd == "wire") {
      if (argc != 3 || std::string_view(argv[2]) != "decode") return usage(stderr);
      return wire_decode_lines();
    }
    if (cmd == "derived-key") {
      if (argc != 3) return usage(stderr);
      auto d = towns::derive_key_and_iv(std::string_view(argv[2]));
      std::printf("key %s\niv  %s\n", towns::crypto::hex_encode(d.key.span()).c_str(),
                  towns::crypto::hex_encode(d.iv.span()).c_str());
      return 0;
    }
    if (cmd == "bench") return towns::tools::run_bench(argc, argv);
    if (cmd == "exchange") return towns::tools::run_exchange(argc, argv);
    if (cmd == "driver") return towns::tools::run_driver_command(argc, argv);
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
