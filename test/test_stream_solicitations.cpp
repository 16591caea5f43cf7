// StreamSolicitations: the stored solicitations of one stream, as the SDK's
// StreamStateView_Members_Solicitations keeps them (docs/protocol.md 9.4).
// The differential suite only sees them through the engine; these pin the
// class itself.
#include "helpers.h"

#include <optional>
#include <string>
#include <vector>

#include "towns/exchange/key_exchange.h"

using namespace towns;

namespace {

using Solicitation = KeySolicitation;
using Fulfillment = KeyFulfillment;

// 20-byte user addresses as the stream records member ids (hex, 0x-prefixed).
const std::string kAlice = "0xa11ce00000000000000000000000000000000001";
const std::string kBob = "0xb0b0000000000000000000000000000000000002";
const std::string kCarol = "0xca201000000000000000000000000000000000c3";

Solicitation sol(const std::string& device, std::vector<std::string> ids, bool new_device = false,
                 const std::string& fallback = "fb") {
  Solicitation s;
  s.device_key = device;
  s.fallback_key = fallback + "-" + device;
  s.is_new_device = new_device;
  for (const auto& id : ids) s.session_ids.push_back(id);
  return s;
}

Bytes address_bytes(std::string_view hex) { return crypto::hex_decode(hex); }

Fulfillment ful(const std::string& user_hex, const std::string& device, std::vector<std::string> ids) {
  Fulfillment f;
  f.user_address = address_bytes(user_hex);
  f.device_key = device;
  for (const auto& id : ids) f.session_ids.push_back(id);
  return f;
}

std::vector<std::string> ids(const Solicitation& s) { return {s.session_ids.begin(), s.session_ids.end()}; }

// all() as "user/device:id,id" strings, to compare order and content at once.
std::vector<std::string> dump(const StreamSolicitations& st) {
  std::vector<std::string> out;
  for (const auto& e : st.all()) {
    std::string line = e.user_id + "/" + e.solicitation.device_key + (e.solicitation.is_new_device ? "!" : "") + ":";
    for (size_t i = 0; i < e.solicitation.session_ids.size(); ++i) {
      if (i) line += ",";
      line += e.solicitation.session_ids[i];
    }
    out.push_back(line);
  }
  return out;
}

}  // namespace

TEST_CASE("apply_solicitation stores the ids sorted and returns what it stored") {
  StreamSolicitations st;
  auto stored = st.apply_solicitation(kAlice, sol("d1", {"c", "a", "b"}, true));
  CHECK(stored.device_key == "d1");
  CHECK(stored.fallback_key == "fb-d1");
  CHECK(stored.is_new_device);
  CHECK(ids(stored) == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(st.all().size() == 1);
  CHECK(st.all()[0].user_id == kAlice);
  CHECK(st.all()[0].solicitation == stored);
}

TEST_CASE("apply_solicitation keeps duplicate ids (sorted, not deduplicated)") {
  StreamSolicitations st;
  auto stored = st.apply_solicitation(kAlice, sol("d1", {"b", "a", "b"}));
  CHECK(ids(stored) == std::vector<std::string>{"a", "b", "b"});
}

TEST_CASE("apply_solicitation replaces per device key, and the replacement goes last") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("d1", {"a"}));
  st.apply_solicitation(kAlice, sol("d2", {"b"}));
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d1:a", kAlice + "/d2:b"});

  // A newer solicitation of d1 replaces the old one (the flag and ids too).
  st.apply_solicitation(kAlice, sol("d1", {"z", "y"}, true));
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d2:b", kAlice + "/d1!:y,z"});

  // An empty one is stored too: it clears what was asked.
  auto empty = st.apply_solicitation(kAlice, sol("d2", {}));
  CHECK(empty.session_ids.size() == 0);
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d1!:y,z", kAlice + "/d2:"});
}

TEST_CASE("apply_solicitation keeps the same device key of different members apart") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("d1", {"a"}));
  st.apply_solicitation(kBob, sol("d1", {"b"}));
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d1:a", kBob + "/d1:b"});
}

TEST_CASE("all() lists members in the order they first solicited") {
  StreamSolicitations st;
  CHECK(st.all().empty());
  st.apply_solicitation(kBob, sol("b1", {"x"}));
  st.apply_solicitation(kAlice, sol("a1", {"y"}));
  st.apply_solicitation(kBob, sol("b2", {"z"}));
  st.apply_solicitation(kBob, sol("b1", {"w"}));  // Bob keeps his place
  CHECK(dump(st) == std::vector<std::string>{kBob + "/b2:z", kBob + "/b1:w", kAlice + "/a1:y"});
}

TEST_CASE("apply_fulfillment removes the fulfilled ids and clears the new-device flag") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("d1", {"c", "a", "b"}, true));
  auto r = st.apply_fulfillment(ful(kAlice, "d1", {"b", "x"}));
  REQUIRE(r);
  CHECK(r->user_id == kAlice);
  CHECK(r->solicitation.device_key == "d1");
  CHECK(r->solicitation.fallback_key == "fb-d1");
  CHECK_FALSE(r->solicitation.is_new_device);
  CHECK(ids(r->solicitation) == std::vector<std::string>{"a", "c"});
  // The stored one is the returned one.
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d1:a,c"});
}

