// The README's quickstart, compiled and run by the test suite (mock mode)
// so the documentation cannot rot.
#include <prosody/prosody.h>

#include <atomic>
#include <iostream>
#include <thread>

class Orders : public prosody::EventHandler {
 public:
  prosody::HandlerResult on_message(prosody::Context& ctx, const prosody::Message& m) override {
    if (!m.payload().contains("amount")) return prosody::Error::permanent("order without amount");  // not retried
    if (ctx.should_cancel()) return prosody::Error::transient("cancelled");  // retried later
    std::cout << m.key() << " -> " << m.payload().dump() << "\n";
    ++handled;
    return prosody::ok_status();
  }
  std::atomic<int> handled{0};
};

int main() {
  // A source system different from the group id, so the consumer does not
  // skip what this same service sends (loop prevention).
  auto client = prosody::Client::create(prosody::Config::from_env()
                                            .with_group_id("orders")
                                            .with_source_system("orders-api")
                                            .with_subscribed_topics("orders"));
  auto orders = std::make_shared<Orders>();
  if (auto s = client->subscribe(orders); !s) {
    std::cerr << s.error().message() << "\n";  // every bad option, named
    return 1;
  }
  if (auto r = client->send("orders", "customer-42", R"({"type":"order.created","amount":10})"); !r) {
    std::cerr << r.error().message() << "\n";
  }
  for (int i = 0; i < 300 && orders->handled == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return client->unsubscribe() && orders->handled > 0 ? 0 : 1;  // finish in-flight work, commit, leave
}
