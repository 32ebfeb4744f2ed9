// value.hpp — muster::Value, the C++ form of the wire's dynamic value (schema/value.fbs),
// and its encoding to and from FlatBuffers.
// Owns: the in-memory value model shared by the SDK, the CLI, the bridge and the tests.
// Must never: lose information on a round trip through the wire (int64 stays int64,
// bytes stay bytes, map order is kept).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <flatbuffers/flatbuffers.h>

namespace muster {

namespace wire {
struct Value;
struct Values;
}  // namespace wire

struct Value;

// An immutable byte string. Copying one shares its storage, and a large one decoded from a
// received frame (decode_values with an owner) is read in place, kept alive by that frame:
// a 1 MiB payload is not copied to be decoded, handed to a handler, or passed on.
class Bytes {
 public:
  Bytes() = default;
  Bytes(std::vector<std::uint8_t> v)  // takes the vector's storage
      : Bytes(std::make_shared<const std::vector<std::uint8_t>>(std::move(v))) {}
  Bytes(std::size_t n, std::uint8_t fill) : Bytes(std::vector<std::uint8_t>(n, fill)) {}
  Bytes(std::initializer_list<std::uint8_t> b) : Bytes(std::vector<std::uint8_t>(b)) {}
  template <class It>
  Bytes(It first, It last) : Bytes(std::vector<std::uint8_t>(first, last)) {}
  // `data`, not copied, kept alive by `owner`.
  static Bytes view(std::shared_ptr<const void> owner, std::span<const std::uint8_t> data) {
    Bytes b;
    b.owner_ = std::move(owner);
    b.data_ = data.data();
    b.size_ = data.size();
    return b;
  }

  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::uint8_t* begin() const { return data_; }
  const std::uint8_t* end() const { return data_ + size_; }
  std::uint8_t operator[](std::size_t i) const { return data_[i]; }
  std::span<const std::uint8_t> span() const { return {data_, size_}; }
  friend bool operator==(const Bytes& a, const Bytes& b) {
    return a.size_ == b.size_ && (a.data_ == b.data_ || std::equal(a.begin(), a.end(), b.begin()));
  }

 private:
  explicit Bytes(std::shared_ptr<const std::vector<std::uint8_t>> v)
      : owner_(v), data_(v->data()), size_(v->size()) {}
  std::shared_ptr<const void> owner_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

using List = std::vector<Value>;

// An ordered map with unique string keys (the order is part of the value).
class Map {
 public:
  using Entry = std::pair<std::string, Value>;
  Map() = default;
  Map(std::initializer_list<Entry> entries);

  // Inserts or replaces; keeps the position of an existing key.
  Value& set(std::string key, Value value);
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  bool erase(std::string_view key);

  // size, empty and reserve are defined after Value (they need it complete; clang insists).
  std::size_t size() const;
  bool empty() const;
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  auto begin() { return entries_.begin(); }
  auto end() { return entries_.end(); }
  void reserve(std::size_t n);

  friend bool operator==(const Map&, const Map&);

 private:
  std::vector<Entry> entries_;
};

struct ErrorValue {
  std::string code;
  std::string message;
  friend bool operator==(const ErrorValue&, const ErrorValue&) = default;
};

// A bytes value that travels as chunks of one of the call's streams (PROTOCOL.md §7.9): the
// message carries this reference; the bytes come in Chunk messages of `stream`. Decoding
// refuses stream 0 and a sha256 that is not 32 bytes.
struct ChunkedValue {
  std::uint32_t stream = 0;
  std::uint64_t size = 0;
  std::array<std::uint8_t, 32> sha256{};
  friend bool operator==(const ChunkedValue&, const ChunkedValue&) = default;
};

enum class ValueKind { Null, Bool, Int, Float, String, Bytes, List, Map, Error, Chunked };

struct Value {
  using Storage = std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes,
                               List, Map, ErrorValue, ChunkedValue>;
  Storage v;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v(b) {}
  Value(int i) : v(static_cast<std::int64_t>(i)) {}
  Value(long i) : v(static_cast<std::int64_t>(i)) {}
  Value(long long i) : v(static_cast<std::int64_t>(i)) {}
  Value(unsigned i) : v(static_cast<std::int64_t>(i)) {}
  Value(double d) : v(d) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(std::string_view s) : v(std::string(s)) {}
  Value(Bytes b) : v(std::move(b)) {}
  Value(List l) : v(std::move(l)) {}
  Value(Map m) : v(std::move(m)) {}
  Value(ErrorValue e) : v(std::move(e)) {}
  Value(ChunkedValue c) : v(c) {}

