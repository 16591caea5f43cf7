// The C ABI (include/towns/towns.h) over the C++ API: handles, status codes,
// buffers that wipe, JSON for lists, and the key exchange host as C callbacks.
// Every entry point runs its body inside guard(), which turns every exception
// into a status and the thread's last error message.
#include "towns/towns.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "towns/crypto/encoding.h"
#include "towns/crypto/secret.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/protocol/group_encryption_crypto.h"
#include "towns/protocol/inputs.h"
#include "towns/protocol/messages.h"
#include "towns/protocol/session_sharing.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/store/sqlite_crypto_store.h"
#include "towns/vectors.h"
#include "../common/secret_json.h"

using namespace towns;

// The header's table is the enum's order plus one, every code present, the
// last one last: it cannot drift from towns::ErrorCode without failing here.
#define TOWNS_X(name)                                                         \
  static_assert(TOWNS_E_##name == static_cast<int>(ErrorCode::name) + 1, \
                "towns.h: TOWNS_E_" #name " is not ErrorCode::" #name " + 1");
TOWNS_ERROR_CODES(TOWNS_X)
#undef TOWNS_X
#define TOWNS_X(name) +1
static_assert(TOWNS_E_LAST == 0 TOWNS_ERROR_CODES(TOWNS_X), "towns.h: TOWNS_E_LAST is not the last code");
#undef TOWNS_X

namespace {

thread_local std::string t_last_error;

towns_status status_of(ErrorCode code) { return static_cast<int>(code) + 1; }

ErrorCode code_of(towns_status status) {
  if (status < 1 || status > TOWNS_E_LAST) return ErrorCode::INTERNAL;
  return static_cast<ErrorCode>(status - 1);
}

towns_status fail(towns_status status, const char* message) noexcept {
  try {
    t_last_error.assign(message);
  } catch (...) {
    t_last_error.clear();
  }
  return status;
}

template <typename F>
towns_status guard(F&& body) noexcept {
  try {
    body();
    t_last_error.clear();
    return TOWNS_OK;
  } catch (const Error& e) {
    return fail(status_of(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(TOWNS_E_INTERNAL, "INTERNAL: out of memory");
  } catch (const std::exception& e) {
    return fail(TOWNS_E_INTERNAL, e.what());
  } catch (...) {
    return fail(TOWNS_E_INTERNAL, "INTERNAL: unknown exception");
  }
}

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::INVALID_ARGUMENT, what); }

template <typename T>
T& need(T* p, const char* name) {
  if (p == nullptr) bad(std::string(name) + " is NULL");
  return *p;
}

std::string_view need_str(const char* s, const char* name) {
  if (s == nullptr) bad(std::string(name) + " is NULL");
  return s;
}

std::span<const uint8_t> need_bytes(const uint8_t* p, size_t n, const char* name) {
  if (p == nullptr && n != 0) bad(std::string(name) + " is NULL");
  return {p, n};
}

// ---- output

void reset(towns_buffer* b) {
  if (b) *b = {nullptr, 0};
}
void reset(towns_string* s) {
  if (s) *s = {nullptr, 0};
}

void put(towns_buffer* out, std::span<const uint8_t> bytes) {
  if (bytes.empty()) {
    *out = {nullptr, 0};
    return;
  }
  auto* p = static_cast<uint8_t*>(std::malloc(bytes.size()));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p, bytes.data(), bytes.size());
  *out = {p, bytes.size()};
}

void put(towns_string* out, std::string_view text) {
  auto* p = static_cast<char*>(std::malloc(text.size() + 1));
  if (p == nullptr) throw std::bad_alloc();
  if (!text.empty()) std::memcpy(p, text.data(), text.size());
  p[text.size()] = '\0';
  *out = {p, text.size()};
}

// JSON text written into wiping memory (it may hold keys).
class JsonOut {
 public:
  JsonOut& raw(std::string_view s) {
    out_.append({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
    return *this;
  }
  JsonOut& str(std::string_view s) {
    append_json_string(out_, s);
    return *this;
  }
  JsonOut& key(std::string_view k) { return str(k).raw(":"); }
  JsonOut& strs(const std::vector<std::string>& v) {
    raw("[");
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) raw(",");
      str(v[i]);
    }
    return raw("]");
  }
  std::string_view view() const { return out_.view(); }

 private:
  crypto::SecretBytes out_;
};

void put(towns_string* out, const JsonOut& j) { put(out, j.view()); }

void write_session(JsonOut& j, const GroupEncryptionSession& s) {
  j.raw("{").key("streamId").str(s.stream_id).raw(",").key("sessionId").str(s.session_id);
  j.raw(",").key("sessionKey").str(s.session_key.view()).raw(",").key("algorithm").str(s.algorithm).raw("}");
}

// ---- input

nlohmann::json parse_json(std::string_view text, const char* name) {
  auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) bad(std::string(name) + " is not JSON");
  return doc;
}

std::vector<UserDevice> parse_devices(std::string_view text, const char* name) {
  auto doc = parse_json(text, name);
  if (!doc.is_array()) bad(std::string(name) + " must be a JSON array");
  std::vector<UserDevice> out;
  for (const auto& o : doc) {
    auto dk = o.is_object() ? o.find("deviceKey") : o.end();
    auto fk = o.is_object() ? o.find("fallbackKey") : o.end();
    if (dk == o.end() || fk == o.end() || !dk->is_string() || !fk->is_string()) {
      bad(std::string(name) + ": each device must be {\"deviceKey\": string, \"fallbackKey\": string}");
    }
    out.push_back({dk->get<std::string>(), fk->get<std::string>()});
  }
  return out;
}

