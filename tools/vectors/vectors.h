// The conformance test-vector corpus (docs/vectors.md): a deterministic
// generator and a verifier.
#pragma once

#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace towns::vectors {

// Writes every file of the corpus into dir, drawing every random input from a
// SeededRandom seeded with seed. The same seed gives byte-identical files.
void generate(std::span<const uint8_t> seed, const std::string& dir);

struct VerifyResult {
  size_t passed = 0;
  size_t failed = 0;
  std::vector<std::string> failures;  // "<file> tcId <n>: <why>"
};

// Checks every test of every *.json file in dir.
VerifyResult verify(const std::string& dir);

// The names of the corpus files, in generation order.
std::vector<std::string> file_names();

}  // namespace towns::vectors
