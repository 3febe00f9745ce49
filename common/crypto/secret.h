// SecretBytes: an owned byte string for key material, passwords and plaintext credentials.
//
// The storage is wiped with OPENSSL_cleanse whenever it is released (destruction, reassignment,
// growth), so a secret does not linger in freed heap memory. SecretBytes is move-only; copying a
// secret has to be spelled out with Clone(), which keeps copies visible in review.
// Not thread-safe (like std::string).
#ifndef TETHER_COMMON_CRYPTO_SECRET_H_
#define TETHER_COMMON_CRYPTO_SECRET_H_

#include <cstddef>
#include <cstdint>
#include "absl/strings/string_view.h"
#include <vector>

namespace tether::crypto {

// Allocator that wipes every buffer before returning it to the heap.
template <typename T>
struct ZeroizingAllocator {
  using value_type = T;
  ZeroizingAllocator() = default;
  template <typename U>
  ZeroizingAllocator(const ZeroizingAllocator<U>&) {}  // NOLINT(runtime/explicit)
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n);
  template <typename U>
  bool operator==(const ZeroizingAllocator<U>&) const { return true; }
};

// Wipes `size` bytes at `p` in a way the compiler cannot optimise away.
void Cleanse(void* p, std::size_t size);

template <typename T>
void ZeroizingAllocator<T>::deallocate(T* p, std::size_t n) {
  Cleanse(p, n * sizeof(T));
  std::allocator<T>().deallocate(p, n);
}

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::size_t size) : bytes_(size) {}
  explicit SecretBytes(absl::string_view bytes) : bytes_(bytes.begin(), bytes.end()) {}
  SecretBytes(SecretBytes&&) = default;
  SecretBytes& operator=(SecretBytes&& other) {
    if (this != &other) {
      Clear();
      bytes_ = std::move(other.bytes_);
    }
    return *this;
  }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes() = default;  // the allocator wipes the buffer

  SecretBytes Clone() const { return SecretBytes(view()); }

  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  std::size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  // A view of the secret. It must not be copied into a std::string that outlives the call.
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
  }
  void Append(absl::string_view more) { bytes_.insert(bytes_.end(), more.begin(), more.end()); }
  void Resize(std::size_t size) { bytes_.resize(size); }
  // Wipes the content now and makes the secret empty.
  void Clear() {
    Cleanse(bytes_.data(), bytes_.size());
    bytes_.clear();
  }

 private:
  std::vector<uint8_t, ZeroizingAllocator<uint8_t>> bytes_;
};

// Constant-time comparison of two byte strings (CRYPTO_memcmp). Lengths are not secret.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace tether::crypto

#endif  // TETHER_COMMON_CRYPTO_SECRET_H_