std::vector<std::string> parse_strings(std::string_view text, const char* name) {
  auto doc = parse_json(text, name);
  if (!doc.is_array()) bad(std::string(name) + " must be a JSON array of strings");
  std::vector<std::string> out;
  for (const auto& s : doc) {
    if (!s.is_string()) bad(std::string(name) + " must be a JSON array of strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

GroupEncryptionAlgorithm algorithm_of(towns_algorithm a) {
  switch (a) {
    case TOWNS_ALGORITHM_GROUP_ENCRYPTION:
      return GroupEncryptionAlgorithm::kGroupEncryption;
    case TOWNS_ALGORITHM_HYBRID_GROUP_ENCRYPTION:
      return GroupEncryptionAlgorithm::kHybridGroupEncryption;
    default:
      break;
  }
  bad("unknown towns_algorithm " + std::to_string(static_cast<int>(a)));
}

void import_result_json(JsonOut& j, const ImportResult& r) {
  j.raw("{").key("imported").strs(r.imported).raw(",").key("failed").strs(r.failed);
  j.raw(",").key("skipped").strs(r.skipped).raw("}");
}

void receive_result_json(JsonOut& j, const ReceiveResult& r) {
  const char* status = "nothing_missing";
  switch (r.status) {
    case ReceiveStatus::kImported: status = "imported"; break;
    case ReceiveStatus::kNothingMissing: status = "nothing_missing"; break;
    case ReceiveStatus::kNotForThisDevice: status = "not_for_this_device"; break;
    case ReceiveStatus::kUnknownAlgorithm: status = "unknown_algorithm"; break;
  }
  j.raw("{").key("status").str(status).raw(",").key("streamId").str(r.stream_id);
  j.raw(",").key("algorithm").str(algorithm_id(r.algorithm));
  j.raw(",").key("imported").strs(r.imported).raw(",").key("failed").strs(r.failed).raw("}");
}

void error_json(JsonOut& j, const Error& e) {
  j.raw("{").key("error").raw("{").key("code").raw(std::to_string(status_of(e.code())));
  j.raw(",").key("name").str(e.code_name()).raw(",").key("message").str(e.what()).raw("}}");
}

// ---- the host

// What a host is for: a key exchange's host needs every required callback; a
// crypto's share_host only what session sharing calls (StreamSessionSharer):
// send_group_encryption_sessions, user_devices, and users_entitled_to_key_exchange
// or stream_members (get_miniblock_info stays optional there: without it a new
// hybrid session needs its miniblock given, as with no share_host).
enum class HostUse { kKeyExchange, kShare };

void check_host(const towns_key_exchange_host& h, HostUse use) {
  if (use == HostUse::kShare) {
    if (!h.send_group_encryption_sessions) bad("share_host->send_group_encryption_sessions is NULL");
    if (!h.user_devices) bad("share_host->user_devices is NULL");
    if (!h.users_entitled_to_key_exchange && !h.stream_members) {
      bad("share_host has neither users_entitled_to_key_exchange nor stream_members");
    }
    return;
  }
  if (!h.send_key_solicitation || !h.send_key_fulfillment || !h.send_group_encryption_sessions ||
      !h.user_devices || !h.stream_members || !h.is_user_entitled || !h.key_solicitations || !h.get_miniblock_info) {
    bad("a required towns_key_exchange_host callback is NULL");
  }
}

void check_callback(towns_status s, const char* name) {
  if (s != TOWNS_OK) {
    const char* n = towns_status_name(s);
    throw Error(code_of(s), std::string("host callback ") + name + " returned " + (n ? n : std::to_string(s)));
  }
}

}  // namespace

struct towns_reply {
  std::vector<uint8_t> bytes;
};

namespace {

class CHost final : public KeyExchangeHost {
 public:
  CHost(const towns_key_exchange_host& h, HostUse use) : h_(h) { check_host(h_, use); }

  void send_key_solicitation(std::string_view stream_id, const KeySolicitation& s, bool ephemeral) override {
    auto bytes = s.encode();
    check_callback(h_.send_key_solicitation(h_.user_data, std::string(stream_id).c_str(), bytes.data(),
                                            bytes.size(), ephemeral ? 1 : 0),
                   "send_key_solicitation");
  }
  bool send_key_fulfillment(std::string_view stream_id, const KeyFulfillment& f, bool ephemeral) override {
    auto bytes = f.encode();
    int accepted = 1;
    check_callback(h_.send_key_fulfillment(h_.user_data, std::string(stream_id).c_str(), bytes.data(), bytes.size(),
                                           ephemeral ? 1 : 0, &accepted),
                   "send_key_fulfillment");
    return accepted != 0;
  }
  void send_group_encryption_sessions(std::string_view to_user_id, const GroupEncryptionSessions& m) override {
    auto bytes = m.encode();
    check_callback(h_.send_group_encryption_sessions(h_.user_data, std::string(to_user_id).c_str(), bytes.data(),
                                                     bytes.size()),
                   "send_group_encryption_sessions");
  }
  std::vector<UserDevice> user_devices(std::string_view user_id) override {
    towns_reply r;
    check_callback(h_.user_devices(h_.user_data, std::string(user_id).c_str(), &r), "user_devices");
    return r.bytes.empty() ? std::vector<UserDevice>{} : parse_devices(text(r), "user_devices reply");
  }
  std::vector<std::string> stream_members(std::string_view stream_id) override {
    towns_reply r;
    check_callback(h_.stream_members(h_.user_data, std::string(stream_id).c_str(), &r), "stream_members");
    return r.bytes.empty() ? std::vector<std::string>{} : parse_strings(text(r), "stream_members reply");
  }
  std::vector<std::string> users_entitled_to_key_exchange(std::string_view stream_id) override {
    if (!h_.users_entitled_to_key_exchange) return stream_members(stream_id);
    towns_reply r;
    check_callback(h_.users_entitled_to_key_exchange(h_.user_data, std::string(stream_id).c_str(), &r),
                   "users_entitled_to_key_exchange");
    return r.bytes.empty() ? std::vector<std::string>{}
                           : parse_strings(text(r), "users_entitled_to_key_exchange reply");
  }
  bool is_user_entitled(std::string_view stream_id, std::string_view user_id) override {
    int entitled = 1;
    check_callback(h_.is_user_entitled(h_.user_data, std::string(stream_id).c_str(), std::string(user_id).c_str(),
                                       &entitled),
                   "is_user_entitled");
    return entitled != 0;
  }
  std::vector<StreamSolicitation> key_solicitations(std::string_view stream_id) override;
  MiniblockInfo get_miniblock_info(std::string_view stream_id) override {
    towns_reply r;
    MiniblockInfo info;
    if (!h_.get_miniblock_info) {
      bad("a new hybrid session needs its miniblock: the share_host has no get_miniblock_info and none was given");
    }
    check_callback(h_.get_miniblock_info(h_.user_data, std::string(stream_id).c_str(), &info.miniblock_num, &r),
                   "get_miniblock_info");
    info.miniblock_hash = std::move(r.bytes);
    return info;
  }
  void on_decrypted(const EncryptedEvent& e, const DecryptedPayload& p) override {
    if (!h_.on_decrypted) return;
    h_.on_decrypted(h_.user_data, e.stream_id.c_str(), e.event_id.c_str(), p.plaintext.data(), p.plaintext.size(),
                    p.message_index ? static_cast<int64_t>(*p.message_index) : -1);
  }
  void on_decryption_error(const EncryptedEvent& e, const Error& err, bool missing_session) override {
    if (!h_.on_decryption_error) return;
    h_.on_decryption_error(h_.user_data, e.stream_id.c_str(), e.event_id.c_str(), status_of(err.code()), err.what(),
                           missing_session ? 1 : 0);
  }

 private:
  static std::string_view text(const towns_reply& r) {
    return {reinterpret_cast<const char*>(r.bytes.data()), r.bytes.size()};
  }
  towns_key_exchange_host h_;
};

class ManualClock final : public Clock {
 public:
  int64_t now = 0;
  int64_t now_ms() override { return now; }
};

// What a crypto handle owns; a key exchange shares it. Destroyed in reverse
// order: the crypto before the sharer and host it uses, the store last.
struct CryptoState {
  std::shared_ptr<CryptoStore> store;
  std::unique_ptr<CHost> share_host;
  std::unique_ptr<StreamSessionSharer> sharer;
  std::unique_ptr<GroupEncryptionCrypto> crypto;
};

}  // namespace

struct towns_store {
  std::shared_ptr<CryptoStore> store;
};

struct towns_crypto {
  std::shared_ptr<CryptoState> state;
  GroupEncryptionCrypto& c() { return *state->crypto; }
};

struct towns_stream_solicitations {
  StreamSolicitations s;
};

struct towns_key_exchange {
  std::shared_ptr<CryptoState> crypto;
  std::unique_ptr<CHost> host;
  ManualClock clock;
  bool manual_clock = false;
  std::unique_ptr<KeyExchange> engine;
  // Inside run / tick / advance, whose host callbacks may call back in: a
  // second driving call is refused, and a free is deferred to its end.
  bool in_call = false;
  bool free_requested = false;
};

namespace {

// The handle, refused when a host callback has already freed it (the free
// waits for the run / tick / advance in progress to return).
towns_key_exchange& live(towns_key_exchange* exchange) {
  auto& x = need(exchange, "exchange");
  if (x.free_requested) bad("exchange was freed (by towns_key_exchange_free from a host callback)");
  return x;
}

// run / tick / advance: the calls that make host callbacks. One at a time per
// engine: one made from inside a callback of the same engine is refused
// (INVALID_ARGUMENT); a towns_key_exchange_free from a callback happens here,
// once the outer call is done.
template <typename F>
towns_status drive(towns_key_exchange* exchange, const char* fn, F&& body) {
  bool entered = false;
  auto status = guard([&] {
    auto& x = live(exchange);
    if (x.in_call) {
      bad(std::string(fn) +
          " called from a host callback of the same key exchange (its run / tick / advance is in progress)");
    }
    x.in_call = entered = true;
    body(x);
  });
  if (entered) {
    exchange->in_call = false;
    if (exchange->free_requested) delete exchange;
  }
  return status;
}

// Ticks until nothing is due now, or until a callback freed the engine.
size_t run_engine(towns_key_exchange& x) {
  size_t n = 0;
  while (!x.free_requested && x.engine->tick()) ++n;
  return n;
}

}  // namespace

std::vector<StreamSolicitation> CHost::key_solicitations(std::string_view stream_id) {
  towns_stream_solicitations* s = nullptr;
  check_callback(h_.key_solicitations(h_.user_data, std::string(stream_id).c_str(), &s), "key_solicitations");
  return s ? s->s.all() : std::vector<StreamSolicitation>{};
}

extern "C" {

// ---- status

const char* towns_status_name(towns_status status) {
  if (status == TOWNS_OK) return "OK";
  if (status < 1 || status > TOWNS_E_LAST) return nullptr;
  return error_code_name(code_of(status)).data();  // a string literal: NUL-terminated
}

const char* towns_last_error_message(void) { return t_last_error.c_str(); }

const char* towns_version(void) { return TOWNS_E2EE_VERSION; }

// ---- buffers

void towns_buffer_free(towns_buffer* buffer) {
  if (buffer == nullptr) return;
  if (buffer->data) {
    crypto::wipe(buffer->data, buffer->len);
    std::free(buffer->data);
  }
  *buffer = {nullptr, 0};
}

void towns_string_free(towns_string* string) {
  if (string == nullptr) return;
  if (string->data) {
    crypto::wipe(string->data, string->len);
    std::free(string->data);
  }
  *string = {nullptr, 0};
}

// ---- stores

towns_status towns_store_open_sqlite(const char* path, const uint8_t* pickle_key, size_t pickle_key_len,
                                     towns_store_open_mode mode, towns_store** out) {
  if (out) *out = nullptr;
  return guard([&] {
    auto p = need_str(path, "path");
    auto key = need_bytes(pickle_key, pickle_key_len, "pickle_key");
    need(out, "out");
    StoreOpenMode m;
    switch (mode) {
      case TOWNS_STORE_CREATE: m = StoreOpenMode::kCreate; break;
      case TOWNS_STORE_OPEN: m = StoreOpenMode::kOpen; break;
      case TOWNS_STORE_EITHER: m = StoreOpenMode::kEither; break;
      default: bad("unknown towns_store_open_mode");
    }
    auto h = std::make_unique<towns_store>();
    h->store = SqliteCryptoStore::open(std::string(p), crypto::SecretView(key), m);
    *out = h.release();
  });
}

towns_status towns_store_create_memory(towns_store** out) {
  if (out) *out = nullptr;
  return guard([&] {
    need(out, "out");
    auto h = std::make_unique<towns_store>();
    h->store = std::make_shared<MemoryCryptoStore>();
    *out = h.release();
  });
}

void towns_store_free(towns_store* store) { delete store; }

// ---- crypto

towns_status towns_crypto_create(towns_store* store, const uint8_t* pickle_key, size_t pickle_key_len,
                                 const uint8_t* exported_device, size_t exported_device_len,
                                 const towns_key_exchange_host* share_host, towns_crypto** out) {
  if (out) *out = nullptr;
  return guard([&] {
    auto& s = need(store, "store");
    auto key = need_bytes(pickle_key, pickle_key_len, "pickle_key");
    if (pickle_key == nullptr) bad("pickle_key is NULL");
    auto exported = need_bytes(exported_device, exported_device_len, "exported_device");
    need(out, "out");
    auto state = std::make_shared<CryptoState>();
    state->store = s.store;
    if (share_host) {
      state->share_host = std::make_unique<CHost>(*share_host, HostUse::kShare);
      state->sharer = std::make_unique<StreamSessionSharer>(*state->share_host);
    }
    state->crypto = std::make_unique<GroupEncryptionCrypto>(state->sharer.get(), *state->store);
    DeviceInitOptions options;
    options.pickle_key = crypto::SecretBytes(key);
    if (exported_device) options.from_exported_device = crypto::SecretBytes(exported);
    state->crypto->init(options);
    if (state->sharer) state->sharer->bind(*state->crypto);
    auto h = std::make_unique<towns_crypto>();
    h->state = std::move(state);
    *out = h.release();
  });
}

void towns_crypto_free(towns_crypto* crypto) { delete crypto; }

towns_status towns_crypto_set_parallelism(towns_crypto* crypto, unsigned threads) {
  return guard([&] { need(crypto, "crypto").c().set_parallelism(threads); });
}

towns_status towns_crypto_device_keys(towns_crypto* crypto, towns_string* device_key, towns_string* fallback_key) {
  reset(device_key);
  reset(fallback_key);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    need(device_key, "device_key");
    need(fallback_key, "fallback_key");
    auto d = c.c().get_user_device();
    towns_string dk{}, fk{};
    put(&dk, d.device_key);
    try {
      put(&fk, d.fallback_key);
    } catch (...) {
      towns_string_free(&dk);
      throw;
    }
    *device_key = dk;
    *fallback_key = fk;
  });
}

towns_status towns_crypto_export_device(towns_crypto* crypto, towns_buffer* out) {
  reset(out);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    need(out, "out");
    auto bytes = c.c().export_device();
    put(out, bytes.span());
  });
}

