// The scenarios about refusals, stores and the client's documented
// differences: bad inputs, a store across restarts, the empty pickle key, NUL
// bytes, the store's open modes, a stored megolm session damaged while its
// device was stopped, and which grpaes session a device seals with when several
// share a miniblock.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "conformance.h"
#include "towns/crypto/encoding.h"
#include "towns/error.h"
#include "towns/protocol/messages.h"
#include "towns/store/sqlite_crypto_store.h"

namespace towns::conformance {

using namespace h;

namespace {

EncryptedData event_of(const json& b64_pb) {
  auto b = bytes(b64_pb);
  return EncryptedData::decode(b);
}
template <typename F>
std::string variant(EncryptedData e, F change) {
  change(e);
  return pb64(e.encode());
}
json dec(const std::string& pb) { return {{"stream_id", kStream}, {"encrypted_data_pb", pb}}; }

void bad_inputs(Ctx& ctx) {
  for (Driver* d : {&ctx.a(), &ctx.b()}) {
    auto raw = d->raw("this is not json");
    expect(raw.value("ok", true) == false && raw.contains("id") && raw.at("id").is_null() && is_error(raw, "INVALID_ARGUMENT"),
           d->name() + ": malformed line", raw);
    auto arr = d->raw("[1,2,3]");
    expect(is_error(arr, "INVALID_ARGUMENT"), d->name() + ": not an object", arr);
    d->err("no_such_command", {}, "UNKNOWN_COMMAND");
    d->err("device", {}, "NOT_INITIALIZED");
    d->err("decrypt", {{"stream_id", kStream}, {"encrypted_data_pb", "AA=="}}, "NOT_INITIALIZED");
    d->err("init", {{"user_id", kUserA}}, "INVALID_ARGUMENT");
    d->err("init", {{"user_id", kUserA}, {"store", "floppy"}}, "INVALID_ARGUMENT");
    init(*d, kUserA);
    auto e = encrypt(*d, kMegolm, "keep me");
    auto h = encrypt(*d, kHybrid, "keep me too");
    auto before = d->ok("session_ids", {{"stream_id", kStream}}).at("session_ids");
    auto ed = event_of(e.at("encrypted_data_pb"));
    auto hd = event_of(h.at("encrypted_data_pb"));
    d->err("decrypt", dec("%%%"), "INVALID_ARGUMENT");
    d->err("decrypt", dec(pb64({0xff, 0xff, 0xff})), "INVALID_ARGUMENT");
    d->err("decrypt", {{"stream_id", "zz"}, {"encrypted_data_pb", e.at("encrypted_data_pb")}}, "INVALID_ARGUMENT");
    d->err("decrypt", {{"stream_id", kStream}}, "INVALID_ARGUMENT");
    d->err("decrypt", dec(variant(ed, [](auto& x) { x.sender_key.clear(); })), "GROUP_DECRYPTION_MISSING_FIELDS");
    d->err("decrypt", dec(variant(ed, [](auto& x) { x.algorithm.clear(); })), "GROUP_DECRYPTION_UNSET_ALGORITHM");
    d->err("decrypt", dec(variant(ed, [](auto& x) { x.algorithm = "m.megolm.v1.aes-sha2"; })), "GROUP_DECRYPTION_UNKNOWN_ALGORITHM");
    d->err("decrypt", dec(variant(ed, [](auto& x) { x.version = static_cast<EncryptedDataVersion>(5); })),
           "GROUP_DECRYPTION_INVALID_VERSION");
    auto flipped = ed.ciphertext;
    expect(flipped.size() > 20, "a megolm ciphertext", ed.ciphertext);
    flipped[20] = flipped[20] == 'A' ? 'B' : 'A';
    d->err("decrypt", dec(variant(ed, [&](auto& x) { x.ciphertext = flipped; })), "DECRYPTION_FAILED");
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.sender_key.clear(); })), "HYBRID_GROUP_DECRYPTION_MISSING_FIELDS");
    // The client's missing-fields check never sees empty bytes fields (docs/compat.md).
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.iv_bytes.clear(); })), "DECRYPTION_FAILED");
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.ciphertext_bytes.clear(); })), "DECRYPTION_FAILED");
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.session_id_bytes.clear(); })), "SESSION_NOT_FOUND");
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.iv_bytes = Bytes(16, 0); })), "DECRYPTION_FAILED");
    expect(!hd.ciphertext_bytes.empty(), "a grpaes ciphertext");
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.ciphertext_bytes[0] ^= 1; })), "DECRYPTION_FAILED");
    d->err("decrypt", dec(variant(hd, [](auto& x) { x.session_id_bytes = Bytes(32, 0); })), "SESSION_NOT_FOUND");
    d->err("encrypt", {{"stream_id", kStream}, {"algorithm", "rot13"}, {"plaintext_b64", b64("x")}}, "INVALID_ARGUMENT");
    d->err("encrypt", {{"stream_id", kOtherStream}, {"algorithm", kMegolm}, {"plaintext_b64", pb64(Bytes(36865, 0))}},
           "PAYLOAD_TOO_LARGE");
    d->err("encrypt",
           {{"stream_id", kOtherStream}, {"algorithm", kHybrid}, {"plaintext_b64", ""}, {"miniblock_num", "1"}, {"miniblock_hash_hex", kHash}},
           "EMPTY_PAYLOAD");
    d->err("encrypt", {{"stream_id", kOtherStream}, {"algorithm", kHybrid}, {"plaintext_b64", b64("x")}}, "INVALID_ARGUMENT");
    d->err("encrypt", {{"stream_id", kStream}, {"algorithm", kMegolm}, {"plaintext_b64", b64("x")}, {"version", 2}}, "INVALID_ARGUMENT");
    same(d->ok("session_ids", {{"stream_id", kOtherStream}}).at("session_ids"), json::array(), "refused encrypts created no session");
    d->err("receive_sessions", {{"group_encryption_sessions_pb", "!!"}}, "INVALID_ARGUMENT");
    auto own = d->ok("device").at("device_key").get<std::string>();
    GroupEncryptionSessions forged;
    forged.stream_id = crypto::hex_decode(kStream);
    forged.sender_key = own;
    forged.session_ids = {"forged"};
    forged.ciphertexts[own] = "AwoAgarbage";
    forged.algorithm = kMegolm;
    d->err("receive_sessions", {{"group_encryption_sessions_pb", pb64(forged.encode())}}, "DECRYPTION_FAILED");
    d->err("share", {{"stream_id", kStream}, {"algorithm", kMegolm}, {"session_ids", json::array({"nope"})}, {"devices", json::array()}},
           "SESSION_NOT_FOUND");
    d->err("share",
           {{"stream_id", kStream}, {"algorithm", kHybrid}, {"session_ids", json::array({e.at("session_id")})}, {"devices", json::array()}},
           "SESSION_NOT_FOUND");
    d->err("answer_solicitation",
           {{"stream_id", kStream}, {"from_user_id", kUserB}, {"key_solicitation_pb", "@@"}, {"requester_entitled", true}},
           "INVALID_ARGUMENT");
    d->err("answer_solicitation",
           {{"stream_id", kStream}, {"from_user_id", kUserB}, {"key_solicitation_pb", "AA=="}, {"requester_entitled", "yes"}},
           "INVALID_ARGUMENT");
    d->err("solicit", {{"stream_id", kStream}, {"missing_session_ids", "abc"}}, "INVALID_ARGUMENT");
    json bad_keys = json::array({json{{"streamId", kStream}, {"sessionId", "x"}, {"sessionKey", "garbage"}, {"algorithm", kMegolm}},
                                 json{{"sessionId", "y"}}});
    auto bad_import = d->ok("import_sessions", {{"sessions", bad_keys}});
    same(bad_import.at("imported"), json::array(), "garbage keys refused");
    same(bad_import.at("failed"), json::array({"x", "y"}), "and reported");
    same(d->ok("session_ids", {{"stream_id", kStream}}).at("session_ids"), before, "state unchanged by failed requests");
    same(decrypt_text(*d, e), "keep me", "still decrypts");
    same(decrypt_text(*d, h), "keep me too", "still decrypts grpaes");
  }
}

