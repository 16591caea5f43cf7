// The main job: many users' devices on the simulated network, every device on
// its own SQLite store, exchanging keys until everyone can read what they are
// entitled to. Prints a progress bar, one new device's story, and a summary.
#include "demo.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "network.h"
#include "towns/crypto/aead.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/store/sqlite_crypto_store.h"

namespace towns::tools {
namespace {

struct Options {
  std::string dir;
  int users = 50;
  int devices = 2;
  int streams = 20;
  int rounds = 3;
  std::string seed = "towns-e2ee demo";
};

// A user id looks like a wallet address: 20 bytes of hex.
std::string user_id(int n) {
  auto h = crypto::sha256(crypto::as_bytes("demo user " + std::to_string(n)));
  return crypto::hex_encode(std::span<const uint8_t>(h.data(), 20));
}

// Channel stream ids start with 20.
std::string stream_id(int n) {
  auto h = crypto::sha256(crypto::as_bytes("demo stream " + std::to_string(n)));
  return "20" + crypto::hex_encode(std::span<const uint8_t>(h.data(), 31));
}

class Progress {
 public:
  explicit Progress(int total) : total_(total), tty_(isatty(STDOUT_FILENO) != 0) {}
  void step(const std::string& what) {
    ++done_;
    int width = 30;
    int filled = total_ > 0 ? done_ * width / total_ : width;
    if (tty_) {
      std::printf("\r  [%s%s] %3d%%  %-40s", std::string(static_cast<size_t>(filled), '#').c_str(),
                   std::string(static_cast<size_t>(width - filled), '.').c_str(), done_ * 100 / total_,
                   what.c_str());
      if (done_ == total_) std::printf("\n");
    } else {
      std::printf("  [%3d%%] %s\n", done_ * 100 / total_, what.c_str());
    }
    std::fflush(stdout);
  }

 private:
  int total_;
  int done_ = 0;
  bool tty_;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::INVALID_ARGUMENT, a + " needs a value");
      return argv[++i];
    };
    auto number = [&](int lo, int hi) {
      auto v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < lo || n > hi) {
        throw Error(ErrorCode::INVALID_ARGUMENT, a + " takes a whole number from " + std::to_string(lo) + " to " +
                                                     std::to_string(hi));
      }
      return static_cast<int>(n);
    };
    if (a == "--dir") {
      o.dir = value();
    } else if (a == "--users") {
      o.users = number(2, 1000);
    } else if (a == "--devices") {
      o.devices = number(1, 10);
    } else if (a == "--streams") {
      o.streams = number(1, 500);
    } else if (a == "--rounds") {
      o.rounds = number(0, 100);
    } else if (a == "--seed") {
      o.seed = value();
    } else {
      throw Error(ErrorCode::INVALID_ARGUMENT, "unknown option " + a);
    }
  }
  return true;
}

}  // namespace

