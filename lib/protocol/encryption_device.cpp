#include "towns/protocol/encryption_device.h"

#include <map>

#include "towns/crypto/encoding.h"
#include "towns/protocol/inputs.h"
#include "towns/proto/payloads.pb.h"

namespace towns {

using crypto::SecretBytes;

namespace {

template <typename Fn>
auto as_import_failure(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw Error(ErrorCode::IMPORT_FAILED, std::string(what) + ": " + std::string(e.code_name()));
  }
}

// Wipes every key string of a parsed ExportedDevice when it goes.
struct WipedExport {
  river::ExportedDevice m;
  ~WipedExport() {
    auto wipe = [](std::string* s) { crypto::wipe(s->data(), s->size()); };
    wipe(m.mutable_picklekey());
    wipe(m.mutable_pickledaccount());
    for (auto& s : *m.mutable_outboundsessions()) wipe(s.mutable_session());
    for (auto& s : *m.mutable_inboundsessions()) wipe(s.mutable_session());
    for (auto& s : *m.mutable_hybridgroupsessions()) wipe(s.mutable_session_key());
  }
};

}  // namespace

EncryptionDevice::EncryptionDevice(CryptoStore& store, crypto::RandomSource& rng, EncryptionDelegate& delegate)
    : ctx_{store, rng, delegate, SecretBytes(kDefaultPickleKey)},
      account_(ctx_),
      inbound_(ctx_),
      outbound_(ctx_, inbound_),
      hybrid_(ctx_) {}

EncryptionDevice::~EncryptionDevice() = default;

void EncryptionDevice::init(const DeviceInitOptions& options) {
  SecretBytes key = options.pickle_key ? *options.pickle_key : SecretBytes(kDefaultPickleKey);
  if (key.empty()) throw Error(ErrorCode::INVALID_ARGUMENT, "the pickle key is empty");
  ctx_.pickle_key = std::move(key);
  outbound_.clear();
  inbound_.clear();
  hybrid_.clear();
  if (options.from_exported_device) {
    import_exported_device(options.from_exported_device->span());
  } else {
    account_.load_or_create();
  }
}

void EncryptionDevice::import_exported_device(std::span<const uint8_t> bytes) {
  WipedExport exported;
  if (!exported.m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error(ErrorCode::IMPORT_FAILED, "the exported device is not an ExportedDevice");
  }
  const auto& e = exported.m;
  SecretBytes their_key(e.picklekey());
  auto account = as_import_failure("exported account", [&] {
    return ctx_.delegate.unpickle_account(their_key, e.pickledaccount());
  });
  StoreChanges changes;
  for (const auto& s : e.outboundsessions()) {
    auto session = as_import_failure("exported outbound session", [&] {
      return ctx_.delegate.unpickle_outbound_group_session(their_key, s.session());
    });
    if (session->session_id() != s.session_id()) {
      throw Error(ErrorCode::IMPORT_FAILED, "exported outbound session id does not match its pickle");
    }
    changes.outbound_sessions.push_back({s.stream_id(), s.session_id(), session->pickle(ctx_.pickle_key), 0});
  }
  for (const auto& s : e.inboundsessions()) {
    auto session = as_import_failure("exported inbound session", [&] {
      return ctx_.delegate.unpickle_inbound_group_session(their_key, s.session());
    });
    if (session->session_id() != s.session_id()) {
      throw Error(ErrorCode::IMPORT_FAILED, "exported inbound session id does not match its pickle");
    }
    changes.inbound_sessions.push_back({s.stream_id(), s.session_id(), session->pickle(ctx_.pickle_key), 0});
  }
  for (const auto& s : e.hybridgroupsessions()) {
    auto hex = crypto::hex_encode_secret(crypto::as_bytes(s.session_key()));
    changes.hybrid_sessions.push_back(HybridSessions::prepare_import(s.stream_id(), s.session_id(), hex));
  }
  changes.account = account->pickle(ctx_.pickle_key);
  ctx_.store.save_changes(changes);
  account_.adopt(std::move(account));
}

