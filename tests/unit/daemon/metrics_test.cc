// Metrics: the exposition text parses under the 0.0.4 grammar (every sample belongs to a family
// declared before it, label values escaped, no duplicate series), histogram buckets are cumulative and
// end with +Inf == count, and concurrent updates are not lost.
#include "daemon/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace airlock::daemon {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::vector<Sample> samples;
};

// A strict reader of the text format: fails the test on anything it does not understand.
Exposition parse_exposition(const std::string& text) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)$)");
  static const std::regex kLabel(R"(^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)\"(,|$))");
  Exposition out;
  std::set<std::string> series;
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "the text must end with a line feed";
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) continue;
    if (std::regex_match(line, m, kType)) {
      EXPECT_EQ(out.types.count(m[1]), 0u) << "TYPE twice for " << m[1];
      out.types[m[1]] = m[2];
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, m, kSample)) << "not a sample line: " << line;
    if (m.empty()) continue;
    Sample s;
    s.name = m[1];
    std::string labels = m[3];
    while (!labels.empty()) {
      std::smatch l;
      if (!std::regex_search(labels, l, kLabel)) {
        ADD_FAILURE() << "bad labels in: " << line;
        break;
      }
      std::string value;
      std::string raw = l[2];
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\\') {
          ++i;
          value += raw[i] == 'n' ? '\n' : raw[i];
        } else {
          value += raw[i];
        }
      }
      EXPECT_EQ(s.labels.count(l[1]), 0u) << "label twice: " << line;
      s.labels[l[1]] = value;
      labels = l.suffix();
    }
    std::string v = m[4];
    if (v == "+Inf") {
      s.value = INFINITY;
    } else if (v == "-Inf") {
      s.value = -INFINITY;
    } else if (v == "NaN") {
      s.value = NAN;
    } else {
      size_t used = 0;
      s.value = std::stod(v, &used);
      EXPECT_EQ(used, v.size()) << "bad value: " << line;
    }
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string base = s.name.substr(0, s.name.size() - std::min(s.name.size(), std::strlen(suffix)));
      if (s.name.ends_with(suffix) && out.types.count(base) && out.types[base] == "histogram") family = base;
    }
    EXPECT_TRUE(out.types.count(family)) << "sample before its # TYPE: " << line;
    std::string key = s.name + "|";
    for (const auto& [k, val] : s.labels) key += k + "=" + val + ",";
    EXPECT_TRUE(series.insert(key).second) << "series twice: " << line;
    out.samples.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> find(const Exposition& e, const std::string& name) {
  std::vector<Sample> out;
  for (const auto& s : e.samples) {
    if (s.name == name) out.push_back(s);
  }
  return out;
}

TEST(Metrics, FormatsValuesAsPrometheusDoes) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(12), "12");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
  EXPECT_EQ(format_metric_value(INFINITY), "+Inf");
  EXPECT_EQ(format_metric_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_metric_value(NAN), "NaN");
  EXPECT_EQ(std::stod(format_metric_value(0.1 + 0.2)), 0.1 + 0.2);  // round-trips
}

TEST(Metrics, DaemonMetricsRenderParseableText) {
  DaemonMetrics metrics;
  metrics.observe_sandbox_create(0.3);
  metrics.observe_exec(0.002);
  metrics.observe_exec(7);
  metrics.count_http_request("/v1/sandboxes", 201);
  metrics.count_http_request("/v1/sandboxes", 201);
  metrics.count_http_request("unmatched", 404);
  MetricsText text;
  metrics.render(text);
  auto e = parse_exposition(text.text());
  EXPECT_EQ(e.types["airlock_sandbox_create_seconds"], "histogram");
  EXPECT_EQ(e.types["airlock_exec_seconds"], "histogram");
  EXPECT_EQ(e.types["airlock_http_requests_total"], "counter");
  EXPECT_EQ(e.types["airlock_agent_protocol_errors_total"], "counter");
  auto requests = find(e, "airlock_http_requests_total");
  ASSERT_EQ(requests.size(), 2u);
  std::map<std::string, std::pair<std::string, double>> by_route;
  for (const auto& s : requests) by_route[s.labels.at("route")] = {s.labels.at("code"), s.value};
  EXPECT_EQ(by_route["/v1/sandboxes"], std::make_pair(std::string("201"), 2.0));
  EXPECT_EQ(by_route["unmatched"], std::make_pair(std::string("404"), 1.0));
  auto errors = find(e, "airlock_agent_protocol_errors_total");
  ASSERT_EQ(errors.size(), 1u);  // a counter without labels shows 0 before its first increment
  EXPECT_EQ(errors[0].value, 0);
  ASSERT_EQ(find(e, "airlock_exec_seconds_count").size(), 1u);
  EXPECT_EQ(find(e, "airlock_exec_seconds_count")[0].value, 2);
  EXPECT_DOUBLE_EQ(find(e, "airlock_exec_seconds_sum")[0].value, 7.002);
}

