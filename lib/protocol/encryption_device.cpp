#include "towns/protocol/encryption_device.h"

#include <map>

#include "common/parallel.h"
#include "olm/olm_delegate.h"

#include "towns/crypto/encoding.h"
#include "towns/protocol/inputs.h"
#include "towns/protocol/messages.h"

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
  ExportedDevice e;
  try {
    e = ExportedDevice::decode(bytes);
  } catch (const Error& err) {
    // Malformed input, as the vectors and the driver say (docs/vectors.md); a
    // well-formed export that does not open is IMPORT_FAILED below.
    throw Error(ErrorCode::INVALID_ARGUMENT, "the exported device is not an ExportedDevice: " + std::string(err.what()));
  }
  const SecretBytes& their_key = e.pickle_key;
  auto account = as_import_failure("exported account", [&] {
    return ctx_.delegate.unpickle_account(their_key, e.pickled_account.view());
  });
  StoreChanges changes;
  for (const auto& s : e.outbound_sessions) {
    auto session = as_import_failure("exported outbound session", [&] {
      return ctx_.delegate.unpickle_outbound_group_session(their_key, s.session.view());
    });
    if (session->session_id() != s.session_id) {
      throw Error(ErrorCode::IMPORT_FAILED, "exported outbound session id does not match its pickle");
    }
    changes.outbound_sessions.push_back({s.stream_id, s.session_id, session->pickle(ctx_.pickle_key), 0});
  }
  for (const auto& s : e.inbound_sessions) {
    auto session = as_import_failure("exported inbound session", [&] {
      return ctx_.delegate.unpickle_inbound_group_session(their_key, s.session.view());
    });
    if (session->session_id() != s.session_id) {
      throw Error(ErrorCode::IMPORT_FAILED, "exported inbound session id does not match its pickle");
    }
    changes.inbound_sessions.push_back({s.stream_id, s.session_id, session->pickle(ctx_.pickle_key), 0});
  }
  for (const auto& s : e.hybrid_group_sessions) {
    auto hex = crypto::hex_encode_secret(s.session_key.span());
    changes.hybrid_sessions.push_back(HybridSessions::prepare_import(s.stream_id, s.session_id, hex));
  }
  changes.account = account->pickle(ctx_.pickle_key);
  ctx_.store.save_changes(changes);
  account_.adopt(std::move(account));
}

std::vector<EncryptionDevice::ImportResult> EncryptionDevice::import_sessions(const std::vector<SessionImport>& keys) {
  return import_sessions(keys, 1);
}