towns_status towns_crypto_ensure_outbound_session(towns_crypto* crypto, const char* stream_id,
                                                  towns_algorithm algorithm, const towns_miniblock_info* miniblock,
                                                  towns_string* session_id) {
  reset(session_id);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto a = algorithm_of(algorithm);
    need(session_id, "session_id");
    EnsureOutboundSessionOptions opts;
    if (miniblock) {
      auto hash = need_bytes(miniblock->miniblock_hash, miniblock->miniblock_hash_len, "miniblock_hash");
      opts.miniblock_info = MiniblockInfo{miniblock->miniblock_num, {hash.begin(), hash.end()}};
    }
    put(session_id, c.c().ensure_outbound_session(sid, a, opts));
  });
}

towns_status towns_crypto_has_outbound_session(towns_crypto* crypto, const char* stream_id,
                                               towns_algorithm algorithm, int* out) {
  if (out) *out = 0;
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto a = algorithm_of(algorithm);
    auto& o = need(out, "out");  // outputs checked before the library runs
    o = c.c().has_outbound_session(sid, a) ? 1 : 0;
  });
}

towns_status towns_crypto_has_session_key(towns_crypto* crypto, const char* stream_id, const char* session_id,
                                          towns_algorithm algorithm, int* out) {
  if (out) *out = 0;
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto ses = need_str(session_id, "session_id");
    auto a = algorithm_of(algorithm);
    auto& o = need(out, "out");  // outputs checked before the library runs
    o = c.c().has_session_key(sid, ses, a) ? 1 : 0;
  });
}