struct Side {
  char role;
  std::string tag;  // for file names
};
const Side kSides[] = {{'A', "a"}, {'B', "b"}};

void store_restart(Ctx& ctx) {
  for (const auto& side : kSides) {
    auto path = ctx.dir + "/" + side.tag + "-device.db";
    json store = {{"sqlite", path}};
    auto& first = ctx.make(side.role);
    auto dev = device(first.ok("init", {{"user_id", kUserC}, {"store", store}, {"pickle_key", "restart key"}}));
    auto e1 = encrypt(first, kMegolm, "before restart");
    encrypt(first, kHybrid, "before restart grpaes");
    auto ids = first.ok("session_ids", {{"stream_id", kStream}}).at("session_ids");
    same(first.quit(), 0, first.name() + ": clean exit");
    auto& second = ctx.make(side.role);
    same(device(second.ok("init", {{"user_id", kUserC}, {"store", store}, {"pickle_key", "restart key"}})), dev,
         "same device after restart");
    same(second.ok("session_ids", {{"stream_id", kStream}}).at("session_ids"), ids, "same sessions");
    same(decrypt_text(second, e1), "before restart", "old event");
    auto e2 = encrypt(second, kMegolm, "after restart");
    expect(e2.at("created_session") == false && e2.at("session_id") == e1.at("session_id"), "same outbound session", e2);
    auto& other = ctx.a();
    auto od = device(init(other, kUserA));
    share_to(second, other, od, kMegolm, json::array({e1.at("session_id")}));
    same(decrypt_text(other, e2), "after restart", "a peer reads the continued session");
    same(second.quit(), 0, second.name() + ": clean exit");
    auto& wrong = ctx.make(side.role);
    wrong.err("init", {{"user_id", kUserC}, {"store", store}, {"pickle_key", "not the key"}}, "STORE_ERROR");
  }
}

