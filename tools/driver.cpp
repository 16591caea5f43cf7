// towns-e2ee driver: one device of the Towns Encryption Protocol, steered over
// stdin/stdout by a conformance runner (docs/driver.md, protocol version 1).
#include "driver.h"

#include "exchange/engine_world.h"

#include <nlohmann/json.hpp>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <sys/prctl.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/exchange/key_exchange.h"
#include "towns/protocol/derived.h"
#include "towns/protocol/inputs.h"
#include "towns/protocol/media.h"
#include "towns/protocol/session_sharing.h"
#include "towns/proto/payloads.pb.h"
#include "towns/store/memory_crypto_store.h"
#include "towns/store/sqlite_crypto_store.h"
#include "wire_convert.h"

namespace towns::tools {
namespace {

using nlohmann::json;
using crypto::Base64Padding;

// The driver's closed set of error codes (docs/driver.md).
std::string driver_code(const Error& e, bool decrypting) {
  switch (e.code()) {
    case ErrorCode::BAD_ENCODING:
      return "INVALID_ARGUMENT";
    case ErrorCode::INVALID_ARGUMENT:
    case ErrorCode::UNKNOWN_COMMAND:
    case ErrorCode::NOT_INITIALIZED:
    case ErrorCode::GROUP_DECRYPTION_MISSING_FIELDS:
    case ErrorCode::GROUP_DECRYPTION_UNSET_ALGORITHM:
    case ErrorCode::GROUP_DECRYPTION_UNKNOWN_ALGORITHM:
    case ErrorCode::GROUP_DECRYPTION_INVALID_VERSION:
    case ErrorCode::HYBRID_GROUP_DECRYPTION_MISSING_FIELDS:
    case ErrorCode::SESSION_NOT_FOUND:
    case ErrorCode::DECRYPTION_FAILED:
    case ErrorCode::PAYLOAD_TOO_LARGE:
    case ErrorCode::EMPTY_PAYLOAD:
    case ErrorCode::IMPORT_FAILED:
    case ErrorCode::UNKNOWN_ALGORITHM:
    case ErrorCode::INTERNAL:
    case ErrorCode::LIMIT_EXCEEDED:
      return std::string(e.code_name());
    case ErrorCode::REPLAY:
      return "DECRYPTION_FAILED";
    case ErrorCode::STORE_ERROR:
    case ErrorCode::STORE_WRONG_PICKLE_KEY:
    case ErrorCode::STORE_CORRUPT:
    case ErrorCode::STORE_NEWER_SCHEMA:
    case ErrorCode::STORE_BUSY:
      return "STORE_ERROR";
    default:
      break;
  }
  if (is_olm_error(e.code())) return decrypting ? "DECRYPTION_FAILED" : "INVALID_ARGUMENT";
  return "INTERNAL";
}

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCode::INVALID_ARGUMENT, what); }
[[noreturn]] void over_limit(const std::string& what) { throw Error(ErrorCode::LIMIT_EXCEEDED, what); }

// A value as an error message shows it: at most 64 bytes of it, then "…".
std::string shown(std::string_view v) { return shorten_for_message(v); }

// String arguments that are free text (the client takes any JavaScript string);
// every other string argument is an id, a key, an encoding or a path, where a
// NUL byte would cut the value short somewhere below: it is refused.
bool may_hold_nul(std::string_view name) { return name == "payload" || name == "key_phrase"; }

void check_no_nul(std::string_view value, std::string_view name) {
  if (value.find('\0') != std::string_view::npos) bad(std::string(name) + " holds a NUL byte");
}

// The limits of the request being handled (run_driver sets them).
thread_local DriverLimits g_limits;

// (Lists of the request itself are counted while parsing, parse_request.)
void check_list(size_t n, std::string_view name) {
  if (n > g_limits.max_list_items) {
    over_limit(std::string(name) + " holds more than " + std::to_string(g_limits.max_list_items) + " items");
  }
}

const json& arg(const json& req, const char* name) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) bad(std::string("missing argument ") + name);
  return *it;
}

// The string itself, not a copy (the request is wiped after it is handled, so
// a secret read through a reference leaves no copy behind).
const std::string& str(const json& req, const char* name) {
  const auto& v = arg(req, name);
  if (!v.is_string()) bad(std::string(name) + " must be a string");
  const auto& s = v.get_ref<const std::string&>();
  if (!may_hold_nul(name)) check_no_nul(s, name);
  return s;
}

