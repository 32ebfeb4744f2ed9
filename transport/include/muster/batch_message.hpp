// batch_message.hpp — what waits in a BatchWriter, as the one ZeroMQ message that carries it.
// Owns: the single rule by which musterd, the C++ worker SDK and the C++ client library hand a
// turn's batch to libzmq (PROTOCOL.md §2.2): one message waiting goes alone (a copy: it is
// small), two or more go as a Batch whose buffer libzmq takes over uncopied
// (BatchWriter::release + message_owning) and frees once it has sent it.
// Must never: keep or touch the released buffer after handing it over; send anything itself.
#pragma once

#include <string_view>

#include <zmq.hpp>

#include "muster/batch.hpp"

namespace muster {

// The message for what waits in `w` (count() >= 1), and `w` emptied for the next batch.
// `worker_id` is required for BatchRoot::Worker (the Batch names its worker).
zmq::message_t take_batch(BatchWriter& w, BatchRoot root, std::string_view worker_id = {});

}  // namespace muster
