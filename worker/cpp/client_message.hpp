// client_message.hpp — (private to the C++ client library) finishing a ClientMessage: its
// request id, body and, for a gateway acting for one of its users, the OnBehalfOf assertion
// (docs/PROTOCOL.md §8.1). One place for the Client's calls and queries and for a Watch.
// Must never: send anything; the caller sends the finished buffer on its own socket.
#pragma once

#include <cstdint>

#include <flatbuffers/flatbuffers.h>

#include "muster/client.hpp"
#include "muster/wire/client_generated.h"

namespace muster {

inline void finish_client_message(flatbuffers::FlatBufferBuilder& fbb, std::uint64_t request_id,
                                  wire::ClientBody type, flatbuffers::Offset<void> body, const Assertion& as) {
  flatbuffers::Offset<wire::OnBehalfOf> asserted;
  if (as)
    asserted = wire::CreateOnBehalfOfDirect(fbb, as->user.c_str(), as->workspace.c_str(),
                                            as->role.empty() ? nullptr : as->role.c_str());
  wire::ClientMessageBuilder b(fbb);
  b.add_request_id(request_id);
  b.add_body_type(type);
  b.add_body(body);
  if (as) b.add_on_behalf_of(asserted);
  fbb.Finish(b.Finish(), wire::ClientMessageIdentifier());
}

}  // namespace muster