TEST_CASE("apply_fulfillment of every id leaves an empty solicitation stored") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("d1", {"a", "b"}));
  auto r = st.apply_fulfillment(ful(kAlice, "d1", {"a", "b"}));
  REQUIRE(r);
  CHECK(r->solicitation.session_ids.size() == 0);
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d1:"});
}

TEST_CASE("apply_fulfillment of no listed id still clears the new-device flag") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("d1", {"a"}, true));
  auto r = st.apply_fulfillment(ful(kAlice, "d1", {"q"}));
  REQUIRE(r);
  CHECK_FALSE(r->solicitation.is_new_device);
  CHECK(ids(r->solicitation) == std::vector<std::string>{"a"});
}

TEST_CASE("apply_fulfillment matches the member by address bytes: 0x optional, any case") {
  const std::string address = "a11ce00000000000000000000000000000000001";
  for (const std::string& member : {"0x" + address, address, std::string("0xA11CE00000000000000000000000000000000001"),
                                    std::string("A11CE00000000000000000000000000000000001")}) {
    INFO(member);
    StreamSolicitations st;
    st.apply_solicitation(member, sol("d1", {"a", "b"}));
    auto r = st.apply_fulfillment(ful(kAlice, "d1", {"a"}));
    REQUIRE(r);
    CHECK(r->user_id == member);  // the member id as the stream records it
    CHECK(ids(r->solicitation) == std::vector<std::string>{"b"});
  }
}

TEST_CASE("apply_fulfillment matches by user and device key, else nullopt and nothing changes") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("d1", {"a"}, true));
  st.apply_solicitation(kBob, sol("d2", {"a"}, true));
  const auto before = dump(st);

  // Another user's device key.
  CHECK_FALSE(st.apply_fulfillment(ful(kAlice, "d2", {"a"})));
  // A device key nobody used.
  CHECK_FALSE(st.apply_fulfillment(ful(kAlice, "d9", {"a"})));
  // A user who never solicited, with a device key somebody did use.
  CHECK_FALSE(st.apply_fulfillment(ful(kCarol, "d1", {"a"})));
  // An address that is not 20 bytes of anyone's.
  Fulfillment short_address = ful(kAlice, "d1", {"a"});
  short_address.user_address.resize(19);
  CHECK_FALSE(st.apply_fulfillment(short_address));
  CHECK(dump(st) == before);

  auto r = st.apply_fulfillment(ful(kBob, "d2", {"a"}));
  REQUIRE(r);
  CHECK(r->user_id == kBob);
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/d1!:a", kBob + "/d2:"});
}

TEST_CASE("apply_fulfillment skips member ids that are not hex") {
  StreamSolicitations st;
  st.apply_solicitation("alice", sol("d1", {"a"}));
  st.apply_solicitation(kAlice, sol("d1", {"a"}));
  auto r = st.apply_fulfillment(ful(kAlice, "d1", {"a"}));
  REQUIRE(r);
  CHECK(r->user_id == kAlice);
  CHECK(dump(st) == std::vector<std::string>{"alice/d1:a", kAlice + "/d1:"});
}

TEST_CASE("apply_fulfillment on an empty state is nullopt") {
  StreamSolicitations st;
  CHECK_FALSE(st.apply_fulfillment(ful(kAlice, "d1", {"a"})));
  CHECK(st.all().empty());
}

TEST_CASE("remove_member drops every solicitation of that member only") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("a1", {"x"}));
  st.apply_solicitation(kBob, sol("b1", {"y"}));
  st.apply_solicitation(kAlice, sol("a2", {"z"}));
  st.remove_member(kAlice);
  CHECK(dump(st) == std::vector<std::string>{kBob + "/b1:y"});
  CHECK_FALSE(st.apply_fulfillment(ful(kAlice, "a1", {"x"})));

  // Unknown members: nothing happens.
  st.remove_member(kCarol);
  CHECK(dump(st) == std::vector<std::string>{kBob + "/b1:y"});

  // A member who comes back solicits afresh and is listed after the others.
  st.apply_solicitation(kAlice, sol("a1", {"w"}));
  st.apply_solicitation(kBob, sol("b2", {"v"}));
  CHECK(dump(st) == std::vector<std::string>{kBob + "/b1:y", kBob + "/b2:v", kAlice + "/a1:w"});
}

TEST_CASE("remove_member compares member ids exactly") {
  StreamSolicitations st;
  st.apply_solicitation(kAlice, sol("a1", {"x"}));
  st.remove_member("0xA11CE00000000000000000000000000000000001");
  CHECK(dump(st) == std::vector<std::string>{kAlice + "/a1:x"});
}
