// Topic administration for tests against a real broker (auto-creation is
// off there): create a topic and wait until its metadata is visible, and read
// a group's committed offsets or set them (a replay), all through
// librdkafka's admin API.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include <librdkafka/rdkafka.h>

namespace prosody::testing {

inline rd_kafka_t* admin_handle(const std::string& bootstrap) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
  return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
}

// Returns an empty string on success, else the error.
inline std::string create_topic(const std::string& bootstrap, const std::string& topic, int partitions) {
  rd_kafka_t* rk = admin_handle(bootstrap);
  if (!rk) return "cannot create admin client";
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
  std::string result = "timed out";
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000)) {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** tr = rd_kafka_CreateTopics_result_topics(res, &n);
    result = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev)
             : (n == 1 && rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_NO_ERROR &&
                rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                 ? rd_kafka_topic_result_error_string(tr[0])
                 : "";
    rd_kafka_event_destroy(ev);
  }
  // Wait until every partition has a leader in the metadata.
  for (int i = 0; result.empty() && i < 100; ++i) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    bool ready = false;
    if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ready = md->topic_cnt == 1 && md->topics[0].err == 0 && md->topics[0].partition_cnt == partitions;
      for (int p = 0; ready && p < md->topics[0].partition_cnt; ++p) ready = md->topics[0].partitions[p].leader >= 0;
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    if (ready) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return result;
}

// Committed offsets of `group` on `topic` (partition -> offset; -1001 = none),
// read the way `kafka-consumer-groups --describe` does: the admin API's
// ListConsumerGroupOffsets, not a group member's view.
inline std::map<int, long> committed_offsets(const std::string& bootstrap, const std::string& topic,
                                             const std::string& group, int partitions) {
  std::map<int, long> out;
  rd_kafka_t* rk = admin_handle(bootstrap);
  if (!rk) return out;
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  rd_kafka_ListConsumerGroupOffsets_t* request = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, nullptr, q);
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000)) {
    if (!rd_kafka_event_error(ev)) {
      size_t n = 0;
      const auto** groups =
          rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
      for (size_t g = 0; g < n; ++g) {
        const rd_kafka_topic_partition_list_t* parts = rd_kafka_group_result_partitions(groups[g]);
        for (int i = 0; parts && i < parts->cnt; ++i) out[parts->elems[i].partition] = parts->elems[i].offset;
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return out;
}

// The sum over partitions of `group`'s committed offsets (a partition with
// none counts 0): the number of records committed when the topic started
// at offset 0.
inline long total_committed(const std::string& bootstrap, const std::string& topic, const std::string& group,
                            int partitions) {
  long total = 0;
  for (const auto& [partition, offset] : committed_offsets(bootstrap, topic, group, partitions)) {
    total += std::max(offset, 0L);
  }
  return total;
}

// Sets `group`'s committed offset of every partition of `topic` to `offset`
// (0 replays the topic), as `kafka-consumer-groups --reset-offsets` does;
// the group must have no members. Real brokers only: librdkafka 2.0.2's
// mock cluster refuses a commit from outside a group it has seen.
// Returns an empty string or the error.
inline std::string set_committed_offsets(const std::string& bootstrap, const std::string& topic,
                                         const std::string& group, int partitions, long offset) {
  rd_kafka_t* rk = admin_handle(bootstrap);
  if (!rk) return "cannot create admin client";
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = offset;
  rd_kafka_AlterConsumerGroupOffsets_t* request = rd_kafka_AlterConsumerGroupOffsets_new(group.c_str(), list);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AlterConsumerGroupOffsets(rk, &request, 1, nullptr, q);
  std::string result = "timed out";
  if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000)) {
    result = rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : "";
    size_t n = 0;
    const auto** groups =
        rd_kafka_AlterConsumerGroupOffsets_result_groups(rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    for (size_t g = 0; result.empty() && g < n; ++g) {
      if (const rd_kafka_error_t* e = rd_kafka_group_result_error(groups[g])) result = rd_kafka_error_string(e);
      const rd_kafka_topic_partition_list_t* parts = rd_kafka_group_result_partitions(groups[g]);
      for (int i = 0; result.empty() && parts && i < parts->cnt; ++i) {
        if (parts->elems[i].err) result = rd_kafka_err2str(parts->elems[i].err);
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_AlterConsumerGroupOffsets_destroy(request);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return result;
}

}  // namespace prosody::testing
