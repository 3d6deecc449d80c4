// Prometheus metrics: a small thread-safe registry of counters, gauges and fixed-bucket histograms,
// rendered in the text exposition format 0.0.4, and DaemonMetrics, the daemon's own instruments
// (what the HTTP pipeline and SandboxManager record). Passed in where needed, never global.
//
// Values read at scrape time (sandbox states from the store, cgroup usage) are not kept here: the
// /metrics route writes them straight into the same MetricsText after the registry's families.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace airlock::daemon {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;  // (name, value), in order

// Builds one exposition: a family header (# HELP, # TYPE) followed by its samples. Names and label
// names must be valid Prometheus names (a bug otherwise); label values and help are escaped here.
class MetricsText {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const MetricLabels& labels, double value);
  const std::string& text() const { return text_; }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

// A value as Prometheus writes it: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string format_metric_value(double value);

// Counters and gauges with labels: one value per combination of label values.
class LabeledValues {
 public:
  LabeledValues(std::string name, std::string help, std::string type, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), type_(std::move(type)), label_names_(std::move(label_names)) {}
  // label_values in label_names order; a wrong count is a bug (ignored).
  void add(const std::vector<std::string>& label_values, double delta);
  void set(const std::vector<std::string>& label_values, double value);
  double get(const std::vector<std::string>& label_values) const;
  void render(MetricsText& out) const;

 private:
  std::string name_, help_, type_;
  std::vector<std::string> label_names_;
  mutable std::mutex values_mu_;  // guards values_
  std::map<std::vector<std::string>, double> values_;
};

// A histogram without labels: fixed upper bounds (sorted, +Inf implied), cumulative when rendered.
class Histogram {
 public:
  Histogram(std::string name, std::string help, std::vector<double> upper_bounds);
  void observe(double value);
  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;
  void render(MetricsText& out) const;

 private:
  std::string name_, help_;
  std::vector<double> bounds_;
  mutable std::mutex counts_mu_;  // guards counts_, sum_, count_
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Families in registration order. Register everything before the daemon serves; afterwards only the
// values change (each family locks its own).
class MetricsRegistry {
 public:
  LabeledValues& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  LabeledValues& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  Histogram& histogram(std::string name, std::string help, std::vector<double> upper_bounds);
  void render(MetricsText& out) const;

 private:
  struct Family {
    std::unique_ptr<LabeledValues> values;
    std::unique_ptr<Histogram> histogram;
  };
  mutable std::mutex families_mu_;  // guards families_ (the families lock their own values)
  std::vector<Family> families_;
};

// The daemon's instruments. Thread-safe; every method is cheap (a lock and an add).
class DaemonMetrics {
 public:
  DaemonMetrics();
  // Wall time of a successful POST /v1/sandboxes, engine and agent included.
  void observe_sandbox_create(double seconds);
  // Round trip of one command (blocking run, and the lead's process/exec paths): exec to exit.
  void observe_exec(double seconds);
  // One response of the API; `route` is the route's pattern ("/v1/sandboxes/{sandbox_id}"), or
  // "unmatched" when no route matched, so that the label's values stay few.
  void count_http_request(std::string_view route, int status);
  // The agent broke the protocol (garbage, unknown ids, a dropped connection mid-exchange).
  void count_agent_protocol_error();
  void render(MetricsText& out) const { registry_.render(out); }

 private:
  MetricsRegistry registry_;
  Histogram& create_seconds_;
  Histogram& exec_seconds_;
  LabeledValues& http_requests_;
  LabeledValues& agent_protocol_errors_;
};

}  // namespace airlock::daemon
