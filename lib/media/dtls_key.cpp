// media/dtls_key: see dtls_key.hpp for why the executable exports RSA_generate_key_ex.
#include "media/dtls_key.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <system_error>

#include "media/gst_util.hpp"

namespace p2p::media {
namespace {

constexpr int kBits = 2048;

struct State {
  std::mutex m;
  std::filesystem::path file;
  std::chrono::hours max_age = kDtlsKeyMaxAge;
  DtlsKeyOrigin last;
};
State& state() {
  static State s;
  return s;
}

using detail::Pkey;

bool is_our_kind(EVP_PKEY* k) {
  if (k == nullptr || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) != kBits) return false;
  BIGNUM* e = nullptr;
  bool ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && BN_is_word(e, RSA_F4);
  BN_free(e);
  return ok;
}

bool signs_and_verifies(EVP_PKEY* k) {
  const unsigned char digest[32] = {'p', '2', 'p'};
  unsigned char sig[512];
  size_t sig_len = sizeof sig;
  bool ok = false;
  if (EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_pkey(nullptr, k, nullptr)) {
    ok = EVP_PKEY_sign_init(c) == 1 && EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
         EVP_PKEY_sign(c, sig, &sig_len, digest, sizeof digest) == 1 && EVP_PKEY_verify_init(c) == 1 &&
         EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
         EVP_PKEY_verify(c, sig, sig_len, digest, sizeof digest) == 1;
    EVP_PKEY_CTX_free(c);
  }
  return ok;
}

// The stored key, or nullptr with the reason in `why` (nothing said when there is no file yet).
Pkey read_key(const std::filesystem::path& file, std::chrono::hours max_age, std::string& why) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto written = fs::last_write_time(file, ec);
  if (ec) return nullptr;  // no file yet
  if (fs::file_time_type::clock::now() - written > max_age) {
    why = "the stored DTLS key is older than " + std::to_string(max_age.count()) + " h: making a new one";
    return nullptr;
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || (st.st_mode & 077) != 0 || st.st_uid != ::geteuid()) {
    why = file.string() + " is readable by others or not ours: making a new DTLS key";
    return nullptr;
  }
  FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    why = "cannot read " + file.string() + ": making a new DTLS key";
    return nullptr;
  }
  Pkey k(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!is_our_kind(k.get())) {
    why = file.string() + " is not a 2048-bit RSA key: making a new one";
    return nullptr;
  }
  // A key whose parts do not fit would make every handshake fail: sign and verify once (about
  // 2 ms; OpenSSL's full pairwise check tests the primes and takes 50).
  if (!signs_and_verifies(k.get())) {
    why = file.string() + " holds an inconsistent RSA key: making a new one";
    return nullptr;
  }
  return k;
}

// Written to a private temporary file and renamed, so a reader never sees half a key and two
// processes starting together each leave a whole one.
bool write_key(const std::filesystem::path& file, EVP_PKEY* k, std::string& why) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  auto tmp = file;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE* f = fd >= 0 ? ::fdopen(fd, "wb") : nullptr;
  bool ok = f != nullptr;
  if (ok) {
    ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    ok = (std::fflush(f) == 0) && ok && ::fsync(::fileno(f)) == 0;
    ok = (std::fclose(f) == 0) && ok;
  } else if (fd >= 0) {
    ::close(fd);
  }
  if (ok) fs::rename(tmp, file, ec);
  if (ok && !ec) return true;
  fs::remove(tmp, ec);
  why = "cannot store the DTLS key in " + file.string() + ": the next start will make one again";
  return false;
}

// Copies the key's parts into an RSA made by the caller (the plugin's RSA_new()).
bool fill(RSA* out, EVP_PKEY* k) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const RSA* in = EVP_PKEY_get0_RSA(k);
  if (in == nullptr) return false;
  const BIGNUM *n, *e, *d, *p, *q, *dp, *dq, *qi;
  RSA_get0_key(in, &n, &e, &d);
  RSA_get0_factors(in, &p, &q);
  RSA_get0_crt_params(in, &dp, &dq, &qi);
  if (n == nullptr || e == nullptr || d == nullptr || p == nullptr || q == nullptr || dp == nullptr ||
      dq == nullptr || qi == nullptr)
    return false;
  return RSA_set0_key(out, BN_dup(n), BN_dup(e), BN_dup(d)) == 1 && RSA_set0_factors(out, BN_dup(p), BN_dup(q)) == 1 &&
         RSA_set0_crt_params(out, BN_dup(dp), BN_dup(dq), BN_dup(qi)) == 1;
#pragma GCC diagnostic pop
}

}  // namespace

void use_dtls_key_file(std::filesystem::path file, std::chrono::hours max_age) {
  auto& s = state();
  std::lock_guard lock(s.m);
  s.file = std::move(file);
  s.max_age = max_age;
}

DtlsKeyOrigin last_dtls_key() {
  auto& s = state();
  std::lock_guard lock(s.m);
  return s.last;
}

void warm_dtls_certificate() {
  ensure_gst_init();
  if (GstElement* e = gst_element_factory_make("dtlsdec", nullptr)) gst_object_unref(gst_object_ref_sink(e));
}

void detail::PkeyFree::operator()(evp_pkey_st* k) const { EVP_PKEY_free(k); }

detail::Pkey detail::dtls_key_for_certificate() {
  auto& s = state();
  std::lock_guard lock(s.m);
  const std::int64_t t0 = monotonic_us();
  DtlsKeyOrigin o;
  Pkey k;
  if (!s.file.empty()) k = read_key(s.file, s.max_age, o.warning);
  if (k) {
    o.source = DtlsKeyOrigin::file;
  } else {
    k.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(kBits)));
    if (k && !s.file.empty()) {
      std::string why;
      o.source = write_key(s.file, k.get(), why) ? DtlsKeyOrigin::made_and_stored : DtlsKeyOrigin::made;
      if (!why.empty()) o.warning = o.warning.empty() ? why : o.warning + "; " + why;
    } else {
      o.source = k ? DtlsKeyOrigin::made : DtlsKeyOrigin::none;
    }
  }
  o.ms = static_cast<double>(monotonic_us() - t0) / 1000.0;
  s.last = o;
  return k;
}

}  // namespace p2p::media

// The plugin's call lands here (the executable's definition comes first in the global scope).
// Anything but the plugin's exact request goes to libcrypto's own function.
extern "C" __attribute__((visibility("default"))) int RSA_generate_key_ex(RSA* rsa, int bits, BIGNUM* e, BN_GENCB* cb) {
  if (rsa == nullptr || bits != p2p::media::kBits || e == nullptr || !BN_is_word(e, RSA_F4) || cb != nullptr) {
    using Fn = int (*)(RSA*, int, BIGNUM*, BN_GENCB*);
    static Fn real = reinterpret_cast<Fn>(::dlvsym(RTLD_NEXT, "RSA_generate_key_ex", "OPENSSL_3.0.0"));
    return real != nullptr ? real(rsa, bits, e, cb) : 0;
  }
  auto k = p2p::media::detail::dtls_key_for_certificate();
  return k && p2p::media::fill(rsa, k.get()) ? 1 : 0;
}
