// config.cpp — see config.hpp.
#include "config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace muster::broker {

namespace {

// What TOML type a setting takes, from CLI11's view of the option.
enum class Kind { Flag, Integer, Unsigned, Number, Boolean, Text };

Kind kind_of(const CLI::Option& opt) {
  if (opt.get_expected_min() == 0) return Kind::Flag;
  std::string type = opt.get_type_name();
  type = type.substr(0, type.find(':'));  // "UINT:INT in [10 - 3600000]" -> "UINT"
  if (type == "INT") return Kind::Integer;
  if (type == "UINT") return Kind::Unsigned;
  if (type == "FLOAT") return Kind::Number;
  if (type == "BOOLEAN") return Kind::Boolean;
  return Kind::Text;
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::Flag:
    case Kind::Boolean: return "a boolean (true or false)";
    case Kind::Integer: return "an integer";
    case Kind::Unsigned: return "a non-negative integer";
    case Kind::Number: return "a number";
    case Kind::Text: return "a string";
  }
  return "a value";
}

bool repeatable(const CLI::Option& opt) { return opt.get_expected_max() > 1; }

bool is_setting(const CLI::App& app, const CLI::Option& opt) {
  return opt.get_configurable() && !opt.get_lnames().empty() && &opt != app.get_help_ptr() &&
         &opt != app.get_help_all_ptr() && &opt != app.get_config_ptr();
}

std::string toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

// One TOML value as the string the command line would have given, or an error text.
std::string to_input(const toml::node& node, Kind kind, const std::string& where) {
  auto wrong = [&] {
    return CLI::ConfigError(fmt::format("{}: expected {}, got {}", where, kind_name(kind), toml_type_name(node)));
  };
  switch (kind) {
    case Kind::Flag:
    case Kind::Boolean:
      if (auto b = node.value_exact<bool>()) return *b ? "true" : "false";
      throw wrong();
    case Kind::Integer:
    case Kind::Unsigned: {
      auto i = node.value_exact<std::int64_t>();
      if (!i) throw wrong();
      if (kind == Kind::Unsigned && *i < 0)
        throw CLI::ConfigError(fmt::format("{}: expected {}, got {}", where, kind_name(kind), *i));
      return std::to_string(*i);
    }
    case Kind::Number:
      if (auto i = node.value_exact<std::int64_t>()) return std::to_string(*i);
      if (auto d = node.value_exact<double>()) return fmt::format("{}", *d);
      throw wrong();
    case Kind::Text:
      if (auto s = node.value_exact<std::string>()) return *s;
      throw wrong();
  }
  throw wrong();
}

// Runs the option's validators (CLI::Range, ...) on `input` as CLI11 will, so that the error
// names the file and line.
void validate(CLI::Option& opt, const std::string& input, const std::string& where) {
  for (int i = 0;; ++i) {
    CLI::Validator* validator = nullptr;
    try {
      validator = opt.get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      return;
    }
    std::string copy = input;
    if (auto error = (*validator)(copy); !error.empty())
      throw CLI::ConfigError(fmt::format("{}: {}", where, error));
  }
}

// A scalar as TOML text (strings quoted and escaped by toml++).
std::string toml_scalar(const std::string& input, Kind kind) {
  switch (kind) {
    case Kind::Flag:
    case Kind::Boolean: {
      bool on = false;
      try {
        on = CLI::detail::to_flag_value(input) > 0;
      } catch (const std::exception&) {
      }
      return on ? "true" : "false";
    }
    case Kind::Integer:
    case Kind::Unsigned: {
      std::int64_t i = 0;
      auto [end, ec] = std::from_chars(input.data(), input.data() + input.size(), i);
      if (ec == std::errc() && end == input.data() + input.size()) return std::to_string(i);
      break;  // not a plain decimal (e.g. 0x10): written as CLI11 took it, quoted
    }
    case Kind::Number: {
      double d = 0;
      auto [end, ec] = std::from_chars(input.data(), input.data() + input.size(), d);
      if (ec == std::errc() && end == input.data() + input.size()) return input;
      break;
    }
    case Kind::Text: break;
  }
  std::ostringstream out;
  out << toml::value<std::string>(input);
  return out.str();
}

std::string config_path(const CLI::App& app) {
  const CLI::Option* config = app.get_config_ptr();
  if (!config) return "config";
  if (!config->results().empty()) return config->results().front();
  return config->get_default_str();
}

