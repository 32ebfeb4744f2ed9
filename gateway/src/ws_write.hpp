// ws_write.hpp — how the gateway's WebSocket session frames one outgoing message: written
// synchronously into the session's memory stream (CoalescingStream: it only appends), unless
// the WebSocket is closing.
// Owns: the rule "no data frame after a Close frame" (RFC 6455 §5.5.1). Beast enters `closing`
// before it writes a Close: the reply to the peer's Close (inside a pending read) or our own
// async_close. Its synchronous write does not refuse a closing stream, and the session writes
// pushes (node stats, worker events) at any time, so a message framed then would follow the
// Close on the wire; a browser fails the socket for it ("Data frame received after close").
// Must never: block, or write anything once the stream is not open.
#pragma once

#include <string_view>

#include "net.hpp"

namespace muster::gateway {

// Frames `text` into `ws` as one message (its text/binary mode). Returns false, writing nothing,
// when the WebSocket is no longer open; `ec` is the write's error otherwise.
template <class WebSocket>
bool write_message(WebSocket& ws, std::string_view text, boost::beast::error_code& ec) {
  ec = {};
  if (!ws.is_open()) return false;
  ws.write(boost::asio::buffer(text.data(), text.size()), ec);
  return !ec;
}

}  // namespace muster::gateway
