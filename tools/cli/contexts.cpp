// contexts.cpp — see contexts.hpp.
#include "contexts.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace muster::cli {

namespace {
using Json = nlohmann::json;

Json to_json(const Context& c) {
  Json j = Json::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = v;
  };
  put("description", c.description);
  put("client_address", c.client_address);
  put("data_dir", c.data_dir);
  put("name", c.name);
  put("enrollment_address", c.enrollment_address);
  put("enrollment_token_file", c.enrollment_token_file);
  if (c.insecure) j["insecure"] = true;
  if (c.admin) j["admin"] = true;
  return j;
}

Context from_json(const Json& j) {
  Context c;
  c.description = j.value("description", "");
  c.client_address = j.value("client_address", "");
  c.data_dir = j.value("data_dir", "");
  c.name = j.value("name", "");
  c.enrollment_address = j.value("enrollment_address", "");
  c.enrollment_token_file = j.value("enrollment_token_file", "");
  c.insecure = j.value("insecure", false);
  c.admin = j.value("admin", false);
  return c;
}
}  // namespace

std::filesystem::path contexts_path() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base = xdg && *xdg ? std::filesystem::path(xdg)
                               : home && *home ? std::filesystem::path(home) / ".config"
                                               : std::filesystem::path(".");
  return base / "muster" / "contexts.json";
}

ContextFile load_contexts(const std::filesystem::path& path) {
  ContextFile file;
  std::ifstream in(path);
  if (!in) return file;
  try {
    Json j = Json::parse(in);
    file.current = j.value("current", "");
    if (j.contains("contexts"))
      for (auto& [name, c] : j.at("contexts").items()) file.contexts[name] = from_json(c);
  } catch (const Json::exception& e) {
    throw std::runtime_error(fmt::format("{}: not a muster contexts file: {}", path.string(), e.what()));
  }
  return file;
}

void save_contexts(const ContextFile& file, const std::filesystem::path& path) {
  Json j = Json::object();
  if (!file.current.empty()) j["current"] = file.current;
  j["contexts"] = Json::object();
  for (auto& [name, c] : file.contexts) j["contexts"][name] = to_json(c);
  std::filesystem::create_directories(path.parent_path());
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", tmp.string()));
    ::chmod(tmp.c_str(), 0600);
    out << j.dump(2) << "\n";
    if (!out.flush()) throw std::runtime_error(fmt::format("cannot write {}", tmp.string()));
  }
  std::filesystem::rename(tmp, path);
}

void check_context_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 &&
            name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
                std::string::npos;
  if (!ok) throw std::invalid_argument(fmt::format("invalid context name '{}' (use 1-64 of A-Z a-z 0-9 _ . -)", name));
}

std::optional<std::pair<std::string, Context>> selected_context(const ContextFile& file,
                                                                const std::string& flag) {
  std::string name = flag, from = "--context";
  if (name.empty()) {
    const char* env = std::getenv("MUSTER_CONTEXT");
    if (env && *env) {
      name = env;
      from = "MUSTER_CONTEXT";
    }
  }
  if (name.empty()) {
    name = file.current;
    from = "the current context of " + contexts_path().string();
  }
  if (name.empty()) return std::nullopt;
  auto it = file.contexts.find(name);
  if (it == file.contexts.end())
    throw std::invalid_argument(fmt::format("context '{}' ({}) is not defined (see `muster context list`)", name, from));
  return *it;
}

}  // namespace muster::cli