void write_comment(std::string& out, const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    // Wrapped at about 96 columns, on spaces.
    while (line.size() > 94) {
      auto cut = line.rfind(' ', 94);
      if (cut == std::string::npos || cut == 0) break;
      out += "# " + line.substr(0, cut) + "\n";
      line = line.substr(cut + 1);
    }
    out += "# " + line + "\n";
  }
}

}  // namespace

std::vector<CLI::ConfigItem> TomlConfig::from_config(std::istream& input) const {
  const std::string path = config_path(app_);
  toml::table table;
  try {
    table = toml::parse(input, path);
  } catch (const toml::parse_error& e) {
    throw CLI::ConfigError(fmt::format("{}:{}:{}: {}", path, e.source().begin.line,
                                       e.source().begin.column, e.description()));
  }
  // In the file's order, so that the first error reported is the first one in the file.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) {
    return a.first->source().begin.line < b.first->source().begin.line;
  });

  std::vector<CLI::ConfigItem> items;
  for (auto& [key, node] : entries) {
    const std::string name(key->str());
    const std::string where = fmt::format("{}:{}: {}", path, key->source().begin.line, name);
    if (node->is_table())
      throw CLI::ConfigError(fmt::format("{}: a table; settings are top-level keys, with no [sections]", where));
    CLI::Option* opt = app_.get_option_no_throw("--" + name);
    if (!opt)
      throw CLI::ConfigError(fmt::format("{}: unknown setting ({} has no --{} option; {} --help lists them)",
                                         where, app_.get_name(), name, app_.get_name()));
    if (!is_setting(app_, *opt))
      throw CLI::ConfigError(fmt::format("{}: --{} is a command-line option only, not a setting", where, name));
    Kind kind = kind_of(*opt);
    CLI::ConfigItem item;
    item.name = name;
    if (const toml::array* array = node->as_array()) {
      if (!repeatable(*opt))
        throw CLI::ConfigError(fmt::format("{}: expected {}, got an array (--{} takes one value)", where,
                                           kind_name(kind), name));
      for (const toml::node& element : *array) item.inputs.push_back(to_input(element, kind, where));
      if (item.inputs.empty())
        throw CLI::ConfigError(fmt::format("{}: an empty array; leave the key out for the default", where));
    } else {
      item.inputs.push_back(to_input(*node, kind, where));
    }
    if (kind != Kind::Flag)
      for (auto& value : item.inputs) validate(*opt, value, where);
    items.push_back(std::move(item));
  }
  return items;
}

std::string TomlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string /*prefix*/) const {
  std::string out;
  for (const CLI::Option* opt : app->get_options()) {
    if (!is_setting(*app, *opt)) continue;
    if (!default_also && opt->count() == 0) continue;
    const std::string name = opt->get_lnames().front();
    const Kind kind = kind_of(*opt);
    if (write_description) {
      if (!out.empty()) out += "\n";
      write_comment(out, opt->get_description());
    }
    std::vector<std::string> values;
    if (opt->count() > 0) {
      values = opt->results();
      if (kind == Kind::Flag) values = {opt->as<bool>() ? "true" : "false"};
    } else if (kind == Kind::Flag) {
      values = {opt->get_default_str().empty() ? "false" : opt->get_default_str()};
    } else if (!opt->get_default_str().empty() && !repeatable(*opt)) {
      values = {opt->get_default_str()};
    }
    if (values.empty()) {
      out += fmt::format("# {} = {}  (not set)\n", name, repeatable(*opt) ? "[]" : "\"\"");
      continue;
    }
    if (repeatable(*opt)) {
      std::vector<std::string> items;
      for (auto& v : values) items.push_back(toml_scalar(v, kind));
      out += fmt::format("{} = [{}]\n", name, fmt::join(items, ", "));
    } else {
      out += fmt::format("{} = {}\n", name, toml_scalar(values.back(), kind));
    }
  }
  return out;
}

void add_config_options(CLI::App& app, bool* print_config) {
  app.config_formatter(std::make_shared<TomlConfig>(app));
  app.set_config("--config", "",
                 "Read settings from this TOML file: each key is a flag's name without \"--\" "
                 "(e.g. queue-limit = 100); flags given on the command line win")
      ->type_name("FILE");
  app.add_flag("--print-config", *print_config,
               "Print the effective settings (file, flags and defaults) as TOML, which --config "
               "reads back, and exit")
      ->configurable(false);
}

std::string effective_config(const CLI::App& app) {
  return fmt::format("# {} settings: `{} --config FILE` reads this file (printed by --print-config)\n\n{}",
                     app.get_name(), app.get_name(), app.config_to_str(/*default_also=*/true,
                                                                      /*write_description=*/true));
}

}  // namespace muster::broker
