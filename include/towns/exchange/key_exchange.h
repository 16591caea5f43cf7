// KeyExchange: solicitation, fulfillment and session sharing between a group's
// devices (docs/protocol.md sections 8 to 10), the stateful engine above the
// protocol classes (the exchange layer, docs/design.md), in the role of the client SDK's
// decryption extensions (@towns-protocol/sdk 0.0.455, decryptionExtensions).
//
// Transport-agnostic: the host application delivers what it sees (encrypted
// events, GroupEncryptionSessions from its inbox, solicitations and
// fulfillments on streams) through the enqueue_* / on_* methods, and the engine
// acts through the KeyExchangeHost interface. The engine never starts threads or
// timers: the host calls run() (or tick()) and advances time through the Clock,
// so behaviour is deterministic under a test clock and a seeded RandomSource.
//
// Not thread-safe: one thread drives one engine. Host callbacks are made from
// inside run()/tick().
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "towns/error.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/messages.h"
#include "towns/protocol/session_sharing.h"

namespace towns {

class TOWNS_API Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() = 0;
};

// The system clock (milliseconds since the Unix epoch).
TOWNS_API Clock& system_clock();

// ---- The decision rules of section 9, as pure functions (the engine, the
// conformance driver and the test vectors all use them).

// Requesting, on ids alone: the missing ids sorted and deduplicated, at most
// 100; std::nullopt when none remain, or when the first of pending_own (our
// device's solicitations: our user's stored one, then our ephemeral ones, as
// the SDK lists them) is a new-device one or asks for the same ids; the SDK
// looks at the first only. is_new_device when we hold no session of the stream.
struct SolicitationDecision {
  bool is_new_device = false;
  std::vector<std::string> session_ids;
};
TOWNS_API std::optional<SolicitationDecision> decide_key_solicitation(
    std::vector<std::string> missing_session_ids, size_t held_session_count,
    const std::vector<KeySolicitation>& pending_own);

// Answering, on ids alone: known maps each session id we hold for the stream to
// its algorithm. std::nullopt when we stop (the solicitation is our own device's
// or has no ids, nothing to reply with, requester not entitled). Otherwise the
// fulfilled ids (the requested ones we send, or all we send when none was
// requested) and the ids to share: the reply ids in byte order, grouped by
// algorithm in the order each algorithm first appears among them, in runs of
// at most 100 (the SDK's order).
struct AnswerDecision {
  std::vector<std::string> fulfilled_session_ids;
  std::vector<std::pair<GroupEncryptionAlgorithm, std::vector<std::string>>> shares;
};
TOWNS_API std::optional<AnswerDecision> decide_solicitation_answer(
    const std::map<std::string, GroupEncryptionAlgorithm>& known, std::string_view own_device_key,
    const KeySolicitation& solicitation, bool requester_entitled);

// Requesting: decide_key_solicitation over the device's sessions of the
// stream, as a KeySolicitation of our device.
TOWNS_API std::optional<KeySolicitation> build_key_solicitation(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, std::vector<std::string> missing_session_ids,
    const std::vector<KeySolicitation>& pending_own);

// Answering, up to the fulfillment: std::nullopt when we stop (our own device,
// no session ids, nothing of ours to reply with, requester not entitled, nothing
// exported). is_entitled is asked only once there is something to reply with.
struct SolicitationAnswer {
  KeyFulfillment fulfillment;
  std::vector<GroupEncryptionSession> sessions;  // to share once the fulfillment is accepted
};
TOWNS_API std::optional<SolicitationAnswer> plan_solicitation_answer(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, std::string_view from_user_id,
    const KeySolicitation& solicitation, const std::function<bool()>& is_entitled);

// The shares for an accepted fulfillment: GroupEncryptionSessions of one
// algorithm each, algorithms in the order they first appear among the
// sessions, at most 100 sessions each, encrypted to the requesting device. Empty when olm refuses the requester's keys.
TOWNS_API std::vector<GroupEncryptionSessions> build_solicitation_shares(
    GroupEncryptionCrypto& crypto, std::string_view stream_id, const UserDevice& requester,
    const std::vector<GroupEncryptionSession>& sessions);

struct EncryptedEvent {
  std::string stream_id;
  std::string event_id;
  EncryptedData data;
};

// A solicitation seen on a stream, waiting for its response time.
struct KeySolicitationItem {
  std::string stream_id;
  std::string from_user_id;  // hex address
  KeySolicitation solicitation;
  std::string event_hash;  // lets the host check the event (signature) later
  int64_t respond_after_ms = 0;
  bool ephemeral = false;
};

struct StreamSolicitation {
  std::string user_id;
  KeySolicitation solicitation;
};

