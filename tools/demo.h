#pragma once

namespace towns::tools {
// towns-e2ee demo [--dir <folder>] [--users N] [--devices N] [--streams N] [--rounds N] [--seed TEXT]
int run_demo(int argc, char** argv);
}  // namespace towns::tools