  ValueKind kind() const { return static_cast<ValueKind>(v.index()); }
  bool is_null() const { return kind() == ValueKind::Null; }

  // Typed access; throw std::runtime_error naming the expected and actual kind.
  bool as_bool() const;
  std::int64_t as_int() const;
  double as_number() const;  // Int or Float
  const std::string& as_string() const;
  const Bytes& as_bytes() const;
  const List& as_list() const;
  const Map& as_map() const;
  Map& as_map();
  const ErrorValue& as_error() const;
  const ChunkedValue& as_chunked() const;

  friend bool operator==(const Value& a, const Value& b) { return a.v == b.v; }
};

inline std::size_t Map::size() const { return entries_.size(); }
inline bool Map::empty() const { return entries_.empty(); }
inline void Map::reserve(std::size_t n) { entries_.reserve(n); }

// "null", "bool", "int", "float", "string", "bytes", "list", "map", "error", "chunked".
std::string_view kind_name(ValueKind k);

// ---- FlatBuffers encoding -------------------------------------------------------------

flatbuffers::Offset<wire::Value> encode_value(flatbuffers::FlatBufferBuilder& fbb, const Value& v);
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<void>>> encode_entries(
    flatbuffers::FlatBufferBuilder& fbb, const Map& m);

// Reads a verified wire value. A null pointer reads as Null. Throws std::runtime_error if a
// string in it (a String, a map key, an Error's code or message) is not valid UTF-8.
Value decode_value(const wire::Value* v);
Map decode_values(const wire::Values* v);

// A complete `Values` buffer (identifier MSVL), as carried in nested payload fields.
std::vector<std::uint8_t> encode_values(const Map& m);
// The same Values written straight into `fbb` as a [ubyte] vector aligned for nesting (the
// inputs/outputs/parameters fields), with no intermediate buffer; the bytes may differ from
// encode_values' in padding only. Call it before `fbb` holds any table (strings, scalar
// vectors and other nested Values may come first): a table built earlier could lend the
// nested buffer a vtable that lies outside it.
flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> create_nested_values(flatbuffers::FlatBufferBuilder& fbb,
                                                                            const Map& m);
// About how many bytes encode_values(m) takes: to size a builder that will hold it.
std::size_t encoded_size_hint(const Map& m);

// Verifies and decodes a nested `Values` buffer. Empty input is an empty map.
// Throws std::runtime_error if the bytes are not a valid Values buffer (strings not UTF-8
// included). With an `owner` that keeps `bytes` alive (the received frame), bytes values of
// kBytesViewMin or more are views into it instead of copies.
Map decode_values(std::span<const std::uint8_t> bytes, std::shared_ptr<const void> owner = nullptr);
// The same for a nested Values field of a message that read_*_message (messages.hpp) returned:
// that verifier checked the nested buffer already (its `nested_flatbuffer` attribute), so it is
// not verified a second time. Same result and errors as decode_values(bytes, owner). Never give
// it bytes that no verifier checked (a separate payload frame, bytes made up by a test).
Map decode_verified_values(std::span<const std::uint8_t> bytes, std::shared_ptr<const void> owner = nullptr);
inline constexpr std::size_t kBytesViewMin = 4096;

}  // namespace muster