// docs/compat.md: the canonical client ignores an empty pickle key and takes
// DEFAULT_KEY; this library refuses it and creates nothing.
void empty_pickle_key(Ctx& ctx) {
  for (const auto& side : kSides) {
    auto path = ctx.dir + "/" + side.tag + "-empty-key.db";
    auto& d = ctx.make(side.role);
    auto r = d.call("init", {{"user_id", kUserA}, {"store", "memory"}, {"pickle_key", ""}});
    if (is_error(r, "INVALID_ARGUMENT")) {
      d.err("init", {{"user_id", kUserA}, {"store", {{"sqlite", path}}}, {"pickle_key", ""}}, "INVALID_ARGUMENT");
      expect(!std::filesystem::exists(path), "no store file created");
      d.err("device", {}, "NOT_INITIALIZED");
      continue;
    }
    if (!d.is_peer() || r.value("ok", false) != true) ctx.client_behaviour(d, false, "an empty pickle key", "INVALID_ARGUMENT", r);
    // The client's documented behaviour: the key it took instead, and the store
    // opens again under it.
    auto& c = ctx.make(side.role);
    auto dev = device(c.ok("init", {{"user_id", kUserA}, {"store", {{"sqlite", path}}}, {"pickle_key", ""}}));
    auto exported = bytes(c.ok("export_device").at("exported_device_pb"));
    same(std::string(ExportedDevice::decode(exported).pickle_key.view()), "DEFAULT_KEY", "the default key");
    same(c.quit(), 0, c.name() + ": clean exit");
    auto& again = ctx.make(side.role);
    same(device(again.ok("init", {{"user_id", kUserA}, {"store", {{"sqlite", path}}}, {"pickle_key", "DEFAULT_KEY"}})), dev,
         "opened with DEFAULT_KEY");
    ctx.client_behaviour(d, true, "an empty pickle key is taken as DEFAULT_KEY (docs/compat.md)", "INVALID_ARGUMENT", r);
  }
}

