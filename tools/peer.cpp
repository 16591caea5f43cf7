#include "peer.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

extern char** environ;

namespace towns::tools {

using nlohmann::json;

namespace {
// A reply line longer than this fails the request (the largest legitimate one,
// a media decryption, is under 2 MB; a driver's request limit is 16 MiB).
constexpr size_t kMaxReplyBytes = size_t{64} << 20;
}  // namespace

void Peer::start() {
  // Close-on-exec: a driver started later must not hold this one's pipes
  // (posix_spawn's dup2 onto 0, 1 and 2 clears the flag there).
  int in[2], out[2], err[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) {
      if (fd >= 0) close(fd);
    }
  };
  in[0] = in[1] = out[0] = out[1] = -1;
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || (capture_ && pipe2(err, O_CLOEXEC) != 0)) {
    close_all();
    throw PeerError("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  if (capture_) {
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawn_file_actions_addclose(&fa, err[0]);
  }
  // Its own process group, so that stop() ends everything the command started
  // (a wrapper's children too), not only the shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  const char* argv[] = {"/bin/sh", "-c", command_.c_str(), nullptr};
  int rc = posix_spawn(&pid_, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    close_all();
    pid_ = -1;
    throw PeerError("cannot start the peer: " + command_);
  }
  close(in[0]);
  close(out[1]);
  if (err[1] >= 0) close(err[1]);
  to_ = in[1];
  from_ = out[0];
  err_ = err[0];
  // Read whenever something is there: a peer that writes much to stderr must
  // never wait on us, nor we on it.
  if (err_ >= 0) fcntl(err_, F_SETFL, fcntl(err_, F_GETFL) | O_NONBLOCK);
  // Writes never block: a peer that stops reading fails on the deadline.
  fcntl(to_, F_SETFL, fcntl(to_, F_GETFL) | O_NONBLOCK);
  group_ = pid_;
  buf_.clear();
  signal(SIGPIPE, SIG_IGN);
}

