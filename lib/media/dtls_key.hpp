// media/dtls_key: the RSA key behind this process's DTLS certificate, kept in a file so that a
// new broadcast or watch does not spend 0.1-0.7 s of its start making one.
//
// GStreamer 1.22's dtls plugin makes its one certificate per process in dtlsdec's instance init,
// with RSA_generate_key_ex(2048, 65537), before webrtcbin offers any hook; and webrtcbin 1.22
// cannot take a certificate of ours (it fingerprints the whole PEM, key included). So the
// p2pstream executable exports its own RSA_generate_key_ex, which the plugin binds to when it is
// loaded. It fills the key from the file, or makes one with libcrypto and stores it. GStreamer
// still makes a new self-signed certificate (serial, validity, fingerprint) around it each run.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace p2p::media {

// Keys older than this are replaced, so a key read off a disk is not used for ever.
inline constexpr std::chrono::hours kDtlsKeyMaxAge{24 * 7};

// Keeps the key in `file` (mode 0600). An empty path turns the cache off: every process makes its
// own key, as plain GStreamer does. Call before the first peer connection (warm_dtls_certificate).
void use_dtls_key_file(std::filesystem::path file, std::chrono::hours max_age = kDtlsKeyMaxAge);

// dtlsdec asks for the process's one key when the first one is created. Run this on a helper
// thread at start-up so the first peer connection does not wait for it.
void warm_dtls_certificate();

// What the last key request did, for --verbose output and tests.
struct DtlsKeyOrigin {
  enum Source { none, file, made_and_stored, made } source = none;
  double ms = 0;        // time spent in the request
  std::string warning;  // why a file was not used or not written (empty when all went well)
};
DtlsKeyOrigin last_dtls_key();

namespace detail {
struct PkeyFree {
  void operator()(evp_pkey_st* k) const;
};
using Pkey = std::unique_ptr<evp_pkey_st, PkeyFree>;
// The work behind the exported RSA_generate_key_ex, callable directly by tests: a 2048-bit RSA
// key with e = 65537 from the file (or newly made, and stored), or null.
Pkey dtls_key_for_certificate();
}  // namespace detail

}  // namespace p2p::media
