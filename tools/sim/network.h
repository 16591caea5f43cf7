// An in-process model of what a Towns node provides to the encryption layer,
// for the key-exchange tests and the demo: streams with members and their
// member events (solicitations, fulfillments), encrypted stream events, user
// inboxes, published devices, entitlements that change, devices that go
// offline and come back, and a node that accepts only the first fulfillment for
// a (stream, device, session ids).
//
// Everything happens on one thread under a simulated clock: run() lets every
// online device work, and advances the clock to the next moment one of them has
// something due. Deliveries only enqueue; devices process in their own run().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "towns/exchange/key_exchange.h"
#include "towns/store/crypto_store.h"

namespace towns::sim {

class SimClock final : public Clock {
 public:
  explicit SimClock(int64_t start_ms = 1'800'000'000'000) : now_(start_ms) {}
  int64_t now_ms() override { return now_; }
  void advance_to(int64_t t) {
    if (t > now_) now_ = t;
  }
  void advance(int64_t ms) { now_ += ms; }

 private:
  int64_t now_;
};

class Network;

// Counts of what crossed the network, by kind.
struct Traffic {
  uint64_t messages = 0;
  uint64_t solicitations = 0;
  uint64_t ephemeral_solicitations = 0;
  uint64_t fulfillments_accepted = 0;
  uint64_t fulfillments_refused = 0;
  uint64_t shares = 0;  // GroupEncryptionSessions messages to inboxes
  uint64_t bytes = 0;   // protobuf bytes of all of the above
};

class SimDevice final : public KeyExchangeHost {
 public:
  SimDevice(Network& net, std::string user_id, std::string name, std::unique_ptr<CryptoStore> store,
            crypto::SecretBytes pickle_key, crypto::RandomSource& rng, KeyExchangeOptions options);
  ~SimDevice() override;

  const std::string& user_id() const { return user_id_; }
  const std::string& name() const { return name_; }
  UserDevice device() const { return crypto_->get_user_device(); }
  bool online() const { return online_; }
  GroupEncryptionCrypto& crypto() { return *crypto_; }
  KeyExchange& engine() { return *engine_; }

  // event id -> plaintext, for what this device decrypted.
  const std::map<std::string, std::string>& decrypted() const { return decrypted_; }
  bool has_decrypted(const std::string& event_id) const { return decrypted_.count(event_id) > 0; }

  // KeyExchangeHost
  void send_key_solicitation(std::string_view stream_id, const KeySolicitation& s,
                             bool ephemeral) override;
  bool send_key_fulfillment(std::string_view stream_id, const KeyFulfillment& f,
                            bool ephemeral) override;
  void send_group_encryption_sessions(std::string_view to_user_id,
                                      const GroupEncryptionSessions& s) override;
  std::vector<UserDevice> user_devices(std::string_view user_id) override;
  std::vector<std::string> stream_members(std::string_view stream_id) override;
  bool is_user_entitled(std::string_view stream_id, std::string_view user_id) override;
  std::vector<StreamSolicitation> key_solicitations(std::string_view stream_id) override;
  MiniblockInfo get_miniblock_info(std::string_view stream_id) override;
  void on_decrypted(const EncryptedEvent& e, const DecryptedPayload& p) override;
  void on_decryption_error(const EncryptedEvent& e, const Error& err, bool missing_session) override;

 private:
  friend class Network;
  Network& net_;
  std::string user_id_;
  std::string name_;
  std::unique_ptr<CryptoStore> store_;
  StreamSessionSharer sharer_;
  std::unique_ptr<GroupEncryptionCrypto> crypto_;
  std::unique_ptr<KeyExchange> engine_;
  bool online_ = true;
  size_t inbox_cursor_ = 0;
  std::map<std::string, size_t> stream_cursor_;
  std::map<std::string, std::string> decrypted_;
};

struct StreamEvent {
  std::string event_id;
  std::string sender_user_id;
  EncryptedData data;
  bool honest = true;  // false for garbage posted by a test
};

// The end-of-run check: every device of an entitled member decrypted every
// honest event of the stream; no device of a user who was never a member holds
// a session of the stream or decrypted one of its events.
struct Verdict {
  size_t devices = 0;
  size_t expected = 0;   // (device, event) pairs that must decrypt
  size_t decrypted = 0;  // of those, decrypted
  size_t leaked = 0;     // (device, stream) pairs that must hold nothing but do
  std::vector<std::string> problems;
  bool ok() const { return decrypted == expected && leaked == 0; }
};

class Network {
 public:
  Network(SimClock& clock, crypto::RandomSource& rng, KeyExchangeOptions options = {});
  ~Network();