// docs/compat.md: the client's olm binding ends megolm version-0 and olm
// plaintexts at the first NUL; this library returns every byte.
void nul_bytes(Ctx& ctx) {
  auto& a = ctx.a();
  auto& b = ctx.b();
  auto ad = device(init(a, kUserA));
  auto bd = device(init(b, kUserB));
  const std::string msg("abc\0def", 7);
  for (const auto& alg : {kMegolm, kHybrid}) {
    auto v0 = encrypt(a, alg, msg, {{"version", 0}});
    auto v1 = encrypt(a, alg, msg);
    share_to(a, b, bd, alg, json::array({v0.at("session_id")}));
    auto got = decrypt_text(b, v0);
    if (got != msg) {
      if (alg != kMegolm) same(got, msg, alg + " version 0");
      ctx.client_behaviour(b, got == "abc", "a megolm version 0 plaintext ends at its first NUL (docs/compat.md)", msg, got);
    }
    same(decrypt_text(b, v1), msg, alg + " version 1");
  }
  auto out = a.ok("encrypt_to_devices", {{"payload", msg}, {"devices", json::array({bd})}});
  auto got = b.ok("decrypt_from_device", {{"ciphertext", out.at("ciphertexts").at(bd.at("device_key").get<std::string>())},
                                          {"sender_key", ad.at("device_key")}})
                 .at("payload");
  if (got != msg) ctx.client_behaviour(b, got == "abc", "an olm plaintext ends at its first NUL (docs/compat.md)", msg, got);
}

// docs/driver.md: init's store modes refuse the same paths with the same codes
// in every driver (the canonical one over its snapshot file).
void store_open_modes(Ctx& ctx) {
  for (const auto& side : kSides) {
    auto path = ctx.dir + "/" + side.tag + "-modes.db";
    auto store = [&](const std::string& p, const char* mode) {
      json s = {{"sqlite", p}};
      if (mode) s["mode"] = mode;
      return s;
    };
    auto& first = ctx.make(side.role);
    first.err("init", {{"user_id", kUserC}, {"store", store(path, "open")}}, "STORE_ERROR");
    expect(!std::filesystem::exists(path), first.name() + ": open creates nothing");
    first.err("init", {{"user_id", kUserC}, {"store", store(path, "sometimes")}}, "INVALID_ARGUMENT");
    auto made = first.ok("init", {{"user_id", kUserC}, {"store", store(path, "create")}});
    same(first.quit(), 0, first.name() + ": clean exit");
    auto& second = ctx.make(side.role);
    second.err("init", {{"user_id", kUserC}, {"store", store(path, "create")}}, "STORE_ERROR");
    for (const char* mode : {"open", "either", static_cast<const char*>(nullptr)}) {
      auto again = second.ok("init", {{"user_id", kUserC}, {"store", store(path, mode)}});
      same(again.at("device_key"), made.at("device_key"), second.name() + ": " + (mode ? mode : "no") + " mode opens the same device");
    }
    auto empty = ctx.dir + "/" + side.tag + "-empty.db";
    std::ofstream(empty).close();
    for (const char* mode : {"open", "either", "create"}) {
      second.err("init", {{"user_id", kUserC}, {"store", store(empty, mode)}}, "STORE_ERROR");
    }
    same(second.quit(), 0, second.name() + ": clean exit");
  }
}

// ---- damaging a stopped driver's store file

enum class Stored { kOutbound, kInbound };