std::optional<std::string> opt_str(const json& req, const char* name) {
  auto it = req.find(name);
  if (it == req.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad(std::string(name) + " must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (!may_hold_nul(name)) check_no_nul(s, name);
  return s;
}

std::vector<uint8_t> b64(const std::string& text, const char* name) {
  try {
    return crypto::base64_decode(text, Base64Padding::kOptional);
  } catch (const Error&) {
    bad(std::string(name) + " is not base64");
  }
}

std::string to_b64(std::span<const uint8_t> b) { return crypto::base64_encode(b, Base64Padding::kPadded); }
std::string to_b64(const std::string& s) { return to_b64(crypto::as_bytes(s)); }
// A wire message's bytes in base64.
template <typename Message>
std::string pb_b64(const Message& m) {
  return to_b64(m.encode());
}

// The repeated fields of a protobuf argument (session ids, ciphertexts) hold at
// most max_list_items each.
void check_pb_lists(const google::protobuf::Message& m, const char* name) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (f->is_repeated()) check_list(static_cast<size_t>(r->FieldSize(m, f)), std::string(name) + "." + std::string(f->name()));
  }
}

// A wire message argument: parsed and checked with the generated class (its
// errors are the driver's), then handed on as the library's plain message.
template <typename River>
auto parse_pb(const json& req, const char* name) {
  auto bytes = b64(str(req, name), name);
  River m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) bad(std::string(name) + " is not a valid protobuf");
  check_pb_lists(m, name);
  return wire_convert::to_plain(m);
}

// A stream id in the protocol's form (protocol.md 1.3): lower-case hex, a known
// prefix, the identity's length or 64 digits padded with zeros.
std::string stream_arg_named(const json& req, const char* name) {
  auto s = str(req, name);
  check_stream_id(s);
  return s;
}
std::string stream_arg(const json& req) { return stream_arg_named(req, "stream_id"); }

// A user id: an address, "0x" and 40 hex digits (protocol.md 1.3).
std::string user_arg(const json& req, const char* name) {
  auto s = str(req, name);
  check_user_id(s);
  return s;
}

int64_t int64_arg(const json& v, const char* name) {
  if (v.is_number_unsigned()) {
    // 2^63 and above do not fit: refused, not wrapped to a negative number.
    if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) bad(std::string(name) + " is out of range");
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) bad(std::string(name) + " must be a decimal string");
  const auto s = v.get<std::string>();
  if (s.empty() || s.size() > 20) bad(std::string(name) + " must be a decimal string");
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size() || !std::all_of(s.begin() + static_cast<ptrdiff_t>(i), s.end(), ::isdigit)) {
    bad(std::string(name) + " must be a decimal string");
  }
  try {
    return std::stoll(s);
  } catch (const std::exception&) {
    bad(std::string(name) + " is out of range");
  }
}

GroupEncryptionAlgorithm algorithm_arg(const json& req) {
  auto a = str(req, "algorithm");
  auto parsed = parse_group_encryption_algorithm(a, std::nullopt);
  if (!parsed) bad("unknown algorithm " + shown(a));
  return *parsed;
}

std::vector<UserDevice> devices_arg(const json& req) {
  const auto& list = arg(req, "devices");
  if (!list.is_array()) bad("devices must be a list");
  check_list(list.size(), "devices");
  std::vector<UserDevice> out;
  for (const auto& d : list) {
    if (!d.is_object()) bad("each device must be an object");
    out.push_back({str(d, "device_key"), str(d, "fallback_key")});
  }
  return out;
}

