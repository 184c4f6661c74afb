// Interop checks between prosody (librdkafka) and the reference Java client.
//
// Plain Java 17 with only kafka-clients (and its runtime deps) on the
// classpath; run it through scripts/java-interop, which compiles and caches it.
//
//   produce <bootstrap> <topic> <count> <keys>
//       Sends <count> records with key "key-<i % keys>" and a JSON payload
//       {"id":"java-<i>","seq":<n-th record of that key>,"key":..,"type":"java.test"},
//       headers traceparent (W3C, derived from i) and x-interop=java. Idempotent
//       producer with acks=all, so per-key order and exactly-once append hold.
//       Prints "produced N".
//   consume <bootstrap> <topic> <group> <expected-count> <timeout-seconds>
//       Reads from the earliest offset as member of <group>, prints one JSON
//       line per record {"partition","offset","key","payload_b64","headers"}
//       (header values base64), commits synchronously, exits 0 when
//       <expected-count> records arrived before the timeout, else 3.
// Exit 2 on usage errors, 1 on Kafka errors.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.ArrayList;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Interop {
  private Interop() {}

  public static void main(String[] args) throws Exception {
    if (args.length >= 5 && args[0].equals("produce")) {
      System.exit(produce(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4])));
    } else if (args.length >= 6 && args[0].equals("consume")) {
      System.exit(consume(args[1], args[2], args[3], Integer.parseInt(args[4]),
          Integer.parseInt(args[5])));
    }
    System.err.println("usage: Interop produce <bootstrap> <topic> <count> <keys>");
    System.err.println("       Interop consume <bootstrap> <topic> <group> <expected-count> <timeout-seconds>");
    System.exit(2);
  }

  // W3C trace context "00-<32 hex trace id>-<16 hex span id>-01". Derived from
  // i so runs are reproducible; the +1 keeps both ids non-zero, as the spec
  // requires (an all-zero id is invalid).
  static String traceparent(int i) {
    return String.format("00-%016x%016x-%016x-01", 0x70726f736f6479L, (long) i + 1, (long) i + 1);
  }

  static int produce(String bootstrap, String topic, int count, int keys) throws Exception {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "prosody-java-interop");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    int[] seq = new int[keys];
    List<Future<RecordMetadata>> sent = new ArrayList<>(count);
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
      for (int i = 0; i < count; i++) {
        int k = i % keys;
        String key = "key-" + k;
        String payload = String.format(
            "{\"id\":\"java-%d\",\"seq\":%d,\"key\":\"%s\",\"type\":\"java.test\"}", i, seq[k]++, key);
        ProducerRecord<String, String> r = new ProducerRecord<>(topic, key, payload);
        r.headers().add("traceparent", traceparent(i).getBytes(StandardCharsets.UTF_8));
        r.headers().add("x-interop", "java".getBytes(StandardCharsets.UTF_8));
        sent.add(producer.send(r));
      }
      producer.flush();
      // get() rethrows any delivery failure, so "produced N" means N acked.
      for (Future<RecordMetadata> f : sent) {
        f.get();
      }
    }
    System.out.println("produced " + count);
    return 0;
  }

  static int consume(String bootstrap, String topic, String group, int expected, int timeoutSeconds) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "prosody-java-interop");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    Base64.Encoder b64 = Base64.getEncoder();
    int got = 0;
    long deadline = System.nanoTime() + Duration.ofSeconds(timeoutSeconds).toNanos();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
      consumer.subscribe(List.of(topic));
      while (got < expected && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
          StringBuilder line = new StringBuilder(256);
          line.append("{\"partition\":").append(r.partition())
              .append(",\"offset\":").append(r.offset())
              .append(",\"key\":").append(r.key() == null ? "null"
                  : quote(new String(r.key(), StandardCharsets.UTF_8)))
              .append(",\"payload_b64\":").append(r.value() == null ? "null"
                  : quote(b64.encodeToString(r.value())))
              .append(",\"headers\":{");
          // Later duplicates of a header name win, as in a JSON object.
          Map<String, String> headers = new HashMap<>();
          List<String> order = new ArrayList<>();
          for (Header h : r.headers()) {
            if (!headers.containsKey(h.key())) {
              order.add(h.key());
            }
            headers.put(h.key(), h.value() == null ? null : b64.encodeToString(h.value()));
          }
          for (int i = 0; i < order.size(); i++) {
            String v = headers.get(order.get(i));
            line.append(i == 0 ? "" : ",").append(quote(order.get(i))).append(':')
                .append(v == null ? "null" : quote(v));
          }
          line.append("}}");
          System.out.println(line);
          got++;
        }
      }
      // Commits the positions of everything polled, including any records
      // beyond expected-count in the last batch (they were printed too).
      consumer.commitSync();
    }
    System.out.flush();
    if (got < expected) {
      System.err.printf("consumed %d of %d records within %d s%n", got, expected, timeoutSeconds);
      return 3;
    }
    return 0;
  }

  // Minimal JSON string quoting (keys are arbitrary bytes decoded as UTF-8).
  static String quote(String s) {
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