// One character of a pickle's text changed (the middle one): libolm's MAC over
// the pickle then fails, and nothing else about the record changes.
template <typename Text>
void flip_middle(Text& pickle, const std::string& what) {
  expect(pickle.size() > 0, what + ": a stored pickle");
  auto& c = pickle.data()[pickle.size() / 2];
  c = c == 'A' ? 'B' : 'A';
}

// The file formats the damage can be done to: this library's SQLite store
// (docs/store.md), and the canonical driver's snapshot (a JSON object whose
// exported_device_b64 is the client's ExportedDevice, docs/driver.md).
enum class StoreFile { kSqliteStore, kSnapshot };

StoreFile store_file_kind(const std::string& path, json& snapshot) {
  auto unknown = [&](const std::string& what) {
    return NotExpressible{"the peer's store file " + what +
                          ": the scenario changes a stored pickle of a stopped driver, which it can do only in this "
                          "library's SQLite store or the canonical driver's snapshot file (docs/driver.md)"};
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) throw unknown("does not exist at the path given to init");
  std::stringstream all;
  all << in.rdbuf();
  const std::string bytes = all.str();
  static constexpr char kSqliteMagic[] = "SQLite format 3";  // and its NUL: 16 bytes
  if (bytes.size() >= 100 && std::memcmp(bytes.data(), kSqliteMagic, sizeof kSqliteMagic) == 0) {
    // The header's application id (offset 68, big-endian): "TwnE" for a towns-e2ee store.
    uint32_t app = 0;
    for (size_t i = 68; i < 72; ++i) app = (app << 8) | static_cast<uint8_t>(bytes[i]);
    if (app != 0x54776e45) throw unknown("is a SQLite database of another application");
    return StoreFile::kSqliteStore;
  }
  snapshot = json::parse(bytes, nullptr, false);
  if (snapshot.is_discarded() || !snapshot.is_object() || !snapshot.contains("exported_device_b64") ||
      !snapshot.at("exported_device_b64").is_string()) {
    throw unknown("is in a format the suite does not know");
  }
  return StoreFile::kSnapshot;
}

// Changes one character of the pickle of a stored megolm session (outbound or
// inbound, by stream and session id) in the store file of a driver that has
// quit. In this library's SQLite store the row is read and written again
// through SqliteCryptoStore itself, so it is sealed as the store seals rows and
// opens: only libolm refuses the pickle. In the canonical driver's snapshot the
// session's pickle in the exported device is changed. Any other file: the
// scenario is not expressible with this peer.
void damage_stored_pickle(const Driver& d, const std::string& path, Stored which, const std::string& stream_id,
                          const std::string& session_id, const std::string& pickle_key) {
  const std::string what = d.name() + (which == Stored::kOutbound ? ": the stored outbound session " : ": the stored inbound session ") + session_id;
  json snapshot;
  if (store_file_kind(path, snapshot) == StoreFile::kSqliteStore) {
    try {
      auto store = SqliteCryptoStore::open(path, crypto::SecretView(pickle_key), StoreOpenMode::kOpen);
      auto record = which == Stored::kOutbound ? store->get_outbound_session(stream_id)
                                                : store->get_inbound_session(stream_id, session_id);
      expect(record.has_value() && record->session_id == session_id, what + " in the SQLite store",
             record ? json(record->session_id) : json(nullptr));
      flip_middle(record->pickle, what);
      StoreChanges changes;
      (which == Stored::kOutbound ? changes.outbound_sessions : changes.inbound_sessions).push_back(*record);
      expect(store->save_changes(changes), what + " written back");
    } catch (const Error& e) {
      throw Failure{what + ": the SQLite store the driver wrote does not open or read under its pickle key", "a readable store",
                    e.what()};
    }
    return;
  }
  ExportedDevice device;
  try {
    auto raw = crypto::base64_decode_secret(snapshot.at("exported_device_b64").get<std::string>(), crypto::Base64Padding::kOptional);
    device = ExportedDevice::decode(raw.span());
  } catch (const Error& e) {
    throw Failure{what + ": the snapshot's exported_device_b64 is not an ExportedDevice", "an ExportedDevice", e.what()};
  }
  auto& list = which == Stored::kOutbound ? device.outbound_sessions : device.inbound_sessions;
  auto it = std::find_if(list.begin(), list.end(),
                         [&](const auto& s) { return s.stream_id == stream_id && s.session_id == session_id; });
  expect(it != list.end(), what + " in the snapshot");
  flip_middle(it->session, what);
  snapshot["exported_device_b64"] = crypto::base64_encode(device.encode().span(), crypto::Base64Padding::kPadded);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << snapshot.dump();
  if (!out.flush()) throw Failure{what + ": cannot write the snapshot back", path, nullptr};
}

