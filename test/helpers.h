// Shared helpers for the Catch2 suites.
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "towns/crypto/encoding.h"
#include "towns/error.h"

// Expects expr to throw towns::Error with exactly the given code.
#define REQUIRE_ERROR(expr, error_code)                                               \
  do {                                                                                \
    bool towns_threw_ = false;                                                        \
    try {                                                                             \
      (void)(expr);                                                                   \
    } catch (const towns::Error& towns_e_) {                                          \
      towns_threw_ = true;                                                            \
      INFO("message: " << towns_e_.what());                                          \
      REQUIRE(towns_e_.code_name() == towns::error_code_name(towns::ErrorCode::error_code)); \
    }                                                                                 \
    REQUIRE(towns_threw_);                                                            \
  } while (0)

namespace test {

inline std::string data_path(const std::string& name) { return std::string(TOWNS_TEST_DATA_DIR) + "/" + name; }

inline std::vector<std::string> read_lines(const std::string& name) {
  std::ifstream in(data_path(name));
  REQUIRE(in.good());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  }
  return lines;
}

inline std::vector<std::string> split(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

inline std::vector<uint8_t> unhex(const std::string& s) {
  return s == "-" ? std::vector<uint8_t>{} : towns::crypto::hex_decode(s);
}

inline std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace test