void Peer::stop() {
  // pid_ is 0 when the peer was already reaped (it exited on its own).
  if (to_ >= 0) close(to_);
  to_ = -1;
  if (pid_ > 0) {
    int status = 0;
    for (int i = 0; i < 50 && waitpid(pid_, &status, WNOHANG) == 0; ++i) wait_reading_stderr(20);
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(-group_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  // Whatever of the group is left (a child that outlived the shell).
  if (group_ > 0) kill(-group_, SIGKILL);
  group_ = -1;
  if (from_ >= 0) close(from_);
  from_ = -1;
  // What the group wrote before it ended (a process outside it that still
  // holds the pipe is not waited for).
  read_stderr();
  if (err_ >= 0) close(err_);
  err_ = -1;
  pid_ = -1;
  buf_.clear();
}

json Peer::request(json req) {
  req["id"] = ++id_;
  auto line = req.dump();
  auto what = req.value("cmd", std::string("?"));
  exchanges_.push_back({std::move(req), nullptr, ""});
  return exchange(line, json(id_), what);
}

json Peer::raw(const std::string& line) {
  exchanges_.push_back({json(line), nullptr, ""});
  return exchange(line, json(), "a raw line");
}

json Peer::exchange(const std::string& sent, const json& want_id, const std::string& what) {
  auto failed = [&](const std::string& why) {
    exchanges_.back().failure = why;
    stop();
    return PeerError(why);
  };
  if (pid_ <= 0) start();
  std::string line = sent + "\n";
  size_t off = 0;
  size_t scanned = 0;  // buf_ holds no newline before this
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  auto left_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  };
  // Writes the line, reading what comes back meanwhile (a peer may answer a
  // earlier part, or write diagnostics, while we still write).
  while (off < line.size()) {
    ssize_t n = write(to_, line.data() + off, line.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      throw failed("the peer is gone (it closed its input)");
    }
    auto left = left_ms();
    if (left <= 0) throw failed("the peer did not read " + what + " within " + std::to_string(timeout_ms_) + " ms");
    pollfd p[3] = {{to_, POLLOUT, 0}, {from_, POLLIN, 0}, {err_, POLLIN, 0}};  // poll skips a negative fd
    if (poll(p, 3, static_cast<int>(left)) <= 0) continue;
    if (p[2].revents != 0) read_stderr();
    if (p[1].revents & (POLLIN | POLLHUP)) {
      char chunk[65536];
      ssize_t r = read(from_, chunk, sizeof chunk);
      if (r > 0) buf_.append(chunk, static_cast<size_t>(r));
      if (buf_.size() > kMaxReplyBytes) throw failed("the peer wrote more than " + std::to_string(kMaxReplyBytes) + " bytes without a newline");
    }
  }
  for (;;) {
    auto nl = buf_.find('\n', scanned);
    scanned = nl == std::string::npos ? buf_.size() : 0;
    if (buf_.size() > kMaxReplyBytes && nl == std::string::npos) {
      throw failed("the peer wrote more than " + std::to_string(kMaxReplyBytes) + " bytes without a newline");
    }
    if (nl != std::string::npos) {
      std::string got = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      auto reply = json::parse(got, nullptr, false);
      if (reply.is_discarded() || !reply.is_object()) {
        throw failed("the peer answered a line that is not a JSON object: " + got.substr(0, 200));
      }
      exchanges_.back().reply = reply;
      if (!want_id.is_null() && reply.value("id", json()) != want_id) {
        throw failed("the peer answered out of order: id " + reply.value("id", json()).dump() + ", expected " +
                     want_id.dump());
      }
      return reply;
    }
    auto left = left_ms();
    if (left <= 0) {
      throw failed("the peer did not answer " + what + " within " + std::to_string(timeout_ms_) + " ms");
    }
    pollfd p[2] = {{from_, POLLIN, 0}, {err_, POLLIN, 0}};
    if (poll(p, 2, static_cast<int>(left)) <= 0) continue;
    if (p[1].revents != 0) read_stderr();
    if (p[0].revents == 0) continue;
    char chunk[65536];
    ssize_t n = read(from_, chunk, sizeof chunk);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      // Its output ended: wait a little for it to exit (it may be waiting for
      // its input to end), never without a bound.
      if (to_ >= 0) close(to_);
      to_ = -1;
      int status = 0;
      std::string how = "the peer closed its output";
      for (int i = 0; i < 50; ++i) {
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          how = "the peer exited";
          how += WIFEXITED(status) ? " with status " + std::to_string(WEXITSTATUS(status))
                                   : WIFSIGNALED(status) ? " on signal " + std::to_string(WTERMSIG(status)) : "";
          pid_ = 0;  // reaped; stop() only closes the pipes and ends the group
          break;
        }
        wait_reading_stderr(20);
      }
      throw failed(how + " while answering " + what);
    }
    if (n < 0) continue;
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

int Peer::quit() {
  request({{"cmd", "quit"}});
  if (to_ >= 0) close(to_);
  to_ = -1;
  int status = 0;
  pid_t got = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  while (pid_ > 0 && (got = waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
    wait_reading_stderr(5);
  }
  int code = -1;
  if (pid_ > 0 && got == pid_) {
    code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    pid_ = 0;
  }
  stop();
  return code;
}

json Peer::ok(json req) {
  auto cmd = req.value("cmd", std::string());
  auto reply = request(std::move(req));
  if (!reply.value("ok", false)) throw PeerError("the peer refused " + cmd + ": " + reply.value("error", json::object()).dump());
  return reply;
}

void Peer::read_stderr() {
  while (err_ >= 0) {
    char chunk[65536];
    ssize_t n = read(err_, chunk, sizeof chunk);
    if (n > 0) {
      err_tail_.append(chunk, static_cast<size_t>(n));
      if (err_tail_.size() > 2 * kStderrKeep) {  // trimmed in steps, not on every read
        err_dropped_ += err_tail_.size() - kStderrKeep;
        err_tail_.erase(0, err_tail_.size() - kStderrKeep);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      close(err_);  // every writer is gone
      err_ = -1;
    }
    return;
  }
}

void Peer::wait_reading_stderr(int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (left <= 0) return;
    if (err_ < 0) {
      usleep(static_cast<useconds_t>(left) * 1000);
      return;
    }
    pollfd p{err_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) > 0) read_stderr();
  }
}

std::string Peer::take_stderr() {
  read_stderr();
  if (err_tail_.size() > kStderrKeep) {
    err_dropped_ += err_tail_.size() - kStderrKeep;
    err_tail_.erase(0, err_tail_.size() - kStderrKeep);
  }
  std::string out;
  if (err_dropped_ > 0) out = "(" + std::to_string(err_dropped_) + " earlier bytes not kept)\n";
  out += err_tail_;
  err_tail_.clear();
  err_dropped_ = 0;
  return out;
}

std::vector<Peer::Exchange> Peer::take_exchanges() {
  std::vector<Exchange> out;
  out.swap(exchanges_);
  return out;
}

}  // namespace towns::tools
