// Replays fuzz corpora through a target without libFuzzer, so that every CI run
// checks the seeds and every crash ever found (each a regression test).
//   fuzz-replay-<target> <file or directory>...
//
// Every argument must name an existing file or a directory holding at least one
// file: a missing or empty one fails the run (a renamed corpus must not turn
// the test into a no-op). Each input passes when LLVMFuzzerTestOneInput returns.
// It fails when anything escapes the target: the targets catch what they are
// allowed to see (fuzz::refusals_ok lets towns::Error through and nothing else),
// so under libFuzzer any escaping exception is a crash; here it is reported
// with the input's name and the replay goes on. A crash (trap, fault, abort, a
// sanitizer's report) ends the process; the summary is still printed first,
// naming the input. The last line is always "<passed> passed, <failed> failed".
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <unistd.h>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Set by the sanitizer runtimes when the replayer is built with them: called
// before a sanitizer ends the process after its report.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

size_t passed = 0;
size_t failed = 0;
// The input being run, for the crash report (read by a signal handler, so
// kept as a plain buffer).
char current[4096] = "";

void write_all(const char* s) {
  size_t n = std::strlen(s);
  while (n > 0) {
    auto w = ::write(STDOUT_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// Async-signal-safe decimal formatting.
void write_count(size_t v) {
  char buf[24];
  char* p = buf + sizeof buf;
  *--p = '\0';
  do {
    *--p = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  write_all(p);
}

// The summary of a run that a crash ends: the crashing input counts as failed.
void report_crash() {
  write_all("CRASH ");
  write_all(current);
  write_all("\n");
  write_count(passed);
  write_all(" passed, ");
  write_count(failed + 1);
  write_all(" failed\n");
}

constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
struct sigaction previous[NSIG];

void on_crash_signal(int sig) {
  report_crash();
  // Hand the signal on (a sanitizer's handler or the default action): restore
  // the previous disposition and return, so that the faulting instruction runs
  // again, or abort() raises again, under it.
  sigaction(sig, &previous[sig], nullptr);
}

void on_sanitizer_death() { report_crash(); }

void install_crash_reporting() {
  for (int sig : kCrashSignals) {
    struct sigaction sa {};
    sa.sa_handler = on_crash_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &previous[sig]);
  }
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_sanitizer_death);
}

void fail(const std::string& why) {
  std::printf("FAIL %s\n", why.c_str());
  ++failed;
}

void run_one(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    fail(file.string() + ": cannot be read");
    return;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    fail(file.string() + ": cannot be read");
    return;
  }
  std::snprintf(current, sizeof current, "%s", file.c_str());
  try {
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++passed;
  } catch (const std::exception& e) {
    fail(file.string() + ": the target let an exception escape: " + e.what());
  } catch (...) {
    fail(file.string() + ": the target let a non-std exception escape");
  }
  current[0] = '\0';
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered, so that every FAIL line is out before a crash's report.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  install_crash_reporting();
  if (argc < 2) fail("no input given");
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg = argv[i];
    std::error_code ec;
    auto status = std::filesystem::status(arg, ec);
    if (!std::filesystem::exists(status)) {
      fail(arg.string() + ": no such file or directory");
      continue;
    }
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(status)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      if (files.empty()) {
        fail(arg.string() + ": directory holds no inputs");
        continue;
      }
    } else {
      files.push_back(arg);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) run_one(f);
  }
  std::printf("%zu passed, %zu failed\n", passed, failed);
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}