towns_status towns_crypto_encrypt_group_event(towns_crypto* crypto, const char* stream_id, const uint8_t* payload,
                                              size_t payload_len, towns_algorithm algorithm,
                                              towns_buffer* encrypted_data) {
  reset(encrypted_data);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto p = need_bytes(payload, payload_len, "payload");
    auto a = algorithm_of(algorithm);
    need(encrypted_data, "encrypted_data");
    auto bytes = c.c().encrypt_group_event(sid, p, a).encode();
    put(encrypted_data, bytes);
  });
}

towns_status towns_crypto_decrypt_group_event(towns_crypto* crypto, const char* stream_id,
                                              const uint8_t* encrypted_data, size_t encrypted_data_len,
                                              towns_buffer* plaintext, int64_t* message_index) {
  reset(plaintext);
  if (message_index) *message_index = -1;
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto bytes = need_bytes(encrypted_data, encrypted_data_len, "encrypted_data");
    need(plaintext, "plaintext");
    auto event = EncryptedData::decode(bytes);
    auto result = c.c().decrypt_group_event(sid, event);
    put(plaintext, result.plaintext.span());
    if (message_index && result.message_index) *message_index = *result.message_index;
  });
}

towns_status towns_crypto_decrypt_group_events(towns_crypto* crypto, const char* stream_id,
                                               const towns_bytes* events, size_t count,
                                               towns_decrypt_result* results) {
  // On failure every result is {the call's status, empty, -1, empty}: nothing
  // to free, and no result reads as a success.
  auto status = guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    if (count != 0) {
      need(events, "events");
      need(results, "results");
    }
    // Each event decoded; a malformed one gets its own INVALID_ARGUMENT and
    // stays out of the batch (which changes nothing for the others).
    std::vector<EncryptedData> decoded;
    std::vector<size_t> where;
    std::vector<std::optional<Error>> errors(count);
    for (size_t i = 0; i < count; ++i) {
      try {
        decoded.push_back(EncryptedData::decode(need_bytes(events[i].data, events[i].len, "events[i].data")));
        where.push_back(i);
      } catch (const Error& e) {
        errors[i] = e;
      }
    }
    auto out = c.c().decrypt_group_events(sid, decoded);
    std::vector<towns_decrypt_result> r(count, towns_decrypt_result{TOWNS_E_INTERNAL, {nullptr, 0}, -1, {nullptr, 0}});
    try {
      for (size_t k = 0; k < out.size() && k < where.size(); ++k) {
        auto& item = out[k];
        if (item.value) {
          r[where[k]].status = TOWNS_OK;
          put(&r[where[k]].plaintext, item.value->plaintext.span());
          if (item.value->message_index) r[where[k]].message_index = *item.value->message_index;
        } else if (item.error) {
          errors[where[k]] = *item.error;
        } else {
          errors[where[k]] = Error(ErrorCode::INTERNAL, "the batch left an event undecided");
        }
      }
      for (size_t i = 0; i < count; ++i) {
        if (errors[i]) {
          r[i].status = status_of(errors[i]->code());
          put(&r[i].error_message, errors[i]->what());
        }
      }
    } catch (...) {
      towns_decrypt_results_free(r.data(), r.size());
      throw;
    }
    std::copy(r.begin(), r.end(), results);
  });
  if (status != TOWNS_OK && results) {
    for (size_t i = 0; i < count; ++i) results[i] = {status, {nullptr, 0}, -1, {nullptr, 0}};
  }
  return status;
}

