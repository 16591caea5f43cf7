#pragma once
namespace towns::tools {
// towns-e2ee bench [--quick] [--only <workload>]: one JSON object per workload on stdout.
int run_bench(int argc, char** argv);
}  // namespace towns::tools