// The stored solicitations of one stream as its state records them (the SDK's
// StreamStateView_Members_Solicitations, docs/protocol.md section 9.4): each
// member's latest solicitation per device key. A host keeps one per stream,
// answers KeyExchangeHost::key_solicitations from it, and passes what each
// apply_* returns to KeyExchange::enqueue_key_solicitation (not ephemeral).
class TOWNS_API StreamSolicitations {
 public:
  // A solicitation event by a member: replaces that member's solicitation for
  // the same device key; returns it as stored (session ids sorted).
  KeySolicitation apply_solicitation(std::string_view user_id,
                                                           const KeySolicitation& s);
  // A stored fulfillment: the requesting member's (user_address, hex) first
  // solicitation with the fulfilled device key loses the fulfilled ids and is
  // no longer a new-device one. Returns it, or nullopt when there is none.
  std::optional<StreamSolicitation> apply_fulfillment(const KeyFulfillment& f);
  // A member left: its solicitations go with it.
  void remove_member(std::string_view user_id);
  // Every stored solicitation, members in the order they first solicited.
  std::vector<StreamSolicitation> all() const;

 private:
  std::vector<std::pair<std::string, std::vector<KeySolicitation>>> members_;
};

// What the engine needs from the host (a Towns client, or the simulated network).
class TOWNS_API KeyExchangeHost {
 public:
  virtual ~KeyExchangeHost() = default;
  virtual void send_key_solicitation(std::string_view stream_id,
                                     const KeySolicitation& solicitation, bool ephemeral) = 0;
  // False when the node refused it as a duplicate: another device fulfilled first.
  virtual bool send_key_fulfillment(std::string_view stream_id,
                                    const KeyFulfillment& fulfillment, bool ephemeral) = 0;
  virtual void send_group_encryption_sessions(std::string_view to_user_id,
                                              const GroupEncryptionSessions& sessions) = 0;
  // Published devices of a user.
  virtual std::vector<UserDevice> user_devices(std::string_view user_id) = 0;
  // Users whose join is confirmed (the response delay counts them).
  virtual std::vector<std::string> stream_members(std::string_view stream_id) = 0;
  // Users entitled to key exchange on the stream by membership (the SDK's
  // StreamStateView.getUsersEntitledToKeyExchange): joined and pending-join
  // members of channels, spaces and group DMs; joined, invited and left
  // participants of DMs. New sessions are shared with them, and only they may
  // ask or be answered. By default the stream's members.
  virtual std::vector<std::string> users_entitled_to_key_exchange(std::string_view stream_id) {
    return stream_members(stream_id);
  }
  // The on-chain check (Read permission) where the stream has one (channels);
  // asked only before answering a solicitation, after the membership rule.
  virtual bool is_user_entitled(std::string_view stream_id, std::string_view user_id) = 0;
  // The non-ephemeral solicitations currently on the stream (each member
  // device's latest, as StreamSolicitations keeps them), with the user who
  // posted each.
  virtual std::vector<StreamSolicitation> key_solicitations(std::string_view stream_id) = 0;
  // The solicitation event's signature and validity; true by default.
  virtual bool is_valid_event(const KeySolicitationItem&) { return true; }
  virtual MiniblockInfo get_miniblock_info(std::string_view stream_id) = 0;

  // Results.
  virtual void on_decrypted(const EncryptedEvent&, const DecryptedPayload&) {}
  // missing_session: the event waits for keys (a solicitation may follow).
  virtual void on_decryption_error(const EncryptedEvent&, const Error&, bool /*missing_session*/) {}
};

// Shares newly created outbound sessions with every device of the users
// entitled to key exchange on the stream (KeyExchangeHost::
// users_entitled_to_key_exchange; our own device skipped), priority users last
// as the SDK orders them: the GroupEncryptionClient a GroupEncryptionCrypto
// driven by a KeyExchange uses. A device that olm refuses is skipped; the
// user's other devices still get the sessions (docs/compat.md).
class TOWNS_API StreamSessionSharer final : public GroupEncryptionClient {
 public:
  explicit StreamSessionSharer(KeyExchangeHost& host) : host_(host) {}
  void bind(GroupEncryptionCrypto& crypto) { crypto_ = &crypto; }
  void encrypt_and_share_group_sessions_to_stream(std::string_view stream_id,
                                                  const std::vector<GroupEncryptionSession>& sessions,
                                                  GroupEncryptionAlgorithm algorithm,
                                                  const std::vector<std::string>& priority_user_ids) override;
  MiniblockInfo get_miniblock_info(std::string_view stream_id) override { return host_.get_miniblock_info(stream_id); }

 private:
  KeyExchangeHost& host_;
  GroupEncryptionCrypto* crypto_ = nullptr;
};

struct KeyExchangeOptions {
  // Solicit ephemerally first, then as a stream event after this long without a
  // complete fulfillment (the SDK's ephemeralTimeoutMs).
  bool ephemeral_solicitations = true;
  int64_t ephemeral_timeout_ms = 30000;
  // Answer after a random delay (section 10); off answers at once.
  bool respond_delay = true;
};

