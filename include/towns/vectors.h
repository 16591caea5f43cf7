// The conformance test vectors (docs/vectors.md): the verifier, in the library
// so that an application, or another language through the C ABI
// (towns_vectors_verify in towns.h), can check this library against the
// corpus. Every case type is checked by the library itself, protobuf.json's
// messages with its own codec (no protobuf runtime).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "towns/export.h"

namespace towns::vectors {

struct TOWNS_API VerifyResult {
  size_t passed = 0;
  size_t failed = 0;
  // One line per failure: "<file> tcId <n> (<type>, <comment>): expected ...,
  // got ...", or "<file>: <why>" for a file or group that is malformed, or
  // "<dir>: ..." when dir cannot be listed or holds no vector file.
  std::vector<std::string> failures;
};

// Checks every test of every *.json file in dir (regular files, in name order;
// anything else is skipped). A failing test counts alone; a malformed file or
// group is one failure, and the run goes on. Does not throw for what the files
// hold; a dir that cannot be listed is one failure.
TOWNS_API VerifyResult verify(const std::string& dir);

}  // namespace towns::vectors
