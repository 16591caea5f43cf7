// One vector test through the library (internal): what verify() does for each
// test, for the tests that hold a case type against another implementation
// (test_vectors: protobuf.json against protobuf's generated classes).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace towns::vectors {

struct CaseVerdict {
  bool passed = false;         // the outcome is the test's result
  bool valid = false;          // the test expects "valid"
  std::string expected_error;  // its "error" ("" when none)
  std::string got;             // "" when the steps succeeded, else the error code, MISMATCH or EXCEPTION
  std::string why;             // the failure's message
};

// Runs test t of a group of the given type (the group's fields are the
// defaults of the test's). Never throws for what the test holds.
CaseVerdict verify_case(const std::string& type, const nlohmann::json& group, const nlohmann::json& t);

}  // namespace towns::vectors
