// fuzz_bridge_json.cpp — libFuzzer target for what muster-bridge reads from the network: the
// Hurozo register request body (HTTP), the WebSocket `remote_node` event and reply (JSON), the
// outputs mapping of a reply, URLs and query parameters, the host's WebSocket token, and the
// API tokens file. The first input byte picks the parser. Each promises not to throw on hostile
// input (hurozo.hpp) or to throw only its documented exception type.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "muster/bridge/api_tokens.hpp"
#include "muster/bridge/hurozo.hpp"
#include "muster/bridge/url.hpp"
#include "muster/bridge/ws_token.hpp"

using namespace muster;
using namespace muster::bridge;

namespace {
const WsTokenSigner& signer() {
  static WsTokenSigner s(std::string(32, 'k'));
  return s;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 8) {
    case 0: {
      auto r = parse_register_request(text);
      if (auto* req = std::get_if<RegisterRequest>(&r)) (void)register_payload(*req).dump();
      break;
    }
    case 1: {
      auto r = parse_event(text);
      if (auto* e = std::get_if<RemoteEvent>(&r)) {
        // Host side: the event's inputs become a muster call's inputs.
        if (e->inputs.is_object()) {
          try {
            Map m = from_json(e->inputs).as_map();
            (void)inputs_for_event({"a", "b"}, m).dump();
          } catch (const std::invalid_argument&) {
          }
        }
        (void)event_message(*e).dump();
      }
      break;
    }
    case 2: {
      auto r = parse_reply(text);
      if (auto* rep = std::get_if<RemoteReply>(&r)) {
        std::vector<std::string> missing;
        Map out = outputs_from_reply({"greeting", "shout", "x"}, rep->outputs, &missing);
        try {
          (void)outputs_for_reply({"greeting", "shout"}, out).dump();
        } catch (const std::invalid_argument&) {
        }
        (void)reply_message(*rep).dump();
      }
      break;
    }
    case 3:
      try {
        auto u = parse_url(text);
        (void)u.host_header();
        (void)u.str();
      } catch (const std::invalid_argument&) {
      }
      break;
    case 4:
      (void)url_decode(text);
      (void)query_param(text, "auth");
      (void)target_path(text);
      (void)append_query_param(text, "auth", text);
      break;
    case 5: {
      std::string why;
      (void)signer().verify(text, 1'700'000'000'000, &why);
      (void)base64url_decode(text);
      break;
    }
    case 6:
      try {
        auto tokens = ApiTokens::parse(text);
        (void)tokens.authorize(std::string_view("Bearer abc"), true);
      } catch (const std::invalid_argument&) {
      }
      break;
    case 7: {
      ApiTokens tokens;
      tokens.add("good-token", ApiToken{"ada", false});
      auto r = tokens.authorize(text, true);
      if (r.ok) std::abort();  // the only token is read-only: no write may pass
      break;
    }
  }
  return 0;
}
