// Temporary directories and store factories for the store and device suites.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <csignal>
#include <functional>
#include <stdexcept>
#include <memory>
#include <random>
#include <string>

#include "towns/store/memory_crypto_store.h"
#include "towns/store/sqlite_crypto_store.h"

namespace test {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("towns-e2ee-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Runs fn(i) in `count` child processes at once and waits for them; true when
// every child finished without throwing.
inline bool run_in_children(int count, const std::function<void(int)>& fn) {
  std::vector<pid_t> children;
  for (int i = 0; i < count; ++i) {
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      int code = 0;
      try {
        fn(i);
      } catch (...) {
        code = 1;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  return ok;
}

// Runs child(write_fd) in a child process, reads its lines until want lines have
// arrived (or it ends), kills it with SIGKILL, and returns every complete line.
template <typename Fn>
inline std::vector<std::string> run_and_kill(Fn child, size_t want) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    close(fds[0]);
    int code = 0;
    try {
      child(fds[1]);
    } catch (...) {
      code = 3;
    }
    _exit(code);
  }
  close(fds[1]);
  std::string buffer;
  auto lines = [&] { return static_cast<size_t>(std::count(buffer.begin(), buffer.end(), '\n')); };
  char chunk[4096];
  while (lines() < want) {
    ssize_t n = read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  for (ssize_t n; (n = read(fds[0], chunk, sizeof chunk)) > 0;) buffer.append(chunk, static_cast<size_t>(n));
  close(fds[0]);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    out.push_back(buffer.substr(start, nl - start));
  }
  return out;  // a torn last line (no newline) was never acknowledged
}

inline void write_line(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) throw std::runtime_error("pipe");
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace test