// docs/compat.md, "stored megolm session does not unpickle": the canonical
// client treats a stored outbound session it cannot unpickle as none and
// starts a new one; this library refuses (STORE_CORRUPT, the driver's
// STORE_ERROR) and creates nothing. Either way the inbound copy of the session
// (a separate row) still decrypts the history.
void damaged_outbound_session(Ctx& ctx) {
  for (const auto& side : kSides) {
    auto path = ctx.dir + "/" + side.tag + "-damaged-outbound.db";
    json init_args = {{"user_id", kUserC}, {"store", {{"sqlite", path}}}, {"pickle_key", "damage key"}};
    auto& first = ctx.make(side.role);
    first.ok("init", init_args);
    auto e1 = encrypt(first, kMegolm, "before the damage");
    same(first.quit(), 0, first.name() + ": clean exit");
    damage_stored_pickle(first, path, Stored::kOutbound, kStream, e1.at("session_id").get<std::string>(), "damage key");
    auto& second = ctx.make(side.role);
    second.ok("init", init_args);
    auto r = second.call("encrypt", {{"stream_id", kStream}, {"algorithm", kMegolm}, {"plaintext_b64", b64("after the damage")}});
    auto ids = [&] { return second.ok("session_ids", {{"stream_id", kStream}}).at("session_ids"); };
    if (is_error(r, "STORE_ERROR")) {
      same(ids(), json::array({e1.at("session_id")}), second.name() + ": nothing created");
    } else {
      bool fresh = r.value("ok", false) == true && r.value("created_session", json()) == json(true) &&
                   r.contains("session_id") && r.at("session_id") != e1.at("session_id");
      ctx.client_behaviour(second, fresh,
                           "a stored outbound session that does not unpickle is replaced by a new one (docs/compat.md)",
                           "STORE_ERROR", r);
      same(ids(), sorted(json::array({e1.at("session_id"), r.at("session_id")})), second.name() + ": two sessions");
    }
    same(decrypt_text(second, e1), "before the damage", second.name() + ": history still decrypts (its inbound row is intact)");
    same(second.quit(), 0, second.name() + ": clean exit");
  }
}

