// The conformance test-vector corpus (docs/vectors.md): a deterministic
// generator (here, with protobuf's generated classes) and the verifier (the
// library's, towns/vectors.h).
#pragma once

#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "towns/vectors.h"

namespace towns::vectors {

// Writes every file of the corpus into dir, drawing every random input from a
// SeededRandom seeded with seed. The same seed gives byte-identical files.
void generate(std::span<const uint8_t> seed, const std::string& dir);

// The names of the corpus files, in generation order.
std::vector<std::string> file_names();

// The coverage table of the vector files in dir, as markdown (docs/vectors.md):
// a row per file and group type, then the totals. Throws towns::Error for a
// group type the table does not know, or a file that is not a vector file.
std::string coverage_table(const std::string& dir);

}  // namespace towns::vectors
