// value.cpp — muster::Value accessors and its FlatBuffers encoding.
#include "muster/value.hpp"

#include <cstring>

#include <fmt/format.h>

#include "muster/messages.hpp"
#include "muster/utf8.hpp"
#include "muster/wire/value_generated.h"

namespace muster {

Map::Map(std::initializer_list<Entry> entries) {
  for (auto& e : entries) set(e.first, e.second);
}

Value& Map::set(std::string key, Value value) {
  if (auto* existing = find(key)) {
    *existing = std::move(value);
    return *existing;
  }
  entries_.emplace_back(std::move(key), std::move(value));
  return entries_.back().second;
}

const Value* Map::find(std::string_view key) const {
  for (auto& e : entries_)
    if (e.first == key) return &e.second;
  return nullptr;
}

Value* Map::find(std::string_view key) {
  for (auto& e : entries_)
    if (e.first == key) return &e.second;
  return nullptr;
}

bool Map::erase(std::string_view key) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->first == key) {
      entries_.erase(it);
      return true;
    }
  return false;
}

bool operator==(const Map& a, const Map& b) { return a.entries_ == b.entries_; }

std::string_view kind_name(ValueKind k) {
  static constexpr std::string_view names[] = {"null",  "bool", "int", "float", "string",
                                               "bytes", "list", "map", "error", "chunked"};
  auto i = static_cast<std::size_t>(k);  // a wire kind from a newer writer may be beyond them
  return i < std::size(names) ? names[i] : std::string_view("unknown");
}

namespace {
[[noreturn]] void wrong_kind(const Value& v, ValueKind want) {
  throw std::runtime_error(
      fmt::format("expected a {} value, got {}", kind_name(want), kind_name(v.kind())));
}
template <class T>
const T& get(const Value& v, ValueKind want) {
  if (auto* p = std::get_if<T>(&v.v)) return *p;
  wrong_kind(v, want);
}
}  // namespace

bool Value::as_bool() const { return get<bool>(*this, ValueKind::Bool); }
std::int64_t Value::as_int() const { return get<std::int64_t>(*this, ValueKind::Int); }
double Value::as_number() const {
  if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return get<double>(*this, ValueKind::Float);
}
const std::string& Value::as_string() const { return get<std::string>(*this, ValueKind::String); }
const Bytes& Value::as_bytes() const { return get<Bytes>(*this, ValueKind::Bytes); }
const List& Value::as_list() const { return get<List>(*this, ValueKind::List); }
const Map& Value::as_map() const { return get<Map>(*this, ValueKind::Map); }
Map& Value::as_map() { return const_cast<Map&>(get<Map>(*this, ValueKind::Map)); }
const ErrorValue& Value::as_error() const { return get<ErrorValue>(*this, ValueKind::Error); }
const ChunkedValue& Value::as_chunked() const { return get<ChunkedValue>(*this, ValueKind::Chunked); }

// ---- encoding --------------------------------------------------------------------------

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<void>>> encode_entries(
    flatbuffers::FlatBufferBuilder& fbb, const Map& m) {
  // The entries' offsets: on the stack for a map of up to kInline entries (a heap vector per
  // encoded map was a malloc and a free per call of the SDKs), in a vector beyond.
  constexpr std::size_t kInline = 16;
  std::array<flatbuffers::Offset<wire::Entry>, kInline> inline_entries;
  std::vector<flatbuffers::Offset<wire::Entry>> more;
  auto* entries = inline_entries.data();
  if (m.size() > kInline) {
    more.resize(m.size());
    entries = more.data();
  }
  std::size_t n = 0;
  for (auto& [key, value] : m) {
    auto k = fbb.CreateString(key);
    auto v = encode_value(fbb, value);
    entries[n++] = wire::CreateEntry(fbb, k, v);
  }
  auto vec = fbb.CreateVector(entries, n);
  return flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<void>>>(vec.o);
}

