// media/dtls_key: the stored DTLS key is made once, read back, replaced when it is bad, old or
// exposed, and handed out through the exported RSA_generate_key_ex that GStreamer's dtls plugin calls.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "media/dtls_key.hpp"
#include "config/temp_dir.hpp"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"  // RSA_* is what the plugin uses

namespace fs = std::filesystem;
using namespace p2p::media;

namespace {

// A private directory; the key file setting goes back to none when the test ends.
struct TempDir : p2p::config::TempDir {
  TempDir() : p2p::config::TempDir("p2p-dtls") {}
  ~TempDir() { use_dtls_key_file({}); }
};

std::string modulus_hex(const EVP_PKEY* k) {
  const BIGNUM* n = nullptr;
  RSA_get0_key(EVP_PKEY_get0_RSA(k), &n, nullptr, nullptr);
  char* hex = BN_bn2hex(n);
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

void write_pem(const fs::path& file, EVP_PKEY* k) {
  FILE* f = std::fopen(file.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr), 1);
  std::fclose(f);
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace

TEST(MediaDtlsKey, MadeOnceStoredPrivatelyAndReadBack) {
  TempDir t;
  const auto file = t.path() / "sub" / "dtls-key.pem";
  use_dtls_key_file(file);
  auto first = detail::dtls_key_for_certificate();
  ASSERT_TRUE(first);
  EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::made_and_stored);
  EXPECT_EQ(last_dtls_key().warning, "");
  EXPECT_EQ(EVP_PKEY_get_bits(first.get()), 2048);
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(std::distance(fs::directory_iterator(file.parent_path()), fs::directory_iterator()), 1)
      << "no temporary file left behind";

  auto again = detail::dtls_key_for_certificate();
  ASSERT_TRUE(again);
  EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::file);
  EXPECT_EQ(EVP_PKEY_eq(first.get(), again.get()), 1);
  EXPECT_LT(last_dtls_key().ms, 100.0) << "reading must be much cheaper than making";
}

TEST(MediaDtlsKey, NoFileMeansAFreshKeyEachTime) {
  use_dtls_key_file({});
  auto a = detail::dtls_key_for_certificate();
  EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::made);
  auto b = detail::dtls_key_for_certificate();
  ASSERT_TRUE(a && b);
  EXPECT_NE(EVP_PKEY_eq(a.get(), b.get()), 1);
}

TEST(MediaDtlsKey, BadOldOrExposedFilesAreReplaced) {
  TempDir t;
  const auto file = t.path() / "dtls-key.pem";
  use_dtls_key_file(file);
  auto check_replaced = [&](const char* says) {
    auto k = detail::dtls_key_for_certificate();
    ASSERT_TRUE(k) << says;
    EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::made_and_stored) << says;
    EXPECT_NE(last_dtls_key().warning.find(says), std::string::npos) << last_dtls_key().warning;
    // What replaced it is whole and used next time.
    auto next = detail::dtls_key_for_certificate();
    EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::file) << says;
    EXPECT_EQ(EVP_PKEY_eq(k.get(), next.get()), 1) << says;
  };

  std::ofstream(file) << "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n";
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  check_replaced("is not a 2048-bit RSA key");

  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  write_pem(file, small);
  EVP_PKEY_free(small);
  check_replaced("is not a 2048-bit RSA key");

  // The right size, but d does not belong to n: every handshake would fail.
  EVP_PKEY* good = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  EVP_PKEY* other = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  RSA* mixed = RSA_new();
  {
    const BIGNUM *n, *e, *d, *p, *q, *dp, *dq, *qi, *d2;
    RSA_get0_key(EVP_PKEY_get0_RSA(good), &n, &e, &d);
    RSA_get0_factors(EVP_PKEY_get0_RSA(good), &p, &q);
    RSA_get0_crt_params(EVP_PKEY_get0_RSA(other), &dp, &dq, &qi);
    RSA_get0_key(EVP_PKEY_get0_RSA(other), nullptr, nullptr, &d2);
    RSA_set0_key(mixed, BN_dup(n), BN_dup(e), BN_dup(d2));
    RSA_set0_factors(mixed, BN_dup(p), BN_dup(q));
    RSA_set0_crt_params(mixed, BN_dup(dp), BN_dup(dq), BN_dup(qi));
  }
  EVP_PKEY* bad = EVP_PKEY_new();
  EVP_PKEY_assign_RSA(bad, mixed);
  write_pem(file, bad);
  EVP_PKEY_free(bad);
  EVP_PKEY_free(other);
  check_replaced("inconsistent");

  write_pem(file, good);
  fs::permissions(file, fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  check_replaced("readable by others");
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  write_pem(file, good);
  fs::last_write_time(file, fs::file_time_type::clock::now() - kDtlsKeyMaxAge - std::chrono::hours(1));
  check_replaced("older than");
  EVP_PKEY_free(good);
}

TEST(MediaDtlsKey, AnUnwritablePlaceStillGivesAKey) {
  use_dtls_key_file("/proc/version/dtls-key.pem");  // under a file: can be neither read nor written
  auto k = detail::dtls_key_for_certificate();
  ASSERT_TRUE(k);
  EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::made);
  EXPECT_NE(last_dtls_key().warning.find("cannot store the DTLS key"), std::string::npos) << last_dtls_key().warning;
  use_dtls_key_file({});
}

// The dtls plugin resolves RSA_generate_key_ex at run time: it must find ours, which fills the
// plugin's RSA with the stored key, and sends any other request on to libcrypto.
TEST(MediaDtlsKey, TheExportedFunctionServesThePluginsRequestOnly) {
  using Fn = int (*)(RSA*, int, BIGNUM*, BN_GENCB*);
  auto found = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, "RSA_generate_key_ex"));
  auto libcrypto = reinterpret_cast<Fn>(::dlvsym(RTLD_NEXT, "RSA_generate_key_ex", "OPENSSL_3.0.0"));
  ASSERT_NE(found, nullptr);
  ASSERT_NE(libcrypto, nullptr);
  EXPECT_NE(found, libcrypto) << "the executable does not export its RSA_generate_key_ex";

  TempDir t;
  use_dtls_key_file(t.path() / "dtls-key.pem");
  auto stored = detail::dtls_key_for_certificate();
  ASSERT_TRUE(stored);

  BIGNUM* e = BN_new();
  BN_set_word(e, RSA_F4);
  RSA* rsa = RSA_new();
  ASSERT_EQ(found(rsa, 2048, e, nullptr), 1);
  EXPECT_EQ(last_dtls_key().source, DtlsKeyOrigin::file);
  EVP_PKEY* got = EVP_PKEY_new();
  EVP_PKEY_assign_RSA(got, rsa);
  EXPECT_EQ(modulus_hex(got), modulus_hex(stored.get()));
  EXPECT_EQ(EVP_PKEY_eq(got, stored.get()), 1);
  EVP_PKEY_free(got);

  // Another size is not ours to answer: libcrypto makes it.
  RSA* other = RSA_new();
  ASSERT_EQ(found(other, 1024, e, nullptr), 1);
  EXPECT_EQ(RSA_bits(other), 1024);
  RSA_free(other);
  BN_free(e);
}