// An import over a held megolm session whose stored pickle is damaged fails
// for that key in both (the row stays). Decrypting with it is libolm's error in
// the client (the driver's DECRYPTION_FAILED) and STORE_CORRUPT here
// (STORE_ERROR): docs/compat.md, "stored megolm session does not unpickle".
void import_over_damaged_session(Ctx& ctx) {
  auto& sender = ctx.a();
  init(sender, kUserA);
  auto m = encrypt(sender, kMegolm, "held once");
  auto keys = sender.ok("export_sessions", {{"stream_id", kStream}}).at("sessions");
  for (const auto& side : kSides) {
    auto path = ctx.dir + "/" + side.tag + "-damaged-inbound.db";
    json init_args = {{"user_id", kUserB}, {"store", {{"sqlite", path}}}, {"pickle_key", "damage key"}};
    auto& first = ctx.make(side.role);
    first.ok("init", init_args);
    same(first.ok("import_sessions", {{"sessions", keys}}).at("imported"), json::array({m.at("session_id")}),
         first.name() + ": imported");
    same(first.quit(), 0, first.name() + ": clean exit");
    damage_stored_pickle(first, path, Stored::kInbound, kStream, m.at("session_id").get<std::string>(), "damage key");
    auto& second = ctx.make(side.role);
    second.ok("init", init_args);
    auto again = second.ok("import_sessions", {{"sessions", keys}});
    same(json::array({again.at("imported"), again.at("failed")}), json::array({json::array(), json::array({m.at("session_id")})}),
         second.name() + ": the import over the damaged session fails");
    auto r = second.call("decrypt", {{"stream_id", kStream}, {"encrypted_data_pb", m.at("encrypted_data_pb")}});
    if (!is_error(r, "STORE_ERROR")) {
      ctx.client_behaviour(second, is_error(r, "DECRYPTION_FAILED"),
                           "a stored inbound session that does not unpickle fails with libolm's error (docs/compat.md)",
                           "STORE_ERROR", r);
    }
    same(second.quit(), 0, second.name() + ": clean exit");
  }
}

// Sessions of one miniblock, from three devices, held by one: the canonical
// client's in-memory store encrypts with the most recently used one; this
// library (and the client's IndexedDB store) with the lowest session id
// (docs/protocol.md section 6.3).
void grpaes_tie_on_miniblock(Ctx& ctx) {
  json keys = json::array();
  json events = json::array();
  for (int i = 0; i < 3; ++i) {
    auto& x = ctx.a();
    init(x, kUserA);
    events.push_back(encrypt(x, kHybrid, "from device " + std::to_string(i)));
    auto exported = x.ok("export_sessions", {{"stream_id", kStream}});
    for (const auto& k : exported.at("sessions")) keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end(), [](const json& x, const json& y) { return x.at("sessionId") < y.at("sessionId"); });
  expect(keys.size() == 3, "three sessions", keys);
  auto low = keys[0].at("sessionId"), mid = keys[1].at("sessionId"), high = keys[2].at("sessionId");
  auto& d = ctx.b();
  init(d, kUserB);
  for (const auto& k : keys) {
    same(d.ok("import_sessions", {{"sessions", json::array({k})}}).at("imported"), json::array({k.at("sessionId")}),
         "imported, lowest id first");
  }
  auto sealed_with = [&] { return encrypt(d, kHybrid, "which key?").at("session_id"); };
  auto first = sealed_with();
  bool canonical = false;
  if (first != low) {
    ctx.client_behaviour(d, first == high, "the client's memory store seals with the most recently used session (docs/compat.md)",
                         low, first);
    canonical = true;
  }
  size_t at = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].at("session_id") == mid) at = i;
  }
  same(decrypt_text(d, events[at]), "from device " + std::to_string(at), "decrypts with the middle one");
  same(sealed_with(), canonical ? mid : low, "after reading the middle one");
}

}  // namespace

void add_store_scenarios(std::vector<Scenario>& out) {
  out.push_back({"bad_inputs", "protocol.md 16.5, 16.6", "AB", bad_inputs});
  out.push_back({"store_restart", "protocol.md 4.5, 16.7", "AB", store_restart});
  out.push_back({"empty_pickle_key", "protocol.md 4.4, 16.4", "AB", empty_pickle_key});
  out.push_back({"nul_bytes", "protocol.md 5.4, 7.3", "AB", nul_bytes});
  out.push_back({"store_open_modes", "protocol.md 16.7", "AB", store_open_modes});
  out.push_back({"damaged_outbound_session", "protocol.md 5.2, 16.7", "AB", damaged_outbound_session});
  out.push_back({"import_over_damaged_session", "protocol.md 5.7, 16.7", "AB", import_over_damaged_session});
  out.push_back({"grpaes_tie_on_miniblock", "protocol.md 6.3", "AB", grpaes_tie_on_miniblock});
}

}  // namespace towns::conformance