flatbuffers::Offset<wire::Value> encode_value(flatbuffers::FlatBufferBuilder& fbb, const Value& v) {
  using wire::ValueKind;
  switch (v.kind()) {
    case muster::ValueKind::Null: {
      wire::ValueBuilder b(fbb);
      return b.Finish();
    }
    case muster::ValueKind::Bool: {
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Bool);
      b.add_bool_value(std::get<bool>(v.v));
      return b.Finish();
    }
    case muster::ValueKind::Int: {
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Int);
      b.add_int_value(std::get<std::int64_t>(v.v));
      return b.Finish();
    }
    case muster::ValueKind::Float: {
      // Written even when it equals the default 0.0, so that -0.0 keeps its sign.
      fbb.ForceDefaults(true);
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Float);
      b.add_float_value(std::get<double>(v.v));
      auto off = b.Finish();
      fbb.ForceDefaults(false);
      return off;
    }
    case muster::ValueKind::String: {
      auto s = fbb.CreateString(std::get<std::string>(v.v));
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::String);
      b.add_string_value(s);
      return b.Finish();
    }
    case muster::ValueKind::Bytes: {
      auto& bytes = std::get<Bytes>(v.v);
      auto data = fbb.CreateVector(bytes.data(), bytes.size());
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Bytes);
      b.add_bytes_value(data);
      return b.Finish();
    }
    case muster::ValueKind::List: {
      auto& list = std::get<List>(v.v);
      std::vector<flatbuffers::Offset<wire::Value>> items;
      items.reserve(list.size());
      for (auto& item : list) items.push_back(encode_value(fbb, item));
      auto vec = fbb.CreateVector(items);
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::List);
      b.add_list_value(vec);
      return b.Finish();
    }
    case muster::ValueKind::Map: {
      auto vec = encode_entries(fbb, std::get<Map>(v.v));
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Map);
      b.add_map_value(flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Entry>>>(vec.o));
      return b.Finish();
    }
    case muster::ValueKind::Error: {
      auto& e = std::get<ErrorValue>(v.v);
      auto code = fbb.CreateString(e.code);
      auto msg = fbb.CreateString(e.message);
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Error);
      b.add_error_code(code);
      b.add_error_message(msg);
      return b.Finish();
    }
    case muster::ValueKind::Chunked: {
      auto& c = std::get<ChunkedValue>(v.v);
      auto sha = fbb.CreateVector(c.sha256.data(), c.sha256.size());
      wire::ValueBuilder b(fbb);
      b.add_kind(ValueKind::Chunked);
      b.add_chunked_stream(c.stream);
      b.add_chunked_size(c.size);
      b.add_chunked_sha256(sha);
      return b.Finish();
    }
  }
  throw std::logic_error("unreachable value kind");
}

namespace {
// Strings on the wire are UTF-8 (PROTOCOL.md §4). The Verifier does not check that; the
// decoder does, as the Python and TypeScript readers do, so no SDK hands out a string that
// has no JSON form.
std::string str(const flatbuffers::String* s) {
  if (!s) return std::string();
  std::string_view text(s->c_str(), s->size());
  if (!valid_utf8(text)) throw std::runtime_error("a string in the values is not valid UTF-8");
  return std::string(text);
}
// `owner`, if set, keeps the buffer being decoded alive: large bytes values become views.
using Owner = std::shared_ptr<const void>;
Value decode_value_in(const wire::Value* v, const Owner& owner);
Map decode_entries(const flatbuffers::Vector<flatbuffers::Offset<wire::Entry>>* entries, const Owner& owner) {
  Map m;
  if (!entries) return m;
  m.reserve(entries->size());
  for (auto* e : *entries) m.set(str(e->key()), decode_value_in(e->value(), owner));
  return m;
}
Value decode_value_in(const wire::Value* v, const Owner& owner) {
  if (!v) return Value();
  using wire::ValueKind;
  switch (v->kind()) {
    case ValueKind::Null: return Value();
    case ValueKind::Bool: return Value(v->bool_value());
    case ValueKind::Int: return Value(static_cast<long long>(v->int_value()));
    case ValueKind::Float: return Value(v->float_value());
    case ValueKind::String: return Value(str(v->string_value()));
    case ValueKind::Bytes: {
      auto* b = v->bytes_value();
      if (!b) return Value(Bytes());
      if (owner && b->size() >= kBytesViewMin) return Value(Bytes::view(owner, {b->data(), b->size()}));
      if (b->size() == 0) return Value(Bytes());
      // A copy in one block (not a vector and its shared_ptr's control block: two allocations).
      auto copy = std::make_shared_for_overwrite<std::uint8_t[]>(b->size());
      std::memcpy(copy.get(), b->data(), b->size());
      return Value(Bytes::view(copy, {copy.get(), b->size()}));
    }
    case ValueKind::List: {
      List l;
      if (auto* items = v->list_value()) {
        l.reserve(items->size());
        for (auto* item : *items) l.push_back(decode_value_in(item, owner));
      }
      return Value(std::move(l));
    }
    case ValueKind::Map: return Value(decode_entries(v->map_value(), owner));
    case ValueKind::Error: return Value(ErrorValue{str(v->error_code()), str(v->error_message())});
    case ValueKind::Chunked: {
      ChunkedValue c;
      c.stream = v->chunked_stream();
      c.size = v->chunked_size();
      auto* sha = v->chunked_sha256();
      if (c.stream == 0) throw std::runtime_error("a chunked value names stream 0 (the call's items)");
      if (!sha || sha->size() != c.sha256.size())
        throw std::runtime_error("a chunked value's sha256 is not 32 bytes");
      std::copy(sha->begin(), sha->end(), c.sha256.begin());
      return Value(c);
    }
  }
  // An unknown kind from a newer writer reads as null rather than failing the message.
  return Value();
}
}  // namespace