TEST(Metrics, HistogramBucketsAreCumulativeAndEndWithInf) {
  MetricsRegistry registry;
  Histogram& h = registry.histogram("t_seconds", "test", {1, 0.1, 10});  // unsorted on purpose
  for (double v : {0.05, 0.1, 0.5, 1.0, 3.0, 100.0}) h.observe(v);
  MetricsText text;
  registry.render(text);
  auto e = parse_exposition(text.text());
  auto buckets = find(e, "t_seconds_bucket");
  ASSERT_EQ(buckets.size(), 4u);
  std::vector<std::pair<std::string, double>> got;
  for (const auto& b : buckets) got.emplace_back(b.labels.at("le"), b.value);
  // le is inclusive: 0.1 counts in the 0.1 bucket, 1.0 in the 1 bucket.
  std::vector<std::pair<std::string, double>> want = {{"0.1", 2}, {"1", 4}, {"10", 5}, {"+Inf", 6}};
  EXPECT_EQ(got, want);
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_GE(buckets[i].value, buckets[i - 1].value);
  EXPECT_EQ(find(e, "t_seconds_count")[0].value, 6);
  EXPECT_DOUBLE_EQ(find(e, "t_seconds_sum")[0].value, 104.65);
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry registry;
  LabeledValues& g = registry.gauge("t_gauge", "help with \\ and\na line feed", {"path"});
  g.set({"a\"b\\c\nd"}, 1.5);
  g.add({"plain"}, 2);
  g.add({"plain"}, 3);
  g.add({"one", "too many"}, 1);  // wrong label count: ignored
  MetricsText text;
  registry.render(text);
  EXPECT_NE(text.text().find("# HELP t_gauge help with \\\\ and\\na line feed\n"), std::string::npos) << text.text();
  auto e = parse_exposition(text.text());
  auto samples = find(e, "t_gauge");
  ASSERT_EQ(samples.size(), 2u);
  std::map<std::string, double> by_path;
  for (const auto& s : samples) by_path[s.labels.at("path")] = s.value;
  EXPECT_EQ(by_path["a\"b\\c\nd"], 1.5);
  EXPECT_EQ(by_path["plain"], 5);
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  DaemonMetrics metrics;
  constexpr int kThreads = 8, kEach = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        metrics.observe_exec(0.001 * (i % 100));
        metrics.count_http_request(t % 2 ? "/a" : "/b", 200);
        if (i % 100 == 0) {
          MetricsText text;  // scrapes while others write
          metrics.render(text);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  MetricsText text;
  metrics.render(text);
  auto e = parse_exposition(text.text());
  EXPECT_EQ(find(e, "airlock_exec_seconds_count")[0].value, kThreads * kEach);
  double total = 0;
  for (const auto& s : find(e, "airlock_http_requests_total")) total += s.value;
  EXPECT_EQ(total, kThreads * kEach);
  auto buckets = find(e, "airlock_exec_seconds_bucket");
  EXPECT_EQ(buckets.back().labels.at("le"), "+Inf");
  EXPECT_EQ(buckets.back().value, kThreads * kEach);
}

}  // namespace
}  // namespace airlock::daemon