void towns_decrypt_results_free(towns_decrypt_result* results, size_t count) {
  if (results == nullptr) return;
  for (size_t i = 0; i < count; ++i) {
    towns_buffer_free(&results[i].plaintext);
    towns_string_free(&results[i].error_message);
  }
}

towns_status towns_crypto_export_group_session(towns_crypto* crypto, const char* stream_id, const char* session_id,
                                               towns_string* session_json) {
  reset(session_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto ses = need_str(session_id, "session_id");
    need(session_json, "session_json");
    auto s = c.c().export_group_session(sid, ses);
    if (!s) throw Error(ErrorCode::SESSION_NOT_FOUND, "no session " + std::string(ses) + " of the stream is held");
    JsonOut j;
    write_session(j, *s);
    put(session_json, j);
  });
}

towns_status towns_crypto_export_room_keys(towns_crypto* crypto, towns_string* keys_json) {
  reset(keys_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    need(keys_json, "keys_json");
    auto keys = c.c().export_room_keys();
    JsonOut j;
    j.raw("[");
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i) j.raw(",");
      write_session(j, keys[i]);
    }
    j.raw("]");
    put(keys_json, j);
  });
}

towns_status towns_crypto_import_room_keys_as_json(towns_crypto* crypto, const char* keys_json,
                                                   towns_string* result_json) {
  reset(result_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto text = need_str(keys_json, "keys_json");
    need(result_json, "result_json");
    auto r = c.c().import_room_keys_as_json(text);
    JsonOut j;
    import_result_json(j, r);
    put(result_json, j);
  });
}

towns_status towns_crypto_import_session_keys(towns_crypto* crypto, const char* stream_id, const char* keys_json,
                                              towns_string* result_json) {
  reset(result_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto keys = parse_sessions_json(need_str(keys_json, "keys_json"), "keys_json");
    need(result_json, "result_json");
    auto r = c.c().import_session_keys(sid, keys);
    JsonOut j;
    import_result_json(j, r);
    put(result_json, j);
  });
}

