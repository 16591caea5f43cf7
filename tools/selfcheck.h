#pragma once
#include <cstdio>

namespace towns::tools {
// Two devices in memory: one shares a megolm and a grpaes session with the other,
// which then decrypts. Prints each step; true when all of them passed.
bool run_selfcheck(FILE* out);
}  // namespace towns::tools
