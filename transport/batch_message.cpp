// batch_message.cpp — see muster/batch_message.hpp.
#include "muster/batch_message.hpp"

#include "muster/frames.hpp"

namespace muster {

zmq::message_t take_batch(BatchWriter& w, BatchRoot root, std::string_view worker_id) {
  if (w.count() == 1) {
    zmq::message_t m(w.only().data(), w.only().size());
    w.clear();
    return m;
  }
  auto released = w.release(root, worker_id);
  return message_owning(released.raw, released.bytes);
}

}  // namespace muster