towns_status towns_crypto_encrypt_with_device_keys(towns_crypto* crypto, const char* payload,
                                                   const char* devices_json, towns_string* result_json) {
  reset(result_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto p = need_str(payload, "payload");
    auto devices = parse_devices(need_str(devices_json, "devices_json"), "devices_json");
    need(result_json, "result_json");
    auto out = c.c().encrypt_with_device_keys(p, devices);
    JsonOut j;
    j.raw("{");
    bool first = true;
    for (const auto& [device, body] : out) {
      if (!first) j.raw(",");
      first = false;
      j.key(device).str(body);
    }
    j.raw("}");
    put(result_json, j);
  });
}

towns_status towns_crypto_decrypt_with_device_key(towns_crypto* crypto, const char* ciphertext,
                                                  const char* sender_device_key, towns_buffer* plaintext) {
  reset(plaintext);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto ct = need_str(ciphertext, "ciphertext");
    auto sender = need_str(sender_device_key, "sender_device_key");
    need(plaintext, "plaintext");
    auto out = c.c().decrypt_with_device_key(ct, sender);
    put(plaintext, out.span());
  });
}

// ---- session sharing

towns_status towns_build_group_encryption_sessions(towns_crypto* crypto, const char* stream_id,
                                                   towns_algorithm algorithm, const char* sessions_json,
                                                   const char* devices_json, towns_buffer* message,
                                                   towns_string* skipped_devices_json) {
  reset(message);
  reset(skipped_devices_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto sid = need_str(stream_id, "stream_id");
    auto a = algorithm_of(algorithm);
    auto sessions = parse_sessions_json(need_str(sessions_json, "sessions_json"), "sessions_json");
    auto devices = parse_devices(need_str(devices_json, "devices_json"), "devices_json");
    need(message, "message");
    auto plan = build_group_encryption_sessions(c.c(), sid, a, sessions, devices);
    auto bytes = plan.message.encode();
    towns_buffer m{};
    put(&m, bytes);
    if (skipped_devices_json) {
      try {
        JsonOut j;
        j.strs(plan.skipped_devices);
        put(skipped_devices_json, j);
      } catch (...) {
        towns_buffer_free(&m);
        throw;
      }
    }
    *message = m;
  });
}

towns_status towns_receive_group_encryption_sessions(towns_crypto* crypto, const uint8_t* message,
                                                     size_t message_len, towns_string* result_json) {
  reset(result_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto m = GroupEncryptionSessions::decode(need_bytes(message, message_len, "message"));
    need(result_json, "result_json");
    auto r = receive_group_encryption_sessions(c.c(), m);
    JsonOut j;
    receive_result_json(j, r);
    put(result_json, j);
  });
}

towns_status towns_receive_group_encryption_sessions_batch(towns_crypto* crypto, const towns_bytes* messages,
                                                           size_t count, towns_string* results_json) {
  reset(results_json);
  return guard([&] {
    auto& c = need(crypto, "crypto");
    if (count != 0) need(messages, "messages");
    need(results_json, "results_json");
    std::vector<GroupEncryptionSessions> decoded;
    std::vector<size_t> where;
    std::vector<std::optional<Error>> errors(count);
    for (size_t i = 0; i < count; ++i) {
      try {
        decoded.push_back(
            GroupEncryptionSessions::decode(need_bytes(messages[i].data, messages[i].len, "messages[i].data")));
        where.push_back(i);
      } catch (const Error& e) {
        errors[i] = e;
      }
    }
    auto out = receive_group_encryption_sessions_batch(c.c(), decoded);
    std::vector<std::optional<ReceiveResult>> results(count);
    for (size_t k = 0; k < out.size() && k < where.size(); ++k) {
      if (out[k].value) {
        results[where[k]] = std::move(*out[k].value);
      } else if (out[k].error) {
        errors[where[k]] = *out[k].error;
      } else {
        errors[where[k]] = Error(ErrorCode::INTERNAL, "the batch left a message undecided");
      }
    }
    JsonOut j;
    j.raw("[");
    for (size_t i = 0; i < count; ++i) {
      if (i) j.raw(",");
      if (results[i]) {
        receive_result_json(j, *results[i]);
      } else {
        error_json(j, errors[i] ? *errors[i] : Error(ErrorCode::INTERNAL, "no result"));
      }
    }
    j.raw("]");
    put(results_json, j);
  });
}

// ---- stream solicitations

towns_status towns_stream_solicitations_create(towns_stream_solicitations** out) {
  if (out) *out = nullptr;
  return guard([&] {
    auto& o = need(out, "out");  // before allocating: a NULL out must not leak
    o = new towns_stream_solicitations();
  });
}

void towns_stream_solicitations_free(towns_stream_solicitations* solicitations) { delete solicitations; }

towns_status towns_stream_solicitations_apply_solicitation(towns_stream_solicitations* solicitations,
                                                           const char* user_id, const uint8_t* solicitation,
                                                           size_t solicitation_len, towns_buffer* stored) {
  reset(stored);
  return guard([&] {
    auto& s = need(solicitations, "solicitations");
    auto user = need_str(user_id, "user_id");
    auto sol = KeySolicitation::decode(need_bytes(solicitation, solicitation_len, "solicitation"));
    need(stored, "stored");
    auto bytes = s.s.apply_solicitation(user, sol).encode();
    put(stored, bytes);
  });
}