std::vector<EncryptionDevice::ImportResult> EncryptionDevice::import_sessions(const std::vector<SessionImport>& keys,
                                                                              unsigned threads) {
  MutexLock l(import_mu_);
  account_.user_device();  // NOT_INITIALIZED before init
  // Each megolm key read into a session, its id and first index: the expensive
  // part (libolm verifies a signed key), side by side. Then the decisions, in key
  // order. Then the pickles (libolm encrypts each), side by side, of the keys
  // that will be written only: a key kept out by a held session or by a better
  // duplicate is not pickled. Another delegate than libolm's (stateless) is
  // called one key at a time.
  struct Read {
    std::unique_ptr<DelegateInboundGroupSession> session;
    std::string session_id;
    uint32_t first_known_index = 0;
    std::string pickle;
    std::optional<Error> error;
  };
  std::vector<Read> read(keys.size());
  if (!is_olm_delegate(ctx_.delegate)) threads = 1;
  parallel_for(keys.size(), threads, [&](size_t i) {
    const auto& k = keys[i];
    if (k.algorithm == GroupEncryptionAlgorithm::kHybridGroupEncryption || !is_valid_stream_id(k.stream_id)) return;
    auto& r = read[i];
    try {
      r.session = as_import_failure("megolm session key", [&] {
        return ctx_.delegate.inbound_group_session_from_key(k.session_key);
      });
      r.session_id = r.session->session_id();
      r.first_known_index = r.session->first_known_index();
    } catch (const Error& e) {
      r.error = e;
    }
  });

  std::vector<ImportResult> results;
  StoreChanges changes;
  std::vector<size_t> source;  // the key behind each of changes.inbound_sessions
  // The decisions depend on ids and first indices only. A key whose pickle then
  // fails (libolm refusing to pickle a session it made) is failed as if its
  // read had, and the decisions are taken again, so the outcome is the one a
  // failed read gives; each such round fails one more key.
  for (;;) {
    results.assign(keys.size(), ImportResult{});
    changes = StoreChanges{};
    source.clear();
    struct Pending {
      size_t record;  // in changes.inbound_sessions
      uint32_t first_known_index;
    };
    std::map<std::pair<std::string, std::string>, Pending> pending;
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto& k = keys[i];
      try {
        // One stream, one spelling: a key under a non-canonical id ("0xAB..",
        // upper case) would be a second entry for the same stream.
        if (!is_valid_stream_id(k.stream_id)) {
          throw Error(ErrorCode::IMPORT_FAILED,
                      "stream id \"" + shorten_for_message(k.stream_id) + "\" is not a stream id");
        }
        if (k.algorithm == GroupEncryptionAlgorithm::kHybridGroupEncryption) {
          changes.hybrid_sessions.push_back(HybridSessions::prepare_import(k.stream_id, k.session_id, k.session_key));
          results[i].value = ImportOutcome::kImported;
          continue;
        }
        auto& r = read[i];
        if (r.error) throw *r.error;
        if (r.session_id != k.session_id) {
          throw Error(ErrorCode::IMPORT_FAILED, "mismatched group session id for stream " + k.stream_id);
        }
        uint32_t index = r.first_known_index;
        auto at = pending.find({k.stream_id, k.session_id});
        if (at != pending.end()) {
          // Listed twice in this batch: the lower first index wins.
          if (at->second.first_known_index <= index) {
            results[i].value = ImportOutcome::kKeptExisting;
            continue;
          }
          source[at->second.record] = i;
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
        changes.inbound_sessions.push_back({k.stream_id, k.session_id, std::string(), 0});
        source.push_back(i);
        results[i].value = ImportOutcome::kImported;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::IMPORT_FAILED && e.code() != ErrorCode::STORE_CORRUPT && !is_olm_error(e.code())) {
          throw;
        }
        results[i].error = e;
      }
    }
    std::vector<size_t> to_pickle;
    for (size_t i : source) {
      if (read[i].pickle.empty()) to_pickle.push_back(i);
    }
    parallel_for(to_pickle.size(), threads, [&](size_t j) {
      auto& r = read[to_pickle[j]];
      try {
        r.pickle = r.session->pickle(ctx_.pickle_key);
      } catch (const Error& e) {
        r.error = e;
      }
    });
    bool failed = false;
    for (size_t i : to_pickle) failed = failed || read[i].error.has_value();
    if (!failed) break;
  }
  for (size_t slot = 0; slot < source.size(); ++slot) changes.inbound_sessions[slot].pickle = read[source[slot]].pickle;
  if (changes.empty()) return results;
  ctx_.store.save_changes(changes);
  for (const auto& r : changes.inbound_sessions) inbound_.forget(r.stream_id, r.session_id);
  for (const auto& r : changes.hybrid_sessions) hybrid_.forget(r.stream_id);
  return results;
}

SecretBytes EncryptionDevice::export_device() {
  ExportedDevice m;
  m.pickle_key = ctx_.pickle_key;
  // Pickles come as std::string: each is copied into a SecretBytes, then wiped.
  auto take = [](std::string& text) {
    SecretBytes out(std::string_view{text});
    crypto::wipe(text.data(), text.size());
    return out;
  };
  std::string account = account_.pickle();
  m.pickled_account = take(account);
  for (auto& r : outbound_.export_records()) {
    m.outbound_sessions.push_back({r.session_id, r.stream_id, take(r.pickle)});
  }
  for (auto& r : ctx_.store.all_inbound_sessions()) {
    m.inbound_sessions.push_back({r.session_id, r.stream_id, take(r.pickle)});
  }
  for (const auto& r : ctx_.store.all_hybrid_sessions()) {
    m.hybrid_group_sessions.push_back({r.session_id, r.stream_id, r.session_key, r.miniblock_num});
  }
  return m.encode();
}

}  // namespace towns