Value decode_value(const wire::Value* v) { return decode_value_in(v, nullptr); }

Map decode_values(const wire::Values* v) { return v ? decode_entries(v->entries(), nullptr) : Map(); }

namespace {
std::size_t size_hint(const Value& v);
std::size_t size_hint(const Map& m) {
  std::size_t n = 32;
  for (auto& [key, value] : m) n += key.size() + 24 + size_hint(value);
  return n;
}
// About the encoded size, so that a builder is allocated once: a 1 MiB bytes value in a
// builder that started at 256 bytes was copied again on each growth.
std::size_t size_hint(const Value& v) {
  switch (v.kind()) {
    case ValueKind::String: return 40 + std::get<std::string>(v.v).size();
    case ValueKind::Bytes: return 40 + std::get<Bytes>(v.v).size();
    case ValueKind::List: {
      std::size_t n = 40;
      for (auto& item : std::get<List>(v.v)) n += 8 + size_hint(item);
      return n;
    }
    case ValueKind::Map: return 40 + size_hint(std::get<Map>(v.v));
    case ValueKind::Error: {
      auto& e = std::get<ErrorValue>(v.v);
      return 56 + e.code.size() + e.message.size();
    }
    case ValueKind::Chunked: return 96;
    default: return 40;
  }
}
void finish_values(flatbuffers::FlatBufferBuilder& fbb, const Map& m) {
  auto entries = encode_entries(fbb, m);
  wire::ValuesBuilder b(fbb);
  b.add_entries(flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<wire::Entry>>>(entries.o));
  fbb.Finish(b.Finish(), wire::ValuesIdentifier());
}
}  // namespace

std::size_t encoded_size_hint(const Map& m) { return size_hint(m); }

std::vector<std::uint8_t> encode_values(const Map& m) {
  flatbuffers::FlatBufferBuilder fbb(size_hint(m));
  finish_values(fbb, m);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> create_nested_values(flatbuffers::FlatBufferBuilder& fbb,
                                                                            const Map& m) {
  // Built in place, not in a second builder and copied over (a 1 MiB payload cost one more
  // copy): the Values buffer is finished inside `fbb`, then a length pushed in front of it
  // makes it a [ubyte] vector, byte for byte the layout CreateVector gives. It starts 8-byte
  // aligned from the end (so in memory, as the finished buffer's size is a multiple of its
  // alignment) and its offsets are all relative, so it reads as a buffer of its own. Finish()
  // also forgets the vtables seen so far, so no later table shares one with it; an earlier
  // table could, hence the contract in value.hpp.
  fbb.Align(8);
  auto start = fbb.GetSize();
  finish_values(fbb, m);
  auto size = static_cast<flatbuffers::uoffset_t>(fbb.GetSize() - start);
  return flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>>(fbb.PushElement(size));
}

Map decode_values(std::span<const std::uint8_t> bytes, std::shared_ptr<const void> owner) {
  if (bytes.empty()) return Map();
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), kVerifierMaxDepth, kVerifierMaxTables);
  if (!verifier.VerifyBuffer<wire::Values>(nullptr))
    throw std::runtime_error("payload is not a valid muster Values buffer");
  return decode_verified_values(bytes, std::move(owner));
}

Map decode_verified_values(std::span<const std::uint8_t> bytes, std::shared_ptr<const void> owner) {
  if (bytes.empty()) return Map();
  try {
    auto* values = flatbuffers::GetRoot<wire::Values>(bytes.data());
    return values ? decode_entries(values->entries(), owner) : Map();
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("payload is not a valid muster Values buffer: {}", e.what()));
  }
}

}  // namespace muster
