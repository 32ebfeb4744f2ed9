// uploads.cpp — file.upload.start / chunk / pause / resume on a WebSocket: the Gateway's side
// of the UploadStore (role check, replies to the sending connection).
#include <spdlog/spdlog.h>

#include "gateway.hpp"
#include "muster/gateway/envelope.hpp"

namespace muster::gateway {

void Gateway::upload_message(WsPeer& peer, const std::string& type, const Json& payload) {
  auto now = unix_now();
  std::vector<UploadReply> replies;
  if (!role_allows(peer.role, Role::Call)) {
    replies.push_back({"file.upload.error",
                       Json{{"session_id", payload.is_object() && payload.contains("session_id") ? payload["session_id"] : Json("")},
                            {"error", fmt::format("user '{}' has role '{}': uploads need role call or admin", peer.user,
                                                  role_name(peer.role))},
                            {"code", "UPLOAD_START_FAILED"}}});
  } else if (type == "file.upload.start") {
    replies.push_back(uploads_->start(peer.user, peer.id, payload, now));
  } else if (type == "file.upload.chunk") {
    replies = uploads_->chunk(peer.user, peer.id, payload, now);
  } else if (type == "file.upload.pause") {
    replies.push_back(uploads_->pause(peer.user, payload, now));
  } else if (type == "file.upload.resume") {
    replies.push_back(uploads_->resume(peer.user, peer.id, payload, now));
  } else {
    spdlog::warn("WebSocket #{} of {}: unknown message type '{}'", peer.id, peer.user, type.substr(0, 64));
    return send_to(peer, "error", error_payload(fmt::format("unknown message type '{}'", type.substr(0, 64)), codes::kUnknownType));
  }
  for (auto& r : replies) {
    if (r.type == "file.upload.error" || r.type == "file.upload.complete")
      metrics_.upload(r.type == "file.upload.complete" ? "completed" : "failed",
                      r.type == "file.upload.complete" ? r.payload["size"].get<std::uint64_t>() : 0);
    if (r.type == "file.upload.error")
      spdlog::info("upload of {} refused ({}): {}", peer.user, r.payload["code"].get<std::string>(),
                   r.payload["error"].get<std::string>());
    else if (r.type == "file.upload.complete")
      spdlog::info("upload of {} complete: {} ({} bytes)", peer.user, r.payload["file_hash"].get<std::string>(),
                   r.payload["size"].get<std::uint64_t>());
    send_to(peer, r.type, r.payload);
  }
}

}  // namespace muster::gateway