std::vector<EncryptionDevice::ImportResult> EncryptionDevice::import_sessions(const std::vector<SessionImport>& keys) {
  std::vector<ImportResult> results(keys.size());
  StoreChanges changes;
  struct Pending {
    size_t record;  // in changes.inbound_sessions
    uint32_t first_known_index;
  };
  std::map<std::pair<std::string, std::string>, Pending> pending;
  MutexLock l(import_mu_);
  account_.user_device();  // NOT_INITIALIZED before init
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto& k = keys[i];
    try {
      // One stream, one spelling: a key under a non-canonical id ("0xAB..",
      // upper case) would be a second entry for the same stream.
      if (!is_valid_stream_id(k.stream_id)) {
        throw Error(ErrorCode::IMPORT_FAILED, "stream id \"" + shorten_for_message(k.stream_id) + "\" is not a stream id");
      }
      if (k.algorithm == GroupEncryptionAlgorithm::kHybridGroupEncryption) {
        changes.hybrid_sessions.push_back(HybridSessions::prepare_import(k.stream_id, k.session_id, k.session_key));
        results[i].value = ImportOutcome::kImported;
        continue;
      }
      auto session = as_import_failure("megolm session key", [&] {
        return ctx_.delegate.inbound_group_session_from_key(k.session_key);
      });
      if (session->session_id() != k.session_id) {
        throw Error(ErrorCode::IMPORT_FAILED, "mismatched group session id for stream " + k.stream_id);
      }
      uint32_t index = session->first_known_index();
      auto at = pending.find({k.stream_id, k.session_id});
      if (at != pending.end()) {
        // Listed twice in this batch: the lower first index wins.
        if (at->second.first_known_index <= index) {
          results[i].value = ImportOutcome::kKeptExisting;
          continue;
        }
        changes.inbound_sessions[at->second.record].pickle = session->pickle(ctx_.pickle_key);
        at->second.first_known_index = index;
        results[i].value = ImportOutcome::kImported;
        continue;
      }
      if (auto existing = ctx_.store.get_inbound_session(k.stream_id, k.session_id)) {
        // An existing entry that no longer opens fails this key (STORE_CORRUPT)
        // and stays as it is, as the client's import fails on it: a damaged row
        // is reported, never silently overwritten.
        auto old = inbound_.unpickle_stored(existing->stream_id, existing->session_id, existing->pickle);
        if (old->first_known_index() <= index) {
          results[i].value = ImportOutcome::kKeptExisting;
          continue;
        }
      }
      pending[{k.stream_id, k.session_id}] = {changes.inbound_sessions.size(), index};
      changes.inbound_sessions.push_back({k.stream_id, k.session_id, session->pickle(ctx_.pickle_key), 0});
      results[i].value = ImportOutcome::kImported;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::IMPORT_FAILED && e.code() != ErrorCode::STORE_CORRUPT && !is_olm_error(e.code())) {
        throw;
      }
      results[i].error = e;
    }
  }
  if (changes.empty()) return results;
  ctx_.store.save_changes(changes);
  for (const auto& r : changes.inbound_sessions) inbound_.forget(r.stream_id, r.session_id);
  for (const auto& r : changes.hybrid_sessions) hybrid_.forget(r.stream_id);
  return results;
}

SecretBytes EncryptionDevice::export_device() {
  WipedExport out;
  auto& m = out.m;
  m.set_picklekey(std::string(ctx_.pickle_key.view()));
  m.set_pickledaccount(account_.pickle());
  for (auto& r : outbound_.export_records()) {
    auto* s = m.add_outboundsessions();
    s->set_session_id(r.session_id);
    s->set_stream_id(r.stream_id);
    s->set_session(std::move(r.pickle));
  }
  for (auto& r : ctx_.store.all_inbound_sessions()) {
    auto* s = m.add_inboundsessions();
    s->set_session_id(r.session_id);
    s->set_stream_id(r.stream_id);
    s->set_session(std::move(r.pickle));
  }
  for (const auto& r : ctx_.store.all_hybrid_sessions()) {
    auto* s = m.add_hybridgroupsessions();
    s->set_session_id(r.session_id);
    s->set_stream_id(r.stream_id);
    s->set_session_key(std::string(r.session_key.view()));
    s->set_miniblock_num(r.miniblock_num);
  }
  SecretBytes bytes(m.ByteSizeLong());
  if (!m.SerializeToArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw Error(ErrorCode::INTERNAL, "protobuf serialisation failed");
  }
  return bytes;
}

}  // namespace towns