struct KeyExchangeStats {
  uint64_t decrypted = 0;
  uint64_t decryption_failures = 0;  // missing session
  uint64_t decryption_errors = 0;    // any other error
  uint64_t solicitations_sent = 0;
  uint64_t fulfillments_sent = 0;
  uint64_t fulfillments_refused = 0;  // duplicate: someone else answered
  uint64_t shares_sent = 0;           // GroupEncryptionSessions messages
  uint64_t sessions_imported = 0;
  uint64_t bytes_sent = 0;            // protobuf bytes of everything sent
};

enum class KeyExchangeStatus { kIdle, kWorking, kWaiting };

class TOWNS_API KeyExchange {
 public:
  // crypto must be initialised; user_id is our user's hex address.
  KeyExchange(GroupEncryptionCrypto& crypto, KeyExchangeHost& host, std::string user_id, Clock& clock,
              crypto::RandomSource& rng = crypto::os_random(), KeyExchangeOptions options = {});

  // ---- input from the host
  void enqueue_encrypted_content(EncryptedEvent event);
  void enqueue_new_group_sessions(GroupEncryptionSessions sessions);
  // A solicitation seen on a stream. Our own device's is ignored; a device's
  // newer solicitation replaces its pending one; one with no session ids (and
  // not from a new device) just clears it.
  void enqueue_key_solicitation(std::string_view stream_id, std::string_view from_user_id,
                                const KeySolicitation& solicitation, bool ephemeral,
                                std::string_view event_hash = {});
  // The stream was read from a snapshot (the SDK's enqueueInitKeySolicitations):
  // the stream's pending stored answers are replaced by its stored
  // solicitations as given (member by member, in the stream's member order),
  // each with a fresh delay; ours and those without session ids are skipped;
  // pending ephemeral answers stay.
  void enqueue_init_key_solicitations(std::string_view stream_id, const std::vector<StreamSolicitation>& stored);
  // An ephemeral fulfillment seen on a stream (the SDK's
  // processEphemeralKeyFulfillment): when it is for our device, our ephemeral
  // solicitations on that stream drop the fulfilled ids (and end when none
  // remain); pending ephemeral answers to that device key, on every stream,
  // drop them too (and are cancelled when none remain). A stored fulfillment
  // is applied to the stream's state instead (StreamSolicitations), which
  // hands the requester's updated solicitation to enqueue_key_solicitation.
  void on_ephemeral_key_fulfillment(std::string_view stream_id,
                                    const KeyFulfillment& fulfillment);
  // Membership changed: try again for the stream's events that wait for keys.
  void retry_decryption_failures(std::string_view stream_id);

  // ---- doing the work
  // Does one unit of work; false when nothing is due now.
  bool tick();
  // Ticks until nothing is due now; returns the number of units done.
  size_t run();
  // The earliest time at which something becomes due, if anything waits.
  std::optional<int64_t> next_due_ms() const;
  KeyExchangeStatus status() const;

  const KeyExchangeStats& stats() const { return stats_; }
  // Session ids of the stream that events are waiting for, sorted.
  std::vector<std::string> missing_session_ids(std::string_view stream_id) const;
  size_t pending_solicitations() const;
  size_t waiting_events() const;

  // The response delay rule of section 10, exposed for tests:
  // uniform in [0, max(5, min(30, members))) seconds, halved for our own user's
  // devices; ephemeral: 0 for our own user, else half of that. One random draw
  // every time, as the SDK draws one. (Our own user's stored solicitations are
  // answered at once whatever the delay.)
  int64_t respond_delay_ms(std::string_view stream_id, std::string_view from_user_id, bool ephemeral);

 private:
  struct OwnEphemeral {
    bool is_new_device = false;
    std::set<std::string> missing;
    int64_t convert_at_ms = 0;
  };

  // Queues an answer with its delay (our own user's stored ones at once).
  void push_solicitation(std::string_view stream_id, std::string_view from_user_id,
                         const KeySolicitation& solicitation, bool ephemeral,
                         std::string_view event_hash);
  void process_new_group_sessions(const GroupEncryptionSessions& sessions,
                                  const ReceiveResult& result);
  void process_encrypted(const EncryptedEvent& event);
  void process_missing_keys(const std::string& stream_id);
  void process_key_solicitation(const KeySolicitationItem& item);
  void convert_ephemeral(const std::string& stream_id);
  void send_solicitation(const std::string& stream_id, const KeySolicitation& s, bool ephemeral);

  GroupEncryptionCrypto& crypto_;
  KeyExchangeHost& host_;
  std::string user_id_;
  Clock& clock_;
  crypto::RandomSource& rng_;
  KeyExchangeOptions options_;
  UserDevice device_;

  std::deque<GroupEncryptionSessions> new_sessions_;
  std::deque<EncryptedEvent> encrypted_;
  std::set<std::string> missing_keys_streams_;
  // stream -> session id -> events waiting for it
  std::map<std::string, std::map<std::string, std::vector<EncryptedEvent>>> failures_;
  std::vector<KeySolicitationItem> solicitations_;  // others' solicitations to answer
  std::map<std::string, std::vector<OwnEphemeral>> own_ephemeral_;
  KeyExchangeStats stats_;
};

}  // namespace towns
