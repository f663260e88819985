// test_sha256.cpp — host/sha256 against the FIPS 180-2 / NIST example vectors, incremental
// updates at awkward split points, and the bundled o200k_base ranks file.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "host/sha256.h"

using gptoss::Sha256;

namespace {

std::string sha_hex(const std::string& s) {
  return Sha256::hex(Sha256::digest(std::as_bytes(std::span(s.data(), s.size()))));
}

}  // namespace

TEST_CASE("sha256 matches the FIPS example vectors", "[archive][sha256]") {
  CHECK(sha_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                "klmnopqrlmnopqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(sha_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 incremental updates equal one-shot at every split", "[archive][sha256]") {
  // Lengths around the 55/56/64-byte padding boundaries, split at every point.
  for (size_t len : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200}) {
    std::string s(len, '\0');
    for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(i * 131 + 7);
    const std::string whole = sha_hex(s);
    for (size_t cut = 0; cut <= len; ++cut) {
      Sha256 h;
      h.update(s.data(), cut);
      h.update(s.data() + cut, len - cut);
      INFO("len " << len << " cut " << cut);
      REQUIRE(Sha256::hex(h.final()) == whole);
    }
  }
}

TEST_CASE("sha256 hex parsing", "[archive][sha256]") {
  Sha256::Digest d{};
  const std::string hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  REQUIRE(Sha256::from_hex(hex, &d));
  CHECK(Sha256::hex(d) == hex);
  CHECK_FALSE(Sha256::from_hex(hex.substr(1), &d));
  CHECK_FALSE(Sha256::from_hex(std::string(63, '0') + "g", &d));
}

TEST_CASE("the bundled o200k_base ranks file has the published sha256", "[archive][sha256]") {
  std::ifstream in(std::string(GPTOSS_DATA_DIR) + "/o200k_base.tiktoken", std::ios::binary);
  REQUIRE(in);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(sha_hex(bytes) == "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d");
}
