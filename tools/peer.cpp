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
  // (posix_spawn's dup2 onto 0 and 1 clears the flag there).
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) throw PeerError("pipe failed");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw PeerError("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
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
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    pid_ = -1;
    throw PeerError("cannot start the peer: " + command_);
  }
  to_ = in[1];
  from_ = out[0];
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
    for (int i = 0; i < 50 && waitpid(pid_, &status, WNOHANG) == 0; ++i) usleep(20000);
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
    pollfd p[2] = {{to_, POLLOUT, 0}, {from_, POLLIN, 0}};
    if (poll(p, 2, static_cast<int>(left)) <= 0) continue;
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
    pollfd p{from_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
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
        usleep(20000);
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
    usleep(5000);
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

std::vector<Peer::Exchange> Peer::take_exchanges() {
  std::vector<Exchange> out;
  out.swap(exchanges_);
  return out;
}

}  // namespace towns::tools
