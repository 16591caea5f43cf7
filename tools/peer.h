// A driver process (docs/driver.md) steered over its stdin and stdout: the
// peer of `exchange diff` and of `vectors verify --driver`.
//
// Every request waits for its reply at most a timeout; a peer that exits,
// stays silent, answers a line that is not a JSON object, or answers another
// request's id is stopped and the request throws a PeerError saying which. The
// next request starts the peer again, so one broken case does not end a run.
//
// The peer's stderr is either left to the caller's (kInherit) or captured
// (kCapture): read as it comes, in the same waits that read its replies, so a
// peer that writes much to stderr never blocks on it, and only the last
// kStderrKeep bytes kept, for reports.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace towns::tools {

class PeerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class PeerStderr { kInherit, kCapture };

class Peer {
 public:
  static constexpr size_t kStderrKeep = size_t{64} << 10;

  // One request and what came back: the reply, or why none did.
  struct Exchange {
    nlohmann::json sent;
    nlohmann::json reply;  // null when there was none
    std::string failure;   // "" when a reply came
  };

  explicit Peer(std::string command, int timeout_ms = 120000, PeerStderr err = PeerStderr::kInherit)
      : command_(std::move(command)), timeout_ms_(timeout_ms), capture_(err == PeerStderr::kCapture) {}
  ~Peer() { stop(); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  void start();
  // Closes stdin, waits up to a second for the peer to exit, then kills it
  // (reading its stderr meanwhile, when captured).
  void stop();

  // Sends req (its "id" set here) and returns the reply object; throws PeerError.
  nlohmann::json request(nlohmann::json req);
  // request(), and the reply must be ok; else throws PeerError naming the error.
  nlohmann::json ok(nlohmann::json req);
  // Sends one raw line (not necessarily JSON) and returns the reply object,
  // whatever its id; throws PeerError.
  nlohmann::json raw(const std::string& line);
  // Sends quit, closes stdin and waits (at most the timeout) for the peer to
  // exit: its exit status, or -1 when it ended on a signal or had to be killed.
  // Throws PeerError when quit is not answered.
  int quit();

  // The exchanges since the last take_exchanges() (each request is recorded).
  std::vector<Exchange> take_exchanges();
  // kCapture: what the peer (every process it started) wrote to stderr since the
  // last take_stderr(), across restarts: its last kStderrKeep bytes, after a
  // line saying how many earlier bytes were dropped, if any. "" with kInherit.
  std::string take_stderr();
  int timeout_ms() const { return timeout_ms_; }

 private:
  std::string command_;
  int timeout_ms_;
  pid_t pid_ = -1;
  pid_t group_ = -1;  // the peer's process group (its shell's pid)
  bool capture_;
  int to_ = -1, from_ = -1, err_ = -1;
  int64_t id_ = 0;
  std::string buf_;
  std::vector<Exchange> exchanges_;
  std::string err_tail_;     // the last kStderrKeep bytes of stderr not yet taken
  size_t err_dropped_ = 0;   // bytes before them, not kept

  // Reads whatever stderr holds now (never blocks); closes it at its end.
  void read_stderr();
  // Waits ms milliseconds, reading stderr as it comes when it is captured.
  void wait_reading_stderr(int ms);

  // Writes line and reads one reply; want_id null accepts any id.
  nlohmann::json exchange(const std::string& line, const nlohmann::json& want_id, const std::string& what);
};

}  // namespace towns::tools