towns_status towns_stream_solicitations_apply_fulfillment(towns_stream_solicitations* solicitations,
                                                          const uint8_t* fulfillment, size_t fulfillment_len,
                                                          int* found, towns_string* user_id,
                                                          towns_buffer* solicitation) {
  if (found) *found = 0;
  reset(user_id);
  reset(solicitation);
  return guard([&] {
    auto& s = need(solicitations, "solicitations");
    auto f = KeyFulfillment::decode(need_bytes(fulfillment, fulfillment_len, "fulfillment"));
    need(found, "found");
    need(user_id, "user_id");
    need(solicitation, "solicitation");
    auto updated = s.s.apply_fulfillment(f);
    if (!updated) return;
    auto bytes = updated->solicitation.encode();
    towns_string u{};
    put(&u, updated->user_id);
    try {
      put(solicitation, bytes);
    } catch (...) {
      towns_string_free(&u);
      throw;
    }
    *user_id = u;
    *found = 1;
  });
}

towns_status towns_stream_solicitations_remove_member(towns_stream_solicitations* solicitations,
                                                      const char* user_id) {
  return guard([&] { need(solicitations, "solicitations").s.remove_member(need_str(user_id, "user_id")); });
}

// ---- key exchange

towns_status towns_reply_set(towns_reply* reply, const uint8_t* data, size_t len) {
  return guard([&] {
    auto bytes = need_bytes(data, len, "data");
    need(reply, "reply").bytes.assign(bytes.begin(), bytes.end());
  });
}

void towns_key_exchange_options_default(towns_key_exchange_options* options) {
  if (options == nullptr) return;
  KeyExchangeOptions d;
  *options = towns_key_exchange_options{};
  options->struct_size = sizeof(towns_key_exchange_options);
  options->ephemeral_solicitations = d.ephemeral_solicitations ? 1 : 0;
  options->ephemeral_timeout_ms = d.ephemeral_timeout_ms;
  options->respond_delay = d.respond_delay ? 1 : 0;
  options->manual_clock = 0;
  options->start_time_ms = 0;
}

towns_status towns_key_exchange_create(towns_crypto* crypto, const towns_key_exchange_host* host,
                                       const char* user_id, const towns_key_exchange_options* options,
                                       towns_key_exchange** out) {
  if (out) *out = nullptr;
  return guard([&] {
    auto& c = need(crypto, "crypto");
    auto& h = need(host, "host");
    auto user = need_str(user_id, "user_id");
    need(out, "out");
    towns_key_exchange_options o;
    towns_key_exchange_options_default(&o);
    if (options) {
      // Fields past what the caller's struct holds keep their defaults.
      size_t n = options->struct_size;
      if (n < sizeof(size_t)) bad("options->struct_size is not set (towns_key_exchange_options_default)");
      std::memcpy(&o, options, std::min(n, sizeof(o)));
      o.struct_size = sizeof(o);
    }
    auto x = std::make_unique<towns_key_exchange>();
    x->crypto = c.state;
    x->host = std::make_unique<CHost>(h, HostUse::kKeyExchange);
    x->manual_clock = o.manual_clock != 0;
    x->clock.now = o.start_time_ms;
    KeyExchangeOptions ko;
    ko.ephemeral_solicitations = o.ephemeral_solicitations != 0;
    ko.ephemeral_timeout_ms = o.ephemeral_timeout_ms;
    ko.respond_delay = o.respond_delay != 0;
    Clock& clock = x->manual_clock ? static_cast<Clock&>(x->clock) : system_clock();
    x->engine = std::make_unique<KeyExchange>(*c.state->crypto, *x->host, std::string(user), clock,
                                              crypto::os_random(), ko);
    *out = x.release();
  });
}

void towns_key_exchange_free(towns_key_exchange* exchange) {
  if (exchange == nullptr) return;
  if (exchange->in_call) {
    // From a host callback: freed when the run / tick / advance in progress
    // returns (it stops after the current unit).
    exchange->free_requested = true;
    return;
  }
  delete exchange;
}

towns_status towns_key_exchange_enqueue_encrypted_content(towns_key_exchange* exchange, const char* stream_id,
                                                          const char* event_id, const uint8_t* encrypted_data,
                                                          size_t len) {
  return guard([&] {
    auto& x = live(exchange);
    EncryptedEvent e{std::string(need_str(stream_id, "stream_id")), std::string(need_str(event_id, "event_id")),
                     EncryptedData::decode(need_bytes(encrypted_data, len, "encrypted_data"))};
    x.engine->enqueue_encrypted_content(std::move(e));
  });
}

towns_status towns_key_exchange_enqueue_new_group_sessions(towns_key_exchange* exchange, const uint8_t* message,
                                                           size_t len) {
  return guard([&] {
    auto& x = live(exchange);
    x.engine->enqueue_new_group_sessions(GroupEncryptionSessions::decode(need_bytes(message, len, "message")));
  });
}

towns_status towns_key_exchange_enqueue_key_solicitation(towns_key_exchange* exchange, const char* stream_id,
                                                         const char* from_user_id, const uint8_t* solicitation,
                                                         size_t len, int ephemeral, const char* event_hash) {
  return guard([&] {
    auto& x = live(exchange);
    auto sid = need_str(stream_id, "stream_id");
    auto from = need_str(from_user_id, "from_user_id");
    auto sol = KeySolicitation::decode(need_bytes(solicitation, len, "solicitation"));
    x.engine->enqueue_key_solicitation(sid, from, sol, ephemeral != 0,
                                       event_hash ? std::string_view(event_hash) : std::string_view());
  });
}

towns_status towns_key_exchange_enqueue_init_key_solicitations(towns_key_exchange* exchange, const char* stream_id,
                                                               const towns_stream_solicitations* stored) {
  return guard([&] {
    auto& x = live(exchange);
    auto sid = need_str(stream_id, "stream_id");
    x.engine->enqueue_init_key_solicitations(sid, need(stored, "stored").s.all());
  });
}