  // A new device of a user, published and online.
  SimDevice& add_device(const std::string& user_id, const std::string& name, std::unique_ptr<CryptoStore> store,
                        crypto::SecretBytes pickle_key = crypto::SecretBytes(std::string_view("DEFAULT_KEY")));
  void create_stream(const std::string& stream_id, const std::set<std::string>& members);
  void join(const std::string& stream_id, const std::string& user_id);
  void leave(const std::string& stream_id, const std::string& user_id);
  // Entitlement on top of membership (a member may lose it, e.g. a token gate).
  void set_entitled(const std::string& stream_id, const std::string& user_id, bool entitled);
  void set_online(SimDevice& device, bool online);

  // The sender encrypts (creating and sharing a session if needed) and posts.
  const StreamEvent& post_message(SimDevice& sender, const std::string& stream_id, const std::string& plaintext,
                                  GroupEncryptionAlgorithm algorithm);
  // Posts raw bytes as an event (for garbage ciphertexts).
  void post_raw_event(const std::string& stream_id, const std::string& sender_user_id, EncryptedData data,
                      bool honest = true);
  Verdict verify() const;
  size_t inbox_size(const std::string& user_id) const;

  // Lets online devices work, advancing the clock to the next due moment, until
  // nothing is due or max_ms of simulated time have passed. Returns the units done.
  size_t run(int64_t max_ms = 10 * 60 * 1000);

  // Observers for transcripts: every network action is described to them.
  std::function<void(const std::string&)> on_log;

  // ---- the node's view (also used by devices as their host)
  bool is_member(const std::string& stream_id, const std::string& user_id) const;
  bool is_entitled(const std::string& stream_id, const std::string& user_id) const;
  std::vector<std::string> members(const std::string& stream_id) const;
  std::vector<UserDevice> published_devices(const std::string& user_id) const;
  const std::vector<StreamEvent>& events(const std::string& stream_id) const;
  std::vector<std::string> stream_ids() const;
  const std::vector<std::unique_ptr<SimDevice>>& devices() const { return devices_; }
  SimDevice* device_by_key(const std::string& device_key) const;
  const Traffic& traffic() const { return traffic_; }
  SimClock& clock() { return clock_; }

  // ---- what devices (or a bad actor) post
  // `by` names the sending device in the log (a device name, or empty).
  void post_solicitation(const std::string& from_user_id, const std::string& stream_id,
                         const KeySolicitation& s, bool ephemeral, const std::string& by = {});
  bool post_fulfillment(const std::string& from_user_id, const std::string& stream_id,
                        const KeyFulfillment& f, bool ephemeral, const std::string& by = {});
  void send_to_inbox(const std::string& from_user_id, const std::string& to_user_id,
                     const GroupEncryptionSessions& s, const std::string& by = {});
  // A display name for a user in the log.
  void set_user_name(const std::string& user_id, const std::string& name) { user_names_[user_id] = name; }
  std::string user_label(const std::string& user_id) const;
  MiniblockInfo miniblock(const std::string& stream_id);
  std::string name_of(const std::string& device_key) const;

 private:
  friend class SimDevice;
  struct Stream {
    std::set<std::string> members;
    std::set<std::string> ever_members;
    std::set<std::string> not_entitled;
    std::vector<StreamEvent> events;
    StreamSolicitations solicitations;  // the stored ones, as stream state keeps them
    std::set<std::string> fulfilled;  // device key | sorted ids, as accepted
    int64_t miniblock_num = 0;
  };
  Stream& stream(const std::string& id);
  void catch_up(SimDevice& d);
  void log(const std::string& line);

  SimClock& clock_;
  crypto::RandomSource& rng_;
  KeyExchangeOptions options_;
  std::vector<std::unique_ptr<SimDevice>> devices_;
  std::map<std::string, Stream> streams_;
  std::map<std::string, std::vector<GroupEncryptionSessions>> inboxes_;
  Traffic traffic_;
  uint64_t next_event_ = 0;
  std::map<std::string, std::string> user_names_;
};

}  // namespace towns::sim