int run_demo(int argc, char** argv) {
  Options o;
  parse(argc, argv, o);
  bool temporary = o.dir.empty();
  if (temporary) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "towns-e2ee-demo-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw Error(ErrorCode::STORE_ERROR, "cannot make a temporary folder");
    o.dir = tmpl;
  }
  std::filesystem::create_directories(o.dir);
  auto started = std::chrono::steady_clock::now();

  sim::SimClock clock;
  crypto::SeededRandom rng(crypto::as_bytes(o.seed));
  sim::Network net(clock, rng);
  std::printf("towns-e2ee demo: %d users x %d devices, %d streams, %d rounds of churn\n", o.users, o.devices,
              o.streams, o.rounds);
  std::printf("  device stores: %s%s\n\n", o.dir.c_str(), temporary ? " (temporary)" : "");

  Progress progress(2 + o.rounds + 2);
  std::vector<sim::SimDevice*> devices;
  const char* kinds[] = {"phone", "laptop", "tablet", "desktop", "watch", "car", "tv", "fridge", "ring", "glasses"};
  for (int u = 0; u < o.users; ++u) {
    net.set_user_name(user_id(u), "u" + std::to_string(u));
    for (int k = 0; k < o.devices; ++k) {
      std::string name = "u" + std::to_string(u) + "-" + kinds[k];
      std::string key = "pickle key of " + name;
      auto store = SqliteCryptoStore::open(o.dir + "/" + name + ".db", key);
      devices.push_back(&net.add_device(user_id(u), name, std::move(store), crypto::SecretBytes(std::string_view(key))));
    }
  }
  auto rand = [&](int n) {
    uint8_t b[4];
    rng.fill(b);
    return static_cast<int>(((uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3]) %
                            static_cast<uint32_t>(n));
  };
  for (int s = 0; s < o.streams; ++s) {
    std::set<std::string> members;
    for (int u = 0; u < o.users; ++u) {
      if ((u + s) % 4 == 0 || rand(10) == 0) members.insert(user_id(u));
    }
    members.insert(user_id(s % o.users));
    net.create_stream(stream_id(s), members);
  }
  progress.step("devices and streams created");

  int messages = 0;
  auto post_some = [&](int round) {
    for (int s = 0; s < o.streams; ++s) {
      auto members = net.members(stream_id(s));
      if (members.empty()) continue;
      // Stream 0, where the newcomer will arrive, gets a longer history of both algorithms.
      int per_stream = s == 0 && round == 0 ? 6 : 2;
      for (int m = 0; m < per_stream; ++m) {
        const auto& who = members[static_cast<size_t>(rand(static_cast<int>(members.size())))];
        std::vector<sim::SimDevice*> own;
        for (const auto& d : net.devices()) {
          if (d->user_id() == who) own.push_back(d.get());
        }
        auto* d = own[static_cast<size_t>(rand(static_cast<int>(own.size())))];
        if (!d->online()) continue;
        bool megolm = s == 0 && round == 0 ? m % 2 == 0 : rand(2) != 0;
        auto algorithm = megolm ? GroupEncryptionAlgorithm::kGroupEncryption
                                : GroupEncryptionAlgorithm::kHybridGroupEncryption;
        net.post_message(*d, stream_id(s), "round " + std::to_string(round) + " message from " + d->name(), algorithm);
        ++messages;
      }
    }
  };
  post_some(0);
  net.run();
  progress.step("history posted and shared");

  // One new device's story, told as it happens.
  std::vector<std::string> story;
  const std::string newcomer_name = "newcomer-phone";
  const std::string newcomer_user = user_id(o.users);
  const std::string newcomer_short = "newcomer";
  net.set_user_name(newcomer_user, newcomer_short);
  size_t decrypt_lines = 0;
  net.on_log = [&](const std::string& line) {
    if (line.find(newcomer_name) == std::string::npos && line.find(newcomer_short) == std::string::npos) return;
    if (line.find(" decrypts ") != std::string::npos && ++decrypt_lines > 4) return;
    story.push_back(line);
  };
  auto& newcomer = net.add_device(newcomer_user, newcomer_name,
                                  SqliteCryptoStore::open(o.dir + "/" + newcomer_name + ".db", "newcomer key"),
                                  crypto::SecretBytes(std::string_view("newcomer key")));
  net.join(stream_id(0), newcomer_user);
  size_t history = net.events(stream_id(0)).size();
  net.run();
  net.on_log = nullptr;
  if (decrypt_lines > 4) story.push_back("         ... and " + std::to_string(decrypt_lines - 4) + " more decrypted");

  for (int round = 1; round <= o.rounds; ++round) {
    for (int c = 0; c < 10; ++c) {
      auto s = stream_id(rand(o.streams));
      auto u = user_id(rand(o.users));
      if (net.is_member(s, u) && rand(3) == 0) {
        net.leave(s, u);
      } else {
        net.join(s, u);
      }
      auto* d = devices[static_cast<size_t>(rand(static_cast<int>(devices.size())))];
      net.set_online(*d, !d->online());
    }
    post_some(round);
    net.run();
    progress.step("churn round " + std::to_string(round) + " settled");
  }
  for (auto* d : devices) {
    if (!d->online()) net.set_online(*d, true);
  }
  net.run(24LL * 3600 * 1000);
  progress.step("everyone back online");
  auto verdict = net.verify();
  progress.step("checked");
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  std::printf("\nThe newcomer's story (stream %s, %zu events of history):\n", stream_id(0).substr(0, 8).c_str(), history);
  for (const auto& line : story) std::printf("  %s\n", line.c_str());
  size_t read = 0;
  for (size_t i = 0; i < history; ++i) read += newcomer.has_decrypted(net.events(stream_id(0))[i].event_id) ? 1 : 0;
  std::printf("  => %s decrypted %zu of the %zu events it found\n\n", newcomer_name.c_str(), read, history);

  const auto& t = net.traffic();
  auto row = [](const char* what, const std::string& value) { std::printf("  | %-38s | %14s |\n", what, value.c_str()); };
  std::printf("  +----------------------------------------+----------------+\n");
  row("devices (each on its own SQLite file)", std::to_string(verdict.devices));
  row("streams", std::to_string(o.streams));
  row("messages posted", std::to_string(messages));
  row("(device, event) pairs entitled", std::to_string(verdict.expected));
  row("... decrypted", std::to_string(verdict.decrypted));
  row("devices holding keys never granted", std::to_string(verdict.leaked));
  row("key solicitations (ephemeral)", std::to_string(t.ephemeral_solicitations));
  row("key solicitations (stream events)", std::to_string(t.solicitations));
  row("key fulfillments accepted", std::to_string(t.fulfillments_accepted));
  row("key fulfillments refused (dup)", std::to_string(t.fulfillments_refused));
  row("session shares (inbox messages)", std::to_string(t.shares));
  row("bytes sent", std::to_string(t.bytes));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(clock.now_ms() - 1'800'000'000'000) / 1000.0);
  row("simulated time", buf);
  std::snprintf(buf, sizeof buf, "%.1f s", wall);
  row("wall time", buf);
  std::printf("  +----------------------------------------+----------------+\n");

  if (temporary) {
    std::error_code ec;
    std::filesystem::remove_all(o.dir, ec);
  }
  if (!verdict.ok()) {
    std::printf("\nFAILED: some devices cannot decrypt what they are entitled to:\n");
    for (const auto& p : verdict.problems) std::printf("  %s\n", p.c_str());
    return 1;
  }
  std::printf("\nEvery device can decrypt exactly what it is entitled to.\n");
  return 0;
}

}  // namespace towns::tools
