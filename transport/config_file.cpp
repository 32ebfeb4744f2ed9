// config_file.cpp — see muster/config_file.hpp.
#include "muster/config_file.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace muster {

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

namespace {

// Every subcommand of `app` (get_subcommands() alone lists only those on the command line).
std::vector<CLI::App*> all_subcommands(CLI::App& app) {
  return app.get_subcommands([](CLI::App* sub) { return !sub->get_name().empty(); });
}

// The subcommand `name` of `app`, if it has one.
CLI::App* subcommand_of(CLI::App& app, const std::string& name) {
  for (CLI::App* sub : all_subcommands(app))
    if (sub->get_name() == name) return sub;
  return nullptr;
}

// The settings of `table` for `app` (the program, or the subcommand `parents` names), in the
// file's order, so that the first error reported is the first one in the file.
void collect(const CLI::App& program, CLI::App& app, const toml::table& table,
             const std::vector<std::string>& parents, const std::string& path,
             std::vector<CLI::ConfigItem>& items) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::stable_sort(entries.begin(), entries.end(), [](auto& a, auto& b) {
    return a.first->source().begin.line < b.first->source().begin.line;
  });
  std::string prefix;
  for (auto& p : parents) prefix += p + ".";
  std::string command = program.get_name();  // as typed: "muster-gateway serve"
  for (auto& p : parents) command += " " + p;

  for (auto& [key, node] : entries) {
    const std::string name(key->str());
    const std::string where = fmt::format("{}:{}: {}{}", path, key->source().begin.line, prefix, name);
    if (const toml::table* section = node->as_table()) {
      CLI::App* sub = subcommand_of(app, name);
      if (!sub) {
        if (all_subcommands(app).empty())
          throw CLI::ConfigError(
              parents.empty()
                  ? fmt::format("{}: a table; settings are top-level keys, with no [sections]", where)
                  : fmt::format("{}: a table; `{}` has no subcommands", where, command));
        throw CLI::ConfigError(fmt::format("{}: a table, and `{}` has no subcommand '{}' ({} --help lists them)",
                                           where, command, name, command));
      }
      auto inner = parents;
      inner.push_back(name);
      collect(program, *sub, *section, inner, path, items);
      continue;
    }
    CLI::Option* opt = app.get_option_no_throw("--" + name);
    if (!opt)
      throw CLI::ConfigError(fmt::format("{}: unknown setting ({} has no --{} option; {} --help lists them)",
                                         where, command, name, command));
    if (!is_setting(app, *opt))
      throw CLI::ConfigError(fmt::format("{}: --{} is a command-line option only, not a setting", where, name));
    Kind kind = kind_of(*opt);
    CLI::ConfigItem item;
    item.parents = parents;
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
}

// The settings of one app (no tables), as to_config writes them.
void write_settings(const CLI::App& app, bool default_also, bool write_description, std::string& out) {
  for (const CLI::Option* opt : app.get_options()) {
    if (!is_setting(app, *opt)) continue;
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
}

bool has_settings(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options())
    if (is_setting(app, *opt)) return true;
  return false;
}

// The subcommands chosen on the command line, each with its settings as a table.
void write_subcommands(const CLI::App& app, const std::string& prefix, bool default_also,
                       bool write_description, std::string& out) {
  for (const CLI::App* sub : app.get_subcommands()) {
    const std::string table = prefix + sub->get_name();
    if (has_settings(*sub)) {
      out += fmt::format("{}[{}]\n", out.empty() ? "" : "\n", table);
      std::string body;
      write_settings(*sub, default_also, write_description, body);
      out += body;
    }
    write_subcommands(*sub, table + ".", default_also, write_description, out);
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
  std::vector<CLI::ConfigItem> items;
  collect(app_, app_, table, {}, path, items);
  return items;
}

std::string TomlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string /*prefix*/) const {
  std::string out;
  write_settings(*app, default_also, write_description, out);
  write_subcommands(*app, "", default_also, write_description, out);
  return out;
}

void add_config_options(CLI::App& app, bool* print_config) {
  app.config_formatter(std::make_shared<TomlConfig>(app));
  app.set_config("--config", "",
                 "Read settings from this TOML file: each key is a flag's name without \"--\" "
                 "(e.g. log-level = \"debug\"), a subcommand's flags go in its [subcommand] table; "
                 "flags given on the command line win")
      ->type_name("FILE");
  app.add_flag("--print-config", *print_config,
               "Print the effective settings (file, flags and defaults) as TOML, which --config "
               "reads back, and exit")
      ->configurable(false);
}

std::string effective_config(const CLI::App& app) {
  std::string command = app.get_name() + " --config FILE";
  for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
    sub = sub->get_subcommands().front();
    command += " " + sub->get_name();
  }
  return fmt::format("# {} settings: `{}` reads this file (printed by --print-config)\n\n{}",
                     app.get_name(), command, app.config_to_str(/*default_also=*/true,
                                                                /*write_description=*/true));
}

std::optional<int> parse_or_exit(CLI::App& app, int argc, char** argv, const bool& print_config) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!print_config) return std::nullopt;
  std::cout << effective_config(app);
  return 0;
}

}  // namespace muster