std::vector<std::string> string_list(const json& req, const char* name) {
  const auto& list = arg(req, name);
  if (!list.is_array()) bad(std::string(name) + " must be a list");
  check_list(list.size(), name);
  std::vector<std::string> out;
  for (const auto& v : list) {
    if (!v.is_string()) bad(std::string(name) + " must hold strings");
    check_no_nul(v.get_ref<const std::string&>(), name);
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::vector<uint8_t> hex_arg(const json& req, const char* name) {
  const auto& s = str(req, name);
  try {
    return crypto::hex_decode(s);
  } catch (const Error&) {
    bad(std::string(name) + " is not hex");
  }
}

size_t chunk_size_arg(const json& req) {
  auto v = int64_arg(arg(req, "chunk_size"), "chunk_size");
  if (v <= 0) bad("chunk_size must be positive");
  return static_cast<size_t>(v);
}

json session_json(const GroupEncryptionSession& s) {
  return {{"streamId", s.stream_id},
          {"sessionId", s.session_id},
          {"sessionKey", std::string(s.session_key.view())},
          {"algorithm", s.algorithm}};
}

class Driver {
 public:
  // Runs one request; throws towns::Error (UNKNOWN_COMMAND, NOT_INITIALIZED, the
  // command's own) or json::exception for a malformed argument.
  json handle(const std::string& cmd, const json& req) {
    const Command* c = find_command(cmd);
    if (c == nullptr) throw Error(ErrorCode::UNKNOWN_COMMAND, "unknown command " + shown(cmd));
    if (c->needs_device && !crypto_) throw Error(ErrorCode::NOT_INITIALIZED, "send init first");
    decrypting_ = c->decrypting;
    return (this->*(c->run))(req);
  }

  bool decrypting() const { return decrypting_; }
  bool quitting() const { return quitting_; }

  struct Command {
    const char* name;
    json (Driver::*run)(const json& req);
    bool needs_device;  // NOT_INITIALIZED until an init succeeded
    bool decrypting;    // libolm's errors become DECRYPTION_FAILED (else INVALID_ARGUMENT)
  };
  // The driver's commands, in docs/driver.md's order: the one list of them.
  static const Command kCommands[];
  static const Command* find_command(std::string_view name);

 private:
  json device_json() {
    auto d = crypto_->get_user_device();
    return {{"device_key", d.device_key}, {"fallback_key", d.fallback_key}};
  }

  json device(const json&) { return device_json(); }
  json export_device(const json&) { return {{"exported_device_pb", to_b64(crypto_->export_device().span())}}; }
  json quit(const json&) {
    quitting_ = true;
    return json::object();
  }

  json init(const json& req) {
    // Required like the client driver's (docs/driver.md), though a device keeps
    // no user id: the commands that need one take it as an argument.
    (void)user_arg(req, "user_id");
    crypto::SecretBytes key(kDefaultPickleKey);
    if (auto it = req.find("pickle_key"); it != req.end() && !it->is_null()) {
      if (!it->is_string()) bad("pickle_key must be a string");
      const auto& given = it->get_ref<const std::string&>();
      check_no_nul(given, "pickle_key");
      key = crypto::SecretBytes(std::string_view(given));  // no plain copy: the request's own is wiped after it
    }
    std::optional<crypto::SecretBytes> exported;
    if (req.contains("exported_device_pb") && !req["exported_device_pb"].is_null()) {
      auto bytes = b64(str(req, "exported_device_pb"), "exported_device_pb");
      exported = crypto::SecretBytes(std::span<const uint8_t>(bytes));
      crypto::wipe(bytes.data(), bytes.size());
      try {
        (void)ExportedDevice::decode(exported->span());  // its keys are SecretBytes: wiped as it goes
      } catch (const Error&) {
        bad("exported_device_pb is not a valid protobuf");
      }
    }
    const auto& store_arg = arg(req, "store");
    std::unique_ptr<CryptoStore> store;
    if (store_arg.is_string() && store_arg.get<std::string>() == "memory") {
      store = std::make_unique<MemoryCryptoStore>();
    } else if (store_arg.is_object() && store_arg.contains("sqlite") && store_arg["sqlite"].is_string()) {
      StoreOpenMode mode = StoreOpenMode::kEither;
      if (store_arg.contains("mode") && !store_arg["mode"].is_null()) {
        const auto& m = store_arg["mode"];
        if (m == "create") {
          mode = StoreOpenMode::kCreate;
        } else if (m == "open") {
          mode = StoreOpenMode::kOpen;
        } else if (m != "either") {
          bad("store mode must be \"create\", \"open\" or \"either\"");
        }
      }
      const auto& path = store_arg["sqlite"].get_ref<const std::string&>();
      check_no_nul(path, "store.sqlite");
      store = SqliteCryptoStore::open(path, key, mode);
    } else {
      bad("store must be \"memory\" or {\"sqlite\": path, \"mode\"?}");
    }
    auto crypto = std::make_unique<GroupEncryptionCrypto>(nullptr, *store);
    crypto->init({.pickle_key = key, .from_exported_device = std::move(exported)});
    // Only now replace the previous device: a failed init leaves it as it was.
    crypto_.reset();
    store_ = std::move(store);
    crypto_ = std::move(crypto);
    return device_json();
  }

  json encrypt(const json& req) {
    auto stream = stream_arg(req);
    auto algorithm = algorithm_arg(req);
    auto plaintext = b64(str(req, "plaintext_b64"), "plaintext_b64");
    int version = 1;
    if (req.contains("version") && !req["version"].is_null()) {
      auto v = int64_arg(req["version"], "version");  // a number, or a decimal string
      if (v != 0 && v != 1) bad("version must be 0 or 1");
      version = static_cast<int>(v);
    }
    bool created = !crypto_->has_outbound_session(stream, algorithm);
    if (algorithm == GroupEncryptionAlgorithm::kHybridGroupEncryption && created) {
      if (!req.contains("miniblock_num") || !req.contains("miniblock_hash_hex")) {
        bad("a new grpaes session needs miniblock_num and miniblock_hash_hex");
      }
      MiniblockInfo info{int64_arg(req["miniblock_num"], "miniblock_num"), {}};
      try {
        info.miniblock_hash = crypto::hex_decode(str(req, "miniblock_hash_hex"));
      } catch (const Error&) {
        bad("miniblock_hash_hex is not hex");
      }
      check_new_session_miniblock(info.miniblock_num, info.miniblock_hash);
      if (plaintext.empty()) throw Error(ErrorCode::EMPTY_PAYLOAD, "data to encrypt cannot be empty");
      crypto_->ensure_outbound_session(stream, algorithm, {.miniblock_info = info});
    }
    EncryptedData data;
    if (version == 1) {
      data = crypto_->encrypt_group_event(stream, plaintext, algorithm);
    } else {
      data = crypto_->encrypt_group_event_deprecated_v0(stream, crypto::as_text(plaintext), algorithm);
    }
    std::string session_id = algorithm == GroupEncryptionAlgorithm::kGroupEncryption
                                 ? data.session_id
                                 : crypto::hex_encode(data.session_id_bytes);
    return {{"encrypted_data_pb", pb_b64(data)}, {"session_id", session_id}, {"created_session", created}};
  }

  json decrypt(const json& req) {
    auto stream = stream_arg(req);
    auto data = parse_pb<river::EncryptedData>(req, "encrypted_data_pb");
    auto plain = crypto_->decrypt_group_event(stream, data);
    return {{"plaintext_b64", to_b64(plain.plaintext.span())}};
  }

  json session_ids(const json& req) {
    auto ids = crypto_->get_group_session_ids(stream_arg(req));
    std::sort(ids.begin(), ids.end());
    return {{"session_ids", ids}};
  }

  json export_sessions(const json& req) {
    std::vector<GroupEncryptionSession> sessions;
    auto stream = opt_str(req, "stream_id");
    if (stream) check_stream_id(*stream);
    bool by_id = req.contains("session_ids") && !req["session_ids"].is_null();
    if (by_id && !stream) bad("session_ids needs stream_id");
    if (stream && by_id) {
      for (const auto& id : string_list(req, "session_ids")) {
        if (auto s = crypto_->export_group_session(*stream, id)) sessions.push_back(std::move(*s));
      }
    } else {
      for (auto& s : crypto_->export_room_keys()) {
        if (!stream || s.stream_id == *stream) sessions.push_back(std::move(s));
      }
    }
    json list = json::array();
    for (const auto& s : sessions) list.push_back(session_json(s));
    return {{"sessions", list}};
  }

  json import_sessions(const json& req) {
    const auto& list = arg(req, "sessions");
    if (!list.is_array()) bad("sessions must be a list");
    check_list(list.size(), "sessions");
    std::vector<GroupEncryptionSession> keys;
    keys.reserve(list.size());
    for (const auto& s : list) {
      if (!s.is_object()) bad("each session must be an object");
      // The key goes straight from the request (wiped after it) into SecretBytes.
      crypto::SecretBytes key;
      if (auto it = s.find("sessionKey"); it != s.end() && !it->is_null()) {
        if (!it->is_string()) bad("sessionKey must be a string");
        key = crypto::SecretBytes(std::string_view(it->get_ref<const std::string&>()));
      }
      keys.push_back({opt_str(s, "streamId").value_or(""), opt_str(s, "sessionId").value_or(""), std::move(key),
                      opt_str(s, "algorithm").value_or("")});
    }
    auto result = crypto_->import_room_keys(keys);
    auto failed = result.failed;
    failed.insert(failed.end(), result.skipped.begin(), result.skipped.end());
    return {{"imported", result.imported}, {"failed", failed}};
  }

  json share(const json& req) {
    auto stream = stream_arg(req);
    auto algorithm = algorithm_arg(req);
    auto devices = devices_arg(req);
    std::vector<GroupEncryptionSession> sessions;
    for (const auto& id : string_list(req, "session_ids")) {
      auto s = crypto_->export_group_session(stream, id);
      if (!s || s->algorithm != algorithm_id(algorithm)) {
        throw Error(ErrorCode::SESSION_NOT_FOUND, "no " + std::string(algorithm_id(algorithm)) + " session " + shown(id));
      }
      sessions.push_back(std::move(*s));
    }
    auto plan = build_group_encryption_sessions(*crypto_, stream, algorithm, sessions, devices);
    if (!plan.skipped_devices.empty()) bad("olm refused the keys of device " + shown(plan.skipped_devices.front()));
    return {{"group_encryption_sessions_pb", pb_b64(plan.message)}};
  }

  json receive(const json& req) {
    auto message = parse_pb<river::UserInboxPayload::GroupEncryptionSessions>(req, "group_encryption_sessions_pb");
    auto result = receive_group_encryption_sessions(*crypto_, message);
    return {{"imported", result.imported}};
  }

  json encrypt_to_devices(const json& req) {
    auto payload = str(req, "payload");
    auto own = crypto_->get_user_device().device_key;
    std::vector<UserDevice> targets;
    for (auto& d : devices_arg(req)) {
      if (d.device_key != own) targets.push_back(std::move(d));
    }
    json out = json::object();
    for (const auto& [key, body] : crypto_->encrypt_with_device_keys(payload, targets)) out[key] = body;
    return {{"ciphertexts", out}};
  }

  json decrypt_from_device(const json& req) {
    auto plain = crypto_->decrypt_with_device_key(str(req, "ciphertext"), str(req, "sender_key"));
    return {{"payload", std::string(plain.view())}};
  }

  json solicit(const json& req) {
    auto stream = stream_arg(req);
    auto missing = string_list(req, "missing_session_ids");
    std::vector<KeySolicitation> pending;
    if (req.contains("pending_pb") && !req["pending_pb"].is_null()) {
      pending.push_back(parse_pb<river::MemberPayload::KeySolicitation>(req, "pending_pb"));
    }
    auto s = build_key_solicitation(*crypto_, stream, missing, pending);
    return {{"key_solicitation_pb", s ? json(pb_b64(*s)) : json(nullptr)}};
  }

  json answer_solicitation(const json& req) {
    auto stream = stream_arg(req);
    auto from = user_arg(req, "from_user_id");
    auto sol = parse_pb<river::MemberPayload::KeySolicitation>(req, "key_solicitation_pb");
    const auto& entitled_arg = arg(req, "requester_entitled");
    if (!entitled_arg.is_boolean()) bad("requester_entitled must be a boolean");
    bool entitled = entitled_arg.get<bool>();
    auto answer = plan_solicitation_answer(*crypto_, stream, from, sol, [&] { return entitled; });
    json shares = json::array();
    if (!answer) return {{"key_fulfillment_pb", nullptr}, {"group_encryption_sessions_pb", shares}};
    UserDevice target{sol.device_key, sol.fallback_key};
    for (const auto& m : build_solicitation_shares(*crypto_, stream, target, answer->sessions)) shares.push_back(pb_b64(m));
    return {{"key_fulfillment_pb", pb_b64(answer->fulfillment)}, {"group_encryption_sessions_pb", shares}};
  }

  // The derived scheme and media encryption (protocol.md sections 12, 13): no
  // device involved.
  json derived_encrypt(const json& req) {
    const auto& phrase = str(req, "key_phrase");
    auto plaintext = b64(str(req, "plaintext_b64"), "plaintext_b64");
    auto data = encrypt_derived(phrase, plaintext);
    return {{"encrypted_data_pb", to_b64(derived_encrypted_data_bytes(data))}};
  }

  json derived_decrypt(const json& req) {
    const auto& phrase = str(req, "key_phrase");
    auto bytes = b64(str(req, "encrypted_data_pb"), "encrypted_data_pb");
    auto plain = decrypt_derived(phrase, parse_derived_encrypted_data(bytes));
    return {{"plaintext_b64", to_b64(plain.span())}};
  }

  json media_encrypt(const json& req) {
    auto data = b64(str(req, "data_b64"), "data_b64");
    auto chunk_size = chunk_size_arg(req);
    bool has_key = req.contains("key_hex") && !req["key_hex"].is_null();
    bool has_ivs = req.contains("ivs_hex") && !req["ivs_hex"].is_null();
    if (has_key != has_ivs) bad("key_hex and ivs_hex go together");
    EncryptedMedia media;
    if (has_key) {
      auto key_bytes = hex_arg(req, "key_hex");
      media.secret_key = crypto::SecretBytes(std::span<const uint8_t>(key_bytes));
      crypto::wipe(key_bytes.data(), key_bytes.size());
      std::vector<std::vector<uint8_t>> ivs;
      for (const auto& iv : string_list(req, "ivs_hex")) {
        try {
          ivs.push_back(crypto::hex_decode(iv));
        } catch (const Error&) {
          bad("ivs_hex holds a value that is not hex");
        }
      }
      media.chunks = encrypt_chunked_media_with(data, chunk_size, media.secret_key, ivs);
    } else {
      media = encrypt_chunked_media(data, chunk_size);
    }
    json chunks = json::array();
    for (const auto& c : media.chunks) chunks.push_back({{"ct_b64", to_b64(c.ciphertext)}, {"iv_hex", crypto::hex_encode(c.iv)}});
    return {{"secret_key_hex", std::string(crypto::hex_encode_secret(media.secret_key.span()).view())}, {"chunks", chunks}};
  }

  json media_decrypt(const json& req) {
    auto key_bytes = hex_arg(req, "secret_key_hex");
    crypto::SecretBytes key{std::span<const uint8_t>(key_bytes)};
    crypto::wipe(key_bytes.data(), key_bytes.size());
    const auto& list = arg(req, "chunks");
    if (!list.is_array()) bad("chunks must be a list");
    check_list(list.size(), "chunks");
    bool whole_file = req.contains("iv_hex") && !req["iv_hex"].is_null();
    std::vector<MediaChunk> chunks;
    for (const auto& c : list) {
      if (!c.is_object()) bad("each chunk must be an object");
      MediaChunk chunk;
      chunk.ciphertext = b64(str(c, "ct_b64"), "ct_b64");
      bool has_iv = c.contains("iv_hex") && !c["iv_hex"].is_null();
      if (whole_file && has_iv) bad("a chunk of the whole-file form carries no iv_hex");
      if (!whole_file) chunk.iv = hex_arg(c, "iv_hex");
      chunks.push_back(std::move(chunk));
    }
    crypto::SecretBytes plain;
    if (whole_file) {
      auto iv = hex_arg(req, "iv_hex");
      std::vector<std::vector<uint8_t>> pieces;
      for (auto& c : chunks) pieces.push_back(std::move(c.ciphertext));
      plain = decrypt_whole_file_media(key, iv, pieces);
    } else {
      plain = decrypt_chunked_media(key, chunks);
    }
    return {{"data_b64", to_b64(plain.span())}};
  }

  // ---- version 2: the key exchange engine in a simulated world (the library's
  // lib/exchange/engine_world.h)
  using EngineWorld = trace::EngineWorld;
  EngineWorld& world() {
    if (!world_) throw Error(ErrorCode::NOT_INITIALIZED, "send engine_start first");
    return *world_;
  }
  json engine_start(const json& req) {
    auto w = EngineWorld::start(req);  // a failed start leaves the previous world
    world_ = std::move(w);
    return json::object();
  }
  json engine_input(const json& req) {
    world().input(req);
    return json::object();
  }
  json engine_advance(const json& req) {
    world().advance(req);
    return json::object();
  }
  json engine_outputs(const json&) { return {{"outputs", world().take_outputs()}}; }
  json engine_next_due(const json&) { return {{"next_due_ms", world().next_due()}}; }
  json engine_stop(const json&) {
    world_.reset();
    return json::object();
  }

  std::unique_ptr<CryptoStore> store_;
  std::unique_ptr<GroupEncryptionCrypto> crypto_;
  std::unique_ptr<EngineWorld> world_;
  bool decrypting_ = false;
  bool quitting_ = false;
};

const Driver::Command Driver::kCommands[] = {
    {"init", &Driver::init, false, false},
    {"device", &Driver::device, true, false},
    {"export_device", &Driver::export_device, true, false},
    {"encrypt", &Driver::encrypt, true, false},
    {"decrypt", &Driver::decrypt, true, true},
    {"session_ids", &Driver::session_ids, true, false},
    {"export_sessions", &Driver::export_sessions, true, false},
    {"import_sessions", &Driver::import_sessions, true, false},
    {"share", &Driver::share, true, false},
    {"receive_sessions", &Driver::receive, true, true},
    {"encrypt_to_devices", &Driver::encrypt_to_devices, true, false},
    {"decrypt_from_device", &Driver::decrypt_from_device, true, true},
    {"solicit", &Driver::solicit, true, false},
    {"answer_solicitation", &Driver::answer_solicitation, true, false},
    {"derived_encrypt", &Driver::derived_encrypt, false, false},
    {"derived_decrypt", &Driver::derived_decrypt, false, true},
    {"media_encrypt", &Driver::media_encrypt, false, false},
    {"media_decrypt", &Driver::media_decrypt, false, true},
    {"engine_start", &Driver::engine_start, false, false},
    {"engine_input", &Driver::engine_input, false, false},
    {"engine_advance", &Driver::engine_advance, false, false},
    {"engine_next_due", &Driver::engine_next_due, false, false},
    {"engine_outputs", &Driver::engine_outputs, false, false},
    {"engine_stop", &Driver::engine_stop, false, false},
    {"quit", &Driver::quit, false, false},
};

const Driver::Command* Driver::find_command(std::string_view name) {
  for (const auto& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

// Error messages are cut to this many bytes in a reply, whatever produced them.
constexpr size_t kMaxMessageBytes = 512;

json error_reply(const json& id, const std::string& code, const std::string& message) {
  return {{"id", id}, {"ok", false}, {"error", {{"code", code}, {"message", shorten_for_message(message, kMaxMessageBytes)}}}};
}

// Overwrites every string of a request or reply (keys, pickle keys, exported
// devices pass through them) before the memory is released.
void wipe_json(json& root) {
  std::vector<json*> todo{&root};
  while (!todo.empty()) {
    json* j = todo.back();
    todo.pop_back();
    if (j->is_string()) {
      auto& s = j->get_ref<std::string&>();
      crypto::wipe(s.data(), s.size());
    } else if (j->is_structured()) {
      for (auto& v : *j) todo.push_back(&v);
    }
  }
}

void wipe_string(std::string& s) { crypto::wipe(s.data(), s.capacity()); }

// Reads one line (without its newline) into line, keeping at most max bytes:
// the rest of a longer line is read and dropped. false at the end of input.
bool read_line(std::istream& in, std::string& line, size_t max, bool& too_long) {
  line.clear();
  too_long = false;
  std::streambuf* sb = in.rdbuf();
  bool any = false;
  for (;;) {
    int c = sb->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    any = true;
    if (c == '\n') return true;
    if (too_long) continue;
    if (line.size() >= max) {
      too_long = true;
      wipe_string(line);
      line.clear();
      continue;
    }
    line.push_back(static_cast<char>(c));
  }
}

struct DepthExceeded {};

// Parses a request line within the limits, while parsing, so that no more than
// the limits is ever built: an array or object past max_depth stops the parse
// (DepthExceeded), and so does the item of any one list or object past
// max_list_items (LIMIT_EXCEEDED naming the list). Every item of a container
// at depth d ends with one event at depth d+1 (a value, or the end of a
// nested container); a member of an object has a key event there first.
json parse_request(const std::string& line, const DriverLimits& limits) {
  std::vector<size_t> items;       // per open container, by depth
  std::vector<std::string> names;  // what an error calls it
  std::string key;                 // the last member name read
  return json::parse(
      line,
      [&](int d, json::parse_event_t event, json& parsed) {
        auto depth = static_cast<size_t>(d);
        switch (event) {
          case json::parse_event_t::object_start:
          case json::parse_event_t::array_start:
            if (depth >= limits.max_depth) throw DepthExceeded{};
            items.resize(depth + 1);
            names.resize(depth + 1);
            items[depth] = 0;
            names[depth] = depth == 0 ? "request" : !key.empty() ? shown(key) : names[depth - 1];
            key.clear();
            break;
          case json::parse_event_t::key:
            key = parsed.is_string() ? parsed.get<std::string>() : "";
            break;
          case json::parse_event_t::value:
          case json::parse_event_t::object_end:
          case json::parse_event_t::array_end:
            key.clear();
            if (depth >= 1 && depth - 1 < items.size() && ++items[depth - 1] > limits.max_list_items) {
              over_limit(names[depth - 1] + " holds more than " + std::to_string(limits.max_list_items) + " items");
            }
            break;
        }
        return true;
      },
      false);
}

// A positive decimal option value.
bool parse_size(std::string_view text, size_t& out) {
  size_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v == 0) return false;
  out = v;
  return true;
}

}  // namespace

std::vector<std::string> driver_commands() {
  std::vector<std::string> names;
  for (const auto& c : Driver::kCommands) names.emplace_back(c.name);
  return names;
}

int run_driver(std::istream& in, std::ostream& out, const DriverLimits& limits) {
  g_limits = limits;
  Driver driver;
  std::string line;
  line.reserve(std::min<size_t>(limits.max_line_bytes, size_t{1} << 16));
  bool too_long = false;
  while (!driver.quitting() && read_line(in, line, limits.max_line_bytes, too_long)) {
    json id = nullptr;
    json reply;
    json req;
    if (too_long) {
      reply = error_reply(nullptr, "LIMIT_EXCEEDED",
                          "the line is longer than " + std::to_string(limits.max_line_bytes) + " bytes (--max-line-bytes)");
    } else if (line.find_first_not_of(" \t\r") == std::string::npos) {
      continue;
    } else if (line.find('\0') != std::string::npos) {
      reply = error_reply(nullptr, "INVALID_ARGUMENT", "the line holds a NUL byte");
    } else {
      std::optional<std::string> over;
      try {
        req = parse_request(line, limits);
      } catch (const DepthExceeded&) {
        over = "the request nests deeper than " + std::to_string(limits.max_depth) + " levels";
      } catch (const Error& e) {
        over = e.what();
      }
      if (over) {
        req = json();
        reply = error_reply(nullptr, "LIMIT_EXCEEDED", *over);
      } else if (req.is_discarded() || !req.is_object()) {
        reply = error_reply(nullptr, "INVALID_ARGUMENT", "the line is not a JSON object");
      } else {
        if (req.contains("id") && req["id"].is_number_integer()) id = req["id"];
        try {
          if (!req.contains("cmd") || !req["cmd"].is_string()) bad("missing cmd");
          auto result = driver.handle(req["cmd"].get<std::string>(), req);
          result["id"] = id;
          result["ok"] = true;
          reply = std::move(result);
        } catch (const Error& e) {
          reply = error_reply(id, driver_code(e, driver.decrypting()), e.what());
        } catch (const json::exception& e) {
          reply = error_reply(id, "INVALID_ARGUMENT", std::string("bad argument: ") + e.what());
        } catch (const std::exception& e) {
          reply = error_reply(id, "INTERNAL", e.what());
        }
      }
    }
    wipe_json(req);
    wipe_string(line);
    auto text = reply.dump(-1, ' ', false, json::error_handler_t::replace);
    wipe_json(reply);
    text += '\n';
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    wipe_string(text);
  }
  return 0;
}

int run_driver_command(int argc, char** argv) {
  // The driver holds pickle keys and session keys: no core dumps of it, and
  // no ptrace attach by other processes of the same user.
  (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  DriverLimits limits;
  for (int i = 2; i < argc; ++i) {
    std::string_view opt = argv[i];
    size_t* target = opt == "--max-line-bytes"   ? &limits.max_line_bytes
                     : opt == "--max-list-items" ? &limits.max_list_items
                     : opt == "--max-depth"      ? &limits.max_depth
                                                 : nullptr;
    if (target == nullptr || i + 1 >= argc || !parse_size(argv[i + 1], *target)) {
      std::fprintf(stderr,
                   "usage: towns-e2ee driver [--max-line-bytes N] [--max-list-items N] [--max-depth N]\n"
                   "  (positive integers; defaults %zu, %zu, %zu)\n",
                   DriverLimits{}.max_line_bytes, DriverLimits{}.max_list_items, DriverLimits{}.max_depth);
      return 2;
    }
    ++i;
  }
  std::ios::sync_with_stdio(false);
  return run_driver(std::cin, std::cout, limits);
}

}  // namespace towns::tools