towns_status towns_key_exchange_on_ephemeral_key_fulfillment(towns_key_exchange* exchange, const char* stream_id,
                                                             const uint8_t* fulfillment, size_t len) {
  return guard([&] {
    auto& x = live(exchange);
    auto sid = need_str(stream_id, "stream_id");
    x.engine->on_ephemeral_key_fulfillment(sid, KeyFulfillment::decode(need_bytes(fulfillment, len, "fulfillment")));
  });
}

towns_status towns_key_exchange_retry_decryption_failures(towns_key_exchange* exchange, const char* stream_id) {
  return guard(
      [&] { live(exchange).engine->retry_decryption_failures(need_str(stream_id, "stream_id")); });
}

towns_status towns_key_exchange_tick(towns_key_exchange* exchange, int* did) {
  if (did) *did = 0;
  return drive(exchange, "towns_key_exchange_tick", [&](towns_key_exchange& x) {
    bool d = x.engine->tick();
    if (did) *did = d ? 1 : 0;
  });
}

towns_status towns_key_exchange_run(towns_key_exchange* exchange, size_t* units) {
  if (units) *units = 0;
  return drive(exchange, "towns_key_exchange_run", [&](towns_key_exchange& x) {
    size_t n = run_engine(x);
    if (units) *units = n;
  });
}

towns_status towns_key_exchange_set_time(towns_key_exchange* exchange, int64_t now_ms) {
  return guard([&] {
    auto& x = live(exchange);
    if (!x.manual_clock) bad("the key exchange runs on the system clock (options.manual_clock = 0)");
    if (now_ms < x.clock.now) bad("now_ms is before the engine's time");
    x.clock.now = now_ms;
  });
}

towns_status towns_key_exchange_advance(towns_key_exchange* exchange, int64_t to_ms) {
  return drive(exchange, "towns_key_exchange_advance", [&](towns_key_exchange& x) {
    if (!x.manual_clock) bad("the key exchange runs on the system clock (options.manual_clock = 0)");
    if (to_ms < x.clock.now) bad("to_ms is before the engine's time");
    // Every moment something is due, in order (as lib/exchange/engine_world.cpp does).
    for (;;) {
      run_engine(x);
      if (x.free_requested) return;
      auto next = x.engine->next_due_ms();
      if (!next || *next > to_ms) break;
      x.clock.now = std::max(x.clock.now, *next);
    }
    x.clock.now = to_ms;
    run_engine(x);
  });
}

towns_status towns_key_exchange_next_due(towns_key_exchange* exchange, int* has, int64_t* due_ms) {
  if (has) *has = 0;
  if (due_ms) *due_ms = 0;
  return guard([&] {
    auto& x = live(exchange);
    need(has, "has");
    need(due_ms, "due_ms");
    if (auto next = x.engine->next_due_ms()) {
      *has = 1;
      *due_ms = *next;
    }
  });
}

towns_status towns_key_exchange_stats_get(towns_key_exchange* exchange, towns_key_exchange_stats* out) {
  if (out) *out = towns_key_exchange_stats{};
  return guard([&] {
    auto& x = live(exchange);
    auto& o = need(out, "out");
    const auto& s = x.engine->stats();
    o.decrypted = s.decrypted;
    o.decryption_failures = s.decryption_failures;
    o.decryption_errors = s.decryption_errors;
    o.solicitations_sent = s.solicitations_sent;
    o.fulfillments_sent = s.fulfillments_sent;
    o.fulfillments_refused = s.fulfillments_refused;
    o.shares_sent = s.shares_sent;
    o.sessions_imported = s.sessions_imported;
    o.bytes_sent = s.bytes_sent;
    o.waiting_events = x.engine->waiting_events();
    o.pending_solicitations = x.engine->pending_solicitations();
    switch (x.engine->status()) {
      case KeyExchangeStatus::kIdle: o.status = TOWNS_KEY_EXCHANGE_IDLE; break;
      case KeyExchangeStatus::kWorking: o.status = TOWNS_KEY_EXCHANGE_WORKING; break;
      case KeyExchangeStatus::kWaiting: o.status = TOWNS_KEY_EXCHANGE_WAITING; break;
    }
  });
}

towns_status towns_key_exchange_missing_session_ids(towns_key_exchange* exchange, const char* stream_id,
                                                    towns_string* ids_json) {
  reset(ids_json);
  return guard([&] {
    auto& x = live(exchange);
    auto sid = need_str(stream_id, "stream_id");
    need(ids_json, "ids_json");
    JsonOut j;
    j.strs(x.engine->missing_session_ids(sid));
    put(ids_json, j);
  });
}

// ---- test vectors

towns_status towns_vectors_verify(const char* dir, size_t* passed, size_t* failed, towns_string* report_json) {
  if (passed) *passed = 0;
  if (failed) *failed = 0;
  reset(report_json);
  return guard([&] {
    std::string d(need_str(dir, "dir"));
    need(passed, "passed");
    need(failed, "failed");
    std::error_code ec;
    if (!std::filesystem::is_directory(d, ec)) {
      bad("dir is not a directory: " + shorten_for_message(d, 200) + (ec ? " (" + ec.message() + ")" : std::string()));
    }
    auto r = vectors::verify(d);
    if (report_json) {
      // The failures name files and quote errors: whatever is not UTF-8 in them
      // becomes U+FFFD.
      put(report_json, nlohmann::json(r.failures).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    *passed = r.passed;
    *failed = r.failed;
  });
}

}  // extern "C"
